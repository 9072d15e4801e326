# The systemd VMs (tests/vm/systemd/): Debian bookworm with systemd as PID 1 and cgroup v2, the
# frozen guardian installed with init/guardian.service, beside earlyoom's Debian unit and
# systemd-oomd. Included from the top Makefile; `make test` runs it after vm-test.
#   make vm-test-systemd                                  every scenario, the three tools
#   make vm-test-systemd VM_SYSTEMD_ARGS="--tools guardian runaway-512"
# Needs root. Build products (the Debian root, kept; the disk image; per-VM logs; results) go
# to build/vm-systemd/; the kernel is the VM suite's (build/vm/kernel/).
VM_SYSTEMD_ARGS ?=
VM_SYSTEMD_RETRY ?= 1

.PHONY: vm-test-systemd vm-deps-systemd

# debootstrap builds the root; mkfs.ext4 (e2fsprogs) the disk; the rest as vm-deps.
vm-deps-systemd: vm-deps
	@missing=""; \
	for pair in debootstrap:debootstrap mkfs.ext4:e2fsprogs; do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "vm-deps-systemd: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

vm-test-systemd: $(VM_FROZEN) vm-deps-systemd
	$(VM_PYTHON) tests/vm/systemd/sdrun.py --retry-failed $(VM_SYSTEMD_RETRY) $(VM_SYSTEMD_ARGS)
