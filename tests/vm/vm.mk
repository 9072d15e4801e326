# VM test suite (tests/vm/): the guardian in a small-RAM QEMU/TCG VM with a real kernel, against
# the kernel OOM killer, side by side with earlyoom. Included from the top Makefile.
#   make vm-test                          every scenario, both tools, on x86_64, and on the arm64
#                                         board (runaway, leak and restart); 2 VMs at a time
#   make vm-test VM_ARCHES=x86_64         x86_64 alone (about 15 minutes)
#   make vm-test-arm                      the two ARM boards alone (arm64 and armhf)
#   make vm-test VM_ARGS="leak restart"   some scenarios (python3 tests/vm/run.py --list)
#   make vm-test VM_ARGS="--tools guardian"
# Needs root. Build products (kernel, image, per-VM logs, results) go to build/vm/ (x86_64) and
# build/vm-<arch>/; the report, of every architecture, to build/vm/results/.
VM_ARGS ?=
# The target that builds dist/guardian (packaging/build-frozen.sh).
VM_FROZEN ?= frozen
# The architectures `make vm-test` (and `make test`) boots (tests/vm/arches.py), comma-separated,
# and those `make vm-test-arm` boots. armhf is left to vm-test-arm: with the systemd VMs, all of
# `make test` with it would come near CI's 60 minutes on a slow machine (tests/vm/README.md).
VM_ARCHES ?= x86_64,arm64
VM_ARM_ARCHES ?= arm64,armhf
vm_comma := ,
# The frozen builds an architecture list needs: dist/guardian for x86_64, dist/guardian-<arch>
# (packaging/build-cross.sh) for the others.
vm_frozen = $(foreach a,$(subst $(vm_comma), ,$(1)),$(if $(filter x86_64,$(a)),$(VM_FROZEN),frozen-$(a)))
VM_PYTHON ?= python3
# A guardian VM that fails is booted once more (a TCG VM on a busy host is now and then starved);
# the suite passes only if that run passes, and the report lists every failed run.
VM_RETRY ?= 1

.PHONY: vm-test vm-test-arm vm-deps vm-image

# qemu-system-x86 (TCG; KVM is not needed), mksquashfs, a static BusyBox, earlyoom (the
# reference), stress-ng (a load generator the stress scenarios run in the guest), gcc and libc6-dev (vmtool is linked statically). On a host running systemd,
# installing earlyoom also starts its service: `systemctl disable --now earlyoom` if unwanted.
# An ARM architecture in VM_ARCHES adds qemu-system-arm (both ARM emulators) and that architecture
# to dpkg's (`dpkg --add-architecture`: apt-get then downloads its kernel, BusyBox and earlyoom).
vm-deps:
	@missing=""; update=""; \
	for pair in qemu-system-x86_64:qemu-system-x86 mksquashfs:squashfs-tools earlyoom:earlyoom stress-ng:stress-ng gcc:gcc; do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	for pkg in busybox-static libc6-dev; do \
		dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	for arch in $(subst $(vm_comma), ,$(VM_ARCHES)); do \
		case $$arch in arm64|armhf) ;; *) continue;; esac; \
		command -v qemu-system-aarch64 >/dev/null 2>&1 || missing="$$missing qemu-system-arm"; \
		if ! dpkg --print-foreign-architectures | grep -qx $$arch; then \
			echo "vm-deps: dpkg --add-architecture $$arch"; dpkg --add-architecture $$arch; update=1; \
		fi; \
		apt-cache show busybox-static:$$arch >/dev/null 2>&1 || update=1; \
	done; \
	if [ -n "$$missing$$update" ]; then \
		echo "vm-deps: installing$$missing"; \
		apt-get update -qq && { [ -z "$$missing" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; }; \
	fi

vm-image: $(call vm_frozen,$(VM_ARCHES)) vm-deps
	$(VM_PYTHON) tests/vm/run.py --arch $(VM_ARCHES) --build-only

vm-test: $(call vm_frozen,$(VM_ARCHES)) vm-deps
	$(VM_PYTHON) tests/vm/run.py --arch $(VM_ARCHES) --retry-failed $(VM_RETRY) $(VM_ARGS)

# The report keeps the architectures `make vm-test` ran beside these.
vm-test-arm: VM_ARCHES = $(VM_ARM_ARCHES)
vm-test-arm: $(call vm_frozen,$(VM_ARM_ARCHES)) vm-deps
	$(VM_PYTHON) tests/vm/run.py --arch $(VM_ARM_ARCHES) --retry-failed $(VM_RETRY) $(VM_ARGS)
