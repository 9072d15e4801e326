#!/bin/sh
# The test agent (inittab ::once:): runs the scenario named on the kernel command line against
# the tool started at boot (the guardian by its init script, or earlyoom), and writes one JSON
# object per line to the second serial port, which the host reads. Then it powers off.
#
# Every line has "type": boot, ready, idle, floor (the frozen floor's idle cost, guardian VMs),
# round, event (the guardian's event log), log (a line of earlyoom's or stress-ng's output),
# kernel (an OOM line of the kernel log), error, done.
PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
. /run/vmtest/env
# The agent and its monitor must outlive anything the kernel's OOM killer could do; the
# workloads get 0 back when they are started (spawn).
echo -1000 >/proc/self/oom_score_adj

# The second serial port (x86), or a virtio console where the board has one UART (ARM's virt):
# vmtest.out= on the kernel command line.
OUT=/dev/${VMTEST_out:-ttyS1}
R=/run/vmtest
TOOL=""
case "$VMTEST_tool" in guardian|earlyoom) TOOL=$VMTEST_tool;; esac

emit() { printf '%s\n' "$1" >"$OUT"; }
now() { /usr/bin/vmtool now; }
kib() { awk -v k="$1:" '$1 == k { print $2; exit }' /proc/meminfo; }
oom_kills() { awk '$1 == "oom_kill" { print $2 }' /proc/vmstat; }
oom_messages() { dmesg | grep -c 'invoked oom-killer'; }
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g; s/\t/ /g')"; }
error() { emit "{\"type\": \"error\", \"message\": $(json_str "$1")}"; }
# alive PID: the process exists and is not a zombie.
alive() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
pidfile() { cat "/var/run/$1.pid" 2>/dev/null; }
pidnum() { p=$(pidfile "$1"); echo "${p:-0}"; } # for JSON: 0 when there is none
tool_pids() { [ -n "$TOOL" ] && pidof "$TOOL"; }
# What the idle window reads, it reads with the shell's built-ins: a process it started (awk,
# vmtool) would be a process start the guardian, which watches them, must look at, billed to the
# window as if the guardian had spent it at rest. Subshells only fork (the guardian's filter
# drops forks in the kernel). The cost of a process start: bench/ ("process events").
#
# ticks_of PID...: utime + stime (clock ticks) of the PIDs.
ticks_of() {
	t=0
	for p in "$@"; do
		line=
		read -r line <"/proc/$p/stat" 2>/dev/null || continue
		# shellcheck disable=SC2086 # split the fields after the comm, which may hold spaces
		set -- ${line##*) }
		t=$((t + ${12:-0} + ${13:-0}))
	done
	echo "$t"
}
# switches_of PID...: voluntary and involuntary context switches (wake-ups) of the PIDs.
switches_of() {
	t=0
	for p in "$@"; do
		while read -r k v _; do
			case $k in voluntary_ctxt_switches: | nonvoluntary_ctxt_switches:) t=$((t + v)) ;; esac
		done <"/proc/$p/status" 2>/dev/null
	done
	echo "$t"
}
# uptime_cs: /proc/uptime in hundredths of a second.
uptime_cs() {
	read -r up _ </proc/uptime
	echo $((${up%.*} * 100 + 1${up#*.} - 100))
}
# rest SECONDS: sleep without starting sleep(1): a read that times out on a FIFO nobody writes.
rest() {
	[ -p /run/vmtest/rest.fifo ] || mkfifo /run/vmtest/rest.fifo
	# shellcheck disable=SC3045 # BusyBox ash has read -t
	read -r -t "$1" _ 9<>/run/vmtest/rest.fifo <&9 || :
}
sum_stat() { ticks_of "$@"; }
# settle PID...: wait until the PIDs are at rest (at most 1 CPU tick in 2 s; at most
# IDLE_SETTLE_MAX_S, 30), so that the idle window does not measure the end of a start-up (the
# frozen guardian's, under emulation, lasts a few seconds past its start event). SETTLE_S: how
# long it took; STARTUP_TICKS: the PIDs' CPU ticks since they started, at its end.
settle() {
	st_t0=$(uptime_cs) st_prev=$(ticks_of "$@")
	while :; do
		rest 2
		STARTUP_TICKS=$(ticks_of "$@")
		[ $((STARTUP_TICKS - st_prev)) -le 1 ] && break
		[ $(($(uptime_cs) - st_t0)) -ge $((${IDLE_SETTLE_MAX_S:-30} * 100)) ] && break
		st_prev=$STARTUP_TICKS
	done
	SETTLE_S=$(awk "BEGIN { print ($(uptime_cs) - $st_t0) / 100 }")
}

# window_begin PID... / window_end PID...: CPU ticks (W_TICKS), wake-ups (W_WAKES, voluntary and
# not) and seconds (W_S) of the PIDs between the two.
window_begin() {
	W_T0=$(ticks_of "$@")
	W_W0=$(switches_of "$@")
	W_S0=$(uptime_cs)
}
window_end() {
	W_S1=$(uptime_cs)
	W_TICKS=$(($(ticks_of "$@") - W_T0))
	W_WAKES=$(($(switches_of "$@") - W_W0))
	W_S=$(awk "BEGIN { print ($W_S1 - $W_S0) / 100 }")
}
# RSS and anonymous memory are read from smaps_rollup, which walks the page tables: status's VmRSS
# and RssAnon are per-task counters the kernel syncs every 64 faults (before 6.2), so they lag by
# up to 256 KiB (180 KiB apart from smaps in the same second, measured).
sum_field() { # FILE KEY PID...: sum of "KEY: N" over the PIDs' /proc/PID/FILE
	f=$1 k=$2 t=0
	shift 2
	for p in "$@"; do s=$(awk -v k="$k:" '$1 == k { print $2 }' "/proc/$p/$f" 2>/dev/null); t=$((t + ${s:-0})); done
	echo "$t"
}
# spawn CMD...: start a workload in the background with oom_score_adj 0; its PID in LAST.
spawn() {
	( echo 0 >/proc/self/oom_score_adj; exec "$@" ) </dev/null >/dev/null 2>&1 &
	LAST=$!
}
# wait_exit PID SECONDS: 0 when the process ended within the time.
wait_exit() {
	timeout "$2" /usr/bin/vmtool pidwait "$1" >/dev/null 2>&1
	! alive "$1"
}
progress() { cat "$R/$1.progress" 2>/dev/null; } # "<MiB allocated> <seconds>"
# pids_named PREFIX: the processes whose name (comm) starts with PREFIX.
pids_named() {
	for d in /proc/[0-9]*; do
		case "$(cat "$d/comm" 2>/dev/null)" in "$1"*) echo "${d#/proc/}";; esac
	done
}

TOTAL=$(kib MemTotal)
# The headroom mark, tool-neutral: the guardian's default terminate line (10 % of MemTotal,
# at least 24 MiB, that floor at most 15 % of MemTotal). Minimality and time to recover are
# measured against it. A board with its own terminate line sets MARK_MIB in its scenario.
FLOOR=24576
[ $((TOTAL * 15 / 100)) -lt "$FLOOR" ] && FLOOR=$((TOTAL * 15 / 100))
MARK=$((TOTAL / 10))
[ "$MARK" -lt "$FLOOR" ] && MARK=$FLOOR
[ -n "$MARK_MIB" ] && MARK=$((MARK_MIB * 1024))
PSI=false
[ -r /proc/pressure/memory ] && cat /proc/pressure/memory >/dev/null 2>&1 && PSI=true
# Swap on zram (rcS sets it up where the scenario says ZRAM_MIB).
ZRAM=null
if [ -n "$ZRAM_MIB" ] && [ "$ZRAM_MIB" -gt 0 ]; then
	if [ "$(tail -n 1 "$R/zram.status" 2>/dev/null)" = ok ] && grep -q '^/dev/zram0 ' /proc/swaps; then
		ZRAM="{\"disksize\": $(cat /sys/block/zram0/disksize), \"comp\": $(json_str "$(sed 's/.*\[\(.*\)\].*/\1/' /sys/block/zram0/comp_algorithm)")}"
	else
		error "zram swap of $ZRAM_MIB MiB was asked for and is not on: $(cat "$R/zram.status" 2>/dev/null)"
	fi
fi
emit "{\"type\": \"boot\", \"scenario\": \"$VMTEST_scenario\", \"tool\": \"$VMTEST_tool\", \"now\": $(now), \"uptime\": $(cut -d' ' -f1 /proc/uptime), \"mem_total_kib\": $TOTAL, \"mem_available_kib\": $(kib MemAvailable), \"mark_kib\": $MARK, \"psi\": $PSI, \"swap_total_kib\": $(kib SwapTotal), \"zram\": $ZRAM, \"data_disk\": $(grep -q ' /var/lib ext' /proc/mounts && echo true || echo false), \"kernel\": \"$(uname -r)\", \"machine\": \"$(uname -m)\", \"page_kib\": $(awk '$1 == "KernelPageSize:" { print $2; exit }' /proc/self/smaps), \"cma_total_kib\": $(kib CmaTotal | grep . || echo 0), \"cmdline\": $(json_str "$(cat /proc/cmdline)")}"

# --------------------------------------------------------------------------- ready

ready_t0=$(now)
i=0
case "$TOOL" in
	guardian)
		until grep -qE '"event": ?"start"' "$R/events.jsonl" 2>/dev/null; do
			sleep 0.2; i=$((i + 1)); [ "$i" -gt 600 ] && { error "the guardian did not start within 120 s"; break; }
		done;;
	earlyoom)
		until grep -q 'SIGKILL when' "$R/earlyoom.log" 2>/dev/null; do
			sleep 0.2; i=$((i + 1)); [ "$i" -gt 600 ] && { error "earlyoom did not start within 120 s"; break; }
		done;;
esac
# The services hold their memory before anything is measured.
i=0
while :; do
	lp=$(progress lowprio); cp=$(progress critd)
	[ -n "$lp" ] && [ -n "$cp" ] && [ "${lp%%.*}" -ge "${LOWPRIO_MIB:-0}" ] && break
	sleep 0.2; i=$((i + 1)); [ "$i" -gt 300 ] && { error "services did not come up: lowprio '$lp' critd '$cp'"; break; }
done
# An ordinary process beside the services, in no board config (WEBUI_MIB: what it holds, idle),
# started by rcS before the tool. Started again where a tool ended it, at WEBUI_RATE (slow
# enough not to be a runaway); WEBUI_T: when it started.
WEBUI="" WEBUI_T=0
webui_up() {
	[ -n "$WEBUI_MIB" ] || return 0
	if [ -z "$WEBUI" ] && [ "$WEBUI_T" = 0 ]; then # the one rcS started
		WEBUI=$(pidfile webui)
		alive "$WEBUI" && WEBUI_T=$(awk -v now="$(now)" '{ printf "%.3f\n", now - $1 + '"$(awk '{ print $22 }' /proc/$WEBUI/stat)"' / 100 }' /proc/uptime)
	fi
	alive "$WEBUI" && return 0
	# A webui ended in a round is counted there (round_end forgets it); this one was not.
	[ -n "$WEBUI" ] && error "webui[$WEBUI] was ended outside any round (at start, at idle or between rounds)"
	rm -f "$R/webui.progress"
	spawn /usr/bin/vmtool alloc --name webui --rate "${WEBUI_RATE:-4}" --ceiling "$WEBUI_MIB" --progress "$R/webui.progress"
	WEBUI=$LAST WEBUI_T=$(now)
	i=0
	while [ "$i" -lt 300 ] && alive "$WEBUI"; do
		p=$(progress webui)
		[ -n "$p" ] && [ "${p%%.*}" -ge "${WEBUI_MIB%%.*}" ] && break
		sleep 0.1; i=$((i + 1))
	done
}
webui_up
emit "{\"type\": \"ready\", \"now\": $(now), \"waited_s\": $(awk "BEGIN { print $(now) - $ready_t0 }"), \"tool_pids\": \"$(tool_pids)\", \"critd\": $(pidnum critd), \"lowprio\": $(pidnum lowprio), \"webui\": ${WEBUI:-0}, \"mem_available_kib\": $(kib MemAvailable)}"

# --------------------------------------------------------------------------- idle cost

if [ -n "$TOOL" ] && [ "${IDLE_S:-0}" -gt 0 ]; then
	sleep 3
	pids=$(tool_pids)
	settle $pids
	window_begin $pids
	rest "$IDLE_S"
	window_end $pids
	# Where the single-file build unpacked itself (the directory of its mapped libraries).
	unpack=0 unpack_fs=""
	for p in $pids; do
		d=$(awk '$6 ~ /\/_MEI/ { print $6; exit }' "/proc/$p/maps" | sed 's#^\(.*/_MEI[^/]*\)/.*#\1#')
		[ -n "$d" ] && [ -d "$d" ] || continue
		unpack=$(du -sk "$d" | cut -f1)
		unpack_fs=$(stat -f -c %T "$d" 2>/dev/null || df -P "$d" | awk 'NR == 2 { print $1 }')
		break
	done
	emit "{\"type\": \"idle\", \"settle_s\": $SETTLE_S, \"startup_ticks\": $STARTUP_TICKS, \"seconds\": $W_S, \"ticks\": $W_TICKS, \"wakeups\": $W_WAKES, \"procs\": $(echo $pids | wc -w), \"rss_kib\": $(sum_field smaps_rollup Rss $pids), \"hwm_kib\": $(sum_field status VmHWM $pids), \"pss_kib\": $(sum_field smaps_rollup Pss $pids), \"private_dirty_kib\": $(sum_field smaps_rollup Private_Dirty $pids), \"anon_kib\": $(sum_field smaps_rollup Anonymous $pids), \"unpack_kib\": $unpack, \"unpack_fs\": \"$unpack_fs\", \"mem_available_kib\": $(kib MemAvailable)}"
fi

# --------------------------------------------------------------------------- the floor

# The guardian's VMs, after its idle window: the frozen floor (/usr/bin/guardian-floor, a trivial
# wake loop with the guardian's wake rule, frozen by the same spec) is started, given the same
# settle time once it is in its loop (it holds /proc/meminfo open), measured like the guardian
# over FLOOR_IDLE_S (default 5 s: its RSS is flat once in the loop; ticks and wake-ups are per
# window, see "seconds"), and stopped. The guardian's own figures are read again at the same
# moment (guardian_*): the two share the system's libraries, which PSS splits between them.
floor_pids() { pidof guardian-floor; }
# in_loop PID: the floor holds /proc/meminfo open (its loop reads it from that descriptor).
in_loop() {
	for fd in "/proc/$1/fd/"*; do [ "$(readlink "$fd" 2>/dev/null)" = /proc/meminfo ] && return 0; done
	return 1
}
if [ "$TOOL" = guardian ] && [ "${IDLE_S:-0}" -gt 0 ] && [ "${FLOOR_IDLE_S:-5}" -gt 0 ]; then
	f_t0=$(now)
	spawn /usr/bin/guardian-floor $FLOOR_ARGS
	floor=$LAST i=0
	until in_loop "$floor"; do
		sleep 0.1; i=$((i + 1))
		{ [ "$i" -gt 300 ] || ! alive "$floor"; } && break
	done
	if in_loop "$floor"; then
		f_up=$(awk "BEGIN { print $(now) - $f_t0 }")
		sleep 3
		pids=$(floor_pids)
		window_begin $pids
		rest "${FLOOR_IDLE_S:-5}"
		window_end $pids
		g=$(tool_pids)
		emit "{\"type\": \"floor\", \"args\": $(json_str "$FLOOR_ARGS"), \"started_s\": $f_up, \"seconds\": $W_S, \"ticks\": $W_TICKS, \"wakeups\": $W_WAKES, \"procs\": $(echo $pids | wc -w), \"rss_kib\": $(sum_field smaps_rollup Rss $pids), \"hwm_kib\": $(sum_field status VmHWM $pids), \"pss_kib\": $(sum_field smaps_rollup Pss $pids), \"private_dirty_kib\": $(sum_field smaps_rollup Private_Dirty $pids), \"anon_kib\": $(sum_field smaps_rollup Anonymous $pids), \"guardian_rss_kib\": $(sum_field smaps_rollup Rss $g), \"guardian_pss_kib\": $(sum_field smaps_rollup Pss $g), \"guardian_private_dirty_kib\": $(sum_field smaps_rollup Private_Dirty $g), \"guardian_anon_kib\": $(sum_field smaps_rollup Anonymous $g), \"mem_available_kib\": $(kib MemAvailable)}"
	else
		error "the floor (/usr/bin/guardian-floor $FLOOR_ARGS) did not reach its loop within 30 s (alive: $(alive "$floor" && echo yes || echo no))"
	fi
	pids=$(floor_pids)
	[ -n "$pids" ] && kill -TERM $pids
	wait_exit "$floor" 5 || kill -9 $(floor_pids) 2>/dev/null
	wait "$floor" 2>/dev/null
	emit "{\"type\": \"floor_done\", \"seconds\": $(awk "BEGIN { print $(now) - $f_t0 }")}"
fi

# --------------------------------------------------------------------------- rounds

# round_begin: note the counters; start the monitor (MemAvailable every 20 ms).
round_begin() {
	RB_T=$(now); RB_OOM=$(oom_kills); RB_MSG=$(oom_messages)
	RB_CRITD=$(pidfile critd); RB_LOWPRIO=$(pidfile lowprio); RB_TOOL=$(tool_pids)
	RB_AVAIL=$(kib MemAvailable)
	RB_LOGN=$(cat "$R/earlyoom.log" 2>/dev/null | wc -l)
	rm -f "$R/monitor.json"
	/usr/bin/vmtool monitor "$R/monitor.json" "$MARK" &
	MON=$!
	TRACK=""
	alive "$RB_LOWPRIO" && TRACK="lowprio:$RB_LOWPRIO:$(( ${LOWPRIO_MIB:-0} * 1024 ))"
	# Tracked even if it is gone already: webui_up saw it up just before, so an end from then on
	# is this round's (a tool can act while round_begin reads its counters).
	[ -n "$WEBUI" ] && TRACK="$TRACK webui:$WEBUI:$(awk "BEGIN { print int($WEBUI_MIB * 1024) }")"
}

# tool_signals: the signals earlyoom logged since round_begin, as a JSON list of its lines
# (the guardian's acts are in its event log, with their times).
tool_signals() {
	first=true
	printf '['
	tail -n +$((RB_LOGN + 1)) "$R/earlyoom.log" 2>/dev/null | grep '^sending SIG' | while IFS= read -r line; do
		$first || printf ', '
		first=false
		json_str "$line"
	done
	printf ']'
}

# round_end LABEL EXTRA_JSON: what happened in the round, as one line.
round_end() {
	kill -TERM "$MON"; wait "$MON"
	ended=""
	for t in $TRACK; do
		name=${t%%:*}; rest=${t#*:}; pid=${rest%%:*}; final=${rest#*:}
		alive "$pid" || ended="$ended${ended:+, }{\"name\": \"$name\", \"pid\": $pid, \"final_kib\": $final}"
		[ "$name" = webui ] && ! alive "$pid" && WEBUI=""
	done
	critd=$(pidfile critd); lowprio=$(pidfile lowprio)
	crit_alive=false; alive "$critd" && crit_alive=true
	emit "{\"type\": \"round\", \"label\": \"$1\", \"t0\": $RB_T, \"t1\": $(now), \"oom_kills\": $(( $(oom_kills) - RB_OOM )), \"oom_messages\": $(( $(oom_messages) - RB_MSG )), \"critd_before\": ${RB_CRITD:-0}, \"critd_after\": ${critd:-0}, \"critd_alive\": $crit_alive, \"lowprio_before\": ${RB_LOWPRIO:-0}, \"tool_pids_before\": \"$RB_TOOL\", \"tool_pids_after\": \"$(tool_pids)\", \"available_before_kib\": $RB_AVAIL, \"available_kib\": $(kib MemAvailable), \"ended\": [$ended], \"tool_signals\": $(tool_signals), \"swap_free_kib\": $(kib SwapFree), \"tool_rss_kib\": $(sum_field status VmRSS $(tool_pids)), \"tool_hwm_kib\": $(sum_field status VmHWM $(tool_pids)), \"monitor\": $(cat "$R/monitor.json" 2>/dev/null || echo null)${2:+, $2}}"
}

# services_up: bring back a service a tool ended in an earlier round (or between rounds).
services_up() {
	for s in critd lowprio; do
		if ! alive "$(pidfile $s)"; then
			emit "{\"type\": \"service_up\", \"name\": \"$s\", \"pid_was\": $(pidnum $s), \"now\": $(now)}"
			/etc/init.d/S??$s start >/dev/null
			i=0
			while [ "$i" -lt 100 ]; do
				p=$(progress $s); eval "want=\${$(echo $s | tr a-z A-Z)_MIB:-0}"
				[ -n "$p" ] && [ "${p%%.*}" -ge "$want" ] && break
				sleep 0.1; i=$((i + 1))
			done
		fi
	done
}

# settle: until MemAvailable stops rising (the last victim's memory is back), at most 10 s.
settle() {
	prev=0 i=0
	while [ "$i" -lt 20 ]; do
		sleep 0.5
		a=$(kib MemAvailable)
		[ "$a" -le $((prev + 256)) ] && break
		prev=$a; i=$((i + 1))
	done
}

# runaway_round LABEL RATE TIMEOUT: one hog, no ceiling, until something ends it.
runaway_round() {
	services_up
	settle
	round_begin
	rm -f "$R/hog.progress"
	spawn /usr/bin/vmtool alloc --name hog --rate "$2" --chunk 256 --progress "$R/hog.progress" $HOG_ARGS
	hog=$LAST
	TRACK="$TRACK hog:$hog:-1"
	timed_out=false
	wait_exit "$hog" "$3" || { timed_out=true; kill -9 "$hog"; }
	wait "$hog"; status=$?
	settle
	p=$(progress hog)
	set -- "$1" "$2" "${p:-0 0}"
	round_end "$1" "\"rate\": $2, \"hog_mib\": ${3%% *}, \"hog_s\": ${3##* }, \"hog_status\": $status, \"timed_out\": $timed_out"
}

scenario_runaway() {
	for rate in $RATES; do
		runaway_round "rate=$rate" "$rate" "${ROUND_TIMEOUT:-90}"
	done
}

scenario_leak() {
	round_begin
	pid0=$(pidnum critd)
	restarted_at=0 pid1=$pid0 i=0 gone=0
	while [ "$i" -lt "$((${LEAK_MAX_S:-150} * 2))" ]; do
		sleep 0.5; i=$((i + 1))
		p=$(pidfile critd)
		if [ "$restarted_at" = 0 ] && [ -n "$p" ] && [ "$p" != "$pid0" ] && alive "$p"; then
			restarted_at=$(now); pid1=$p
			# Watch the restarted daemon a little, then stop (it leaks again).
			i=$(( ${LEAK_MAX_S:-150} * 2 - ${LEAK_AFTER_S:-10} * 2 ))
		fi
		# Ended, and nothing brought it back within 10 s (a restart passes through "no pidfile").
		if [ "$restarted_at" = 0 ] && ! alive "$pid0" && ! alive "$p"; then
			gone=$((gone + 1))
			[ "$gone" -ge 20 ] && break
		else
			gone=0
		fi
	done
	# What the restart command ran at, and what the restarted daemon was given.
	cmd_adj=$(cat /run/vmtest/critd.restart.adj 2>/dev/null)
	new_adj=$(cat "/proc/${pid1:-0}/oom_score_adj" 2>/dev/null)
	round_end "leak" "\"critd_pid0\": $pid0, \"critd_pid1\": ${pid1:-0}, \"restarted_at\": $restarted_at, \"restart_cmd_adj\": ${cmd_adj:-null}, \"critd1_adj\": ${new_adj:-null}"
}

scenario_forkserver() {
	settle
	a0=$(kib MemAvailable)
	label=forkserver
	if [ -z "$OVERSHOOT" ]; then
		# Workers' ceiling: together they want 1.5 workers more than the room above the mark, so
		# the fewest processes that restore headroom is 2 (the low-priority service is smaller
		# than one worker plus a half).
		c=$(( (a0 - MARK) * 10 / (WORKERS * 10 - 15) / 1024 ))
	else
		# OVERSHOOT (in workers) more than the room above the mark, in steps of 0.1 MiB; the
		# ceiling a worker reaches is whole chunks (128 KiB) of it.
		label=growers
		c=$(awk "BEGIN { printf \"%.1f\", int(($a0 - $MARK) / 1024 / ($WORKERS - $OVERSHOOT) * 10) / 10 }")
	fi
	final=$(awk "BEGIN { print int($c * 8) * 128 }")
	round_begin
	spawn /usr/bin/vmtool alloc --name srv --forks "$WORKERS" --rate "$WORKER_RATE" --ceiling "$c" --chunk 128
	srv=$LAST
	sleep 1
	TRACK="$TRACK srv:$srv:0"
	for w in $(cat /proc/$srv/task/$srv/children); do TRACK="$TRACK worker:$w:$final"; done
	grow_s=$(awk "BEGIN { print int($c / $WORKER_RATE) + 12 }")
	sleep "$grow_s"
	settle
	round_end "$label" "\"workers\": $WORKERS, \"worker_ceiling_mib\": $c, \"worker_rate\": $WORKER_RATE, \"overshoot\": \"${OVERSHOOT:-1.5}\", \"available_start_kib\": $a0"
}

scenario_pagecache() {
	settle
	# The reader keeps the data set (on the root disk) in the page cache, over and over.
	spawn sh -c 'while :; do cat /srv/data/*.bin >/dev/null; done'
	reader=$LAST
	sleep "${PC_WARM_S:-5}"
	a0=$(kib MemAvailable)
	reclaim=$((TOTAL * 15 / 100)); [ "$reclaim" -lt 32768 ] && reclaim=32768
	# The grower takes MemAvailable to just above the default reclaim line: it ends up below it
	# (the kernel's estimate drifts down by a few MiB as the cache churns, and the fill rate
	# raises the lines), comfortably above the terminate line.
	target=$((reclaim + 2048))
	c=$(( (a0 - target) / 1024 ))
	round_begin
	TRACK="$TRACK reader:$reader:0"
	spawn /usr/bin/vmtool alloc --name grower --rate "$PC_RATE" --ceiling "$c" --progress "$R/grower.progress"
	grower=$LAST
	TRACK="$TRACK grower:$grower:$((c * 1024))"
	sleep "$(awk "BEGIN { print int($c / $PC_RATE) + ${PC_HOLD_S:-20} }")"
	round_end "pagecache" "\"grower_ceiling_mib\": $c, \"target_kib\": $target, \"available_start_kib\": $a0, \"cached_kib\": $(kib Cached), \"free_kib\": $(kib MemFree)"
	kill "$reader" "$grower" 2>/dev/null
}

# restart_round LABEL HOW: a slow hog; at half the headroom the tool is SIGKILLed (HOW = all:
# every process of it; pidfile: only the PID its init script recorded); its supervision must
# bring it back in time.
restart_round() {
	services_up
	settle
	round_begin
	a0=$RB_AVAIL
	spawn /usr/bin/vmtool alloc --name hog --rate "$RESTART_RATE" --progress "$R/hog.progress"
	hog=$LAST
	TRACK="$TRACK hog:$hog:-1"
	while alive "$hog" && [ "$(kib MemAvailable)" -gt $((a0 / 2)) ]; do sleep 0.1; done
	kill_t=$(now)
	if [ "$2" = all ]; then victims=$(tool_pids); else victims=$(pidfile "$TOOL"); fi
	[ -n "$victims" ] && kill -9 $victims
	wait_exit "$hog" "${ROUND_TIMEOUT:-90}" || { timed_out=true; kill -9 "$hog"; }
	wait "$hog"; status=$?
	settle
	sleep 2
	round_end "$1" "\"killed\": \"$victims\", \"kill_time\": $kill_t, \"hog_status\": $status, \"respawns\": \"$(cat $R/respawns 2>/dev/null | tr '\n' ';')\", \"tool_procs_after\": $(tool_pids | wc -w)"
}

# newborn: an idle webui (in no board config, older than the growth window) beside the
# services; a runaway starts at each of RATES. Only the runaway may end.
scenario_newborn() {
	for rate in $RATES; do
		webui_up
		while alive "$WEBUI" && [ "$(awk "BEGIN { print int($(now) - $WEBUI_T) }")" -lt "${WEBUI_AGE_S:-35}" ]; do
			sleep 1
		done
		# Reported once, here; not tracked in the round as well.
		alive "$WEBUI" || { error "rate=$rate: webui[$WEBUI] was ended while it started, before the round"; WEBUI=""; }
		runaway_round "rate=$rate" "$rate" "${ROUND_TIMEOUT:-90}"
	done
}

# stress: stress-ng from Debian (STRESS_ARGS; it stops by its own --timeout), with the
# services (and webui, if any) beside it. Every stress-ng process a tool ends counts as
# needed; anything else ended is one too many.
scenario_stress() {
	[ -z "$WEBUI_MIB" ] || alive "$WEBUI" || error "webui[$WEBUI] was ended before the round (at start or idle)"
	services_up
	settle
	round_begin
	rm -f "$R/stress.log"
	cd /tmp # stress-ng wants a writable working directory
	spawn /usr/bin/stress-ng $STRESS_ARGS --temp-path /tmp --log-file "$R/stress.log"
	stress=$LAST
	cd /
	timed_out=false
	wait_exit "$stress" "${ROUND_TIMEOUT:-90}" || { timed_out=true; kill -9 $(pids_named stress-ng) 2>/dev/null; }
	wait "$stress"; status=$?
	left=$(pids_named stress-ng | wc -w)
	[ "$left" -gt 0 ] && kill -9 $(pids_named stress-ng) 2>/dev/null
	settle
	round_end "${STRESS_LABEL:-stress}" "\"stress_status\": $status, \"timed_out\": $timed_out, \"stress_left\": $left, \"stress_args\": $(json_str "$STRESS_ARGS")"
	tail -n 40 "$R/stress.log" 2>/dev/null | while IFS= read -r line; do
		emit "{\"type\": \"log\", \"tool\": \"stress-ng\", \"line\": $(json_str "$line")}"
	done
}

scenario_restart() {
	restart_round "kill-all" all
	restart_round "kill-pidfile" pidfile
}

case "$SCENARIO_KIND" in
	runaway|leak|forkserver|pagecache|restart|newborn|stress) "scenario_$SCENARIO_KIND";;
	*) error "unknown scenario kind '$SCENARIO_KIND'";;
esac

# --------------------------------------------------------------------------- evidence

if [ -s "$R/events.jsonl" ]; then
	while IFS= read -r line; do emit "{\"type\": \"event\", \"e\": $line}"; done <"$R/events.jsonl"
fi
if [ -s "$R/earlyoom.log" ]; then
	grep -v '^mem avail' "$R/earlyoom.log" | while IFS= read -r line; do
		emit "{\"type\": \"log\", \"tool\": \"earlyoom\", \"line\": $(json_str "$line")}"
	done
fi
dmesg | grep -E 'invoked oom-killer|Out of memory|Killed process' | while IFS= read -r line; do
	emit "{\"type\": \"kernel\", \"line\": $(json_str "$line")}"
done
emit "{\"type\": \"done\", \"now\": $(now), \"uptime\": $(cut -d' ' -f1 /proc/uptime)}"
sync
poweroff -f
