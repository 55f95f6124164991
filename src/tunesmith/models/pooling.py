"""Read an encoder classifier's sentence the way its checkpoint was trained to be read.

transformers' BERT-style sequence classifiers classify ``tanh(W · h[CLS])`` (the "pooler").
Sentence-transformers checkpoints — ``all-minilm-l6-v2`` and most embedding models — were
trained to be read by the *mean* of their token states instead (their ``1_Pooling`` folder
says so); their CLS state and pooler were never trained to summarise a text. Classifying from
the pooler throws that training away: on the EHR example a logistic regression over frozen
mean-pooled MiniLM states reached AUROC 0.72 and one over its pooler 0.60 (decision 009).

So when the checkpoint declares mean pooling, the classifier pools by the masked mean of the
last hidden states, and its unused pooler is dropped (no parameters that never get a
gradient: LoRA's ``all-linear`` and DDP both trip over those). The choice is written into the
model's config (``tunesmith_pooling``), so a fine-tuned run folder, which keeps no
``1_Pooling`` folder, loads the same way.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from torch import Tensor, nn

log = logging.getLogger(__name__)

POOLING_CONFIG_KEY = "tunesmith_pooling"
MEAN = "mean"
ST_MODULES = "modules.json"  # sentence-transformers' list of modules, one of them the pooling
ST_POOLING_TYPE = "sentence_transformers.models.Pooling"


def pool_as_declared(model: nn.Module, path: Path) -> bool:
    """Mean-pool ``model`` (loaded from ``path``) when its checkpoint declares mean pooling;
    True when it now does. The one entry point: loading and the benchmark's evaluation both
    read a classifier through it."""
    if declared_pooling(path, model.config) != MEAN:
        return False
    if not apply_mean_pooling(model):
        log.warning(
            "%s declares mean pooling, but %s has no pooler to replace; it classifies from "
            "its own head",
            path,
            type(model).__name__,
        )
        return False
    return True


def declared_pooling(path: Path, config: Any) -> str | None:
    """``"mean"`` when the config (a tunesmith run) or the sentence-transformers files in
    ``path`` declare mean pooling only; None otherwise (CLS pooling, or nothing declared)."""
    recorded = getattr(config, POOLING_CONFIG_KEY, None)
    if recorded:
        return str(recorded)
    pooling = _st_pooling_config(path)
    if pooling is None:
        return None
    modes = {key for key, on in pooling.items() if key.startswith("pooling_mode_") and on is True}
    return MEAN if modes == {"pooling_mode_mean_tokens"} else None


def apply_mean_pooling(model: nn.Module) -> bool:
    """Make ``model`` (a transformers sequence classifier) classify from the masked mean of its
    token states. False, and the model unchanged, when its encoder has no pooler to replace
    (e.g. RoBERTa's head reads the first token itself)."""
    encoder = getattr(model, "base_model", None)
    if encoder is None or getattr(encoder, "pooler", None) is None:
        return False
    encoder.pooler = _FirstToken()  # keeps ``pooler_output`` in the output, with no weights
    encoder.register_forward_hook(_masked_mean_hook, with_kwargs=True)
    setattr(model.config, POOLING_CONFIG_KEY, MEAN)
    return True


class _FirstToken(nn.Module):
    """Placeholder for the removed pooler: the forward hook overwrites what it returns."""

    def forward(self, hidden_states: Tensor) -> Tensor:
        return hidden_states[:, 0]


def _masked_mean_hook(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
) -> Any:
    """Replace ``pooler_output`` with the mean over real (non-padding) tokens. Stateless, so
    concurrent forward passes of one model (the server's threads) cannot mix masks."""
    if not hasattr(output, "keys"):  # a plain tuple (return_dict=False): leave it alone
        return None
    hidden = output["last_hidden_state"]
    mask = kwargs.get("attention_mask")
    if mask is None and len(args) > 1:
        mask = args[1]
    if mask is None:
        pooled = hidden.mean(dim=1)
    else:
        weights = mask[:, : hidden.shape[1]].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    output["pooler_output"] = pooled
    return output


def _st_pooling_config(path: Path) -> dict[str, Any] | None:
    """The pooling module's config.json named by ``modules.json``; None without one."""
    try:
        modules = json.loads((path / ST_MODULES).read_text(encoding="utf-8"))
        folder = next(m["path"] for m in modules if m.get("type") == ST_POOLING_TYPE)
        data = json.loads((path / folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError, StopIteration):
        return None
    return data if isinstance(data, dict) else None
