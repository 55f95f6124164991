"""Benchmark 3, serving chat completions: ``tunesmith serve`` with 1 and 8 streaming clients vs
a plain transformers ``generate`` loop (and ``transformers serve``, when it starts here).

    .venv/bin/python -m bench.serving --quick        # 8 requests a mode, 32 tokens; no
                                                     # transformers serve (5 min, busy 2 vCPUs)
    .venv/bin/python -m bench.serving                # 32 requests a mode, 64 tokens
    .venv/bin/python -m bench.serving --quick --contenders tunesmith,generate,transformers-serve

The model served is a LoRA fine-tune of smollm2-135m-instruct (r=8, one epoch over 48 SMS spam
chats, made once with ``tunesmith.training.run.finetune`` in ``.bench/serving/runs`` and reused
after). ``tunesmith serve --workers 0`` serves the run folder itself (a run folder is a model
name: ``jobs/catalog.model_for_inference`` passes any name that is not ``ft:...`` to the model
cache, which loads a folder with a ``tunesmith.json`` as a run: the base model once, the adapter
over it).

Every request is the same kind of chat: a system prompt, then one held-out SMS message with a
question that asks for a long answer (so that greedy decoding seldom stops before
``max_tokens``), ``temperature: 0``, ``stream: true`` with ``stream_options.include_usage``.
Each client sends its requests back to back; a mode's requests are the same prompts for every
contender. Per mode: output tokens per second (all completion tokens, from ``usage``, over the
mode's wall time), time to first token (the first chunk with non-empty content) and latency,
p50 and p99 (with 8 requests p99 is about the slowest one).

Contenders (``--contenders``):
  tunesmith            ``tunesmith serve`` with 1 client, then with 8 clients
  generate             a loop over transformers ``generate``, one request at a time: base model
                       plus the adapter through peft (unmerged, as the server runs it), greedy,
                       the same prompts and ``max_new_tokens``, stopping on the same end tokens;
                       on the device and in the dtype the server uses (``inference_placement``:
                       bf16 where native), in a child process; where that is not fp32, also
                       ``generate fp32``, the loop on the checkpoint's own fp32 weights
  transformers-serve   ``transformers serve`` (the CLI of transformers 5) on the LoRA merged into
                       its base (it loads no adapters), fp32 on the CPU, 1 then 8 clients;
                       not in ``--quick`` unless named in ``--contenders``
Every server and the generate child gets the same torch threads (``--threads``). The clients
run in this process, on the same cores as the server: on a small machine they take a share.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_DIR,
    emit_json,
    free_port,
    machine,
    peak_rss_mib,
    percentile,
    print_table,
    ratio,
    report_to_parent,
    run_child,
    sampled_load,
    server_process,
    set_threads,
    sms_spam,
    source_state,
    split,
    timed,
    tunesmith_env,
    tunesmith_server,
    write_jsonl,
)
from bench.sft_throughput import chat_records

MODEL = "smollm2-135m-instruct"
SYSTEM = "You are a careful assistant who explains text messages in detail."
QUESTION = (
    'Here is a text message someone received:\n\n"{text}"\n\n'
    "Describe in detail what the sender wants, who might have sent it, how the receiver "
    "should answer, and whether it is spam. Write at least three long paragraphs."
)
CONTENDERS = ("tunesmith", "generate", "transformers-serve")
QUICK_CONTENDERS = ("tunesmith", "generate")  # a third server costs minutes more on 2 cores
TRANSFORMERS_CLI = Path(sys.executable).with_name("transformers")


@dataclass
class Setup:
    """One benchmark configuration, shared by every contender (passed to children as JSON)."""

    requests: int = 32  # per mode: each prompt once
    max_tokens: int = 64
    clients: int = 8  # the concurrent mode; the other is 1 client
    train_examples: int = 48
    threads: int = 2
    seed: int = 42
    work_dir: str = str(BENCH_DIR / "serving")

    @property
    def dir(self) -> Path:
        return Path(self.work_dir)

    @property
    def run_dir(self) -> Path:
        return self.dir / "runs" / f"sms-lora-{self.train_examples}"

    @property
    def merged_dir(self) -> Path:
        return self.dir / "merged" / f"sms-lora-{self.train_examples}"

    @property
    def prompts_file(self) -> Path:
        return self.dir / f"prompts-{self.requests}.json"


# ---------------------------------------------------------------- data


def prepare_data(setup: Setup) -> list[list[dict[str, str]]]:
    """The fine-tune's training chats (SMS spam) and the requests: held-out messages."""
    train, held_out = split(sms_spam(), setup.train_examples, setup.requests)
    write_jsonl(setup.dir / f"train-{setup.train_examples}.jsonl", chat_records(train, "sms"))
    prompts = [
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": QUESTION.format(text=t)},
        ]
        for t, _ in held_out
    ]
    setup.prompts_file.parent.mkdir(parents=True, exist_ok=True)
    setup.prompts_file.write_text(json.dumps(prompts), encoding="utf-8")
    return prompts


def settings(setup: Setup) -> Any:
    from tunesmith.settings import load_settings

    return load_settings(data_dir=setup.dir)


# ---------------------------------------------------------------- children


def train(setup: Setup) -> dict[str, Any]:
    """The LoRA fine-tune the servers serve; an existing finished run is returned as it is."""
    from tunesmith.training.run import finetune
    from tunesmith.training.spec import FinetuneSpec, Hyperparameters

    reused = (setup.run_dir / "tunesmith.json").is_file()
    spec = FinetuneSpec(
        model=MODEL,
        train_file=setup.dir / f"train-{setup.train_examples}.jsonl",
        method="lora",
        output_dir=setup.run_dir,
        precision="fp32",
        hyperparameters=Hyperparameters(
            n_epochs=1,
            batch_size=8,
            max_seq_length=256,
            seed=setup.seed,
            eval_every=10**9,  # no evaluation or checkpoint before the end: just the adapter
            checkpoint_every=10**9,
        ),
    )
    result, seconds = timed(lambda: finetune(spec, settings=settings(setup), resume="auto"))
    return {"reused": reused, "train_s": round(seconds, 1), "steps": result.steps}


def base_and_adapter(setup: Setup, dtype: Any = None) -> tuple[Any, Any, list[int]]:
    """Plain transformers + peft: the run's base model where and in the dtype the server
    runs it (``inference_placement``; ``dtype`` overrides), its adapter over it, the
    tokenizer, and the end tokens tunesmith stops on (the model's and the tokenizer's)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.models.loading import inference_placement

    manifest = json.loads((setup.run_dir / "tunesmith.json").read_text(encoding="utf-8"))
    base_path = manifest.get("base_model_path")
    if not base_path or not Path(base_path).is_dir():
        from tunesmith.models.registry import resolve_model

        base_path = str(resolve_model(MODEL, settings(setup)).path)
    tokenizer_dir = (
        setup.run_dir if (setup.run_dir / "tokenizer_config.json").is_file() else base_path
    )
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    # on the device and in the dtype the server runs it in (bf16 where it is native)
    device, dtype = inference_placement(settings(setup), dtype=dtype)
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype).to(device)
    model = PeftModel.from_pretrained(base, setup.run_dir).eval()
    configured = base.generation_config.eos_token_id
    ends = set(configured if isinstance(configured, list) else [configured])
    ends.add(tokenizer.eos_token_id)
    return model, tokenizer, sorted(e for e in ends if e is not None)


def generate_loop(setup: Setup, dtype: Any = None) -> dict[str, Any]:
    """One request at a time through ``generate``: the baseline every server is held to."""
    import torch

    model, tokenizer, ends = base_and_adapter(setup, dtype)
    prompts = json.loads(setup.prompts_file.read_text(encoding="utf-8"))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ends[0]

    def one(messages: list[dict[str, str]]) -> int:
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(model.device)
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=setup.max_tokens,
                do_sample=False,
                eos_token_id=ends,
                pad_token_id=pad,
            )
        new = out[0, inputs["input_ids"].shape[1] :].tolist()
        stop = next((i for i, t in enumerate(new) if t in ends), None)
        return len(new) if stop is None else stop + 1  # the end token counts, as in usage

    one(prompts[0])  # warm-up, not counted
    latencies, tokens = [], 0
    start = time.perf_counter()
    for messages in prompts:
        n, seconds = timed(lambda m=messages: one(m))
        latencies.append(seconds)
        tokens += n
    wall = time.perf_counter() - start
    return {
        "requests": len(prompts),
        "completion_tokens": tokens,
        "tokens_per_s": tokens / wall,
        "latency_p50_s": percentile(latencies, 50),
        "latency_p99_s": percentile(latencies, 99),
        "peak_rss_mib": peak_rss_mib(),
    }


def merge(setup: Setup) -> dict[str, Any]:
    """The adapter merged into its base, saved as a plain model folder (transformers serve
    loads no adapters), with the same end tokens in its generation config."""
    model, tokenizer, ends = base_and_adapter(setup)
    merged = model.merge_and_unload()
    merged.generation_config.eos_token_id = ends
    out = setup.merged_dir
    shutil.rmtree(out, ignore_errors=True)
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"merged": str(out)}


def generate_loop_fp32(setup: Setup) -> dict[str, Any]:
    """The same loop on fp32 weights: what transformers loads this fp32 checkpoint as."""
    import torch

    return generate_loop(setup, torch.float32)


CHILDREN = {
    "train": train,
    "generate": generate_loop,
    "generate-fp32": generate_loop_fp32,
    "merge": merge,
}


def child(name: str, setup: Setup) -> None:
    set_threads(setup.threads)
    report_to_parent(CHILDREN[name](setup))


def in_child(name: str, setup: Setup) -> dict[str, Any]:
    log = setup.dir / "logs" / f"{name}.log"
    args = ["--child", name, "--setup", json.dumps(asdict(setup))]
    return run_child("bench.serving", args, setup.threads, log)


# ---------------------------------------------------------------- clients (this process)


@dataclass
class Sample:
    ttft_s: float | None
    latency_s: float
    completion_tokens: int
    error: str | None = None


def stream_one(client: Any, body: dict[str, Any]) -> Sample:
    """One streamed chat completion: time to the first non-empty content, total latency,
    completion tokens from the usage chunk (or, without one, the content chunks)."""
    start = time.perf_counter()
    ttft: float | None = None
    tokens: int | None = None
    chunks = 0
    with client.stream("POST", "/chat/completions", json=body) as response:
        if response.status_code != 200:
            response.read()
            return Sample(None, 0.0, 0, f"{response.status_code}: {response.text[:200]}")
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                return Sample(ttft, time.perf_counter() - start, 0, str(event["error"])[:200])
            for choice in event.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    chunks += 1
                    if ttft is None:
                        ttft = time.perf_counter() - start
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
    return Sample(ttft, time.perf_counter() - start, chunks if tokens is None else tokens)


def client_load(
    url: str, key: str, model: str, prompts: list[Any], clients: int, max_tokens: int
) -> dict[str, Any]:
    """``clients`` threads, each with its own keep-alive connection, sending the prompts back
    to back until every prompt has been sent once."""
    import httpx

    pending: Iterator[Any] = iter(prompts)
    lock = threading.Lock()
    samples: list[Sample] = []

    def work() -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=900) as client:
            while True:
                with lock:
                    messages = next(pending, None)
                if messages is None:
                    return
                body = {
                    "model": model,
                    "messages": messages,
                    "max_tokens": max_tokens,
                    "temperature": 0,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                }
                try:
                    sample = stream_one(client, body)
                except httpx.HTTPError as exc:
                    sample = Sample(None, 0.0, 0, f"{type(exc).__name__}: {exc}")
                with lock:
                    samples.append(sample)

    threads = [threading.Thread(target=work) for _ in range(clients)]
    with sampled_load() as load:
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
    good = [s for s in samples if s.error is None]
    tokens = sum(s.completion_tokens for s in good)
    errors = [s.error for s in samples if s.error is not None]
    return {
        "clients": clients,
        "requests": len(good),
        "completion_tokens": tokens,
        "tokens_per_s": tokens / wall if good else None,
        "ttft_p50_s": percentile([s.ttft_s for s in good if s.ttft_s is not None], 50),
        "ttft_p99_s": percentile([s.ttft_s for s in good if s.ttft_s is not None], 99),
        "latency_p50_s": percentile([s.latency_s for s in good], 50),
        "latency_p99_s": percentile([s.latency_s for s in good], 99),
        "wall_s": round(wall, 1),
        **load,
        **({"error": f"{len(errors)} failed: {errors[0]}"} if errors else {}),
    }


def serve_modes(
    name: str, url: str, key: str, model: str, prompts: list[Any], setup: Setup
) -> list[dict[str, Any]]:
    """A warm-up request (loads the model; not counted), then 1 client, then ``clients``."""
    _, warm_s = timed(lambda: client_load(url, key, model, prompts[:1], 1, setup.max_tokens))
    rows = []
    for clients in (1, setup.clients):
        row = {"contender": f"{name} x{clients}", "warmup_s": round(warm_s, 1)}
        row |= client_load(url, key, model, prompts, clients, setup.max_tokens)
        print(f"  {row['contender']}: {json.dumps(row)}", flush=True)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- contenders (the parent)


def run_tunesmith(setup: Setup, prompts: list[Any]) -> list[dict[str, Any]]:
    model = str(setup.run_dir.resolve())
    with tunesmith_server(setup.dir, setup.threads, workers=0) as (url, key):
        return serve_modes("tunesmith", url, key, model, prompts, setup)


def run_generate(setup: Setup) -> list[dict[str, Any]]:
    """The loop in the server's dtype (the baseline of ``x generate``) and, where that is
    not fp32, also on fp32 weights: the loop as a user writes it, loading the checkpoint as
    it is stored."""
    import torch

    from tunesmith.models.loading import inference_placement

    children = {"generate x1": "generate"}
    if inference_placement(settings(setup))[1] != torch.float32:
        children["generate fp32 x1"] = "generate-fp32"
    rows = []
    for contender, child_name in children.items():
        row = {"contender": contender, "clients": 1} | in_child(child_name, setup)
        print(f"  {row['contender']}: {json.dumps(row)}", flush=True)
        rows.append(row)
    return rows


def run_transformers_serve(setup: Setup, prompts: list[Any]) -> list[dict[str, Any]]:
    """``transformers serve`` on the merged model; a row saying why when it does not run."""
    failed = {"contender": "transformers-serve", "not_run": None}
    if not TRANSFORMERS_CLI.exists():
        return [failed | {"not_run": f"no {TRANSFORMERS_CLI} (transformers CLI not installed)"}]
    merged_config = setup.merged_dir / "config.json"
    run_manifest = setup.run_dir / "tunesmith.json"
    if not merged_config.is_file() or merged_config.stat().st_mtime < run_manifest.stat().st_mtime:
        merged = in_child("merge", setup)
        if "error" in merged:
            return [failed | {"not_run": f"merging the adapter failed: {merged['error']}"}]
    port = free_port()
    model = str(setup.merged_dir.resolve())
    command = [
        str(TRANSFORMERS_CLI), "serve", model, "--port", str(port), "--host", "127.0.0.1",
        "--device", "cpu", "--dtype", "float32", "--log-level", "warning",
    ]  # fmt: skip
    env = tunesmith_env(setup.dir, setup.threads)
    log = setup.dir / "logs" / "transformers-serve.log"
    url = f"http://127.0.0.1:{port}"
    try:
        with server_process(command, env, url + "/health", log):
            return serve_modes("transformers-serve", url + "/v1", "none", model, prompts, setup)
    except RuntimeError as exc:
        return [failed | {"not_run": str(exc)}]


# ---------------------------------------------------------------- the parent


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Setup]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 requests a mode, 32 tokens")
    parser.add_argument("--requests", type=int, help="requests per mode (distinct prompts)")
    parser.add_argument("--max-tokens", type=int, help="max_tokens of every request")
    parser.add_argument("--clients", type=int, default=Setup.clients)
    parser.add_argument("--threads", type=int, default=Setup.threads)
    parser.add_argument(
        "--contenders",
        help=f"comma-separated, from {', '.join(CONTENDERS)} (default: all; --quick: "
        f"{', '.join(QUICK_CONTENDERS)})",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.setup:
        return args, Setup(**json.loads(args.setup))
    setup = Setup(
        requests=args.requests or (8 if args.quick else Setup.requests),
        max_tokens=args.max_tokens or (32 if args.quick else Setup.max_tokens),
        clients=args.clients,
        threads=args.threads,
    )
    return args, setup


def run(setup: Setup, contenders: list[str], quick: bool = False) -> dict[str, Any]:
    prompts = prepare_data(setup)
    before = machine()
    state = source_state()
    dirty = ", ".join(state["uncommitted_src"])
    print(
        f"# serving: {setup.requests} requests a mode, max_tokens {setup.max_tokens}, 1 and "
        f"{setup.clients} clients, {setup.threads} threads; tunesmith at {state['commit']!r}"
        f"{' + uncommitted ' + dirty if dirty else ''}; load {before['load_avg_1_5_15']}",
        flush=True,
    )
    trained = in_child("train", setup)
    print(f"  fine-tune: {json.dumps(trained)}", flush=True)
    rows: list[dict[str, Any]] = []
    if "error" not in trained:
        for name in contenders:
            if name == "tunesmith":
                rows += run_tunesmith(setup, prompts)
            elif name == "generate":
                rows += run_generate(setup)
            else:
                rows += run_transformers_serve(setup, prompts)
    for name in CONTENDERS:
        if name not in contenders:
            reason = (
                "left out of --quick" if quick and name not in QUICK_CONTENDERS else "not asked"
            )
            rows.append({"contender": name, "not_run": reason + " (--contenders adds it)"})
    baseline = next((r for r in rows if r["contender"] == "generate x1"), {})
    for row in rows:
        row["x_generate"] = ratio(row.get("tokens_per_s"), baseline.get("tokens_per_s"))
    concurrent = next((r for r in rows if r["contender"] == f"tunesmith x{setup.clients}"), {})
    return {
        "setup": asdict(setup),
        "model": MODEL,
        "tunesmith_source": state,
        "fine_tune": trained,
        "machine": before,
        "load_after": machine()["load_avg_1_5_15"],
        "results": rows,
        "summary": {
            f"tunesmith_{setup.clients}_clients_over_generate": concurrent.get("x_generate"),
            f"tunesmith_{setup.clients}_clients_ttft_p50_s": concurrent.get("ttft_p50_s"),
        },
    }


COLUMNS = [
    ("contender", "contender"),
    ("requests", "requests"),
    ("completion_tokens", "tokens"),
    ("tokens_per_s", "tokens/s"),
    ("ttft_p50_s", "TTFT p50 s"),
    ("ttft_p99_s", "TTFT p99 s"),
    ("latency_p50_s", "latency p50 s"),
    ("latency_p99_s", "latency p99 s"),
    ("x_generate", "x generate"),
    ("runnable_mean", "runnable"),
    ("not_run", "not run"),
    ("error", "error"),
]


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args, setup = parse(argv)
    if args.child:
        child(args.child, setup)
        return None
    default = QUICK_CONTENDERS if args.quick else CONTENDERS
    contenders = [c for c in args.contenders.split(",") if c] if args.contenders else default
    unknown = sorted(set(contenders) - set(CONTENDERS))
    if unknown:
        sys.exit(f"unknown contenders: {', '.join(unknown)}")
    report = run(setup, contenders, args.quick and not args.contenders)
    print_table(report["results"], COLUMNS)
    summary = report["summary"]
    print(
        f"tunesmith with {setup.clients} clients / sequential generate, tokens/s: "
        f"{_fmt(summary[f'tunesmith_{setup.clients}_clients_over_generate'])}; "
        f"TTFT p50 with {setup.clients} clients: "
        f"{_fmt(summary[f'tunesmith_{setup.clients}_clients_ttft_p50_s'])} s",
        flush=True,
    )
    emit_json("serving", report)
    return report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
