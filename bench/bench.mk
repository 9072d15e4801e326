# bench: guardian side by side with earlyoom and nohang (idle cost, hot path, reaction).
# Included from the top Makefile; uses its PY, PIP and deps. Needs root and about 5 minutes.
#   make bench                               the full run (results in bench/results/)
#   make bench BENCH_ARGS="--only hotpath"   one phase; see python bench/run.py --help
#   make bench BENCH_ARGS="--only modcost"   what each module costs over the floor (bench/modcost.py)
BENCH_ARGS ?=

.PHONY: bench bench-deps

# matplotlib is a bench-only dependency (the chart): into the venv, never into the package.
# earlyoom and nohang come from Debian's packages. On a host running systemd, installing them
# also starts their services: stop those (systemctl disable --now earlyoom nohang) if you do
# not want them watching your machine after the bench.
bench-deps: deps
	$(PY) -c 'import matplotlib' 2>/dev/null || $(PIP) install 'matplotlib>=3.5'
	@if ! command -v earlyoom >/dev/null 2>&1 || ! command -v nohang >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq earlyoom nohang; \
	fi

# frozen: dist/guardian (the idle phase runs it beside the Python one) and dist/guardian-floor (the
# modcost phase), about 15 s (30 s the first time).
bench: bench-deps frozen
	$(PY) bench/run.py $(BENCH_ARGS)
