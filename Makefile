# sealroom — the two quickstart commands are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: setup setup-test chromium demo test test-all bench lint clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null \
	  || { echo "need Python 3.11 or newer as $(PYTHON) (or: make PYTHON=/path/to/python3.11 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# A provider's install: sealroom alone. The tests add pytest and friends and the `lab`
# extra (Ray, MLflow, ART), which only the experiment testbed needs.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $(STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,lab,browser]'
	@touch $(STAMP) $(TEST_STAMP)

# The dashboard's browser tests drive Debian's chromium with Debian's chromedriver (Selenium
# Manager would download a browser). Installed here when absent (root, or sudo without a
# password); BROWSER_TESTS=0 skips the install and deselects the browser tests.
BROWSER_TESTS ?= 1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
chromium:
ifeq ($(BROWSER_TESTS),1)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing Debian's chromium and chromium-driver for the browser tests"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver >/dev/null; } \
	  || { echo "cannot install chromium (need root or sudo); run with BROWSER_TESTS=0 to skip the browser tests"; exit 1; }
endif

setup: $(STAMP)

setup-test: $(TEST_STAMP)

demo: setup
	$(BIN)/sealroom demo mnist

PYTEST_BROWSER := $(if $(filter 0,$(BROWSER_TESTS)),-m 'not slow and not browser',)

test: setup-test chromium
	$(BIN)/python -m pytest -q $(PYTEST_BROWSER)

test-all: setup-test chromium
	$(BIN)/python -m pytest -q -m ''

# Every figure in docs/results.md except the long DP runs (Fashion-MNIST accuracy at ε 1, 3,
# 8 for three models, about 40 minutes on one core; the audits, about 30):
#   $(BIN)/python benchmarks/bench_dp.py accuracy
#   $(BIN)/python benchmarks/bench_dp.py audit canary --kind noise --modes fused,hooks,none --epochs 30
#   $(BIN)/python benchmarks/bench_dp.py audit mia --members 10000 --non-members 10000
bench: setup-test
	$(BIN)/python benchmarks/bench_seal.py
	$(BIN)/python benchmarks/bench_release.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_room.py
	$(BIN)/python benchmarks/bench_dp.py speed
	$(BIN)/python benchmarks/bench_dp.py accuracy --models scatter-linear --epsilons 3
	$(BIN)/python benchmarks/bench_mri.py
	$(BIN)/python benchmarks/bench_infer.py
	$(BIN)/python benchmarks/bench_lab.py
	$(BIN)/python benchmarks/bench_cli.py
	$(BIN)/python benchmarks/bench_ui.py
	$(BIN)/python benchmarks/bench_attest.py

lint: setup-test
	$(BIN)/ruff check sealroom tests benchmarks scenarios
	$(BIN)/ruff format --check sealroom tests benchmarks scenarios
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .sealroom .pytest_cache .mypy_cache .ruff_cache
