"""The settings and result of one generation request (no torch here: the server builds them on its
event loop)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FinishReason = Literal["stop", "length"]


class GenerationParams(BaseModel):
    """Sampling settings of one request; the defaults are OpenAI's."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(default=256, ge=1, description="Most tokens generated per sample.")
    temperature: float = Field(default=1.0, ge=0.0, le=2.0, description="0 means greedy decoding.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    stop: list[str] = Field(default_factory=list, description="Text that ends a sample.")
    seed: int | None = Field(default=None, description="Makes sampling repeatable.")
    n: int = Field(default=1, ge=1, le=16, description="Samples per prompt.")

    @field_validator("stop", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        """OpenAI accepts one string or a list; empty strings would stop at once."""
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [s for s in value if s]
        return value

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class GenerationOutput:
    """One sample: its text (stop sequence and end token removed) and token counts."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
