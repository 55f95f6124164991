"""``tunesmith finetune --nproc-per-node 2`` for real: two gloo processes on this machine.

Two processes must train what one process trains with the same global batch (the same loss at
every step, to float tolerance), a checkpoint they write must resume in one process and continue
the same curve, and stopping the launcher must stop every rank, leaving nothing running.
"""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.distributed.conftest import alive, descendants, run_cli, start_cli, wait_for
from tests.helpers import write_jsonl
from tests.training.conftest import chat_rows
from tunesmith.errors import ConfigError
from tunesmith.settings import Settings
from tunesmith.training.checkpoint import list_checkpoints
from tunesmith.training.distributed import DistributedOptions, launch
from tunesmith.training.run import finetune, resume_run
from tunesmith.training.spec import FinetuneSpec, Hyperparameters

# LoRA without dropout: dropout draws different masks when the examples are split over ranks.
HP = {"learning_rate": 3e-2, "lora_dropout": 0.0, "batch_size": 4}
# fp32 wherever the machine would pick bf16: the bf16 products round their outputs, and rows
# split over two ranks are multiplied in other blocks, so the runs would differ by that rounding
PRECISION = "fp32"


def metrics(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))


def losses(run: Path, column: str = "train_loss") -> list[float]:
    return [float(r[column]) for r in metrics(run) if r[column]]


def finetune_args(model: Path, train: Path, out: Path, **hp: object) -> list[str]:
    args = ["finetune", "--model", str(model), "--train", str(train), "--output", str(out)]
    for name, value in (HP | hp).items():
        flag = {"n_epochs": "epochs", "learning_rate": "learning-rate"}.get(name, name)
        args += [f"--{flag.replace('_', '-')}", str(value)]
    return [*args, "--precision", PRECISION, "--no-evaluate"]


def spec(
    model: Path, train: Path, out: Path, valid: Path | None = None, **hp: object
) -> FinetuneSpec:
    return FinetuneSpec(
        model=str(model),
        train_file=train,
        validation_file=valid,
        output_dir=out,
        precision=PRECISION,
        hyperparameters=Hyperparameters(**(HP | hp)),  # type: ignore[arg-type]
    )


def test_two_processes_follow_the_one_process_loss_curve(causal_dir: Path, tmp_path: Path) -> None:
    # 21 examples in batches of 4: each epoch ends with a batch of one, so one rank has no
    # example in that step and must still take part (with weight 0).
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(21, seed=1))
    valid = write_jsonl(tmp_path / "valid.jsonl", chat_rows(7, seed=2))
    one = finetune(
        spec(causal_dir, train, tmp_path / "one", valid, n_epochs=2, checkpoint_every=4),
        settings=Settings(data_dir=tmp_path / "home"),
    )
    args = finetune_args(causal_dir, train, tmp_path / "two", n_epochs=2, checkpoint_every=4)
    args += ["--validation", str(valid), "--nproc-per-node", "2"]
    output = run_cli(args, tmp_path / "home", tmp_path / "two.log")

    two = tmp_path / "two"
    meta = json.loads((two / "tunesmith.json").read_text())
    assert meta["environment"]["processes"] == 2 and meta["environment"]["backend"] == "gloo"
    assert meta["steps"] == one.steps == 12 and "done: 12 steps" in output
    assert [r["step"] for r in metrics(two)] == [str(s) for s in range(1, 13)]  # rank 0 only
    assert losses(two) == pytest.approx(losses(one.output_dir), rel=1e-5)
    valid_one = losses(one.output_dir, "valid_loss")
    assert losses(two, "valid_loss") == pytest.approx(valid_one, rel=1e-5)
    a = load_file(str(one.output_dir / "adapter_model.safetensors"))
    b = load_file(str(two / "adapter_model.safetensors"))
    # Adam divides each update by the gradient's running scale, so where a gradient is near
    # zero the fp32 rounding of differently shaped products (rows split over two ranks) moves
    # the weight by a visible fraction of a step: 2.4e-5 on one of 256 weights on an Intel
    # Xeon, against steps of up to 3e-2. The loss curves above are the tight check.
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-4)


def test_a_stopped_two_process_run_resumes_in_one_process(
    causal_dir: Path, tmp_path: Path, reaper: list
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(24, seed=3))
    hp = {"n_epochs": 8, "checkpoint_every": 3, "batch_size": 2}  # 96 steps
    straight = finetune(
        spec(causal_dir, train, tmp_path / "straight", **hp),
        settings=Settings(data_dir=tmp_path / "home"),
    )
    run = tmp_path / "two"
    launcher = start_cli(
        [*finetune_args(causal_dir, train, run, **hp), "--nproc-per-node", "2"],
        tmp_path / "home",
        tmp_path / "two.log",
    )
    reaper.append(launcher)
    wait_for(lambda: list_checkpoints(run), 120, "a first checkpoint")
    ranks = [p for p in descendants(launcher.pid) if "rank" in " ".join(p.cmdline())]
    assert len(ranks) == 2
    launcher.send_signal(signal.SIGTERM)  # what a scheduler sends; Ctrl-C is SIGINT, the same
    code = launcher.wait(60)
    log = " ".join((tmp_path / "two.log").read_text().split())  # rich wraps long lines
    assert code == 130, log
    assert "stopped by SIGTERM" in log and f"tunesmith resume {run}" in log
    assert not alive(ranks)
    stopped_at = list_checkpoints(run)[-1]
    step = int(stopped_at.name.removeprefix("step-"))
    assert 0 < step < 96, "the run ended before it could be stopped; give it more steps"

    resumed = resume_run(run, settings=Settings(data_dir=tmp_path / "home"))  # one process
    assert resumed.steps == 96
    assert json.loads((run / "tunesmith.json").read_text())["environment"]["processes"] == 1
    assert [int(r["step"]) for r in metrics(run)] == list(range(1, 97))
    # Each rank packs its half of a batch into rows of its own (row lengths chosen by cost), so
    # the sums run in another order than in one process: equal to ~1e-6 for dozens of steps,
    # then 96 Adam steps at a rate of 3e-2 grow that to ~6e-4 by the end.
    assert losses(run) == pytest.approx(losses(straight.output_dir), rel=2e-3)
    # The weights are not compared element by element: the tiny model sits on a plateau of
    # its loss from step ~50, where Adam turns near-zero gradients into full-size steps, so a
    # few adapter matrices (layer 0's k_proj) random-walk on that rounding and end 20% apart
    # while the model's loss agrees to 6e-4. The loss curve is the check of the resume.


def test_killing_the_launcher_leaves_no_rank_running(
    causal_dir: Path, tmp_path: Path, reaper: list
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(24, seed=3))
    run = tmp_path / "run"
    launcher = start_cli(
        [
            *finetune_args(causal_dir, train, run, n_epochs=50, checkpoint_every=2, batch_size=2),
            "--nproc-per-node",
            "2",
        ],
        tmp_path / "home",
        tmp_path / "run.log",
    )
    reaper.append(launcher)
    wait_for(lambda: list_checkpoints(run), 120, "a first checkpoint")
    ranks = [p for p in descendants(launcher.pid) if "rank" in " ".join(p.cmdline())]
    assert len(ranks) == 2
    launcher.send_signal(signal.SIGKILL)  # no chance to clean up: the ranks must die with it
    launcher.wait(10)
    wait_for(lambda: not alive(ranks), 10, "the ranks to die with their launcher")


# --- options, without starting processes ------------------------------------------------------


def test_options_map_onto_torchrun() -> None:
    assert DistributedOptions(nproc_per_node=4).torchrun_args() == [
        "--standalone", "--nnodes", "1", "--nproc-per-node", "4", "--max-restarts", "0",
    ]  # fmt: skip
    two_nodes = DistributedOptions(
        nproc_per_node=8, nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29500"
    )
    assert two_nodes.torchrun_args() == [
        "--nnodes", "2", "--node-rank", "1", "--rdzv-backend", "static",
        "--rdzv-endpoint", "10.0.0.1:29500", "--nproc-per-node", "8", "--max-restarts", "0",
    ]  # fmt: skip
    assert not DistributedOptions().enabled and DistributedOptions(fsdp=True).enabled


def test_bad_options_are_all_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        DistributedOptions(nproc_per_node=0, nnodes=2, node_rank=2)
    problems = caught.value.problems
    assert len(problems) == 3 and any("--rdzv-endpoint" in p for p in problems)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        DistributedOptions(rdzv_endpoint="node0")


def test_fsdp_is_for_full_fine_tunes_on_gpus(causal_dir: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(4, seed=1))
    with pytest.raises(ConfigError) as caught:
        launch(
            spec(causal_dir, train, tmp_path / "run"),
            settings=Settings(data_dir=tmp_path / "home"),
            options=DistributedOptions(nproc_per_node=2, fsdp=True),
        )
    assert "full fine-tunes" in str(caught.value)
    if not torch.cuda.is_available():
        assert "needs GPUs" in str(caught.value)


def test_several_nodes_need_one_output_folder(causal_dir: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(4, seed=1))
    no_output = spec(causal_dir, train, tmp_path / "x").model_copy(update={"output_dir": None})
    with pytest.raises(ConfigError, match="--output"):
        launch(
            no_output,
            settings=Settings(data_dir=tmp_path / "home"),
            options=DistributedOptions(nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29500"),
        )
