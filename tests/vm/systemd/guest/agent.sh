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
read -r -a CMDLINE </proc/cmdline
for arg in "${CMDLINE[@]}"; do
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

mkfifo /run/vmtest-sleep  # read -t on it: a sleep without an exec
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
sum_field() { # FILE KEY PID...
	local f=$1 k=$2 t=0 p s
	shift 2
	for p in "$@"; do s=$(awk -v k="$k:" '$1 == k { print $2 }' "/proc/$p/$f" 2>/dev/null); t=$((t + ${s:-0})); done
	echo "$t"
}
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
emit "{\"type\": \"ready\", \"uptime\": $(cut -d' ' -f1 /proc/uptime), \"unit\": \"$UNIT\", \"pid\": $TPID, \"critd\": $(mainpid critd.service), \"lowprio\": $(mainpid lowprio.service), \"mem_available_kib\": $(kib MemAvailable), \"unit_props\": $(json_str "$(systemctl show -p NRestarts,ActiveState,SubState,Type,WatchdogUSec,NotifyAccess "$UNIT" 2>/dev/null | tr '\n' ' ')"), \"cap_eff\": $(json_str "$(awk '$1 == "CapEff:" { print $2 }' "/proc/$TPID/status" 2>/dev/null)"), \"adj\": $(cat "/proc/$TPID/oom_score_adj" 2>/dev/null || echo null)}"

# ---------------------------------------------------------------------- idle
# At rest first (quiet for at least 10 s, as a gateway at rest is, then at most 1 CPU tick in
# 2 s, at most 30 s), then the window. Shell builtins only
# inside (no exec): the guardian's keeper wakes on every exec it hears, and the agent's own
# would be counted as the guardian's idle cost.
ticks_of() { local f; read -r -a f <"/proc/$1/stat" 2>/dev/null && echo $((f[13] + f[14])) || echo 0; }
wakes_of() {
	local k v t=0
	while read -r k v; do
		case "$k" in voluntary_ctxt_switches:|nonvoluntary_ctxt_switches:) t=$((t + v));; esac
	done <"/proc/$1/status"
	echo "$t"
}
pause() { read -r -t "$1" -u 9; }
idle() {
	local pid=$1 prev cur settle_t0=$EPOCHSECONDS t0 w0 s0 s t
	exec 9<>/run/vmtest-sleep
	prev=$(ticks_of "$pid")
	while :; do
		pause 2
		cur=$(ticks_of "$pid")
		[ $((cur - prev)) -le 1 ] && [ $((EPOCHSECONDS - settle_t0)) -ge 10 ] && break
		[ $((EPOCHSECONDS - settle_t0)) -ge 30 ] && break
		prev=$cur
	done
	t0=$(ticks_of "$pid") w0=$(wakes_of "$pid") s0=$EPOCHREALTIME
	pause "${ENV[IDLE_S]}"
	t=$(($(ticks_of "$pid") - t0)) w=$(($(wakes_of "$pid") - w0)) s=$EPOCHREALTIME
	exec 9>&-
	s=$(awk "BEGIN { print $s - $s0 }")
	emit "{\"type\": \"idle\", \"pid\": $pid, \"comm\": \"$(cat "/proc/$pid/comm")\", \"seconds\": $s, \"ticks\": $t, \"wakes\": $w, \"startup_ticks\": $cur, \"settle_s\": $((EPOCHSECONDS - settle_t0)), \"rss_kib\": $(sum_field smaps_rollup Rss "$pid"), \"pss_kib\": $(sum_field smaps_rollup Pss "$pid"), \"anon_kib\": $(sum_field smaps_rollup Anonymous "$pid"), \"private_dirty_kib\": $(sum_field smaps_rollup Private_Dirty "$pid"), \"threads\": $(sum_field status Threads "$pid")}"
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

# A critical unit restarted on purpose (systemctl restart): how soon its new process has the
# board's oom_score_adj (-900), from systemd's own start time of it. Heard through the netlink
# proc connector this is milliseconds; the /proc listing the guardian falls back to is 1 s.
# The guardian's keeper hears execs one by one only while they are rare (at most 1/s over
# 10 s; above that it lists /proc once a second, by design, until a 10 s window of its own sees
# fewer than 0.5 new processes/s: up to 20 s after the last burst): so the agent is quiet first
# (25 s, no fork or exec), as a gateway at rest is, and measures with shell builtins only.
restart_critd() {
	local c0 c1="" start_us seen="" a="" i final cg=/sys/fs/cgroup/system.slice/critd.service/cgroup.procs
	exec 9<>/run/vmtest-sleep
	c0=$(mainpid critd.service)
	read -r -t "${ENV[QUIET_S]:-25}" -u 9
	systemctl restart critd.service
	# From the first sight of the new process as critd (after its exec: before it, it is
	# systemd's child setting up the sandbox, which no keeper can tell from any other) to its adj.
	local comm="" exec_t="" adj_t="" up_exec=""
	for ((i = 0; i < 300; i++)); do
		[ -z "$c1" ] && read -r c1 <"$cg" 2>/dev/null
		[ -n "$c1" ] && [ -z "$exec_t" ] && read -r comm <"/proc/$c1/comm" 2>/dev/null &&
			[ "$comm" = critd ] && { exec_t=$EPOCHREALTIME; read -r up_exec _ </proc/uptime; }
		[ -n "$c1" ] && read -r a <"/proc/$c1/oom_score_adj" 2>/dev/null
		[ "$a" = -900 ] && { adj_t=$EPOCHREALTIME; [ -z "$exec_t" ] && exec_t=$adj_t; read -r seen _ </proc/uptime; break; }
		read -r -t 0.01 -u 9
	done
	exec 9>&-
	start_us=$(prop critd.service ExecMainStartTimestampMonotonic)
	[ "$c1" = "$(mainpid critd.service)" ] || error "critd's cgroup listed $c1, its MainPID is $(mainpid critd.service)"
	read -r final <"/proc/$c1/oom_score_adj" 2>/dev/null
	emit "{\"type\": \"restart\", \"critd_before\": $c0, \"critd_after\": $c1, \"start_us\": ${start_us:-0}, \"seen_uptime\": ${seen:-null}, \"adj\": ${final:-null}, \"exec_seen_uptime\": ${up_exec:-null}, \"adj_ms\": $([ -n "$adj_t" ] && awk "BEGIN { printf \"%.0f\", ($adj_t - $exec_t) * 1000 }" || echo null), \"adj_ms_from_fork\": $([ -n "$seen" ] && awk "BEGIN { printf \"%.0f\", $seen * 1000 - $start_us / 1000 }" || echo null)}"
}

kernel_oom_events() { local n; n=$(grep -c '"event": "kernel_oom"' /var/log/guardian/events.jsonl 2>/dev/null); echo "${n:-0}"; }
more_kernel_ooms() { [ "$(kernel_oom_events)" -gt "$1" ]; }

# A unit with MemoryMax= that overruns it: the kernel's cgroup OOM killer ends it; the
# guardian must read the report from /dev/kmsg (kernel_oom event, cause cgroup_limit).
cgroup_oom() {
	local k0 t0 pid i=0 n0
	k0=$(oom_kills) t0=$(now) n0=$(kernel_oom_events)
	systemd-run -q --unit=capped.service -p RemainAfterExit=yes -p MemoryMax="${ENV[CAP_MIB]:-64}M" -p MemorySwapMax=0 \
		-p ManagedOOMPreference=none /usr/bin/vmtool alloc --name capped --rate 50
	pid=$(mainpid capped.service)
	while alive "$pid" && [ "$i" -lt 200 ]; do sleep 0.2; i=$((i + 1)); done
	# A cgroup's OOM kill leaves the system's memory alone: the guardian sees /proc/vmstat's
	# oom_kill move at its next full tick (at most max_timeout_s, 10 s, at rest), then reads
	# the report. The references write nothing: 5 s.
	local wait_s=5
	[ "$TOOL" = guardian ] && wait_s=15
	wait_for "$wait_s" more_kernel_ooms "$n0"
	sleep 1
	emit "{\"type\": \"cgroup_oom\", \"t0\": $t0, \"pid\": $pid, \"alive\": $(alive "$pid" && echo true || echo false), \"result\": \"$(prop capped.service Result)\", \"cgroup\": \"$(prop capped.service ControlGroup)\", \"oom_kills\": $(($(oom_kills) - k0)), \"journal\": $(journalctl -q -u "$UNIT" -p warning --since "@${t0%.*}" -o cat --no-pager 2>/dev/null | grep -v '^$' | head -n 5 | json_lines)}"
	systemctl stop capped.service 2>/dev/null
	systemctl reset-failed capped.service 2>/dev/null
}

# wait_for SECONDS CONDITION...: poll every 0.1 s; 0 when CONDITION held in time (a deadline:
# each test runs systemctl, slow under TCG).
wait_for() {
	local end=$((EPOCHSECONDS + $1))
	shift
	until "$@"; do [ "$EPOCHSECONDS" -ge "$end" ] && return 1; sleep 0.1; done
}
back_up() { [ "$(prop "$UNIT" ActiveState)" = active ] && [ "$(mainpid "$UNIT")" != "$1" ] && [ "$(mainpid "$UNIT")" != 0 ]; }
below() { [ "$(kib MemAvailable)" -lt "$1" ]; }

# The tool SIGKILLed through systemd halfway down a runaway: systemd restarts it (for the
# guardian: READY=1 again, Type=notify), and the runaway is still handled. Then SIGSTOP: only a
# unit with a watchdog (WatchdogSec=) is restarted.
supervise() {
	local p0 r0 k0 t0 avail0 hog back="null" i=0 p1
	p0=$(mainpid "$UNIT") r0=$(prop "$UNIT" NRestarts) k0=$(oom_kills) avail0=$(kib MemAvailable)
	systemd-run -q --unit=hog-kill.service -p RemainAfterExit=yes -p ManagedOOMPreference=none \
		/usr/bin/vmtool alloc --name hog --rate "${ENV[SUP_RATE]:-10}"
	hog=$(mainpid hog-kill.service)
	wait_for 120 below $((avail0 / 2))
	t0=$EPOCHREALTIME
	systemctl kill -s KILL "$UNIT"
	wait_for 60 back_up "$p0" && back=$(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $t0 }")
	p1=$(mainpid "$UNIT")
	while alive "$hog" && [ "$i" -lt 600 ]; do sleep 0.2; i=$((i + 1)); done
	sleep 2
	emit "{\"type\": \"sigkill\", \"pid_before\": $p0, \"pid_after\": $p1, \"back_s\": $back, \"restarts\": $(($(prop "$UNIT" NRestarts) - r0)), \"state\": \"$(prop "$UNIT" ActiveState)/$(prop "$UNIT" SubState)\", \"hog_alive\": $(alive "$hog" && echo true || echo false), \"hog_result\": \"$(prop hog-kill.service Result)\", \"hog_exit\": \"$(prop hog-kill.service ExecMainCode)/$(prop hog-kill.service ExecMainStatus)\", \"oom_kills\": $(($(oom_kills) - k0)), \"journal\": $(journalctl -q -u "$UNIT" -p warning --since "@${t0%.*}" -o cat --no-pager 2>/dev/null | grep -v '^$' | tail -n 3 | json_lines)}"
	systemctl stop hog-kill.service; systemctl reset-failed hog-kill.service 2>/dev/null
	kill -9 "$hog" 2>/dev/null

	local wd; wd=$(prop "$UNIT" WatchdogUSec)
	p0=$(mainpid "$UNIT") back="null"
	wait_for 30 back_up 0  # it is up after the first part
	sleep 3
	t0=$EPOCHREALTIME
	kill -STOP "$p0"
	wait_for "${ENV[STOP_WAIT_S]:-60}" back_up "$p0" && back=$(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $t0 }")
	kill -CONT "$p0" 2>/dev/null
	emit "{\"type\": \"sigstop\", \"watchdog\": \"$wd\", \"pid_before\": $p0, \"pid_after\": $(mainpid "$UNIT"), \"back_s\": $back, \"waited_s\": ${ENV[STOP_WAIT_S]:-60}, \"journal\": $(journalctl -q -u "$UNIT" --since "@${t0%.*}" -o cat --no-pager 2>/dev/null | grep -iE 'watchdog|timeout|abort|start' | head -n 3 | json_lines)}"
	wait_for 30 back_up 0
}

# Growth with no culprit (a server whose 3 workers grow alike): the low-priority service goes
# first, stopped through its stop command, `systemctl stop lowprio.service`, run by the guardian
# inside its unit's sandbox; systemd's journal for lowprio shows the stop job.
lowprio_gone() { [ "$(mainpid lowprio.service)" != "$1" ]; }
diffuse() {
	local l0 t0 k0 c0
	systemctl is-active -q lowprio.service || systemctl start lowprio.service
	sleep 2
	l0=$(mainpid lowprio.service) c0=$(mainpid critd.service) t0=$(now) k0=$(oom_kills)
	systemd-run -q --unit=server.service -p RemainAfterExit=yes -p ManagedOOMPreference=none \
		/usr/bin/vmtool alloc --name worker --forks 3 --rate "${ENV[DIFFUSE_RATE]:-3}"
	wait_for "${ENV[DIFFUSE_WAIT_S]:-90}" lowprio_gone "$l0"
	sleep 3
	emit "{\"type\": \"diffuse\", \"t0\": $t0, \"lowprio_before\": $l0, \"lowprio_after\": $(mainpid lowprio.service), \"lowprio_state\": \"$(prop lowprio.service ActiveState)/$(prop lowprio.service Result)\", \"lowprio_stop_job\": $(journalctl -q -u lowprio.service --since "@${t0%.*}" -o cat --no-pager 2>/dev/null | grep -c '^Stopping'), \"critd_alive\": $(alive "$(mainpid critd.service)" && [ "$(mainpid critd.service)" = "$c0" ] && echo true || echo false), \"oom_kills\": $(($(oom_kills) - k0)), \"journal\": $(journalctl -q -u "$UNIT" -p warning --since "@${t0%.*}" -o cat --no-pager 2>/dev/null | grep -v '^$' | head -n 3 | json_lines)}"
	systemctl stop server.service 2>/dev/null
	systemctl reset-failed server.service 2>/dev/null
	systemctl start lowprio.service
}

# --scope cgroup: on a v2 slice with MemoryMax=: the guardian guards the slice alone; a grower
# in it must end before the slice's own OOM killer fires (memory.events oom_kill unchanged).
# systemd-oomd watches the slice (ManagedOOMMemoryPressure=kill); earlyoom knows no slices.
scope() {
	local cg=/sys/fs/cgroup/apps.slice k0 ok0 t0 g i=0
	mkdir -p /run/systemd/system
	printf '[Slice]\nMemoryMax=%sM\nManagedOOMMemoryPressure=kill\n' "${ENV[SLICE_MIB]:-160}" >/run/systemd/system/apps.slice
	systemctl daemon-reload
	systemctl start apps.slice
	if [ "$TOOL" = guardian ]; then
		sed -i 's|^GUARDIAN_ARGS=.*|GUARDIAN_ARGS="--config /etc/guardian/vm-gateway.toml --scope cgroup:apps.slice"|' /etc/default/guardian
		local p0; p0=$(mainpid "$UNIT")
		systemctl restart "$UNIT"
		wait_for 60 back_up "$p0" || error "the guardian did not come back with --scope"
		sleep 5
	fi
	# Page cache charged to the slice (an app that wrote its data and stays), for memory.reclaim.
	local cache_mib=${ENV[SLICE_CACHE_MIB]:-48}
	systemd-run -q --slice=apps.slice --unit=app-data.service -p ManagedOOMPreference=none /bin/sh -c \
		"dd if=/dev/zero of=/var/tmp/app.data bs=1M count=$cache_mib status=none && sync && touch /run/app-data.done && exec sleep infinity"
	wait_for 60 test -e /run/app-data.done || error "app-data.service did not write its $cache_mib MiB"
	k0=$(oom_kills) ok0=$(awk '$1 == "oom_kill" { print $2 }' $cg/memory.events) t0=$(now)
	local file0; file0=$(awk '$1 == "file" { print int($2 / 1024) }' $cg/memory.stat)
	systemd-run -q --slice=apps.slice --unit=app-idle.service -p ManagedOOMPreference=none \
		/usr/bin/vmtool alloc --name appidle --rate 64 --ceiling 16
	sleep 2
	systemd-run -q --slice=apps.slice --unit=grower.service -p RemainAfterExit=yes -p ManagedOOMPreference=none \
		/usr/bin/vmtool alloc --name grower --rate "${ENV[SCOPE_RATE]:-5}"
	g=$(mainpid grower.service)
	while alive "$g" && [ "$i" -lt 600 ]; do sleep 0.2; i=$((i + 1)); done
	local ended; ended=$(awk "BEGIN { print $(now) - $t0 }")
	sleep 3
	emit "{\"type\": \"scope\", \"t0\": $t0, \"ended_s\": $ended, \"slice_max\": \"$(cat $cg/memory.max)\", \"slice_file_kib_before\": $file0, \"slice_file_kib_after\": $(awk '$1 == "file" { print int($2 / 1024) }' $cg/memory.stat), \"grower_alive\": $(alive "$g" && echo true || echo false), \"grower_result\": \"$(prop grower.service Result)\", \"grower_exit\": \"$(prop grower.service ExecMainCode)/$(prop grower.service ExecMainStatus)\", \"slice_oom_kills\": $(($(awk '$1 == "oom_kill" { print $2 }' $cg/memory.events) - ok0)), \"oom_kills\": $(($(oom_kills) - k0)), \"appidle_active\": $(systemctl is-active -q app-idle.service && echo true || echo false), \"critd_active\": $(systemctl is-active -q critd.service && echo true || echo false), \"journal\": $(journalctl -q -u "$UNIT" -p warning --since "@${t0%.*}" -o cat --no-pager 2>/dev/null | grep -v '^$' | head -n 3 | json_lines)}"
	systemctl stop grower.service app-idle.service app-data.service 2>/dev/null
}

case "$SCENARIO" in
	gateway*)
		diffuse
		supervise
		scope;;
	runaway*|idle*)
		for rate in ${ENV[RATES]}; do
			[ "$SCENARIO" = idle ] && break
			runaway "$rate"
		done
		restart_critd
		cgroup_oom;;
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
emit "{\"type\": \"done\", \"uptime\": $(cut -d' ' -f1 /proc/uptime), \"tool_log\": $(journalctl -q -u "$UNIT" -b -o cat --no-pager 2>/dev/null | grep -iE 'capabilit|missing|connector|exec events|polling|kmsg|kernel log|refused|cannot' | head -n 20 | json_lines), \"failed_units\": $(systemctl --failed --plain --no-legend | awk '{ print $1 }' | json_lines), \"tool_restarts\": \"$(prop "$UNIT" NRestarts)\"}"
sync
systemctl poweroff -ff
