"""Benchmark 4, job overhead: how long a fine-tuning job takes to start training, and how fast
the job and file routes answer under concurrent clients.

    .venv/bin/python -m bench.jobs --quick         # 1 job, 400 API requests
    .venv/bin/python -m bench.jobs                 # 3 jobs, 2000 API requests

``tunesmith serve --workers 1`` runs on a fresh data folder (``.bench/jobs/data``, emptied
first) with ``TUNESMITH_WORKER_POLL_SECONDS=0.2``. Before it starts, the packaged model is
converted into that folder (``registry.resolve_model``, in a child process; its time is
reported as ``model_convert_s``), so no job pays for the one-off conversion.

Start-up: each job (smollm2-135m-instruct, LoRA, one epoch over 20 SMS spam chats, batch 4) is
created with ``POST /v1/fine_tuning/jobs``; its events are polled every 0.1 s, and the client's
clock notes when each step of the start-up first shows: the files validated (the worker validates
them), the training process's "Fine-tuning job started" (it has imported torch and loaded the
model and data), and the first ``metrics`` event (optimizer step 1 done). The job is then
cancelled, and the time until its training process reports that it stopped is noted too. Jobs
run one after another; the first after the server started is reported like the others.

API latency, two ways, each with 20 concurrent keep-alive clients that send requests back to
back over ``GET /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs/{id}`` and ``GET /v1/files``:

- ``wrk`` (Debian's package; ``make bench`` installs it): 20 connections on one thread for
  each route in turn, for ``--wrk-seconds`` each; p50/p99/max from its own latency record
  (printed by a small Lua ``done`` hook). It takes ~1% of a core, so the figures are the
  server's. Skipped, and said so, where ``wrk`` is not installed.
- Python clients: 20 threads in this process, each with its own ``httpx.Client``, cycling
  through the three routes until the total is sent. httpx costs about as much CPU per request
  as the server, on the same cores, and 20 threads share this process's GIL: these figures
  include the clients' own queueing and are the worse of the two.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_DIR,
    emit_json,
    machine,
    percentile,
    print_table,
    report_to_parent,
    run_child,
    sampled_load,
    sms_spam,
    source_state,
    split,
    timed,
    tunesmith_server,
    write_jsonl,
)
from bench.sft_throughput import chat_records

MODEL = "smollm2-135m-instruct"
POLL_S = 0.1
ROUTES = {
    "list jobs": lambda job_id: "/fine_tuning/jobs",
    "retrieve job": lambda job_id: f"/fine_tuning/jobs/{job_id}",
    "list files": lambda job_id: "/files",
}


@dataclass
class Setup:
    jobs: int = 3
    examples: int = 20
    batch_size: int = 4
    api_requests: int = 2000
    api_clients: int = 20
    wrk_seconds: float = 15.0
    threads: int = 2
    worker_poll_seconds: float = 0.2
    work_dir: str = str(BENCH_DIR / "jobs")

    @property
    def data_dir(self) -> Path:
        return Path(self.work_dir) / "data"


# ---------------------------------------------------------------- the model, in a child


def convert(setup: Setup) -> None:
    """Convert the packaged model into the server's data folder (its first use does this)."""
    from tunesmith.models.registry import resolve_model
    from tunesmith.settings import load_settings

    resolved, seconds = timed(lambda: resolve_model(MODEL, load_settings(data_dir=setup.data_dir)))
    report_to_parent({"model_convert_s": round(seconds, 1), "path": str(resolved.path)})


# ---------------------------------------------------------------- start-up of jobs


def upload(client: Any, path: Path) -> str:
    response = client.post(
        "/files",
        data={"purpose": "fine-tune"},
        files={"file": (path.name, path.read_bytes(), "application/jsonl")},
    )
    response.raise_for_status()
    return str(response.json()["id"])


def milestones(events: list[dict[str, Any]]) -> set[str]:
    """Which steps of a job's start-up its events show."""
    seen = set()
    for event in events:
        message = event.get("message", "")
        data = event.get("data") or {}
        if message.startswith("Files validated"):
            seen.add("validated")
        elif message.startswith(("Fine-tuning job started", "Fine-tuning resumed")):
            seen.add("started")
        elif event.get("type") == "metrics" and data.get("step", 0) >= 1:
            seen.add("first_step")
        elif message.startswith("Training stopped"):
            seen.add("stopped")
        elif event.get("level") == "error" or message.startswith("New fine-tuned model"):
            seen.add("ended")
    return seen


def one_job(client: Any, file_id: str, setup: Setup, index: int, timeout: float = 1800) -> dict:
    """Create a job, note when each start-up step first shows, cancel it after step 1."""
    body = {
        "model": MODEL,
        "training_file": file_id,
        "suffix": f"bench{index}",
        "method": {
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": setup.batch_size}},
        },
    }
    start = time.perf_counter()
    created = client.post("/fine_tuning/jobs", json=body)
    created.raise_for_status()
    job_id = created.json()["id"]
    row: dict[str, Any] = {"job": index, "id": job_id, "create_s": time.perf_counter() - start}
    times: dict[str, float] = {}
    cancel_at: float | None = None
    deadline = start + timeout
    while time.perf_counter() < deadline:
        events = client.get(f"/fine_tuning/jobs/{job_id}/events", params={"limit": 100})
        events.raise_for_status()
        now = time.perf_counter()
        for name in milestones(events.json()["data"]):
            times.setdefault(name, now - start)
        if "ended" in times or "stopped" in times:
            break
        if "first_step" in times and cancel_at is None:
            cancel_at = time.perf_counter()
            client.post(f"/fine_tuning/jobs/{job_id}/cancel")  # a 400 if it already ended
        time.sleep(POLL_S)
    else:
        row["error"] = f"no end seen in {timeout:.0f} s"
    row |= {f"{name}_s": times.get(name) for name in ("validated", "started", "first_step")}
    if cancel_at is not None and "stopped" in times:
        row["cancel_to_stopped_s"] = start + times["stopped"] - cancel_at
    status = client.get(f"/fine_tuning/jobs/{job_id}").json()
    row["status"] = status["status"]
    time.sleep(2 * setup.worker_poll_seconds + 1)  # the training process exits, the worker idles
    return row


# ---------------------------------------------------------------- API latency


def api_latency(url: str, key: str, job_ids: list[str], setup: Setup) -> list[dict[str, Any]]:
    import httpx

    names = list(ROUTES)
    plan = [(names[i % len(names)], job_ids[i % len(job_ids)]) for i in range(setup.api_requests)]
    pending = iter(plan)
    lock = threading.Lock()
    times: dict[str, list[float]] = {route: [] for route in ROUTES}
    errors: dict[str, list[str]] = {route: [] for route in ROUTES}

    def work() -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            while True:
                with lock:
                    item = next(pending, None)
                if item is None:
                    return
                route, job_id = item
                start = time.perf_counter()
                try:
                    response = client.get(ROUTES[route](job_id))
                    error = None if response.status_code == 200 else str(response.status_code)
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                elapsed_ms = (time.perf_counter() - start) * 1000
                with lock:
                    if error is None:
                        times[route].append(elapsed_ms)
                    else:
                        errors[route].append(error)

    threads = [threading.Thread(target=work) for _ in range(setup.api_clients)]
    with sampled_load() as load:
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
    rows = []
    for route in ROUTES:
        rows.append(
            {
                "route": route,
                "requests": len(times[route]),
                "p50_ms": percentile(times[route], 50),
                "p99_ms": percentile(times[route], 99),
                "max_ms": max(times[route], default=None),
                "errors": len(errors[route]) or None,
            }
        )
    total = sum(len(t) for t in times.values())
    rows.append(
        {
            "route": "all",
            "requests": total,
            "p50_ms": percentile([x for t in times.values() for x in t], 50),
            "p99_ms": percentile([x for t in times.values() for x in t], 99),
            "requests_per_s": total / wall,
            **load,
        }
    )
    return rows


# wrk's Lua hook: its own latency record (microseconds) and error counts, as one JSON line
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"errors": %d, "non_2xx": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def wrk_latency(url: str, key: str, job_ids: list[str], setup: Setup) -> list[dict[str, Any]]:
    """Each route in turn under ``wrk`` (20 connections, one thread); [] without ``wrk``."""
    if shutil.which("wrk") is None:
        print("  wrk is not installed (apt-get install wrk): its table is left out", flush=True)
        return []
    script = Path(setup.work_dir) / "wrk-report.lua"
    script.write_text(WRK_REPORT, encoding="utf-8")
    rows = []
    for route, path in ROUTES.items():
        command = [
            "wrk", "-t1", f"-c{setup.api_clients}", f"-d{setup.wrk_seconds:g}s", "--timeout", "10s",
            "-s", str(script), "-H", f"Authorization: Bearer {key}", url + path(job_ids[0]),
        ]  # fmt: skip
        with sampled_load() as load:
            out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
        found = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(
            {
                "route": route,
                "requests": found["requests"],
                "p50_ms": found["p50_us"] / 1000,
                "p99_ms": found["p99_us"] / 1000,
                "max_ms": found["max_us"] / 1000,
                "requests_per_s": found["requests"] / found["seconds"],
                "errors": (found["errors"] + found["non_2xx"]) or None,
                **load,
            }
        )
    return rows


# ---------------------------------------------------------------- the parent


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Setup]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 job, 400 API requests")
    parser.add_argument("--jobs", type=int, help="jobs to start, one after another")
    parser.add_argument("--api-requests", type=int, help="API requests in all")
    parser.add_argument("--api-clients", type=int, default=Setup.api_clients)
    parser.add_argument(
        "--wrk-seconds", type=float, help="seconds of wrk per route (15; 5 in quick mode)"
    )
    parser.add_argument("--threads", type=int, default=Setup.threads)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.setup:
        return args, Setup(**json.loads(args.setup))
    setup = Setup(
        jobs=args.jobs or (1 if args.quick else Setup.jobs),
        api_requests=args.api_requests or (400 if args.quick else Setup.api_requests),
        api_clients=args.api_clients,
        wrk_seconds=args.wrk_seconds or (5.0 if args.quick else Setup.wrk_seconds),
        threads=args.threads,
    )
    return args, setup


def run(setup: Setup) -> dict[str, Any]:
    import httpx

    shutil.rmtree(setup.data_dir, ignore_errors=True)
    setup.data_dir.mkdir(parents=True)
    train, _ = split(sms_spam(), setup.examples, 0)
    train_file = write_jsonl(Path(setup.work_dir) / "train.jsonl", chat_records(train, "sms"))
    log = Path(setup.work_dir) / "logs" / "convert.log"
    converted = run_child(
        "bench.jobs",
        ["--child", "convert", "--setup", json.dumps(asdict(setup))],
        setup.threads,
        log,
    )
    before = machine()
    print(
        f"# jobs: {setup.jobs} jobs on {setup.examples} chats (batch {setup.batch_size}), "
        f"{setup.api_requests} API requests from {setup.api_clients} clients, server torch "
        f"threads {setup.threads}; model converted first in {converted.get('model_convert_s')} s"
        f"; load {before['load_avg_1_5_15']}",
        flush=True,
    )
    poll = str(setup.worker_poll_seconds)
    with tunesmith_server(setup.data_dir, setup.threads, workers=1, worker_poll_seconds=poll) as (
        url,
        key,
    ):
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            file_id = upload(client, train_file)
            jobs = []
            for index in range(1, setup.jobs + 1):
                with sampled_load() as load:
                    row = one_job(client, file_id, setup, index)
                jobs.append(row | load)
                print(f"  job {index}: {json.dumps(jobs[-1])}", flush=True)
        job_ids = [j["id"] for j in jobs]
        api_wrk = wrk_latency(url, key, job_ids, setup)
        api = api_latency(url, key, job_ids, setup)
    return {
        "setup": asdict(setup),
        "model": MODEL,
        "model_convert": converted,
        "tunesmith_source": source_state(),
        "machine": before,
        "load_after": machine()["load_avg_1_5_15"],
        "jobs": jobs,
        "api_wrk": api_wrk,
        "api": api,
        "summary": {
            "first_step_s_median": percentile(
                [j["first_step_s"] for j in jobs if j.get("first_step_s") is not None], 50
            ),
            "api_p50_ms": api[-1]["p50_ms"],
            "api_p99_ms": api[-1]["p99_ms"],
            "wrk_p99_ms_worst_route": max((r["p99_ms"] for r in api_wrk), default=None),
        },
    }


JOB_COLUMNS = [
    ("job", "job"),
    ("create_s", "POST s"),
    ("validated_s", "validated s"),
    ("started_s", "training started s"),
    ("first_step_s", "step 1 s"),
    ("cancel_to_stopped_s", "cancel->stopped s"),
    ("status", "status"),
    ("runnable_mean", "runnable"),
    ("error", "error"),
]
API_COLUMNS = [
    ("route", "route"),
    ("requests", "requests"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("max_ms", "max ms"),
    ("requests_per_s", "requests/s"),
    ("errors", "errors"),
    ("runnable_mean", "runnable"),
]


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args, setup = parse(argv)
    if args.child:
        convert(setup)
        return None
    report = run(setup)
    print("From POST /v1/fine_tuning/jobs (seconds, client clock, events polled every 0.1 s):")
    print_table(report["jobs"], JOB_COLUMNS)
    if report["api_wrk"]:
        print(f"API latency under wrk, {setup.api_clients} connections, each route in turn:")
        print_table(report["api_wrk"], API_COLUMNS)
    print(f"API latency, {setup.api_clients} Python client threads in this process:")
    print_table(report["api"], API_COLUMNS)
    emit_json("jobs", report)
    return report


if __name__ == "__main__":
    main()
