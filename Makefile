# Two commands on a fresh machine: `make demo` and `make test`.
# The virtualenv is rebuilt only when pyproject.toml changes (stamp keyed on its hash).
VENV ?= .venv
PY := $(VENV)/bin/python
KEY := $(shell sha1sum pyproject.toml | cut -c1-12)
STAMP := $(VENV)/.deps-$(KEY)
TORCH := torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.0
PYTEST_ARGS ?=

.PHONY: setup demo test lint test-slow bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[all,dev]'
	$(PY) -m pip install -q --no-deps recbole==1.2.1  # MovieLens-100k files only (see pyproject.toml)
	rm -f $(VENV)/.deps-*
	touch $@

setup: $(STAMP)
	@# the checkout may have moved (CI clones afresh): re-point the editable install, no downloads
	$(PY) -m pip install -q --no-deps -e .

demo: setup
	$(PY) -m cli.demo

test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-slow: setup
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

bench: setup
	$(PY) -m benchmarks.layers

clean:
	rm -rf $(VENV) runs .pytest_cache
