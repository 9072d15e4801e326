# VM test suite (tests/vm/): the guardian in a small-RAM QEMU/TCG VM with a real kernel, against
# the kernel OOM killer, side by side with earlyoom. Included from the top Makefile.
#   make vm-test                          every scenario, both tools (about 15 minutes, 2 VMs at a time)
#   make vm-test VM_ARGS="leak restart"   some scenarios (python3 tests/vm/run.py --list)
#   make vm-test VM_ARGS="--tools guardian"
# Needs root. Build products (kernel, image, per-VM logs, results) go to build/vm/.
VM_ARGS ?=
# The target that builds dist/guardian (packaging/build-frozen.sh).
VM_FROZEN ?= frozen
VM_PYTHON ?= python3
# A guardian VM that fails is booted once more (a TCG VM on a busy host is now and then starved);
# the suite passes only if that run passes, and the report lists every failed run.
VM_RETRY ?= 1

.PHONY: vm-test vm-deps vm-image

# qemu-system-x86 (TCG; KVM is not needed), mksquashfs, a static BusyBox, earlyoom (the
# reference), stress-ng (a load generator the stress scenarios run in the guest), gcc and libc6-dev (vmtool is linked statically). On a host running systemd,
# installing earlyoom also starts its service: `systemctl disable --now earlyoom` if unwanted.
vm-deps:
	@missing=""; \
	for pair in qemu-system-x86_64:qemu-system-x86 mksquashfs:squashfs-tools earlyoom:earlyoom stress-ng:stress-ng gcc:gcc; do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	for pkg in busybox-static libc6-dev; do \
		dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "vm-deps: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

vm-image: $(VM_FROZEN) vm-deps
	$(VM_PYTHON) tests/vm/run.py --build-only

vm-test: $(VM_FROZEN) vm-deps
	$(VM_PYTHON) tests/vm/run.py --retry-failed $(VM_RETRY) $(VM_ARGS)
