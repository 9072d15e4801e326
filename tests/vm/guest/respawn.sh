#!/bin/sh
# Supervision for the memory guardian on a BusyBox board: an inittab ::respawn: line runs this.
# It starts the daemon with its own init script, blocks until the daemon's process is gone
# (pidfd: no polling, no wake-ups), and starts it again. BusyBox init restarts this script
# should it die itself. Only the "restart" scenario asks for it (SUPERVISE=1).
. /run/vmtest/env
# Part of the memory guardian's own machinery: never a victim (inherited by what it starts;
# the init scripts set their daemons' own values).
echo -1000 >/proc/self/oom_score_adj
if [ "${SUPERVISE:-0}" != 1 ] || [ "$VMTEST_tool" = none ]; then
	exec sleep 2147483647
fi
if [ "$VMTEST_tool" = earlyoom ]; then
	script=/etc/init.d/S02earlyoom pidfile=/var/run/earlyoom.pid
else
	script=/etc/init.d/S03guardian pidfile=/var/run/guardian.pid
fi
# rcS started it; wait for the pidfile before the first watch.
i=0
while [ ! -s "$pidfile" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
while :; do
	pid=$(cat "$pidfile" 2>/dev/null)
	[ -n "$pid" ] && /usr/bin/vmtool pidwait "$pid"
	echo "respawn: $script: pid ${pid:-?} gone, starting it again" >/dev/console
	echo "$(/usr/bin/vmtool now) $pid" >>/run/vmtest/respawns
	"$script" start >/dev/console 2>&1
	sleep 1
done
