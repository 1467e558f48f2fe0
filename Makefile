# Two entry points do all their own set-up: `make demo` and `make test`.
# `make setup` is idempotent and fast when nothing changed (stamp files).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# `make test` skips tests marked slow; CI (CI=true) and `make test-all` run everything.
PYTEST_MARK ?= $(if $(filter true,$(CI)),,not slow)

.PHONY: setup engine browser rsync netns images lint test test-all demo bench clean

setup: $(STAMP) engine browser rsync netns images

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Docker engine: installed and started when missing (no systemd on the dev machines).
engine:
	@scripts/ensure-docker.sh

# Debian's chromium, which the review console's browser tests drive (Playwright cannot download
# its own build here): installed only when missing.
browser:
	@[ -x /usr/bin/chromium ] || { echo "installing chromium (Debian)" >&2; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# rsync: what bench_sync.py measures the folder transport against (installed only when missing).
rsync:
	@command -v rsync >/dev/null || { echo "installing rsync (Debian)" >&2; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null; }

# iproute2 and util-linux: the Swarm tests' 3-node cluster lives in network namespaces
# (tests/swarm/cluster.py); installed only when missing.
netns:
	@command -v ip >/dev/null && command -v nsenter >/dev/null || { echo "installing iproute2" >&2; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 util-linux >/dev/null; }

# Job runtime images: built from images/*/Dockerfile, base pulled or bootstrapped offline; cached.
images: $(STAMP) engine
	@$(VENV)/bin/syft-runner images build

lint: $(STAMP)
	$(VENV)/bin/ruff check syft_core syft_runner tests bench
	$(VENV)/bin/ruff format --check syft_core syft_runner tests bench
	$(VENV)/bin/mypy

test: setup lint
	TESTCONTAINERS_RYUK_DISABLED=true $(VENV)/bin/pytest -m "$(PYTEST_MARK)"

test-all:
	$(MAKE) test PYTEST_MARK=

demo: setup
	$(PY) -m syft_runner.demo

# Each bench script prints its own table of figures and ratios, measured side by side in one run.
bench: setup
	@for script in bench/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
