"""Run the benchmarks one after another; each prints its table and one JSON line.

    make bench-quick      # .venv/bin/python -m bench.run --quick   (a few minutes)
    make bench            # .venv/bin/python -m bench.run           (long: about an hour here)
    .venv/bin/python -m bench.run --only sft --json-out .bench/results.jsonl

Benchmarks: ``sft`` (LoRA SFT throughput), ``classification``, ``serving`` (chat completions
under 1 and 8 streaming clients) and ``jobs`` (job start-up and API latency); each is described
in its module and in docs/benchmarks.md. The figures are printed, never asserted; on a shared
machine read the ``runnable`` column (threads competing for the cores while a contender ran)
before trusting a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from bench import classification, jobs, serving, sft_throughput
from bench.common import machine

BENCHMARKS = {
    "sft": sft_throughput.main,
    "classification": classification.main,
    "serving": serving.main,
    "jobs": jobs.main,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small versions of each benchmark")
    parser.add_argument(
        "--only",
        choices=sorted(BENCHMARKS),
        action="append",
        help="run just this benchmark (repeatable)",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json-out", type=Path, help="also append each JSON line to this file")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps({"machine": machine()}), flush=True)
    for name in args.only or list(BENCHMARKS):
        argv = ["--threads", str(args.threads)] + (["--quick"] if args.quick else [])
        report: dict[str, Any] | None = BENCHMARKS[name](argv)
        if args.json_out and report is not None:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            with args.json_out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"benchmark": name, **report}) + "\n")


if __name__ == "__main__":
    main()
