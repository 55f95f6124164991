"""Load tokenizers and models for a task, and reload fine-tuned runs for inference.

Two safety rules hold for every load: ``trust_remote_code`` is whatever the operator set (off by
default: a model folder is data and should not execute), and weights come only from
safetensors files — a folder with only pickle weights (``pytorch_model.bin``) is refused,
because unpickling a file from a user can run arbitrary code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tunesmith.errors import ModelError, ModelNotFoundError
from tunesmith.models.config import CONFIG_FILE, detect_kind, max_length_from_config
from tunesmith.models.registry import PACKAGED_MODELS, ResolvedModel, resolve_model
from tunesmith.settings import Settings
from tunesmith.tasks import ModelKind, Task

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "ADAPTER_CONFIG",
    "RUN_MANIFEST",
    "LabelSpaceLike",
    "LoadedModel",
    "detect_kind",
    "inference_placement",
    "load_any",
    "load_finetuned",
    "load_model",
    "load_tokenizer",
    "read_run_manifest",
    "require_safetensors",
]

RUN_MANIFEST = "tunesmith.json"  # same name as training/manifest.py; models must not import it
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")
_PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl"})

# Config fields that hold a dropout probability, across architectures; only those a config
# actually has are overridden.
DROPOUT_FIELDS = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "attention_dropout",
    "dropout",
    "dropout_rate",
    "classifier_dropout",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "hidden_dropout",
    "activation_dropout",
    "seq_classif_dropout",
    "qa_dropout",
    "summary_first_dropout",
    "embedding_dropout",
    "mlp_dropout",
)

# LabelSpace.problem_type -> the transformers config value. The training loop computes its own
# loss; this only keeps the saved config truthful for tools that read it. Binary uses one logit
# (the positive class, names[1]) with a sigmoid, hence "multi_label" in transformers' terms.
_HF_PROBLEM_TYPES = {
    "binary": "multi_label_classification",
    "multiclass": "single_label_classification",
    "multilabel": "multi_label_classification",
}


class LabelSpaceLike(Protocol):
    """What loading needs of ``tunesmith.data.labels.LabelSpace``."""

    @property
    def names(self) -> list[str]: ...

    @property
    def num_outputs(self) -> int: ...

    @property
    def problem_type(self) -> str: ...


@dataclass
class LoadedModel:
    """A model ready for inference (``eval()`` mode) with what is needed to use it."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    manifest: dict[str, Any]  # tunesmith.json of a run; a minimal stand-in for a base model
    kind: ModelKind
    task: Task
    label_space: Any | None  # a LabelSpace for classification runs


def load_tokenizer(
    source: ResolvedModel | Path | str, settings: Settings
) -> PreTrainedTokenizerBase:
    """The folder's tokenizer, always with a pad token.

    A missing pad token becomes eos (decoder models rarely define one). That is safe for
    training because labels are masked explicitly, not by "is this a pad id", so the real eos
    that ends each assistant turn stays in the loss. ``padding_side`` is left as the tokenizer
    defines it: generation with a causal model needs left padding, which the caller sets
    (``tokenizer.padding_side = "left"``) since training wants right padding.
    """
    from transformers import AutoTokenizer

    path = source.path if isinstance(source, ResolvedModel) else Path(source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, trust_remote_code=settings.trust_remote_code
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load a tokenizer from {path}: {exc}") from exc
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.sep_token or tokenizer.unk_token
        if fallback is None:
            raise ModelError(
                f"the tokenizer in {path} has no pad, eos, sep or unk token to pad batches with"
            )
        tokenizer.pad_token = fallback
    return tokenizer


def require_safetensors(path: Path) -> None:
    """Refuse folders without safetensors weights, naming the pickle files found instead."""
    if any(path.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickles:
        raise ModelError(
            f"{path} has only pickle weights ({', '.join(pickles)}); tunesmith loads "
            "safetensors only, because loading a pickle can run arbitrary code. Convert it "
            "where you trust it, e.g. `AutoModel.from_pretrained(folder).save_pretrained(folder)` "
            "(which writes model.safetensors), or use a safetensors release of the model."
        )
    raise ModelError(f"{path} has no model weights (no *.safetensors file)")


def inference_placement(
    settings: Settings,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[torch.device, torch.dtype]:
    """Where a model runs for inference, and in which dtype; explicit arguments win.

    ``settings.inference_device`` "auto" is the first CUDA GPU when there is one, else the CPU.
    ``settings.inference_dtype`` "auto" is bf16 where that device multiplies bf16 natively,
    as training's precision "auto" decides, else fp32: decoding reads every weight once per
    token and bf16 halves that, and bf16 products run 2-3x faster there (measured on an
    AVX512-BF16 CPU: 8 concurrent replies 1.44x faster, the same greedy text;
    docs/decisions/013-inference-on-gpus.md).
    """
    import torch

    from tunesmith.training.precision import matmul_dtype, native_bf16

    if device is None:
        wanted = settings.inference_device
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        device = wanted
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if dtype is None:
        wanted = settings.inference_dtype
        if wanted == "auto":
            wanted = "bf16" if native_bf16(device) else "fp32"
        dtype = matmul_dtype(wanted)  # type: ignore[arg-type]
    return device, dtype


def load_model(
    resolved: ResolvedModel,
    *,
    task: Task | str,
    settings: Settings,
    label_space: LabelSpaceLike | None = None,
    dtype: torch.dtype | None = None,
    dropout: float | None = None,
    pad_token_id: int | None = None,
    device: torch.device | str | None = None,
) -> PreTrainedModel:
    """The model with the head the task needs, in fp32 on the CPU unless ``dtype`` and
    ``device`` say otherwise.

    Chat/completion: a causal LM (seq2seq LM for encoder-decoders). Classification: a sequence
    classifier with ``label_space.num_outputs`` outputs (a new, random head on a base model).
    ``dropout`` overrides every dropout probability the config defines. Decoder classifiers
    find the last real token through ``config.pad_token_id``, so it is set when missing: from
    ``pad_token_id`` or else the folder's tokenizer (the same pad ``load_tokenizer`` uses).
    """
    import torch
    from transformers import AutoConfig

    task = Task(task)
    path = resolved.path
    require_safetensors(path)
    auto_class = _auto_class(task, resolved.kind)
    config = AutoConfig.from_pretrained(path, trust_remote_code=settings.trust_remote_code)
    if dropout is not None:
        _override_dropout(config, dropout)
    if getattr(config, "pad_token_id", None) is None and resolved.kind != ModelKind.ENCODER:
        config.pad_token_id = (
            pad_token_id if pad_token_id is not None else _pad_id(path, config, settings)
        )
    if task == Task.CLASSIFICATION:
        _configure_labels(config, label_space)
    try:
        model = auto_class.from_pretrained(
            path,
            config=config,
            dtype=dtype or torch.float32,
            use_safetensors=True,
            trust_remote_code=settings.trust_remote_code,
            # transformers turns Hub kernels on by default: where the network is reachable
            # that fetches and runs kernel code from the Hub, which, like remote code, is
            # never done without the operator. With them on, every train()/eval() also
            # re-kernelizes the model and drops tunesmith's own CPU fusions
            # (training/fused_elementwise.py).
            use_kernels=False,
        )
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"cannot load {resolved.name} ({path}) for {task}: {exc}") from exc
    if task == Task.CLASSIFICATION and resolved.kind == ModelKind.ENCODER:
        from tunesmith.models.pooling import pool_as_declared

        pool_as_declared(model, path)
    generation = getattr(model, "generation_config", None)
    if generation is not None and generation.pad_token_id is None:
        generation.pad_token_id = config.pad_token_id
    if device is not None:
        model.to(device)
    return model


def load_finetuned(
    run_dir: Path | str,
    settings: Settings,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> LoadedModel:
    """A fine-tuned run folder, ready for inference: base + LoRA adapter, or the full model,
    on the device and in the dtype of ``inference_placement`` unless given."""
    run_dir = Path(run_dir)
    device, dtype = inference_placement(settings, device, dtype)
    manifest = read_run_manifest(run_dir)
    try:
        task = Task(manifest["task"])
        kind = ModelKind(manifest["model_kind"])
    except (KeyError, ValueError) as exc:
        raise ModelError(f"{run_dir / RUN_MANIFEST} lacks a valid task/model_kind: {exc}") from exc
    label_space = _label_space_from_dict(manifest.get("label_space"))
    if (run_dir / ADAPTER_CONFIG).is_file():
        base = _resolve_base(manifest, settings)
        model = _load_adapter(run_dir, base, task, settings, label_space, dtype, device)
        tokenizer_dir = run_dir if _has_tokenizer(run_dir) else base.path
    elif (run_dir / CONFIG_FILE).is_file():
        resolved = ResolvedModel(
            name=str(run_dir),
            path=run_dir,
            kind=kind,
            packaged=False,
            max_length=max_length_from_config(run_dir),
        )
        model = load_model(
            resolved,
            task=task,
            settings=settings,
            label_space=label_space,
            dtype=dtype,
            device=device,
        )
        tokenizer_dir = run_dir
    else:
        raise ModelError(
            f"{run_dir} has neither an adapter ({ADAPTER_CONFIG}) nor a model ({CONFIG_FILE}); "
            "the run may not have saved its weights yet"
        )
    model.eval()
    tokenizer = load_tokenizer(tokenizer_dir, settings)
    return LoadedModel(model, tokenizer, manifest, kind, task, label_space)


def load_any(
    name_or_path: Path | str,
    settings: Settings,
    *,
    task: Task | str | None = None,
    label_space: LabelSpaceLike | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> LoadedModel:
    """A run folder (has tunesmith.json) or a base model name, for evaluate / predict / chat,
    on the device and in the dtype of ``inference_placement`` unless given.

    For a base model the task defaults to chat when its tokenizer has a chat template, else
    completion; a base encoder has no trained head, so classification needs ``label_space``.
    """
    if (Path(name_or_path).expanduser() / RUN_MANIFEST).is_file():
        path = Path(name_or_path).expanduser()
        loaded = load_finetuned(path, settings, dtype=dtype, device=device)
        if task is not None and Task(task) != loaded.task:
            raise ModelError(f"{name_or_path} was fine-tuned for {loaded.task}, not {task}")
        return loaded
    resolved = resolve_model(str(name_or_path), settings)
    tokenizer = load_tokenizer(resolved, settings)
    task = Task(task) if task is not None else _default_task(resolved, tokenizer)
    if task == Task.CLASSIFICATION and label_space is None:
        raise ModelError(
            f"{resolved.name} is a base model without a trained classifier; fine-tune it for "
            "classification first, or pass the label space to use an untrained head"
        )
    device, dtype = inference_placement(settings, device, dtype)
    model = load_model(
        resolved,
        task=task,
        settings=settings,
        label_space=label_space,
        dtype=dtype,
        pad_token_id=tokenizer.pad_token_id,
        device=device,
    )
    model.eval()
    manifest = {
        "base_model": resolved.name,
        "base_model_path": str(resolved.path),
        "model_kind": resolved.kind.value,
        "task": task.value,
        "method": None,
        "label_space": _label_space_to_dict(label_space),
    }
    return LoadedModel(model, tokenizer, manifest, resolved.kind, task, label_space)


def read_run_manifest(run_dir: Path) -> dict[str, Any]:
    """``tunesmith.json`` of a run folder, with errors that say what is wrong."""
    file = run_dir / RUN_MANIFEST
    if not file.is_file():
        raise ModelNotFoundError(f"{run_dir} is not a tunesmith run folder (no {RUN_MANIFEST})")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {file}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ModelError(f"{file} does not hold a JSON object")
    return manifest


def _auto_class(task: Task, kind: ModelKind) -> Any:
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
    )

    if task == Task.CLASSIFICATION:
        return AutoModelForSequenceClassification
    if kind == ModelKind.SEQ2SEQ:
        return AutoModelForSeq2SeqLM
    if kind == ModelKind.ENCODER:
        raise ModelError(
            f"{task} needs a model that generates text; encoder (BERT-like) models only "
            "classify. Choose a causal model such as smollm2-135m-instruct."
        )
    return AutoModelForCausalLM


def _override_dropout(config: Any, dropout: float) -> None:
    """Set every dropout field the config (and its text sub-config) defines."""
    for cfg in (config, getattr(config, "text_config", None)):
        if cfg is None:
            continue
        for name in DROPOUT_FIELDS:
            if hasattr(cfg, name):
                setattr(cfg, name, dropout)


def _pad_id(path: Path, config: Any, settings: Settings) -> int | None:
    """The pad id ``load_tokenizer`` gives this folder's tokenizer; the config's eos without one."""
    if _has_tokenizer(path):
        try:
            pad_id = load_tokenizer(path, settings).pad_token_id
        except ModelError:
            pad_id = None
        if pad_id is not None:
            return int(pad_id)
    eos = getattr(config, "eos_token_id", None)
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    return int(eos) if eos is not None else None


def _configure_labels(config: Any, label_space: LabelSpaceLike | None) -> None:
    if label_space is None:
        raise ModelError("a classification model needs the label space (the list of labels)")
    names = list(label_space.names)
    outputs = label_space.num_outputs
    # One output (binary): its logit scores the positive class, the second name.
    labels = [names[-1]] if outputs == 1 else names
    config.id2label = dict(enumerate(labels))
    config.label2id = {name: i for i, name in enumerate(labels)}
    config.num_labels = outputs
    config.problem_type = _HF_PROBLEM_TYPES.get(label_space.problem_type)


def _resolve_base(manifest: dict[str, Any], settings: Settings) -> ResolvedModel:
    """The run's base model: by name, or by its recorded path when the name no longer works.

    A relative folder name resolves against today's working directory, so for local folders
    the absolute ``base_model_path`` the run recorded is tried first.
    """
    name = manifest.get("base_model")
    if not name:
        raise ModelError("the run's tunesmith.json does not name its base_model")
    recorded = manifest.get("base_model_path")
    if name not in PACKAGED_MODELS and recorded and (Path(recorded) / CONFIG_FILE).is_file():
        resolved = resolve_model(recorded, settings)
        return ResolvedModel(name, resolved.path, resolved.kind, False, resolved.max_length)
    return resolve_model(name, settings)


def _load_adapter(
    run_dir: Path,
    base: ResolvedModel,
    task: Task,
    settings: Settings,
    label_space: LabelSpaceLike | None,
    dtype: torch.dtype,
    device: torch.device,
) -> Any:
    from peft import PeftModel

    if not (run_dir / ADAPTER_WEIGHTS).is_file():
        raise ModelError(f"{run_dir} has an adapter config but no {ADAPTER_WEIGHTS}")
    model = load_model(
        base, task=task, settings=settings, label_space=label_space, dtype=dtype, device=device
    )
    try:
        return PeftModel.from_pretrained(model, run_dir, is_trainable=False)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"cannot apply the adapter in {run_dir} to {base.name}: {exc}") from exc


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _TOKENIZER_FILES)


def _default_task(resolved: ResolvedModel, tokenizer: PreTrainedTokenizerBase) -> Task:
    if resolved.kind == ModelKind.ENCODER:
        return Task.CLASSIFICATION
    return Task.CHAT if getattr(tokenizer, "chat_template", None) else Task.COMPLETION


def _label_space_from_dict(data: dict[str, Any] | None) -> Any | None:
    """Rebuild the run's LabelSpace; imported here so models/ loads without data/ loaded."""
    if not data:
        return None
    from tunesmith.data.labels import LabelSpace

    return LabelSpace.from_dict(data)


def _label_space_to_dict(label_space: LabelSpaceLike | None) -> dict[str, Any] | None:
    to_dict = getattr(label_space, "to_dict", None)
    return to_dict() if callable(to_dict) else None
