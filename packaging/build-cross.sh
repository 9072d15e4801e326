#!/bin/sh
# Build the frozen guardian for an ARM board on an x86_64 host, then smoke-test it.
#
#   packaging/build-cross.sh arm64|armhf
#
# PyInstaller cannot cross-compile, so this makes a Debian root of the target
# architecture (make_root below: the packages the build needs and what they depend on,
# resolved and downloaded by this host's apt-get with a private state for that
# architecture, unpacked with dpkg-deb), builds there under qemu-user (binfmt_misc) with the
# same packaging/build-frozen.sh that `make frozen` runs on the host, copies the results to
# dist/ (guardian-<arch>-onedir/, guardian-<arch>-onefile, and dist/guardian-<arch> pointing
# at the default one; the floor, packaging/floor.py, the same way as guardian-floor-<arch>*)
# and runs packaging/smoke-test.sh on the default one under qemu-user. Needs root (chroot,
# unshare), Debian's apt-get and dpkg-deb, qemu-user-static and binfmt-support.
#
# The root is kept in build/cross-<arch>/root and reused by later runs (delete it to
# start over). Environment:
#   SUITE    Debian suite of the build root (default: bookworm, Python 3.11)
#   MIRROR   Debian mirror (default: the first one in this host's apt sources)
#   BUILD_DIR  where roots and work files go (default: <repo>/build)
#   GUARDIAN_FROZEN_MODE  onedir (default) or onefile: what dist/guardian-<arch> points at
set -eu

ARCH=${1:-}
case "$ARCH" in
arm64) QEMU_ARCH=aarch64 ;;
armhf) QEMU_ARCH=arm ;;
*)
	echo "usage: $0 arm64|armhf" >&2
	exit 2
	;;
esac

TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$TOP/build}
SUITE=${SUITE:-bookworm}
MODE=${GUARDIAN_FROZEN_MODE:-onedir}
WORK=$BUILD_DIR/cross-$ARCH
ROOT=$WORK/root
STAMP=$ROOT/.guardian-root-ready
OUT=$TOP/dist

# What the build root needs, and no more. The shell and tools build-frozen.sh runs (dash,
# coreutils, diffutils' cmp, sed, grep), bash and libc-bin for the ldd PyInstaller runs,
# base-passwd for /etc/passwd; libpython3.11 because Debian's python3.11 binary is linked
# statically and PyInstaller bundles the shared library; python3-venv for the build's venv (its
# pip comes from the wheel python3-venv brings; pip trusts the host's CA bundle, copied in
# below); gcc, libc6-dev and python3-dev for guardian._rest (guardian/_rest.c, the loop at rest
# in C), and for vmtool (tests/vm); armhf also builds PyInstaller's bootloader from source (C
# and zlib).
C_PACKAGES="gcc libc6-dev python3-dev"
PACKAGES="dash bash coreutils diffutils sed grep libc-bin base-files base-passwd
python3 python3-venv binutils libpython3.11 $C_PACKAGES"
if [ "$ARCH" = armhf ]; then
	PACKAGES="$PACKAGES zlib1g-dev"
fi

say() { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "$ARCH" "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}
now() { date +%s; }

host_mirror() {
	# The Debian archives (not the security one) this host's apt uses, first first.
	for f in /etc/apt/sources.list.d/*.sources; do
		if [ -r "$f" ]; then
			awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) print $i }' "$f"
		fi
	done
	if [ -r /etc/apt/sources.list ]; then
		awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) print $i }' /etc/apt/sources.list
	fi
}

[ "$(id -u)" -eq 0 ] || die "needs root (chroot, unshare)"
missing=""
for tool in update-binfmts "qemu-$QEMU_ARCH-static"; do
	command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ] && command -v apt-get >/dev/null 2>&1; then
	say "installing qemu-user-static binfmt-support (missing:$missing)"
	if ! { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install \
		-y -qq qemu-user-static binfmt-support >/dev/null; }; then
		die "apt-get install qemu-user-static binfmt-support failed"
	fi
fi
for tool in apt-get dpkg-deb update-binfmts "qemu-$QEMU_ARCH-static" chroot unshare; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found: apt-get install qemu-user-static binfmt-support"
done

MIRROR=${MIRROR:-$(host_mirror | head -n 1)}
[ -n "$MIRROR" ] || die "no Debian mirror found in this host's apt sources: set MIRROR="

mkdir -p "$BUILD_DIR" "$OUT"
# build/ and dist/ hold roots of hundreds of MiB: make sure git never picks them up.
for d in "$BUILD_DIR" "$OUT"; do
	[ -e "$d/.gitignore" ] || printf '*\n' >"$d/.gitignore"
done

# binfmt_misc: lets the kernel run the target's binaries through qemu-user.
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
	mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc"
fi
update-binfmts --enable "qemu-$QEMU_ARCH" >/dev/null 2>&1 || true
grep -q '^enabled' "/proc/sys/fs/binfmt_misc/qemu-$QEMU_ARCH" 2>/dev/null ||
	die "binfmt handler qemu-$QEMU_ARCH is not enabled (update-binfmts --enable qemu-$QEMU_ARCH)"

copy_qemu() {
	# Only needed when the binfmt handler lacks the F (fix binary) flag.
	if ! grep -q '^flags:.*F' "/proc/sys/fs/binfmt_misc/qemu-$QEMU_ARCH"; then
		mkdir -p "$1/usr/bin"
		cp "$(command -v "qemu-$QEMU_ARCH-static")" "$1/usr/bin/"
	fi
}

# make_root DIR: the packages and their dependencies, unpacked into DIR. apt-get resolves and
# downloads them for the target architecture with a state of its own under $WORK/apt (an empty
# dpkg status, its own package lists of $MIRROR): the host's dpkg and apt lists are not
# touched, and nothing is configured. What configuring would have done and the build needs is
# done by hand: /etc/passwd and /etc/group, the loader's cache (ldconfig, the one program run
# under qemu-user here). debootstrap configured every package under qemu-user: 3.5-5.5 of the
# 5.5-7 minutes a root and a build took from scratch.
make_root() {
	dir=$1 apt_dir=$WORK/apt
	rm -rf "$apt_dir"
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/cache"
	: >"$apt_dir/status"
	printf 'deb [arch=%s] %s %s main\n' "$ARCH" "$MIRROR" "$SUITE" >"$apt_dir/sources.list"
	set -- -o "APT::Architecture=$ARCH" -o "APT::Architectures=$ARCH" \
		-o "Dir::State::status=$apt_dir/status" -o "Dir::State::Lists=$apt_dir/lists" \
		-o "Dir::Cache=$apt_dir/cache" -o "Dir::Cache::archives=$apt_dir/archives" \
		-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent" \
		-o APT::Install-Recommends=false -o Debug::NoLocking=1
	# shellcheck disable=SC2086 # one word per package
	{ apt-get "$@" -q update && apt-get "$@" -q -y --download-only install $PACKAGES; } >"$WORK.root.log" 2>&1 ||
		return 1
	for deb in "$apt_dir"/archives/*.deb; do
		dpkg-deb -x "$deb" "$dir" || return 1
	done
	echo "$(find "$apt_dir/archives" -name '*.deb' | wc -l) packages" >>"$WORK.root.log"
	cp "$dir/usr/share/base-passwd/passwd.master" "$dir/etc/passwd"
	cp "$dir/usr/share/base-passwd/group.master" "$dir/etc/group"
	mkdir -p "$dir/tmp" "$dir/proc" "$dir/dev" "$dir/root"
	chmod 1777 "$dir/tmp"
	copy_qemu "$dir"
	chroot "$dir" /sbin/ldconfig >>"$WORK.root.log" 2>&1 || return 1
	rm -rf "$apt_dir"
}

T0=$(now)
if [ ! -e "$STAMP" ]; then
	say "root of $SUITE ($ARCH) into $ROOT"
	rm -rf "$ROOT.new"
	mkdir -p "$ROOT.new"
	make_root "$ROOT.new" || die "making the root failed: see $WORK.root.log"
	rm -rf "$ROOT"
	mv "$ROOT.new" "$ROOT"
	: >"$STAMP"
fi
T1=$(now)
say "root ready ($((T1 - T0)) s)"

copy_qemu "$ROOT"
# pip inside the root trusts what the host trusts (the host may sit behind a proxy
# whose certificate only the host's bundle has).
mkdir -p "$ROOT/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/host-ca-certificates.crt"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

# The sources, fresh each time (no build products, no caches).
rm -rf "$ROOT/src"
mkdir -p "$ROOT/src"
(cd "$TOP" && tar cf - --exclude=__pycache__ --exclude='*.pyc' \
	pyproject.toml setup.py guardian board-configs packaging) | tar xf - -C "$ROOT/src"

say "building ($MODE) inside the $ARCH root"
# /proc and /dev for pip and PyInstaller, mounted in a mount namespace of its own: they
# vanish with it however the build ends, so nothing stays mounted under build/ (where a
# `rm -rf build` would reach the host's /dev).
# shellcheck disable=SC2016 # $1 and $2 are the inner shell's
unshare --mount --propagation private sh -c '
	mount -t proc proc "$1/proc" && mount --bind /dev "$1/dev" || exit 1
	# A root made before guardian._rest lacks its compiler: add it (apt in the root).
	chroot "$1" /bin/sh -c "command -v gcc >/dev/null && ls /usr/include/python3*/Python.h >/dev/null 2>&1" ||
		chroot "$1" /usr/bin/env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin DEBIAN_FRONTEND=noninteractive \
			sh -c "apt-get update -qq && apt-get install -y -qq $3" || exit 1
	exec chroot "$1" /usr/bin/env -i \
		PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root LANG=C.UTF-8 \
		PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
		PIP_DEFAULT_TIMEOUT=180 FROZEN_VENV=/opt/frozen-venv GUARDIAN_FROZEN_MODE="$2" \
		sh /src/packaging/build-frozen.sh
' build-in-root "$ROOT" "$MODE" "$C_PACKAGES"
T2=$(now)
say "built ($((T2 - T1)) s)"

# Both layouts and the floor (packaging/floor.py), as build-frozen.sh made them; the names get
# the architecture, and dist/guardian-<arch> points at the layout GUARDIAN_FROZEN_MODE names.
rm -rf "$OUT/guardian-$ARCH" "$OUT/guardian-$ARCH-onedir" "$OUT/guardian-$ARCH-onefile" \
	"$OUT/guardian-floor-$ARCH" "$OUT/guardian-floor-$ARCH-onedir" "$OUT/guardian-floor-$ARCH-onefile"
cp -a "$ROOT/src/dist/guardian-onedir" "$OUT/guardian-$ARCH-onedir"
cp -a "$ROOT/src/dist/guardian-floor-onedir" "$OUT/guardian-floor-$ARCH-onedir"
cp "$ROOT/src/dist/guardian-onefile" "$OUT/guardian-$ARCH-onefile"
cp "$ROOT/src/dist/guardian-floor-onefile" "$OUT/guardian-floor-$ARCH-onefile"
if [ "$MODE" = onedir ]; then
	ln -s "guardian-$ARCH-onedir/guardian" "$OUT/guardian-$ARCH"
	ln -s "guardian-floor-$ARCH-onedir/guardian-floor" "$OUT/guardian-floor-$ARCH"
else
	ln -s "guardian-$ARCH-onefile" "$OUT/guardian-$ARCH"
	ln -s "guardian-floor-$ARCH-onefile" "$OUT/guardian-floor-$ARCH"
fi
BIN=$OUT/guardian-$ARCH

say "smoke test under qemu-$QEMU_ARCH"
# The binary is linked against the target's glibc: qemu-user finds it in the root.
# A 32-bit guest works in a tmpfs (see smoke-test.sh).
SMOKE_TMP=""
if [ "$ARCH" = armhf ] && [ -d /dev/shm ]; then
	SMOKE_TMP=/dev/shm
fi
QEMU_LD_PREFIX=$ROOT SMOKE_TMP=$SMOKE_TMP sh "$TOP/packaging/smoke-test.sh" "$BIN"
T3=$(now)
say "smoke test passed ($((T3 - T2)) s)"
say "done: $BIN -> $(readlink "$BIN"); onedir $(du -sk "$OUT/guardian-$ARCH-onedir" | cut -f1) KiB, onefile $(($(wc -c <"$OUT/guardian-$ARCH-onefile") / 1024)) KiB; times: root $((T1 - T0)) s, build $((T2 - T1)) s, smoke $((T3 - T2)) s, total $((T3 - T0)) s"
