"""One fine-tune on several processes, GPUs or machines, launched with PyTorch's ``torchrun``.

    tunesmith finetune ... --nproc-per-node 4                        # 4 GPUs, or 4 CPU processes
    tunesmith finetune ... --nnodes 2 --node-rank 0 --rdzv-endpoint node0:29500 \\
                           --nproc-per-node 8 --output /shared/runs/big  # run on each machine

``launch`` writes what the ranks need (the spec, the settings, the resume mode) to a JSON file
and runs PyTorch's elastic launcher (the code behind ``torchrun``) in this process. It starts one
process per rank, each running::

    python -m tunesmith.training.distributed rank LAUNCH.json

which rebuilds the spec and calls ``finetune``: the same loop as one process, joined by
accelerate (DDP; FSDP with ``--fsdp``), on NCCL with GPUs and gloo on CPU. Every rank reads the
data and builds the same epoch order; rank 0 alone reports progress and writes the run folder,
then writes the outcome to a small JSON file that ``launch`` turns into its result or error.

A rank dies with the launcher (``PR_SET_PDEATHSIG``), and SIGTERM or SIGINT to the launcher (or
Ctrl-C) makes every rank stop at the next step after a checkpoint, which any number of
processes can resume. The job worker starts distributed jobs with::

    python -m tunesmith.training.distributed torchrun --parent-pid PID -- TORCHRUN_ARGS...

``torchrun`` that also dies with its parent (the worker), so a killed worker leaves nothing.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    ModelError,
    ModelNotFoundError,
    TrainingInterrupted,
    TunesmithError,
)
from tunesmith.settings import Settings
from tunesmith.training.callbacks import BaseCallback, TrainingCallback
from tunesmith.training.spec import FinetuneSpec

ENTRY_MODULE = "tunesmith.training.distributed"
PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Errors a rank reports by name, rebuilt from their message in the launching process.
_ERRORS: dict[str, type[TunesmithError]] = {
    cls.__name__: cls
    for cls in (ConfigError, ModelError, ModelNotFoundError, CheckpointError, TunesmithError)
}


@dataclass(frozen=True)
class DistributedOptions:
    """How many processes train one fine-tune, and where (``torchrun``'s options)."""

    nproc_per_node: int = 1
    """Processes on this machine: one per GPU (on CPU, each gets cores / nproc threads)."""
    nnodes: int = 1
    """Machines taking part; run the same command on each, with its own ``node_rank``."""
    node_rank: int = 0
    """This machine's index, 0 to nnodes - 1; node 0 hosts the rendezvous and writes the run."""
    rdzv_endpoint: str | None = None
    """``host:port`` on node 0 that every node can reach (required with several nodes)."""
    fsdp: bool = False
    """Shard a full fine-tune over the processes (FSDP2 through accelerate) instead of DDP."""

    def __post_init__(self) -> None:
        problems = []
        if self.nproc_per_node < 1:
            problems.append(f"--nproc-per-node must be >= 1, got {self.nproc_per_node}")
        if self.nnodes < 1:
            problems.append(f"--nnodes must be >= 1, got {self.nnodes}")
        if not 0 <= self.node_rank < max(1, self.nnodes):
            problems.append(f"--node-rank must be in 0..{self.nnodes - 1}, got {self.node_rank}")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            problems.append("several nodes need --rdzv-endpoint HOST:PORT of node 0")
        if self.rdzv_endpoint is not None:
            host, _, port = self.rdzv_endpoint.rpartition(":")
            if not host or not port.isdigit():
                problems.append(f"--rdzv-endpoint must be HOST:PORT, got {self.rdzv_endpoint!r}")
        if problems:
            raise ConfigError(problems)

    @property
    def enabled(self) -> bool:
        """Whether this needs ``torchrun`` (else ``finetune`` runs in this process)."""
        return self.nproc_per_node > 1 or self.nnodes > 1 or self.fsdp

    def torchrun_args(self) -> list[str]:
        """``torchrun`` options: a standalone rendezvous on one machine, else a static one on
        node 0's endpoint (node ranks given, as Slurm and most schedulers do)."""
        args = ["--nproc-per-node", str(self.nproc_per_node), "--max-restarts", "0"]
        if self.nnodes == 1 and self.rdzv_endpoint is None:
            return ["--standalone", "--nnodes", "1", *args]
        endpoint = self.rdzv_endpoint or ""
        return [
            "--nnodes", str(self.nnodes), "--node-rank", str(self.node_rank),
            "--rdzv-backend", "static", "--rdzv-endpoint", endpoint, *args,
        ]  # fmt: skip


def launch(
    spec: FinetuneSpec,
    *,
    settings: Settings,
    options: DistributedOptions,
    resume: str = "auto",
    progress: bool = False,
) -> Any:
    """Run ``finetune(spec)`` on ``options``' processes; return rank 0's ``FinetuneResult``.

    Returns None on a node other than node 0 (the run folder is node 0's). Raises what rank 0
    raised: ``TrainingInterrupted`` after a stop (the run resumes from its checkpoint), or the
    ``TunesmithError`` that ended it.
    """
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args
    from torch.distributed.run import run as torchrun

    from tunesmith.training.run import check_fsdp, default_run_dir

    if options.fsdp:
        import torch

        check_fsdp(spec.method, cuda=torch.cuda.is_available())
    if spec.output_dir is None:
        if options.nnodes > 1:
            raise ConfigError("a run on several nodes needs --output, the same on every node")
        spec = spec.model_copy(update={"output_dir": default_run_dir(spec, settings)})
    _threads_per_process(options.nproc_per_node)
    with tempfile.TemporaryDirectory(prefix="tunesmith-launch-") as folder:
        launch_file, result_file = Path(folder) / "launch.json", Path(folder) / "result.json"
        launch_file.write_text(
            json.dumps(
                {
                    "spec": spec.model_dump(mode="json"),
                    "settings": settings.model_dump(mode="json"),
                    "resume": resume,
                    "fsdp": options.fsdp,
                    "progress": progress,
                    "result_file": str(result_file),
                }
            )
        )
        argv = [*options.torchrun_args(), "-m", ENTRY_MODULE, "rank", str(launch_file)]
        failure: Exception | None = None
        try:
            torchrun(parse_args(argv))
        except ChildFailedError as exc:
            failure = exc
        except SignalException as exc:  # the launcher was told to stop; so were the ranks
            failure = exc
        outcome = json.loads(result_file.read_text()) if result_file.exists() else None
    return _result(outcome, failure)


def _result(outcome: dict[str, Any] | None, failure: Exception | None) -> Any:
    from torch.distributed.elastic.multiprocessing import SignalException

    if outcome is None:
        if isinstance(failure, SignalException):
            raise TrainingInterrupted(f"stopped by {failure.sigval.name}") from None
        if failure is not None:
            raise TunesmithError(f"distributed training failed: {failure}") from failure
        return None  # not node 0: rank 0 ran elsewhere
    if outcome["status"] == "interrupted":
        raise TrainingInterrupted(outcome["reason"], outcome["checkpoint"])
    if outcome["status"] == "error":
        kind = _ERRORS.get(outcome["kind"], TunesmithError)
        raise kind(outcome["message"])
    from tunesmith.training import manifest
    from tunesmith.training.run import FinetuneResult

    output_dir = Path(outcome["output_dir"])
    return FinetuneResult(
        output_dir=output_dir,
        metrics=outcome["metrics"],
        trained_tokens=outcome["trained_tokens"],
        steps=outcome["steps"],
        manifest=manifest.read(output_dir),
    )


def _threads_per_process(nproc: int) -> None:
    """On CPU, share the cores among the processes (torchrun's default would be 1 thread)."""
    if nproc > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))


# --- in each rank --------------------------------------------------------------------------


class StopOnSignal(BaseCallback):
    """Asks the loop to stop (after a checkpoint) once SIGTERM or SIGINT arrived."""

    def __init__(self) -> None:
        self.received: str | None = None

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.received = signal.Signals(signum).name

    def should_stop(self) -> str | None:
        return f"stopped by {self.received}" if self.received else None


def die_with_parent(parent_pid: int) -> None:
    """Exit as soon as the process that started this one is gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watchdog").start()


def rank_main(launch_file: Path) -> int:
    """One rank of a ``launch``: train, and on rank 0 write the outcome for the launcher."""
    from tunesmith.training.run import finetune

    die_with_parent(os.getppid())
    data = json.loads(launch_file.read_text())
    rank = int(os.environ.get("RANK", "0"))
    stop = StopOnSignal()
    stop.install()  # on every rank, so that none dies before rank 0's stop reaches it
    callbacks: list[TrainingCallback] = []
    if rank == 0:
        callbacks.append(stop)
        if data["progress"]:
            from tunesmith.training.progress import RichProgress

            callbacks.append(RichProgress())
    if data["progress"]:
        _quiet_libraries()
    outcome: dict[str, Any]
    code = 0
    try:
        result = finetune(
            FinetuneSpec.model_validate(data["spec"]),
            settings=Settings(**data["settings"]),
            callbacks=callbacks,
            resume=data["resume"],
            fsdp=data["fsdp"],
        )
    except TrainingInterrupted as exc:
        outcome = {"status": "interrupted", "reason": exc.reason, "checkpoint": exc.checkpoint}
    except DataError as exc:  # its issues are already in the message
        outcome, code = {"status": "error", "kind": "TunesmithError", "message": str(exc)}, 1
    except TunesmithError as exc:
        outcome, code = {"status": "error", "kind": type(exc).__name__, "message": str(exc)}, 1
    except Exception as exc:
        traceback.print_exc()
        message = f"rank {rank} crashed: {type(exc).__name__}: {exc}"
        outcome, code = {"status": "error", "kind": "TunesmithError", "message": message}, 1
    else:
        outcome = {
            "status": "complete",
            "output_dir": str(result.output_dir),
            "metrics": result.metrics,
            "trained_tokens": result.trained_tokens,
            "steps": result.steps,
        }
    if rank == 0:
        path = Path(data["result_file"])
        path.with_suffix(".tmp").write_text(json.dumps(outcome))
        path.with_suffix(".tmp").replace(path)
    leave_process_group(clean=code == 0)
    return code


def _quiet_libraries() -> None:
    """The terminal is for rank 0's progress: no notices or bars from transformers."""
    import warnings

    from transformers.utils import logging as hf_logging

    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def leave_process_group(*, clean: bool) -> None:
    """End this rank's part in the process group, if any (``clean``: wait for the others)."""
    if "torch.distributed" not in sys.modules:  # never joined one (and torch is slow to import)
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if clean:
            dist.barrier()  # rank 0 may still be writing the run folder
        dist.destroy_process_group()


def torchrun_main(parent_pid: int | None, args: list[str]) -> int:
    """``torchrun ARGS`` in this process, which dies with ``parent_pid``."""
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args
    from torch.distributed.run import run as torchrun

    if parent_pid is not None:
        die_with_parent(parent_pid)
    try:
        torchrun(parse_args(args))
    except ChildFailedError as exc:
        print(f"tunesmith: a training process failed: {exc}", file=sys.stderr)
        return 1
    except SignalException as exc:  # the ranks were given the signal and had time to stop
        print(f"tunesmith: stopped by {exc.sigval.name}", file=sys.stderr)
        return 128 + int(exc.sigval)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tunesmith.training.distributed")
    commands = parser.add_subparsers(dest="command", required=True)
    rank = commands.add_parser("rank", help="one rank of a launch (started by torchrun)")
    rank.add_argument("launch_file", type=Path)
    run = commands.add_parser("torchrun", help="torchrun that dies with --parent-pid")
    run.add_argument("--parent-pid", type=int, default=None)
    run.add_argument("args", nargs=argparse.REMAINDER, help="torchrun's arguments, after --")
    args = parser.parse_args(argv)
    if args.command == "rank":
        return rank_main(args.launch_file)
    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    return torchrun_main(args.parent_pid, rest)


if __name__ == "__main__":
    sys.exit(main())
