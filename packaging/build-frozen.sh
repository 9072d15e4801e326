#!/bin/sh
# Build the frozen guardian for this machine: dist/guardian (onefile, the default) or
# dist/guardian-onedir/guardian (GUARDIAN_FROZEN_MODE=onedir), and beside it the floor the
# same way (dist/guardian-floor or dist/guardian-floor-onedir/guardian-floor: a trivial
# wake loop, packaging/floor.py, for bench/modcost.py). Used by `make frozen` on the host and,
# inside a Debian root of the target architecture, by packaging/build-cross.sh.
#
# Environment:
#   PYTHON       the interpreter to build with (default: python3; >= 3.9, with a shared
#                libpython, which PyInstaller bundles)
#   FROZEN_VENV  the venv PyInstaller is installed into (default:
#                build/frozen-venv-<machine>; made when missing)
#   GUARDIAN_FROZEN_MODE  onefile (default) or onedir
#   BUILD_DIR, DIST_DIR   default: <repo>/build, <repo>/dist
set -eu

TOP=$(cd "$(dirname "$0")/.." && pwd)
MACHINE=$(uname -m)
BUILD_DIR=${BUILD_DIR:-$TOP/build}
DIST_DIR=${DIST_DIR:-$TOP/dist}
PYTHON=${PYTHON:-python3}
FROZEN_VENV=${FROZEN_VENV:-$BUILD_DIR/frozen-venv-$MACHINE}
MODE=${GUARDIAN_FROZEN_MODE:-onefile}
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

echo "frozen: PyInstaller ($MODE) for $MACHINE" >&2
if [ "$MODE" = onefile ]; then
	bin=$DIST_DIR/guardian
	floor=$DIST_DIR/guardian-floor
	rm -f "$bin" "$floor"
else
	bin=$DIST_DIR/guardian-onedir/guardian
	floor=$DIST_DIR/guardian-floor-onedir/guardian-floor
	rm -rf "$DIST_DIR/guardian-onedir" "$DIST_DIR/guardian-floor-onedir"
fi
# A cache of its own (stripped copies of libraries): not shared with other builds.
PYINSTALLER_CONFIG_DIR=$BUILD_DIR/pyinstaller-cache-$MACHINE \
	GUARDIAN_FROZEN_MODE=$MODE "$FROZEN_VENV/bin/python" -m PyInstaller \
	--noconfirm --clean --log-level WARN \
	--distpath "$DIST_DIR" --workpath "$BUILD_DIR/pyinstaller-$MACHINE-$MODE" \
	"$TOP/packaging/guardian.spec"

"$bin" --version >/dev/null
"$floor" --once
echo "frozen: $bin ($(wc -c <"$bin") bytes) and $floor, $(($(date +%s) - start)) s" >&2
