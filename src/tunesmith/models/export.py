"""Export a fine-tuned run as a standalone Hugging Face folder that needs neither peft nor the base.

A LoRA run folder holds only the adapter; serving it needs the base model too. Merging folds
the low-rank updates into the base weights (``merge_and_unload``), so the exported folder loads
with plain ``AutoModel*.from_pretrained`` anywhere. Full and head runs already hold whole
models, so their weights are copied. The export is written into a temporary sibling folder and
renamed into place, so a crash never leaves a half-written model that looks usable.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tunesmith.errors import ModelError
from tunesmith.models.loading import (
    ADAPTER_CONFIG,
    RUN_MANIFEST,
    load_finetuned,
    read_run_manifest,
)
from tunesmith.settings import Settings

# Run-folder files that are not part of the model (progress logs, training state); pickles are
# never copied (see loading.require_safetensors).
_NOT_EXPORTED = frozenset({RUN_MANIFEST, "metrics.csv", "optimizer.pt", "scheduler.json"})
_PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl"})


def merge_adapter(run_dir: Path | str, out_dir: Path | str, settings: Settings) -> Path:
    """Write ``run_dir``'s model to ``out_dir`` as a standalone folder; returns ``out_dir``.

    LoRA runs are merged into their base; full and head runs are copied. The copied
    ``tunesmith.json`` gets ``"merged": true`` so tools reading it know the folder is a whole
    model, not an adapter. ``out_dir`` must not exist or be empty: an export never overwrites.
    """
    return export_run(run_dir, out_dir, settings=settings, merge=True)


def export_run(
    run_dir: Path | str, out_dir: Path | str, *, settings: Settings, merge: bool = False
) -> Path:
    """``tunesmith export``: the run's model files, with a LoRA adapter merged when ``merge``.

    Without ``merge`` a LoRA run exports as its adapter (peft format, small; the base model is
    needed to use it) and its manifest says ``"merged": false``.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    manifest = read_run_manifest(run_dir)
    is_adapter = (run_dir / ADAPTER_CONFIG).is_file()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ModelError(f"{out_dir} already exists and is not empty; choose a new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        if is_adapter and merge:
            _write_merged(run_dir, tmp, settings)
        else:
            _copy_model_files(run_dir, tmp)
        whole = merge or not is_adapter
        exported = manifest | {"merged": whole, "exported_from": str(run_dir.resolve())}
        (tmp / RUN_MANIFEST).write_text(json.dumps(exported, indent=2), encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above); os.replace needs it gone or empty
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _write_merged(run_dir: Path, out: Path, settings: Settings) -> None:
    """Fold the LoRA weights into the base and save model and tokenizer as safetensors."""
    import torch

    # fp32 on the CPU: merging in low precision loses detail, and the result goes to disk
    loaded = load_finetuned(run_dir, settings, dtype=torch.float32, device="cpu")
    peft_model: Any = loaded.model  # a peft.PeftModel: load_finetuned found an adapter
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)


def _copy_model_files(run_dir: Path, out: Path) -> None:
    """Copy a run's top-level model or adapter files (checkpoints/ and logs stay behind)."""
    if not any(run_dir.glob("*.safetensors")):
        raise ModelError(f"{run_dir} has no *.safetensors weights to export")
    for item in sorted(run_dir.iterdir()):
        if not item.is_file() or item.name in _NOT_EXPORTED or item.suffix in _PICKLE_SUFFIXES:
            continue
        shutil.copy2(item, out / item.name)
