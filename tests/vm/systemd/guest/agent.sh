#!/bin/bash
# The systemd VM's test agent (vmtest-agent.service): runs the scenario named on the kernel
# command line (vmtest.scenario=, vmtest.tool=, vmtest.env.KEY=VALUE with "," for spaces)
# against the tool the boot left unmasked (guardian, earlyoom or systemd-oomd), writes one JSON
# object per line to the second serial port, and powers off.
#
# Line types: boot, ready, idle, round, event (the guardian's event log), error, done.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
OUT=/dev/ttyS1
SCENARIO="" TOOL=""
declare -A ENV=([RATES]="20 100 0" [IDLE_S]=20 [ROUND_TIMEOUT]=120)
for arg in $(cat /proc/cmdline); do
	case "$arg" in
		vmtest.scenario=*) SCENARIO=${arg#*=};;
		vmtest.tool=*) TOOL=${arg#*=};;
		vmtest.env.*) kv=${arg#vmtest.env.}; ENV[${kv%%=*}]=${kv#*=}; ENV[${kv%%=*}]=${ENV[${kv%%=*}]//,/ };;
	esac
done
case "$TOOL" in
	guardian) UNIT=guardian.service;;
	earlyoom) UNIT=earlyoom.service;;
	oomd) UNIT=systemd-oomd.service;;
	*) UNIT="";;
esac

emit() { printf '%s\n' "$1" >"$OUT"; }
now() { date +%s.%N | cut -c1-14; }
kib() { awk -v k="$1:" '$1 == k { print $2; exit }' /proc/meminfo; }
oom_kills() { awk '$1 == "oom_kill" { print $2 }' /proc/vmstat; }
oom_messages() { dmesg | grep -c 'invoked oom-killer'; }
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g; s/\t/ /g' | tr -d '\000-\011\013-\037' | sed ':a;N;$!ba;s/\n/\\n/g')"; }
json_lines() { # stdin: text lines -> a JSON array of strings
	local first=1 line
	printf '['
	while IFS= read -r line; do
		[ $first = 1 ] || printf ', '
		first=0
		json_str "$line"
	done
	printf ']'
}
error() { emit "{\"type\": \"error\", \"message\": $(json_str "$1")}"; }
prop() { systemctl show -p "$2" --value "$1" 2>/dev/null; }
mainpid() { local p; p=$(prop "$1" MainPID); echo "${p:-0}"; }
alive() { [ -n "$1" ] && [ "$1" != 0 ] && [ -r "/proc/$1/stat" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
sum_stat() { local t=0 p s; for p in "$@"; do s=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null); t=$((t + ${s:-0})); done; echo "$t"; }
sum_field() { # FILE KEY PID...
	local f=$1 k=$2 t=0 p s
	shift 2
	for p in "$@"; do s=$(awk -v k="$k:" '$1 == k { print $2 }' "/proc/$p/$f" 2>/dev/null); t=$((t + ${s:-0})); done
	echo "$t"
}
wakes() { echo $(($(sum_field status voluntary_ctxt_switches "$@") + $(sum_field status nonvoluntary_ctxt_switches "$@"))); }
progress_mib() { local p; p=$(cut -d' ' -f1 "$1" 2>/dev/null); echo "${p%%.*}"; }

emit "{\"type\": \"boot\", \"scenario\": \"$SCENARIO\", \"tool\": \"$TOOL\", \"uptime\": $(cut -d' ' -f1 /proc/uptime), \"mem_total_kib\": $(kib MemTotal), \"mem_available_kib\": $(kib MemAvailable), \"swap_total_kib\": $(kib SwapTotal), \"kernel\": \"$(uname -r)\", \"pid1\": \"$(cat /proc/1/comm)\", \"cgroup_fs\": \"$(stat -fc %T /sys/fs/cgroup)\", \"controllers\": $(json_str "$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)"), \"boot_time\": $(json_str "$(systemd-analyze time 2>/dev/null | head -n 1)"), \"failed_units\": $(systemctl --failed --plain --no-legend | awk '{ print $1 }' | json_lines), \"active_units\": $(systemctl list-units --state=running --plain --no-legend --type=service | awk '{ print $1 }' | json_lines)}"

# ---------------------------------------------------------------------- ready
i=0
while [ -n "$UNIT" ] && [ "$(prop $UNIT ActiveState)" != active ]; do
	sleep 0.2; i=$((i + 1))
	[ "$i" -gt 600 ] && { error "$UNIT not active within 120 s: $(prop $UNIT ActiveState) $(prop $UNIT Result)"; break; }
done
i=0
until [ "$(progress_mib /run/critd.progress)" = 32 ] && [ "$(progress_mib /run/lowprio.progress)" = 48 ]; do
	sleep 0.2; i=$((i + 1)); [ "$i" -gt 300 ] && { error "services did not come up"; break; }
done
TPID=$(mainpid "$UNIT")
emit "{\"type\": \"ready\", \"uptime\": $(cut -d' ' -f1 /proc/uptime), \"unit\": \"$UNIT\", \"pid\": $TPID, \"critd\": $(mainpid critd.service), \"lowprio\": $(mainpid lowprio.service), \"mem_available_kib\": $(kib MemAvailable), \"unit_props\": $(json_str "$(systemctl show -p NRestarts,ActiveState,SubState,Type,WatchdogUSec,NotifyAccess "$UNIT" 2>/dev/null | tr '\n' ' ')"), \"cap_eff\": $(json_str "$(awk '$1 == "CapEff:" { print $2 }' /proc/$TPID/status 2>/dev/null)"), \"adj\": $(cat /proc/$TPID/oom_score_adj 2>/dev/null || echo null)}"

# ---------------------------------------------------------------------- idle
# At rest first (at most 1 CPU tick in 2 s, at most 30 s), then the window.
idle() {
	local pid=$1 t0 prev cur settle_t0 s0 w0 s t
	settle_t0=$(now) prev=$(sum_stat "$pid")
	while :; do
		sleep 2
		cur=$(sum_stat "$pid")
		[ $((cur - prev)) -le 1 ] && break
		[ "$(awk "BEGIN { print ($(now) - $settle_t0 >= 30) }")" = 1 ] && break
		prev=$cur
	done
	t0=$(sum_stat "$pid") w0=$(wakes "$pid") s0=$(now)
	sleep "${ENV[IDLE_S]}"
	s=$(awk "BEGIN { print $(now) - $s0 }")
	t=$(($(sum_stat "$pid") - t0))
	emit "{\"type\": \"idle\", \"pid\": $pid, \"comm\": \"$(cat /proc/$pid/comm)\", \"seconds\": $s, \"ticks\": $t, \"wakes\": $(($(wakes "$pid") - w0)), \"startup_ticks\": $cur, \"rss_kib\": $(sum_field smaps_rollup Rss "$pid"), \"pss_kib\": $(sum_field smaps_rollup Pss "$pid"), \"anon_kib\": $(sum_field smaps_rollup Anonymous "$pid"), \"private_dirty_kib\": $(sum_field smaps_rollup Private_Dirty "$pid"), \"threads\": $(sum_field status Threads "$pid")}"
}
if [ "${ENV[IDLE_S]}" -gt 0 ] && alive "$TPID"; then
	idle "$TPID"
fi

# ---------------------------------------------------------------------- rounds
# One runaway per rate, started as an app is on a gateway (systemd-run: a transient unit in
# system.slice); RemainAfterExit keeps its result for systemctl show.
ROUND=0
runaway() {
	local rate=$1 unit t0 k0 m0 c0 l0 hog t1 waited=0 timeout
	ROUND=$((ROUND + 1))
	unit=hog-$ROUND.service
	# Headroom back and everything at rest before the round.
	systemctl is-active -q lowprio.service || systemctl start lowprio.service
	i=0
	until [ "$(progress_mib /run/lowprio.progress)" = 48 ] || [ "$i" -gt 100 ]; do sleep 0.2; i=$((i + 1)); done
	sleep 2
	t0=$(now) k0=$(oom_kills) m0=$(oom_messages) c0=$(mainpid critd.service) l0=$(mainpid lowprio.service)
	local avail0; avail0=$(kib MemAvailable)
	/usr/bin/vmtool monitor /run/monitor.json $((24 * 1024)) &
	local mon=$!
	systemd-run -q --unit="$unit" -p RemainAfterExit=yes -p ManagedOOMPreference=none \
		/usr/bin/vmtool alloc --name hog --rate "$rate" --progress "/run/hog-$ROUND.progress"
	hog=$(mainpid "$unit")
	timeout=${ENV[ROUND_TIMEOUT]}
	while alive "$hog" && [ "$waited" -lt $((timeout * 5)) ]; do sleep 0.2; waited=$((waited + 1)); done
	t1=$(now)
	local ended_s; ended_s=$(awk "BEGIN { print $t1 - $t0 }")
	local still; alive "$hog" && still=true || still=false
	sleep 3  # the tool's own lines and events after the act
	kill "$mon"; wait "$mon" 2>/dev/null
	local c1 l1 crit_alive low_active
	c1=$(mainpid critd.service) l1=$(mainpid lowprio.service)
	alive "$c1" && crit_alive=true || crit_alive=false
	systemctl is-active -q lowprio.service && low_active=true || low_active=false
	local journal=""
	case "$TOOL" in
		guardian) journal=$(journalctl -q -u guardian.service -p warning --since "@${t0%.*}" -o cat --no-pager 2>/dev/null);;
		earlyoom) journal=$(journalctl -q -u earlyoom.service --since "@${t0%.*}" -o cat --no-pager 2>/dev/null | grep -E '^(sending|process|mem avail:.*< )' | head -n 20);;
		oomd) journal=$(journalctl -q -u systemd-oomd.service --since "@${t0%.*}" -o cat --no-pager 2>/dev/null | head -n 20);;
	esac
	emit "{\"type\": \"round\", \"round\": $ROUND, \"rate\": $rate, \"t0\": $t0, \"t1\": $t1, \"ended_s\": $ended_s, \"hog_pid\": ${hog:-0}, \"hog_alive\": $still, \"hog_mib\": $(progress_mib "/run/hog-$ROUND.progress" || echo 0), \"hog_result\": \"$(prop "$unit" Result)\", \"hog_exit\": \"$(prop "$unit" ExecMainCode)/$(prop "$unit" ExecMainStatus)\", \"oom_kills\": $(($(oom_kills) - k0)), \"oom_messages\": $(($(oom_messages) - m0)), \"critd_before\": $c0, \"critd_after\": $c1, \"critd_alive\": $crit_alive, \"lowprio_before\": $l0, \"lowprio_after\": $l1, \"lowprio_active\": $low_active, \"available_before_kib\": $avail0, \"available_kib\": $(kib MemAvailable), \"monitor\": $(cat /run/monitor.json 2>/dev/null || echo null), \"tool_alive\": $(alive "$(mainpid "$UNIT")" && echo true || echo false), \"journal\": $(printf '%s\n' "$journal" | grep -v '^$' | json_lines), \"kernel\": $(dmesg | grep -E 'invoked oom-killer|Killed process|oom-kill:' | tail -n 6 | json_lines)}"
	systemctl stop "$unit" 2>/dev/null
	systemctl reset-failed "$unit" 2>/dev/null
}

case "$SCENARIO" in
	runaway*|idle*)
		for rate in ${ENV[RATES]}; do
			[ "$SCENARIO" = idle ] && break
			runaway "$rate"
		done;;
	*) error "unknown scenario $SCENARIO";;
esac

# The guardian's own event log, for the judge (its decisions with their numbers).
if [ "$TOOL" = guardian ]; then
	for f in /var/log/guardian/events.jsonl /var/lib/guardian/events.jsonl; do
		[ -r "$f" ] || continue
		while IFS= read -r line; do
			case "$line" in \{*\}) emit "{\"type\": \"event\", \"e\": $line}";; esac
		done <"$f"
		break
	done
fi
emit "{\"type\": \"done\", \"uptime\": $(cut -d' ' -f1 /proc/uptime), \"failed_units\": $(systemctl --failed --plain --no-legend | awk '{ print $1 }' | json_lines), \"tool_restarts\": \"$(prop "$UNIT" NRestarts)\"}"
sync
systemctl poweroff -ff
