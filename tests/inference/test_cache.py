"""ModelCache: one tiny base model in memory serves two LoRA fine-tunes and itself."""

from __future__ import annotations

import threading
import time

import pytest
from peft import LoraConfig, get_peft_model
from transformers import AutoTokenizer, LlamaForCausalLM

from tests.inference.tiny_models import save_base, save_lora_adapter, tiny_causal, write_manifest
from tunesmith.data.labels import LabelSpace
from tunesmith.inference.cache import ModelCache
from tunesmith.inference.classification import classify
from tunesmith.inference.generation import GenerationParams, generate_chat
from tunesmith.models.loading import load_model
from tunesmith.models.registry import resolve_model
from tunesmith.settings import Settings

MESSAGES = [{"role": "user", "content": "hello"}]
GREEDY = GenerationParams(max_new_tokens=8, temperature=0)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("cache")
    base = save_base(tiny_causal(tokenizer), tokenizer, root / "base")
    runs = []
    for seed in (1, 2):
        run = save_lora_adapter(base, root / f"run{seed}", seed=seed)
        runs.append(write_manifest(run, base))
    return base, runs


@pytest.fixture
def cache(tmp_path):
    # on the CPU in fp32 even where a GPU or native bf16 is: these tests compare with models
    # run directly in fp32
    settings = Settings(data_dir=tmp_path, inference_device="cpu", inference_dtype="fp32")
    return ModelCache(settings, max_models=2)


def _reply(handle):
    with handle as h:
        return generate_chat(h.model, h.tokenizer, MESSAGES, GREEDY)[0].text


def test_adapters_share_one_base_and_switch(cache, folders, tokenizer):
    base, (run1, run2) = folders
    first, second = _reply(cache.get(run1)), _reply(cache.get(run2))
    plain = _reply(cache.get(base))
    assert len(cache) == 1  # base and both adapters: one model in memory
    assert first != second
    assert plain == generate_chat(tiny_causal(tokenizer), tokenizer, MESSAGES, GREEDY)[0].text
    assert plain not in (first, second)
    assert _reply(cache.get(run1)) == first  # switching back restores the adapter


def test_a_cpu_lora_entry_packs_its_prefills_and_groups_its_lora_layers(cache, folders):
    """On a CPU the served decoder is switched to per-example attention and its LoRA layers
    that share an input are computed together; each adapter still replies as peft's own
    unfused model with ``sdpa`` does (the second adapter is loaded onto the grouped model)."""
    from peft import PeftModel

    from tunesmith.training.packed_attention import uses_packed_attention

    base, runs = folders
    served = [_reply(cache.get(run)) for run in runs]
    handle = cache.get(runs[0])
    assert uses_packed_attention(handle.model.get_base_model())
    grouped = [m for m in handle.model.modules() if "forward" in vars(m)]  # the groups' layers
    assert len(grouped) == 7 * 2  # q, k, v, o, gate, up, down in each of the two layers
    for run, reply in zip(runs, served, strict=True):
        plain = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(base), run).eval()
        assert plain.config._attn_implementation == "sdpa"
        tokenizer = AutoTokenizer.from_pretrained(base)
        assert reply == generate_chat(plain, tokenizer, MESSAGES, GREEDY)[0].text


def test_base_loaded_first_then_adapter(cache, folders):
    base, (run1, _) = folders
    plain = _reply(cache.get(base))
    adapted = _reply(cache.get(run1))
    assert _reply(cache.get(base)) == plain != adapted


def test_handle_describes_the_run(cache, folders):
    _, (run1, _) = folders
    handle = cache.get(run1)
    assert handle.task == "chat"
    assert handle.manifest["method"] == "lora"


def test_least_recently_used_is_dropped(tmp_path, folders, tokenizer):
    base, _ = folders
    other = save_base(tiny_causal(tokenizer, seed=5), tokenizer, tmp_path / "other")
    cache = ModelCache(Settings(data_dir=tmp_path), max_models=1)
    cache.get(base)
    cache.get(other)
    assert len(cache) == 1


def test_full_run_gets_its_own_entry(cache, tmp_path, tokenizer):
    run = save_base(tiny_causal(tokenizer, seed=3), tokenizer, tmp_path / "full")
    write_manifest(run, None, method="full")
    with cache.get(run) as handle:
        assert handle.task == "chat"
        assert not hasattr(handle.model, "peft_config")


def test_concurrent_requests_each_get_their_adapter(cache, folders):
    base, (run1, run2) = folders
    expected = {str(r): _reply(cache.get(r)) for r in (run1, run2, base)}
    results: dict[str, list[str]] = {k: [] for k in expected}

    def worker(target):
        for _ in range(3):
            results[str(target)].append(_reply(cache.get(target)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in (run1, run2, base)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(set(results[k]) == {expected[k]} for k in expected)


def test_a_handle_knows_when_another_request_waits_for_its_model(cache, folders):
    """A continuous batch stops admitting rows then, so it ends and lets the other in."""
    _, (run1, run2) = folders
    _reply(cache.get(run2))  # both adapters loaded: the next get of run2 only waits for the lock
    with cache.get(run1) as held:
        assert not held.wanted_elsewhere
        other = threading.Thread(target=lambda: _reply(cache.get(run2)))
        other.start()
        for _ in range(1000):  # up to 10 s for the thread to block on the shared base
            if held.wanted_elsewhere:
                break
            time.sleep(0.01)
        assert held.wanted_elsewhere
        assert other.is_alive()  # it waits while the base is held
    other.join(10)
    assert not other.is_alive() and not held.wanted_elsewhere


def test_classification_lora_run_restores_its_head(cache, folders, tmp_path):
    """A LoRA classification run saves its new head with the adapter (peft modules_to_save);
    served from the cache it gives the probabilities of the model that was saved."""
    base, _ = folders
    space = LabelSpace(["a", "b", "c"])
    settings = Settings(data_dir=tmp_path)
    model = load_model(
        resolve_model(str(base), settings),
        task="classification",
        settings=settings,
        label_space=space,
    )
    peft_model = get_peft_model(
        model, LoraConfig(r=4, target_modules="all-linear", task_type="SEQ_CLS")
    ).eval()
    run = tmp_path / "cls-run"
    peft_model.save_pretrained(run)
    write_manifest(run, base, task="classification", label_space=space.to_dict())
    texts = ["free prize", "see you"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    expected = classify(peft_model, tokenizer, texts, space)
    with cache.get(run) as handle:
        assert handle.label_space == space
        served = classify(handle.model, handle.tokenizer, texts, handle.label_space)
    for got, want in zip(served, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-6)
