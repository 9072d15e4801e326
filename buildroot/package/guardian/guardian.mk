################################################################################
#
# guardian
#
################################################################################

# Built from the checkout this BR2_EXTERNAL tree lives in.
GUARDIAN_VERSION = 0.1.0
GUARDIAN_SITE = $(BR2_EXTERNAL_GUARDIAN_PATH)/..
GUARDIAN_SITE_METHOD = local
# *.so: guardian._rest as `make deps` built it in place, for the host (the
# target's is compiled here, by the target toolchain).
GUARDIAN_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude /build --exclude /dist --exclude /.venv --exclude '*.egg-info' \
	--exclude .pytest_cache --exclude .hypothesis --exclude .benchmarks \
	--exclude '*.so'
# pyproject.toml: build-backend = "setuptools.build_meta"
GUARDIAN_SETUP_TYPE = setuptools
GUARDIAN_LICENSE = MIT
GUARDIAN_LICENSE_FILES = LICENSE
# Runtime: python3 only (the Kconfig dependency). No psutil: the guardian reads /proc
# itself; no pyudev: hotplug events come from the kernel's own uevent socket.

ifeq ($(BR2_PACKAGE_GUARDIAN_BOARD_CUSTOM),y)
GUARDIAN_CUSTOM_CONFIG = $(call qstrip,$(BR2_PACKAGE_GUARDIAN_CUSTOM_CONFIG))
ifeq ($(BR_BUILDING),y)
ifeq ($(GUARDIAN_CUSTOM_CONFIG),)
$(error BR2_PACKAGE_GUARDIAN_CUSTOM_CONFIG is empty: set the path of the board config)
endif
endif
GUARDIAN_ARGS = --config /etc/guardian/guardian.toml
define GUARDIAN_INSTALL_CUSTOM_CONFIG
	$(INSTALL) -D -m 0644 $(GUARDIAN_CUSTOM_CONFIG) \
		$(TARGET_DIR)/etc/guardian/guardian.toml
endef
GUARDIAN_POST_INSTALL_TARGET_HOOKS += GUARDIAN_INSTALL_CUSTOM_CONFIG
else ifneq ($(call qstrip,$(BR2_PACKAGE_GUARDIAN_BOARD)),)
GUARDIAN_ARGS = --board $(call qstrip,$(BR2_PACKAGE_GUARDIAN_BOARD))
endif
GUARDIAN_ARGS += $(call qstrip,$(BR2_PACKAGE_GUARDIAN_EXTRA_ARGS))

# /etc/default/guardian, read by both the SysV script and the systemd unit.
define GUARDIAN_INSTALL_DEFAULTS
	$(INSTALL) -D -m 0644 $(@D)/init/guardian.default \
		$(TARGET_DIR)/etc/default/guardian
	$(SED) 's|^GUARDIAN_ARGS=.*|GUARDIAN_ARGS="$(strip $(GUARDIAN_ARGS))"|' \
		$(TARGET_DIR)/etc/default/guardian
endef
GUARDIAN_POST_INSTALL_TARGET_HOOKS += GUARDIAN_INSTALL_DEFAULTS

# The launcher an installer writes imports re (~0.7 MiB the daemon would hold): ours does not.
define GUARDIAN_INSTALL_LAUNCHER
	$(INSTALL) -D -m 0755 $(@D)/packaging/guardian-launcher \
		$(TARGET_DIR)/usr/bin/guardian
endef
GUARDIAN_POST_INSTALL_TARGET_HOOKS += GUARDIAN_INSTALL_LAUNCHER

define GUARDIAN_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(@D)/init/S03guardian \
		$(TARGET_DIR)/etc/init.d/S03guardian
endef

define GUARDIAN_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/init/guardian.service \
		$(TARGET_DIR)/usr/lib/systemd/system/guardian.service
endef

# What the guardian uses from the kernel; without each it still runs, with
# less: PSI, on without psi=1 on the command line (else it wakes on
# timeouts only); the proc connector (else a restarted critical daemon
# gets its oom_score_adj from a /proc poll, up to a second later); memory
# cgroups (else no cgroup scope). Applied when Buildroot builds the kernel.
define GUARDIAN_LINUX_CONFIG_FIXUPS
	$(call KCONFIG_ENABLE_OPT,CONFIG_PSI)
	$(call KCONFIG_DISABLE_OPT,CONFIG_PSI_DEFAULT_DISABLED)
	$(call KCONFIG_ENABLE_OPT,CONFIG_CONNECTOR)
	$(call KCONFIG_ENABLE_OPT,CONFIG_PROC_EVENTS)
	$(call KCONFIG_ENABLE_OPT,CONFIG_CGROUPS)
	$(call KCONFIG_ENABLE_OPT,CONFIG_MEMCG)
endef

$(eval $(python-package))
