# Frozen binary, init scripts and packaging: included from the top-level Makefile.
#   make frozen          for this machine, both layouts: dist/guardian-onedir/ (the default,
#                        dist/guardian points into it) and dist/guardian-onefile, and the floor
#                        the same way (dist/guardian-floor*); about 10 s, 30 s the first time,
#                        which makes build/frozen-venv-<machine>
#   make frozen-arm64    dist/guardian-arm64*, built in a Debian arm64 root under qemu-user
#   make frozen-armhf    dist/guardian-armhf*, the same for 32-bit ARM (both need root)
#   make lint-init       shellcheck and systemd-analyze verify on init/
#   make lint-packaging  shellcheck on packaging/, oelint-adv on the Yocto recipe, and
#                        Buildroot's check-package when BUILDROOT_DIR names a checkout
# GUARDIAN_FROZEN_MODE=onefile points dist/guardian at the single file (see packaging/README.md).

PYTHON ?= python3
OELINT ?= $(firstword $(wildcard $(VENV)/bin/oelint-adv) oelint-adv)
OELINT_ARGS = --quiet --hide info --suppress oelint.var.mandatoryvar.HOMEPAGE
BUILDROOT_PYTHON ?= $(PYTHON)

.PHONY: frozen frozen-arm64 frozen-armhf lint-init lint-packaging

frozen:
	$(C_BUILD_DEPS)
	PYTHON=$(PYTHON) sh packaging/build-frozen.sh

frozen-arm64:
	sh packaging/build-cross.sh arm64

frozen-armhf:
	sh packaging/build-cross.sh armhf

lint-init:
	shellcheck --shell=sh init/S03guardian init/guardian.default
	@d=$$(mktemp -d) && printf '#!/bin/sh\n' >$$d/guardian && chmod +x $$d/guardian && \
	sed "s|/usr/bin/guardian|$$d/guardian|" init/guardian.service >$$d/guardian.service && \
	echo "systemd-analyze verify init/guardian.service" && \
	out=$$(systemd-analyze verify $$d/guardian.service 2>&1); rc=$$?; rm -rf $$d; \
	out=$$(printf '%s\n' "$$out" | grep guardian); \
	if [ $$rc -ne 0 ] || [ -n "$$out" ]; then printf '%s\n' "$$out"; exit 1; fi

lint-packaging:
	shellcheck --shell=sh packaging/*.sh
	$(OELINT) $(OELINT_ARGS) yocto/meta-guardian/recipes-support/guardian/guardian_git.bb
	@if [ -n "$(BUILDROOT_DIR)" ]; then \
		echo "check-package (Buildroot at $(BUILDROOT_DIR))"; \
		cd buildroot && $(BUILDROOT_PYTHON) $(BUILDROOT_DIR)/utils/check-package -b \
			Config.in external.desc external.mk package/guardian/*; \
	else echo "check-package skipped: set BUILDROOT_DIR to a Buildroot checkout (buildroot/README.md)"; fi
