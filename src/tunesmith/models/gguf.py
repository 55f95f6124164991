"""Convert a packaged GGUF model once into a plain Hugging Face folder, safely under concurrency.

Why convert at all: ``from_pretrained(..., gguf_file=...)`` dequantizes to float but leaves a
GGUF quantizer attached, so ``save_pretrained`` refuses and training is slower. A plain fp32
safetensors folder loads and trains like any other model (see docs in /work/shared/MODELS.md).

Why the ceremony: several processes (the CLI, a job worker, a test run) may ask for the same
model at once. The first one converts; the rest wait on a file lock and then reuse the result.
A conversion is written into a temporary sibling folder, stamped with a marker file, and only
then renamed into place (``os.replace`` is atomic on one filesystem). So the target folder
either does not exist or is complete; a folder without the marker (an interrupted run from an
older layout, a manual copy) is never trusted and is rebuilt. Temporary folders left by a
killed process are removed by the next converter, which holds the lock and so knows nobody
else is writing them.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from tunesmith.errors import ModelError, TunesmithError

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".tunesmith-converted.json"
LOCK_SUFFIX = ".lock"
TMP_INFIX = ".tmp-"
# A real conversion takes about half a minute on 2 CPU cores; waiting far longer than that
# means a stuck process, which the user should hear about instead of a silent hang.
DEFAULT_LOCK_TIMEOUT_S = 30 * 60

Converter = Callable[[Path, str, Path], None]
"""``converter(gguf_folder, gguf_file, out_dir)`` writes a complete HF model folder to out_dir."""


def ensure_converted(
    gguf_folder: Path | str,
    gguf_file: str,
    target_dir: Path | str,
    *,
    converter: Converter | None = None,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> Path:
    """The converted HF folder for ``gguf_folder/gguf_file``, converting it on first use.

    ``converter`` is injectable so tests can exercise the locking and atomic rename with a
    fast fake; it defaults to :func:`convert_gguf`.
    """
    source = Path(gguf_folder) / gguf_file
    target = Path(target_dir)
    if not source.is_file():
        raise ModelError(f"GGUF file not found: {source}")
    stamp = _source_stamp(source)
    if is_complete(target, stamp):
        return target  # fast path: no lock needed to read a folder that is already complete

    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target) + LOCK_SUFFIX, timeout=lock_timeout_s)
    try:
        with lock:
            if is_complete(target, stamp):  # another process converted while we waited
                return target
            _remove_leftovers(target)
            _convert_atomically(source, target, stamp, converter or convert_gguf)
    except Timeout as exc:
        raise ModelError(
            f"waited {lock_timeout_s:.0f} s for another process converting {source.name} "
            f"(lock {lock.lock_file}); if no tunesmith process is running, delete that file"
        ) from exc
    return target


def is_complete(target: Path, stamp: dict[str, Any] | None = None) -> bool:
    """True when ``target`` holds a finished conversion (of the source ``stamp``, if given)."""
    marker = target / COMPLETE_MARKER
    if not marker.is_file():
        return False
    if stamp is None:
        return True
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    # A different GGUF (the package was upgraded) means the cached weights are stale.
    return all(recorded.get(key) == value for key, value in stamp.items())


def _source_stamp(source: Path) -> dict[str, Any]:
    """What identifies the GGUF a conversion came from; cheap (no hashing of ~100 MiB)."""
    return {"source_file": source.name, "source_size": source.stat().st_size}


def _remove_leftovers(target: Path) -> None:
    """Delete an incomplete or stale target and temp folders of crashed conversions.

    Only called with the lock held, so no other process is writing any of these.
    """
    if target.exists():
        logger.warning("removing incomplete or stale converted model at %s", target)
        shutil.rmtree(target)
    for leftover in target.parent.glob(f".{target.name}{TMP_INFIX}*"):
        logger.warning("removing leftover from an interrupted conversion: %s", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def _convert_atomically(
    source: Path, target: Path, stamp: dict[str, Any], converter: Converter
) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{TMP_INFIX}", dir=target.parent))
    try:
        logger.info("converting %s to %s (once)", source.name, target)
        converter(source.parent, source.name, tmp)
        # The marker goes in last, so a folder that has it has everything else.
        (tmp / COMPLETE_MARKER).write_text(json.dumps(stamp, indent=2), encoding="utf-8")
        os.replace(tmp, target)
    except TunesmithError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, Exception):
            raise ModelError(f"converting {source} failed: {exc}") from exc
        raise  # KeyboardInterrupt / SystemExit: clean up, then let them through


def convert_gguf(gguf_folder: Path, gguf_file: str, out_dir: Path) -> None:
    """Dequantize a causal-LM GGUF into an fp32 safetensors folder with its tokenizer.

    The GGUF-loaded model keeps a quantizer that blocks saving and training, so its weights are
    moved into a fresh model built from the same config minus ``quantization_config``.
    """
    import torch  # heavy imports stay here so resolving an already-converted model is cheap
    from transformers import AutoModelForCausalLM

    gguf_model = AutoModelForCausalLM.from_pretrained(
        gguf_folder, gguf_file=gguf_file, dtype=torch.float32
    )
    config = gguf_model.config.__class__.from_dict(
        {k: v for k, v in gguf_model.config.to_dict().items() if k != "quantization_config"}
    )
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.tie_weights()
    model.generation_config = copy.deepcopy(gguf_model.generation_config)
    model.save_pretrained(out_dir)
    del gguf_model
    _convert_tokenizer(gguf_folder, gguf_file, out_dir, model.config)


def _convert_tokenizer(gguf_folder: Path, gguf_file: str, out_dir: Path, config: Any) -> None:
    """Save the GGUF's tokenizer, checking what chat fine-tuning relies on survived."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_folder, gguf_file=gguf_file)
    eos_ids = (
        config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    )
    if eos_ids != [None] and tokenizer.eos_token_id not in eos_ids:
        # The config's eos comes from the GGUF's tokenizer.ggml.eos_token_id; some transformers
        # releases (5.17) give the tokenizer another special token as eos (SmolLM2: id 1,
        # <|im_start|>), which would end every reply at once and train the wrong end token.
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos_ids[0])
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(out_dir)
    reloaded = AutoTokenizer.from_pretrained(out_dir)
    for attribute in ("chat_template", "eos_token", "pad_token"):
        if getattr(reloaded, attribute) != getattr(tokenizer, attribute):
            raise ModelError(f"the converted tokenizer lost its {attribute}")
    if eos_ids != [None] and reloaded.eos_token_id not in eos_ids:
        raise ModelError(f"tokenizer eos id {reloaded.eos_token_id} is not the model's {eos_ids}")
