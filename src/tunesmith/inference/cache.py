"""Loaded models kept in memory for serving: one base model serves all its LoRA fine-tunes.

A LoRA run is a small adapter over a base model. Loading the base once and switching adapters
(peft's ``load_adapter`` / ``set_adapter``; ``disable_adapter()`` for the plain base) costs a
few MiB per fine-tune instead of a full model each. Full and head runs are whole models and get
an entry of their own.

Entries are kept in least-recently-used order; past ``max_models`` the oldest is dropped (a
request still using it keeps it alive until it finishes). Each entry has a lock: the active
adapter is state of the shared model, so one request at a time uses an entry, and requests
for different entries run in parallel. Loading happens under the entry's lock, outside the
cache's own lock, so a slow load never blocks requests for models already loaded. A handle
tells whether another thread waits for its entry (``wanted_elsewhere``): a continuous batch,
which could otherwise hold the model for as long as requests keep coming, then stops taking
new rows and lets the other in when it ends.

Usage::

    cache = ModelCache(settings, max_models=2)
    with cache.get("runs/spam-lora") as model:
        outputs = generate_chat(model.model, model.tokenizer, messages, params)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from tunesmith.host_memory import keep_freed_memory
from tunesmith.models.loading import (
    ADAPTER_CONFIG,
    RUN_MANIFEST,
    inference_placement,
    load_any,
    load_model,
    load_tokenizer,
    read_run_manifest,
)
from tunesmith.models.registry import ResolvedModel, resolve_model
from tunesmith.settings import Settings
from tunesmith.tasks import ModelKind, Task
from tunesmith.training.lora_fusion import fuse_shared_input_lora
from tunesmith.training.packed_attention import use_packed_attention

EntryKey = tuple[str, ...]


@dataclass
class _Adapter:
    """A LoRA run loaded into a shared base model under ``name``."""

    name: str
    tokenizer: Any
    manifest: dict[str, Any]
    label_space: Any | None


@dataclass
class _Entry:
    """One model in memory: a base (possibly wrapped by peft with adapters) or a full run."""

    model: Any = None
    tokenizer: Any = None
    manifest: dict[str, Any] = field(default_factory=dict)
    task: Task = Task.CHAT
    kind: ModelKind = ModelKind.CAUSAL
    label_space: Any | None = None
    adapters: dict[str, _Adapter] = field(default_factory=dict)  # run dir -> adapter
    lora_fused: bool = False  # its LoRA layers computed in groups (``_use_cpu_fast_paths``)
    lock: threading.RLock = field(default_factory=threading.RLock)
    waiting: int = 0  # threads blocked in ``hold``
    _counting: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """The entry's lock; while a thread waits for it, it counts in ``waiting``."""
        with self._counting:
            self.waiting += 1
        try:
            self.lock.acquire()
        finally:
            with self._counting:
                self.waiting -= 1
        try:
            yield
        finally:
            self.lock.release()


class ModelHandle:
    """A model ready to use inside ``with``: the entry is locked and the right adapter active.

    ``model``, ``tokenizer``, ``task``, ``kind``, ``label_space`` and ``manifest`` describe what
    was asked for (a run's own tokenizer and labels, not the base's).
    """

    def __init__(self, entry: _Entry, adapter: _Adapter | None, name: str) -> None:
        self._entry = entry
        self._adapter = adapter
        self._stack: ExitStack | None = None
        self.name = name
        self.task = entry.task
        self.kind = entry.kind
        self.tokenizer = adapter.tokenizer if adapter else entry.tokenizer
        self.label_space = adapter.label_space if adapter else entry.label_space
        self.manifest = adapter.manifest if adapter else entry.manifest

    @property
    def model(self) -> Any:
        return self._entry.model

    @property
    def wanted_elsewhere(self) -> bool:
        """Whether another thread waits for this model (another fine-tune of the base, say)."""
        return self._entry.waiting > 0

    def __enter__(self) -> ModelHandle:
        stack = ExitStack()
        stack.enter_context(self._entry.hold())
        model = self._entry.model
        if self._adapter is not None:
            model.set_adapter(self._adapter.name)
        elif _is_peft(model):
            stack.enter_context(model.disable_adapter())
        self._stack = stack
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()


class ModelCache:
    """A bounded LRU of loaded models; see the module docstring."""

    def __init__(self, settings: Settings, *, max_models: int = 2, dtype: Any = None) -> None:
        if max_models < 1:
            raise ValueError("max_models must be at least 1")
        self.settings = settings
        self.max_models = max_models
        keep_freed_memory(settings)
        self.device, self.dtype = inference_placement(settings, dtype=dtype)
        self._entries: OrderedDict[EntryKey, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name_or_run_dir: str | Path, *, task: Task | str | None = None) -> ModelHandle:
        """A handle for a run folder or a base model name, loading what is missing.

        ``task`` picks the head of a base model (default: chat when its tokenizer has a chat
        template, else completion); a run folder's own task always wins.
        """
        path = Path(name_or_run_dir).expanduser()
        if (path / RUN_MANIFEST).is_file():
            return self._get_run(path.resolve())
        return self._get_base(str(name_or_run_dir), task)

    def clear(self) -> None:
        """Drop every entry (requests in flight keep theirs until they finish)."""
        with self._lock:
            self._entries.clear()

    # --- lookups ---------------------------------------------------------------------------

    def _get_run(self, run_dir: Path) -> ModelHandle:
        manifest = read_run_manifest(run_dir)
        if not (run_dir / ADAPTER_CONFIG).is_file():
            entry = self._entry(("run", str(run_dir)))
            with entry.hold():
                if entry.model is None:
                    self._fill(
                        entry,
                        load_any(run_dir, self.settings, dtype=self.dtype, device=self.device),
                    )
            return ModelHandle(entry, None, str(run_dir))
        base = _resolve_base(manifest, self.settings)
        task = Task(manifest["task"])
        labels = manifest.get("label_space") or {}
        key = ("base", str(base.path), task.value, *labels.get("names", []))
        entry = self._entry(key)
        with entry.hold():
            adapter = entry.adapters.get(str(run_dir))
            if adapter is None:
                adapter = self._add_adapter(entry, base, task, run_dir, manifest)
        return ModelHandle(entry, adapter, str(run_dir))

    def _get_base(self, name: str, task: Task | str | None) -> ModelHandle:
        resolved = resolve_model(name, self.settings)
        if task is None:
            task = _default_task(resolved, load_tokenizer(resolved, self.settings))
        task = Task(task)
        entry = self._entry(("base", str(resolved.path), task.value))
        with entry.hold():
            if entry.model is None:
                self._fill(
                    entry,
                    load_any(name, self.settings, task=task, dtype=self.dtype, device=self.device),
                )
        return ModelHandle(entry, None, name)

    def _entry(self, key: EntryKey) -> _Entry:
        """The entry for ``key``, created empty if missing; marks it most recently used."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_models:
                self._entries.popitem(last=False)
            return entry

    # --- loading (under the entry's lock) --------------------------------------------------

    def _fill(self, entry: _Entry, loaded: Any) -> None:
        entry.model = loaded.model
        entry.tokenizer = loaded.tokenizer
        entry.manifest = loaded.manifest
        entry.task = loaded.task
        entry.kind = loaded.kind
        entry.label_space = loaded.label_space
        _use_cpu_fast_paths(entry)

    def _add_adapter(
        self,
        entry: _Entry,
        base: ResolvedModel,
        task: Task,
        run_dir: Path,
        manifest: dict[str, Any],
    ) -> _Adapter:
        from peft import PeftModel

        from tunesmith.data.labels import LabelSpace

        labels = manifest.get("label_space")
        label_space = LabelSpace.from_dict(labels) if labels else None
        if entry.model is None:
            base_tokenizer = load_tokenizer(base, self.settings)
            model = load_model(
                base,
                task=task,
                settings=self.settings,
                label_space=label_space,
                dtype=self.dtype,
                device=self.device,
            )
            entry.tokenizer, entry.task, entry.kind = base_tokenizer, task, base.kind
            entry.manifest = {"base_model": base.name, "task": task.value, "method": None}
            entry.label_space = label_space
            entry.model = model.eval()
        name = f"run{len(entry.adapters)}"  # peft adapter names may not contain dots
        if _is_peft(entry.model):
            entry.model.load_adapter(run_dir, adapter_name=name, is_trainable=False)
        else:
            entry.model = PeftModel.from_pretrained(
                entry.model, run_dir, adapter_name=name, is_trainable=False
            ).eval()
        has_tokenizer = (run_dir / "tokenizer_config.json").is_file()
        tokenizer = load_tokenizer(run_dir, self.settings) if has_tokenizer else entry.tokenizer
        adapter = _Adapter(name, tokenizer, manifest, label_space)
        entry.adapters[str(run_dir)] = adapter
        _use_cpu_fast_paths(entry)
        return adapter


def _use_cpu_fast_paths(entry: _Entry) -> None:
    """On a CPU, a decoder's prefills attend one prompt at a time in a packed row
    (``continuous`` then packs a burst's prompts together), and its LoRA layers that read
    one input are computed in groups, as in training (decision 024). Both check the model
    themselves and leave alone what they cannot take.

    The LoRA groups are found once, with the entry's first adapter. An adapter loaded later
    uses them where it adapts the same layers; a layer only it adapts keeps peft's forward.
    """
    model = entry.model
    decodes = entry.kind == ModelKind.CAUSAL and entry.task in (Task.CHAT, Task.COMPLETION)
    if not decodes or next(model.parameters()).device.type != "cpu":
        return
    # a cache used inside torch.inference_mode() must still make normal tensors here: the
    # groups' shared weights track their versions
    with torch.inference_mode(False):
        use_packed_attention(model)
        if entry.adapters and not entry.lora_fused:
            fuse_shared_input_lora(model)
            entry.lora_fused = True


def _is_peft(model: Any) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def _default_task(resolved: ResolvedModel, tokenizer: Any) -> Task:
    """What ``load_any`` picks for a base model: chat with a chat template, else completion."""
    if resolved.kind == ModelKind.ENCODER:
        return Task.CLASSIFICATION
    return Task.CHAT if getattr(tokenizer, "chat_template", None) else Task.COMPLETION


def _resolve_base(manifest: dict[str, Any], settings: Settings) -> ResolvedModel:
    """The run's base model: its recorded folder when it still exists, else its name."""
    recorded = manifest.get("base_model_path")
    if recorded and (Path(recorded) / "config.json").is_file():
        return resolve_model(recorded, settings)
    return resolve_model(str(manifest["base_model"]), settings)
