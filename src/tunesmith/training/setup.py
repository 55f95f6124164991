"""Applying the fine-tuning method to a loaded model: which parameters train.

* ``lora``: peft adapters on the chosen linear layers; for classification peft also trains
  (and saves) the new classifier head.
* ``full``: every parameter.
* ``head``: the base is frozen; the classifier head (classification) and the top
  ``head_layers`` transformer blocks with the final norm train. For a causal LM "head" means
  those top blocks: with tied embeddings the output projection is the input embedding
  matrix, which stays frozen.
"""

from __future__ import annotations

from torch import nn

from tunesmith.errors import ConfigError
from tunesmith.tasks import Method, ModelKind, Task
from tunesmith.training.spec import ResolvedHyperparameters

# Names transformers gives the classification head of sequence-classification models.
CLASSIFIER_HEAD_NAMES = ("classifier", "score", "classification_head")
FINAL_NORM_NAMES = ("norm", "final_layer_norm", "ln_f", "final_layernorm")


def apply_method(
    model: nn.Module,
    method: Method,
    task: Task,
    kind: ModelKind,
    hp: ResolvedHyperparameters,
) -> nn.Module:
    """Return the model ready to train with ``method`` (a peft model for LoRA)."""
    if method == Method.LORA:
        return _apply_lora(model, task, kind, hp)
    if method == Method.FULL:
        for param in model.parameters():
            param.requires_grad = True
        return model
    if method == Method.HEAD:
        _freeze_all_but_head(model, task, hp.head_layers)
        return model
    raise ConfigError(f"unknown method {method!r}")


def _apply_lora(
    model: nn.Module, task: Task, kind: ModelKind, hp: ResolvedHyperparameters
) -> nn.Module:
    from peft import LoraConfig, TaskType, get_peft_model

    if task == Task.CLASSIFICATION:
        task_type = TaskType.SEQ_CLS
    elif kind == ModelKind.SEQ2SEQ:
        task_type = TaskType.SEQ_2_SEQ_LM
    else:
        task_type = TaskType.CAUSAL_LM
    config = LoraConfig(
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules=hp.lora_target_modules,
        task_type=task_type,
    )
    try:
        return get_peft_model(model, config)  # type: ignore[arg-type]
    except ValueError as exc:  # e.g. target modules that do not exist in this model
        raise ConfigError(f"LoRA cannot be applied: {exc}") from exc


def transformer_blocks(model: nn.Module) -> nn.ModuleList | None:
    """The stack of transformer blocks: the ModuleList holding most parameters."""
    best: nn.ModuleList | None = None
    best_size = 0
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            size = sum(p.numel() for p in module.parameters())
            if size > best_size:
                best, best_size = module, size
    return best


def _freeze_all_but_head(model: nn.Module, task: Task, head_layers: int) -> None:
    for param in model.parameters():
        param.requires_grad = False
    trainable: list[nn.Module] = []
    if task == Task.CLASSIFICATION:
        trainable += [m for n, m in model.named_children() if n in CLASSIFIER_HEAD_NAMES]
        if not trainable:
            raise ConfigError(f"no classifier head found in {type(model).__name__}")
    blocks = transformer_blocks(model)
    if head_layers > 0 and blocks is not None:
        trainable += list(blocks[-head_layers:])
        trainable += [
            m for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in FINAL_NORM_NAMES
        ]
    if not trainable:
        raise ConfigError(
            "method 'head' found nothing to train: set head_layers >= 1 for a causal LM"
        )
    for module in trainable:
        for param in module.parameters():
            param.requires_grad = True


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
