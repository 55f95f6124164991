"""The CLI end to end on a tiny model: validate, finetune, evaluate, predict, chat, export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import save_tiny_model, write_jsonl
from tests.training.conftest import chat_rows, classification_rows
from tunesmith.cli import app
from tunesmith.errors import TunesmithError

runner = CliRunner()


def invoke(*args: str, stdout_only: bool = False) -> tuple[int, str]:
    """Run a command; tunesmith's own errors are shown as ``main()`` shows them."""
    result = runner.invoke(app, list(args))
    output = result.stdout if stdout_only else result.output
    if isinstance(result.exception, TunesmithError):
        output += f"error: {result.exception}"
    return result.exit_code, output


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model"), "causal")


def test_validate_reports_each_error_with_its_line_and_fails(tmp_path: Path) -> None:
    rows = chat_rows(12, seed=1)
    rows[2] = {"messages": [{"role": "user", "content": "hi"}]}  # no assistant message
    bad = write_jsonl(tmp_path / "bad.jsonl", [*rows, "{not json"])
    code, out = invoke("data", "validate", str(bad), "--data-dir", str(tmp_path / "home"))
    assert code == 1
    assert "bad.jsonl:3:" in out and "assistant" in out
    assert "bad.jsonl:13:" in out and "JSON" in out


def test_validate_a_good_file_counts_tokens_and_estimates(model_dir: Path, tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", chat_rows(20, seed=1))
    code, out = invoke(
        "data",
        "validate",
        str(good),
        "--model",
        str(model_dir),
        "--json",
        "--data-dir",
        str(tmp_path / "home"),
        stdout_only=True,
    )
    assert code == 0
    data = json.loads(out)
    assert data["report"]["ok"] is True
    assert data["report"]["stats"]["n_examples"] == 20
    assert data["report"]["stats"]["tokens"]["total"] > 0
    assert data["estimate"]["n_epochs"] == 5  # OpenAI's rule: ceil(100 / 20)
    assert data["estimate"]["seconds"] > 0


def test_finetune_then_use_the_run(model_dir: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(16, seed=1))
    valid = write_jsonl(tmp_path / "valid.jsonl", chat_rows(4, seed=2))
    run = tmp_path / "run"
    home = str(tmp_path / "home")
    code, out = invoke(
        "finetune",
        "--model",
        str(model_dir),
        "--train",
        str(train),
        "--validation",
        str(valid),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--learning-rate",
        "1e-2",
        "--output",
        str(run),
        "--data-dir",
        home,
    )
    assert code == 0, out
    assert "perplexity" in out and "baseline" in out  # the evaluation table, base vs tuned
    assert json.loads((run / "tunesmith.json").read_text())["status"] == "complete"

    # the same output folder is never trained over
    code, out = invoke(
        "finetune",
        "--model",
        str(model_dir),
        "--train",
        str(train),
        "--output",
        str(run),
        "--data-dir",
        home,
    )
    assert code == 1 and "already holds a finished run" in out

    code, out = invoke(
        "chat", "--model", str(run), "--message", "hello", "--max-tokens", "4", "--data-dir", home
    )
    assert code == 0 and out.strip() != ""

    code, out = invoke(
        "predict",
        "--model",
        str(run),
        "--text",
        "win a prize",
        "--max-tokens",
        "3",
        "--data-dir",
        home,
        stdout_only=True,
    )
    assert code == 0
    line = json.loads(out.strip().splitlines()[-1])
    assert line["input"] == "win a prize" and isinstance(line["reply"], str)

    merged = tmp_path / "merged"
    code, out = invoke("export", str(run), str(merged), "--merge", "--data-dir", home)
    assert code == 0, out
    assert (merged / "model.safetensors").exists() and not (merged / "adapter_config.json").exists()


def test_predict_classifies_with_probabilities(tmp_path: Path) -> None:
    encoder = save_tiny_model(tmp_path / "encoder", "encoder")
    train = write_jsonl(tmp_path / "train.jsonl", classification_rows(16, seed=1))
    run = tmp_path / "run"
    home = str(tmp_path / "home")
    code, out = invoke(
        "finetune",
        "--model",
        str(encoder),
        "--train",
        str(train),
        "--epochs",
        "1",
        "--method",
        "full",
        "--output",
        str(run),
        "--data-dir",
        home,
    )
    assert code == 0, out
    code, out = invoke(
        "predict",
        "--model",
        str(run),
        "--text",
        "spam spam",
        "--text",
        "ham",
        "--data-dir",
        home,
        stdout_only=True,
    )
    assert code == 0, out
    lines = [json.loads(x) for x in out.strip().splitlines()]
    assert [x["text"] for x in lines] == ["spam spam", "ham"]
    for x in lines:
        assert set(x["probabilities"]) == {"ham", "spam"}
        assert x["label"] == max(x["probabilities"], key=x["probabilities"].get)


def test_bad_hyperparameter_is_a_clear_error(model_dir: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(12, seed=1))
    code, out = invoke(
        "finetune",
        "--model",
        str(model_dir),
        "--train",
        str(train),
        "--epochs",
        "lots",
        "--data-dir",
        str(tmp_path / "home"),
    )
    assert code != 0 and "--epochs" in out


def test_errors_are_one_line_without_a_traceback(tmp_path: Path) -> None:
    """The installed entry point turns tunesmith's errors into a message and exit status 1."""
    done = subprocess.run(
        [sys.executable, "-m", "tunesmith", "resume", str(tmp_path), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "error:" in done.stderr and "tunesmith.json" in done.stderr
    assert "Traceback" not in done.stderr


def test_models_list_shows_the_packaged_models(tmp_path: Path) -> None:
    code, out = invoke(
        "models", "list", "--json", "--data-dir", str(tmp_path / "home"), stdout_only=True
    )
    assert code == 0
    ids = {m["id"] for m in json.loads(out)}
    assert {"smollm2-135m-instruct", "all-minilm-l6-v2"} <= ids
