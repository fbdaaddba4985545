# Two commands do everything on a fresh machine: `make experiment` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ANVIL_VERSION := 1.7.1
ANVIL := .tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
ETHERS_VERSION := 6.17.0
ETHERS := .tools/node_modules/ethers/package.json

.PHONY: install test test-fast soak chaos bench experiment experiment-quick report lint anvil ethers chromium clean notebook

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,notebook,harness,dask]'
	touch $(STAMP)

install: $(STAMP)

# anvil, the real Ethereum node the monitor is also tested against (pinned npm package)
anvil: $(ANVIL)
$(ANVIL):
	mkdir -p .tools
	cd .tools && npm install --silent --no-audit --no-fund --prefix . @foundry-rs/anvil-linux-amd64@$(ANVIL_VERSION)

# ethers.js v6, a real client the simulator is tested with (tests/simulator/ethers_client.mjs).
# Both land in .tools/package.json, so installing one keeps the other.
ethers: $(ETHERS)
$(ETHERS):
	mkdir -p .tools
	npm install --silent --no-audit --no-fund --prefix .tools ethers@$(ETHERS_VERSION)

# headless Chromium for the report's browser check (Debian package; needs root or sudo)
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  >/dev/null || echo "could not install chromium: the browser check will say so"; }

# Test files run on TEST_WORKERS pytest-xdist workers, one file per worker at a time (a
# file's module fixtures are built once). Most long tests wait on sockets and replay clocks,
# not on a core, so 3 workers fit 2 cores; TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 3
test: install anvil ethers chromium
	ANVIL_BIN=$(abspath $(ANVIL)) ETHERS_MODULES=$(abspath .tools/node_modules) \
	  $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=20

test-fast: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow"

# the long forms (not in make test): the 20-kill crash loop, and a simulated week under 5
# seeds (two at a time) in virtual time with every fault kind hourly; its run and report
# land in results/soak
soak: install anvil
	SOAK_OUT=$(abspath results)/soak ANVIL_BIN=$(abspath $(ANVIL)) \
	  $(BIN)/python -m pytest -q -s -m soak -p no:cacheprovider
	$(BIN)/python -m reports build results/soak/latest

# random fault schedules in virtual time (see experiments/chaos.py); exit 1 when one breaks
# an invariant, naming the command that replays it
chaos: install
	$(BIN)/python -m experiments chaos --runs 20 --jobs 2 --out results/chaos

bench: install
	$(BIN)/python -m pytest benchmarks -q -s -p no:cacheprovider --benchmark-enable --benchmark-autosave --benchmark-columns=min,median,mean,max,rounds

experiment: install
	$(BIN)/python -m experiments run --out results
	$(BIN)/python -m reports build results/latest

experiment-quick: install
	$(BIN)/python -m experiments run --quick --out results
	$(BIN)/python -m reports build results/latest

# JupyterLab on notebooks/analysis.ipynb with the project's environment (.venv, its kernel),
# reading results/latest (make notebook RUN_DIR=results/<run-id> for another run).
# Interactive: never part of make test or CI (refuses when CI is set).
RUN_DIR ?= results/latest
notebook: install
	@if [ -n "$$CI" ]; then echo "make notebook is interactive: not run in CI" >&2; exit 1; fi
	@test -e $(RUN_DIR) || echo "no $(RUN_DIR) yet: run make experiment (or experiment-quick) first"
	RUN_DIR=$(abspath $(RUN_DIR)) $(BIN)/python -m jupyterlab notebooks/analysis.ipynb

lint: install
	$(BIN)/ruff check polyvocab simulator monitor experiments reports tests benchmarks
	$(BIN)/mypy polyvocab simulator monitor experiments reports
	$(BIN)/lint-imports --no-cache  # the architecture contract in pyproject.toml

clean:
	rm -rf $(VENV) .tools results .pytest_cache .mypy_cache .ruff_cache
