#!/bin/sh
# Build the frozen guardian for this machine, both layouts (packaging/guardian.spec):
#   dist/guardian-onedir/   guardian and _internal/: install as /usr/lib/guardian/, with
#                           /usr/bin/guardian a symlink to /usr/lib/guardian/guardian
#   dist/guardian-onefile   one file, which unpacks itself into $TMPDIR on every start
#   dist/guardian           a symlink to the layout GUARDIAN_FROZEN_MODE names (onedir)
# and the floor the same way (dist/guardian-floor-onedir/, dist/guardian-floor-onefile,
# dist/guardian-floor: a trivial wake loop frozen like the guardian, packaging/floor.py,
# for bench/modcost.py). Used by `make frozen` on the host and, inside a Debian root of
# the target architecture, by packaging/build-cross.sh.
#
# Environment:
#   PYTHON       the interpreter to build with (default: python3; >= 3.9, with a shared
#                libpython, which PyInstaller bundles)
#   FROZEN_VENV  the venv PyInstaller is installed into (default:
#                build/frozen-venv-<machine>; made when missing)
#   GUARDIAN_FROZEN_MODE  onedir (default) or onefile: what dist/guardian points at
#   GUARDIAN_FROZEN_OPTIMIZE  2 (default, -OO) or 1 (-O), for comparisons
#   BUILD_DIR, DIST_DIR   default: <repo>/build, <repo>/dist
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
MACHINE=$(uname -m)
BUILD_DIR=${BUILD_DIR:-$TOP/build}
DIST_DIR=${DIST_DIR:-$TOP/dist}
PYTHON=${PYTHON:-python3}
FROZEN_VENV=${FROZEN_VENV:-$BUILD_DIR/frozen-venv-$MACHINE}
MODE=${GUARDIAN_FROZEN_MODE:-onedir}
case "$MODE" in
onedir | onefile) ;;
*)
	echo "frozen: GUARDIAN_FROZEN_MODE must be onedir or onefile, not $MODE" >&2
	exit 2
	;;
esac
REQUIREMENTS=$TOP/packaging/requirements-frozen.txt

mkdir -p "$BUILD_DIR" "$DIST_DIR"
# Keep build products out of git whatever the top-level .gitignore says.
for d in "$BUILD_DIR" "$DIST_DIR"; do
	[ -e "$d/.gitignore" ] || printf '*\n' >"$d/.gitignore"
done

start=$(date +%s)
if [ ! -x "$FROZEN_VENV/bin/python" ] || ! cmp -s "$REQUIREMENTS" "$FROZEN_VENV/.requirements"; then
	echo "frozen: venv $FROZEN_VENV" >&2
	"$PYTHON" -m venv "$FROZEN_VENV"
	"$FROZEN_VENV/bin/python" -m pip install --quiet -r "$REQUIREMENTS"
	cp "$REQUIREMENTS" "$FROZEN_VENV/.requirements"
fi

# guardian._rest (guardian/_rest.c, the loop at rest in C), compiled for the interpreter that is
# frozen, under build/: guardian.spec takes it from there, whatever the checkout has built in place.
# setup.py makes it optional for an install; the frozen guardian must have it.
EXT_DIR=$BUILD_DIR/ext-$MACHINE
rm -rf "$EXT_DIR" "$EXT_DIR.tmp"
(cd "$TOP" && "$FROZEN_VENV/bin/python" setup.py -q build_ext --build-lib "$EXT_DIR" --build-temp "$EXT_DIR.tmp") >&2
set -- "$EXT_DIR"/guardian/_rest.*.so
if [ ! -f "$1" ]; then
	echo "frozen: guardian._rest did not build: install gcc and Python's headers (python3-dev)" >&2
	exit 1
fi
GUARDIAN_REST_EXT=$1
export GUARDIAN_REST_EXT

echo "frozen: PyInstaller for $MACHINE (onedir and onefile; dist/guardian: $MODE)" >&2
rm -rf "$DIST_DIR/guardian" "$DIST_DIR/guardian-floor" "$DIST_DIR/guardian-onedir" \
	"$DIST_DIR/guardian-floor-onedir" "$DIST_DIR/guardian-onefile" "$DIST_DIR/guardian-floor-onefile"
# A cache of its own (stripped copies of libraries): not shared with other builds.
# The bytecode keeps its line numbers but not the column ranges (a traceback's ^^^ marks), which
# made up a quarter of each code object's size: the spec compiles it in a child interpreter run
# with -X no_debug_ranges (frozen_code.py), and PyInstaller must run without it (no
# PYTHONNODEBUGRANGES), or it would copy every line table as it makes the code objects again.
env -u PYTHONNODEBUGRANGES PYINSTALLER_CONFIG_DIR="$BUILD_DIR/pyinstaller-cache-$MACHINE" \
	"$FROZEN_VENV/bin/python" -m PyInstaller \
	--noconfirm --clean --log-level WARN \
	--distpath "$DIST_DIR" --workpath "$BUILD_DIR/pyinstaller-$MACHINE" \
	"$TOP/packaging/guardian.spec"

if [ "$MODE" = onedir ]; then
	ln -s guardian-onedir/guardian "$DIST_DIR/guardian"
	ln -s guardian-floor-onedir/guardian-floor "$DIST_DIR/guardian-floor"
else
	ln -s guardian-onefile "$DIST_DIR/guardian"
	ln -s guardian-floor-onefile "$DIST_DIR/guardian-floor"
fi
for bin in "$DIST_DIR/guardian-onedir/guardian" "$DIST_DIR/guardian-onefile"; do
	"$bin" --version >/dev/null
done
for floor in "$DIST_DIR/guardian-floor-onedir/guardian-floor" "$DIST_DIR/guardian-floor-onefile"; do
	"$floor" --once
done
echo "frozen: $DIST_DIR/guardian -> $(readlink "$DIST_DIR/guardian");" \
	"onedir $(du -sk "$DIST_DIR/guardian-onedir" | cut -f1) KiB," \
	"onefile $(($(wc -c <"$DIST_DIR/guardian-onefile") / 1024)) KiB; the floor beside them;" \
	"$(($(date +%s) - start)) s" >&2
