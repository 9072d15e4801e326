SUMMARY = "Userspace out-of-memory guardian for embedded Linux"
DESCRIPTION = "Watches memory pressure and acts before the kernel's OOM killer: \
               it reclaims first, then asks low-priority services to leave, \
               and only then kills, while the board's critical daemons survive."
SECTION = "console/utils"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://LICENSE;md5=e6b7532bfb860645f0ed840a1be26abf"

# The guardian's git repository. The project has no public home yet, so the URI is a
# placeholder (.invalid never resolves): set GUARDIAN_GIT_URI (and GUARDIAN_BRANCH) to
# where you host it and pin SRCREV to the commit you build, in local.conf
# (SRCREV:pn-guardian) or a bbappend. To build a local checkout instead, use
# externalsrc (README in this layer).
GUARDIAN_GIT_URI ??= "git://git.invalid/guardian.git;protocol=https"
GUARDIAN_BRANCH ??= "main"
PV = "0.1.0+git"
# destsuffix and S: whinlatter and later unpack git to ${UNPACKDIR}/${BP} and set S
# there; styhead and walnascar unpack it to ${UNPACKDIR}/git with S = ${WORKDIR}/${BP}.
# Said here, the source is at ${UNPACKDIR}/${BP} on every series the layer claims.
SRC_URI = "${GUARDIAN_GIT_URI};branch=${GUARDIAN_BRANCH};destsuffix=${BP}"
# A commit of the project's main branch at version 0.1.0 (the recipe's PV).
SRCREV = "ed5d95b5c557a9f1bc3d71e37f8e5146aff3e34a"
S = "${UNPACKDIR}/${BP}"

inherit python_setuptools_build_meta systemd update-rc.d

# Which board config the guardian runs with, written to /etc/default/guardian:
#   ""           detect the board at run time (device tree model, DMI), else "generic"
#   "<name>"     one of board-configs/*.toml, e.g. "colibri-imx6ull"
#   "custom"     the file guardian.toml added to SRC_URI by a bbappend
#                (installed as /etc/guardian/guardian.toml)
GUARDIAN_BOARD ??= ""
# More arguments for "guardian run", such as --dry-run.
GUARDIAN_EXTRA_ARGS ??= ""

SYSTEMD_SERVICE:${PN} = "guardian.service"
INITSCRIPT_NAME = "guardian"
# Early (before the services it protects), stopped late.
INITSCRIPT_PARAMS = "start 03 2 3 4 5 . stop 97 0 1 6 ."

do_install:append() {
    # The launcher the installer writes imports re (~0.7 MiB the daemon would hold): ours does not.
    install -m 0755 ${S}/packaging/guardian-launcher ${D}${bindir}/guardian
    install -d ${D}${sysconfdir}/default
    install -m 0644 ${S}/init/guardian.default ${D}${sysconfdir}/default/guardian
    args="${GUARDIAN_EXTRA_ARGS}"
    if [ "${GUARDIAN_BOARD}" = "custom" ]; then
        install -d ${D}${sysconfdir}/guardian
        install -m 0644 ${UNPACKDIR}/guardian.toml ${D}${sysconfdir}/guardian/guardian.toml
        args="--config ${sysconfdir}/guardian/guardian.toml $args"
    elif [ -n "${GUARDIAN_BOARD}" ]; then
        if [ ! -e "${S}/board-configs/${GUARDIAN_BOARD}.toml" ]; then
            bbfatal "GUARDIAN_BOARD: no board config ${GUARDIAN_BOARD}.toml in board-configs/"
        fi
        args="--board ${GUARDIAN_BOARD} $args"
    fi
    sed -i -e "s|^GUARDIAN_ARGS=.*|GUARDIAN_ARGS=\"$(echo $args)\"|" \
        ${D}${sysconfdir}/default/guardian

    if ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'true', 'false', d)}; then
        install -d ${D}${systemd_system_unitdir}
        install -m 0644 ${S}/init/guardian.service ${D}${systemd_system_unitdir}/guardian.service
    fi
    if ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'true', 'false', d)}; then
        install -d ${D}${sysconfdir}/init.d
        install -m 0755 ${S}/init/S03guardian ${D}${sysconfdir}/init.d/guardian
    fi
}

CONFFILES:${PN} = "${sysconfdir}/default/guardian"

# Only the parts of Python it imports (see tests/packaging/test_yocto.py), not all of
# python3. The SysV script uses start-stop-daemon's long options, which poky's
# BusyBox lacks: dpkg's start-stop-daemon has them.
RDEPENDS:${PN} = "\
    ${@bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'dpkg-start-stop', '', d)} \
    python3-core \
    python3-ctypes \
    python3-difflib \
    python3-io \
    python3-json \
    python3-tomllib \
"
