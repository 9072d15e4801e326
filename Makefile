# guardian: the two commands the README starts with are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip --disable-pip-version-check -q
ARGS   ?=

.PHONY: run test test-fast deps test-deps lint unit integration clean status

# The install compiles guardian._rest (guardian/_rest.c, the loop at rest in C): gcc and Python's
# headers. Without them it still installs, and the daemon runs that loop in Python.
C_BUILD_DEPS = command -v gcc >/dev/null && $(PYTHON) -c 'import os, sysconfig; \
	os.stat(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' 2>/dev/null || \
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev python3-dev; }

$(VENV)/.ok: pyproject.toml setup.py guardian/_rest.c
	$(C_BUILD_DEPS)
	$(PYTHON) -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PIP) install -e .
	touch $@

deps: $(VENV)/.ok

# Runs the guardian on this machine with the generic defaults (foreground; Ctrl-C stops it).
run: deps
	$(VENV)/bin/guardian run $(ARGS)

status: deps
	$(VENV)/bin/guardian status $(ARGS)

$(VENV)/.test-ok: $(VENV)/.ok
	$(PIP) install -e '.[test]' oelint-adv
	@command -v shellcheck >/dev/null && command -v busybox >/dev/null && command -v localedef >/dev/null && \
		[ -e /usr/share/i18n/charmaps/ISO-8859-15.gz ] || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck busybox-static locales; }
	touch $@

test-deps: $(VENV)/.test-ok

# Lint (ruff) and type check (mypy) of the Python code; both are configured in pyproject.toml.
# Both run, so that one pass shows every finding; either failing fails the target.
lint: test-deps
	rc=0; $(PY) -m ruff check guardian tests bench packaging/*.py || rc=1; \
	$(PY) -m mypy || rc=1; exit $$rc

# Installs everything the tests need, lints, then runs every test: unit, integration (real processes
# and cgroups), packaging (init scripts, frozen build, Buildroot/Yocto lint), then the VM suite
# (tests/vm: the frozen guardian against the kernel OOM killer in small QEMU VMs, beside earlyoom)
# and the systemd VMs (tests/vm/systemd: systemd as PID 1, beside earlyoom's unit and systemd-oomd);
# both VM suites run even when the first fails.
test: lint
	$(PY) -m pytest -ra tests
	rc=0; $(MAKE) --no-print-directory vm-test || rc=1; \
	$(MAKE) --no-print-directory vm-test-systemd || rc=1; exit $$rc

# The lint and pytest parts alone (a few minutes; no VMs).
test-fast: lint
	$(PY) -m pytest -ra tests

# Unit tests: fake trees and pure code (tests/unit, and the VM suite's judge and architecture parts,
# which boot no VM).
unit: test-deps
	$(PY) -m pytest -ra tests/unit tests/vm/test_judge.py tests/vm/test_arches.py tests/vm/systemd/test_sdjudge.py

# Integration tests: this machine's kernel, real processes and cgroups (most need root).
integration: test-deps
	$(PY) -m pytest -ra tests/integration

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
include packaging/frozen.mk
include bench/bench.mk
include tests/vm/vm.mk
include tests/vm/systemd/systemd.mk
