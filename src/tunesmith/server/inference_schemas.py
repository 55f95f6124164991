"""Bodies of the models and inference endpoints, shaped as OpenAI's (nullable fields present).

Requests refuse unknown fields, as OpenAI does ("Unrecognized request argument"), with the
field as ``param``. Fields that change nothing here (``user``, ``store``, ``metadata``,
``service_tier``...) are accepted and ignored; fields whose effect tunesmith cannot produce yet
(log probabilities, tools, JSON mode, penalties, logit bias) are refused by
``server/sampling.py`` when set, rather than silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_N = 16  # the engine's limit on samples per prompt
MAX_STOP = 4  # OpenAI's limit on stop sequences
MAX_INPUTS = 2048  # prompts or texts per request, as OpenAI's embeddings limit

FinishReason = Literal["stop", "length"]


def texts(value: object, what: str, *, most: int = MAX_INPUTS, least: int = 1) -> object:
    """A string or a list of ``least`` to ``most`` strings. Checked before pydantic's union
    does, so the error names the field alone (``param: "prompt"``, not ``"prompt.str"``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        if not least <= len(value) <= most:
            raise ValueError(f"{what} takes between {least} and {most} strings")
        return value
    raise ValueError(f"{what} must be a string or a list of strings")


# --- models -------------------------------------------------------------------------------


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = Field(
        description="`tunesmith` for packaged base models, the hub organisation for models "
        "from the Hugging Face cache, `system` for other folders, the project's id "
        "(`organization_id` of its jobs) for fine-tuned models and checkpoints."
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class ModelDeleted(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool


# --- shared sampling fields ------------------------------------------------------------------


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool | None = Field(
        None, description="Send a last chunk with `usage` and no choices before `[DONE]`."
    )


class SamplingRequest(BaseModel):
    """What chat and legacy completions share."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1,
        description="A base model id, a fine-tuned model (`ft:...`) or a checkpoint "
        "(`ft:...:ckpt-step-N`) of your project.",
    )
    temperature: float | None = Field(None, ge=0, le=2, description="0 is greedy decoding.")
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=MAX_N, description=f"Samples per prompt (1-{MAX_N}).")
    stop: str | list[str] | None = Field(None, description=f"Up to {MAX_STOP} sequences.")
    seed: int | None = Field(None, description="Makes sampling repeatable on this server.")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    # refused when set to anything that changes the output (see server/sampling.py)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    # accepted and ignored
    user: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _few_stops(cls, value: object) -> object:
        if value is None:
            return None
        return texts(value, "stop", most=MAX_STOP, least=0)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        total = prompt_tokens + completion_tokens
        return cls(
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=total
        )


# --- chat completions ----------------------------------------------------------------------------


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class ChatCompletionCreate(SamplingRequest):
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_completion_tokens: int | None = Field(
        None, ge=1, description="Most tokens generated per choice (default 256)."
    )
    max_tokens: int | None = Field(None, ge=1, description="Deprecated alias of the above.")
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    functions: list[dict[str, Any]] | None = None
    function_call: Any = None
    response_format: dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    web_search_options: dict[str, Any] | None = None


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    annotations: list[Any] = Field(default_factory=list)


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    logprobs: None = None
    finish_reason: FinishReason


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None
    service_tier: str | None = None


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    refusal: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    logprobs: None = None
    finish_reason: FinishReason | None


class ChatCompletionChunk(BaseModel):
    """One ``data:`` event of a streamed chat completion."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


# --- legacy completions -----------------------------------------------------------------------


class CompletionCreate(SamplingRequest):
    prompt: str | list[str] = Field(
        description="A prompt or a list of prompts (token-id prompts are not supported)."
    )
    max_tokens: int | None = Field(16, ge=1, description="Most tokens per choice (default 16).")
    echo: bool | None = Field(False, description="Put the prompt before each choice's text.")
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1)
    logprobs: int | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _text_prompts(cls, value: object) -> object:
        return texts(value, "prompt (token-id prompts are not supported)")


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: None = None
    finish_reason: FinishReason | None


class Completion(BaseModel):
    """The answer, and (with ``finish_reason`` null until each choice ends) a stream chunk."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


# --- classifications (tunesmith's extension) -------------------------------------------------


class ClassificationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1,
        description='A model fine-tuned with `method: {"type": "classification"}` '
        "(`ft:...`), or one of its checkpoints.",
    )
    input: str | list[str] = Field(description=f"A text or up to {MAX_INPUTS} texts.")

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: object) -> object:
        return texts(value, "input")


class Classification(BaseModel):
    index: int
    label: str | list[str] = Field(
        description="The most probable label; for a multi-label model, every label whose "
        "probability is at least 0.5."
    )
    probabilities: dict[str, float] = Field(
        description="Every label's probability, in the model's label order (multi-label: "
        "independent, need not sum to 1)."
    )


class ClassificationList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Classification]
    model: str
