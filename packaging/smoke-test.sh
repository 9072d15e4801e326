#!/bin/sh
# Smoke-test a frozen guardian: --version, status on a fake /proc and /sys, check on the
# shipped board configs. Runs a foreign-architecture binary too, through binfmt_misc and
# qemu-user (set QEMU_LD_PREFIX to the target root for its C library).
#
#   packaging/smoke-test.sh dist/guardian
#
# SMOKE_TMP: where its files go (default: mktemp's, $TMPDIR). A 32-bit guest under
# qemu-user on a 64-bit host cannot list ext4 directories (64-bit hash offsets, EOVERFLOW),
# so the onefile unpacker could not remove its directory there: build-cross.sh points
# this at a tmpfs for armhf. Real 32-bit boards get 32-bit offsets from their kernel.
set -eu

BIN=${1:?usage: $0 path/to/guardian}
case "$BIN" in
/*) ;;
*) BIN=$(pwd)/$BIN ;;
esac
TOP=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${SMOKE_TMP:-}" ]; then
	T=$(mktemp -d "$SMOKE_TMP/guardian-smoke.XXXXXX")
else
	T=$(mktemp -d)
fi
trap 'rm -rf "$T"' EXIT INT TERM
# onefile unpacks here: a leftover after exit would be a leak.
mkdir "$T/unpack"
TMPDIR=$T/unpack
export TMPDIR

fail() {
	echo "smoke: FAIL: $*" >&2
	[ -s "$T/out" ] && sed 's/^/  | /' "$T/out" >&2
	exit 1
}
ok() { echo "smoke: ok: $*"; }

# 1. --version
"$BIN" --version >"$T/out" 2>&1 || fail "--version exited $?"
grep -q '^guardian [0-9]' "$T/out" || fail "--version printed no version"
ok "$(cat "$T/out")"

# 2. status on a fake tree: a 256 MiB board, a hog, a critical-looking daemon.
P=$T/root/proc
S=$T/root/sys
mkdir -p "$P/pressure" "$P/sys/vm" "$S/fs/cgroup"
cat >"$P/meminfo" <<'EOF'
MemTotal:         262144 kB
MemFree:           40960 kB
MemAvailable:      65536 kB
Buffers:            1024 kB
Cached:            20480 kB
SwapTotal:             0 kB
SwapFree:              0 kB
AnonPages:        150000 kB
SUnreclaim:         8000 kB
CommitLimit:      131072 kB
Committed_AS:     200000 kB
EOF
printf 'some avg10=1.50 avg60=0.80 avg300=0.20 total=123456\nfull avg10=0.10 avg60=0.05 avg300=0.01 total=2345\n' >"$P/pressure/memory"
printf '0\n' >"$P/sys/vm/overcommit_memory"
printf '2048\n' >"$P/sys/vm/min_free_kbytes"
printf 'Node 0, zone   Normal   100 50 20 10 5 2 1 0 0 0 0\n' >"$P/buddyinfo"
printf 'pgscan_kswapd 100\npgscan_direct 10\noom_kill 0\n' >"$P/vmstat"
proc() { # pid comm rss_mib oom_score adj
	d=$P/$1
	mkdir -p "$d"
	printf '%s (%s) S 1 %s %s 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 %s 1000 %s\n' \
		"$1" "$2" "$1" "$1" "$(($1 * 7))" "$(($3 * 256))" >"$d/stat"
	printf 'Name:\t%s\nUid:\t0\t0\t0\t0\nVmRSS:\t%s kB\nRssAnon:\t%s kB\nRssFile:\t0 kB\nRssShmem:\t0 kB\n' \
		"$2" "$(($3 * 1024))" "$(($3 * 1024))" >"$d/status"
	printf '/usr/bin/%s\0' "$2" >"$d/cmdline"
	printf '%s\n' "$4" >"$d/oom_score"
	printf '%s\n' "$5" >"$d/oom_score_adj"
	printf '0::/\n' >"$d/cgroup"
}
proc 1 init 2 0 0
proc 300 leaky-hog 150 600 0
proc 400 modbusd 20 80 0
"$BIN" status --json --proc-root "$P" --sys-root "$S" --state-file '' >"$T/out" 2>&1 ||
	fail "status exited $?"
grep -q '"mem_total_bytes": 268435456' "$T/out" || fail "status: MemTotal of the fake tree not read"
grep -q '"mem_available_bytes": 67108864' "$T/out" || fail "status: MemAvailable of the fake tree not read"
grep -q '"name": "leaky-hog"' "$T/out" || fail "status: the fake tree's hog is not a candidate"
ok "status on a fake 256 MiB tree"

# 3. check: the shipped board configs, by name (from inside the bundle) and by path.
n=0
for config in "$TOP"/board-configs/*.toml; do
	[ -e "$config" ] || fail "no board configs in $TOP/board-configs"
	n=$((n + 1))
	board=$(basename "$config" .toml)
	for how in "--board $board" "--config $config"; do
		# shellcheck disable=SC2086 # $how is two words
		"$BIN" check $how --root "$T/root" >"$T/out" 2>&1 && rc=0 || rc=$?
		# 0: fine, 1: the audit found something about this (fake) root. 2: config refused.
		[ "$rc" -le 1 ] || fail "check $how exited $rc"
		if grep -q 'not available in this build\|cannot read config files' "$T/out"; then
			fail "check $how: missing from the build"
		fi
	done
done
ok "check on $n board configs, by name and by path"

# 4. onefile cleans up after itself.
if [ -n "$(ls -A "$T/unpack")" ]; then
	fail "left behind in TMPDIR: $(ls "$T/unpack")"
fi
ok "nothing left in TMPDIR"
