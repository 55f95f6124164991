"""Process-wide settings: one pydantic object, read from arguments, then the environment.

Precedence for every field: an explicit argument (``--data-dir`` on the CLI, a keyword in
Python) over ``TUNESMITH_<FIELD>`` in the environment over the default. Nothing else in the
package reads ``os.environ`` for tunesmith's own settings.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".tunesmith"


class Settings(BaseSettings):
    """Where tunesmith keeps things and what the operator allows."""

    model_config = SettingsConfigDict(env_prefix="TUNESMITH_", extra="ignore")

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Holds the model cache, runs, the database and uploaded files.",
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Allow model folders to run their own Python code. Off unless the operator "
        "turns it on: a model folder is data, and data should not execute.",
    )
    offline: bool = Field(
        default=True,
        description="Never reach a model hub; hub ids then work only if already in the HF cache.",
    )

    # --- server and job queue --------------------------------------------------------------
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the job database. Empty: the SQLite file "
        "<data_dir>/tunesmith.db (WAL). 'postgresql://...' uses psycopg 3.",
    )
    max_upload_bytes: int = Field(
        default=512 * 1024 * 1024, ge=1, description="Largest file the server accepts."
    )
    deidentify_uploads: bool = Field(
        default=False,
        description="De-identify every uploaded file while it streams in, whatever the "
        "request asks: the original text never reaches the disk (server/deid_upload.py).",
    )
    lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a worker holds a job without a heartbeat; a job whose lease "
        "expires (the worker died) is requeued and resumes from its last checkpoint.",
    )
    worker_poll_seconds: float = Field(
        default=2.0, gt=0, description="How often an idle worker looks for queued jobs."
    )
    job_max_attempts: int = Field(
        default=3, ge=1, description="Runs a job may start before a lost lease fails it."
    )
    cancel_grace_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a training process may take to stop after cancel or pause "
        "before the worker kills it.",
    )
    model_cache_size: int = Field(
        default=2,
        ge=1,
        description="Models the server keeps loaded for inference: each base model (serving "
        "all of its LoRA fine-tunes) or full fine-tune counts one; past this the least "
        "recently used is dropped.",
    )
    inference_device: str = Field(
        default="auto",
        description="Where served, evaluated and predicting models run: 'auto' (the first "
        "CUDA GPU when there is one, else the CPU), 'cpu', 'cuda' or 'cuda:N'.",
    )
    inference_dtype: str = Field(
        default="auto",
        pattern="^(auto|fp32|bf16|fp16)$",
        description="The weights' dtype for inference: 'auto' is bf16 where the device "
        "multiplies bf16 natively (GPUs with bf16, CPUs with AVX512-BF16 or AMX), else fp32.",
    )
    inference_threads: int = Field(
        default=4,
        ge=1,
        description="Threads that run inference requests. Requests for one base model run "
        "one at a time; more threads let requests for different models run side by side.",
    )
    malloc_tuning: bool = Field(
        default=True,
        description="Let glibc keep freed host memory for reuse (larger mmap and trim "
        "thresholds) when training or serving starts, instead of faulting fresh pages in "
        "for every large tensor. Off (0) leaves malloc as the environment set it.",
    )
    share_prompt_prefixes: bool = Field(
        default=True,
        description="When fine-tuning a causal LM on a CPU, compute the tokens that examples of "
        "a batch begin with alike (a chat template's header and system prompt) once, not "
        "once per example. Exact; off (0) only to measure what it saves.",
    )
    job_engine: str = Field(
        default="tunesmith.jobs.engine",
        description="Module whose finetune() and validate_file() the worker calls. Tests and "
        "dry runs point it at tunesmith.jobs.fakes.",
    )

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'tunesmith.db'}"
        return self

    @property
    def files_dir(self) -> Path:
        """Uploaded files (the server's Files API)."""
        return self.data_dir / "files"

    @property
    def models_dir(self) -> Path:
        """Converted packaged models (the GGUF conversion cache)."""
        return self.data_dir / "models"

    @property
    def runs_dir(self) -> Path:
        """Default parent of fine-tune output folders."""
        return self.data_dir / "runs"


def load_settings(data_dir: Path | str | None = None, **overrides: object) -> Settings:
    """Settings from the environment, with explicit values (e.g. ``--data-dir``) winning."""
    values: dict[str, object] = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = Path(data_dir)
    return Settings(**values)  # type: ignore[arg-type]
