"""Kernel OOM report excerpts for the parser and classifier tests.

Written by hand for these tests (names, numbers and machines are made up), in the shapes the
kernel prints: dmesg with "[seconds]" stamps, journalctl/syslog lines, and bare kmsg messages.
"""

# A cgroup v2 service at its own limit (kernel >= 4.19 shape), as bare messages.
CGROUP_OWN_LIMIT = """\
sensor-agent invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=200
CPU: 1 PID: 2211 Comm: sensor-agent Not tainted 6.1.0-board #3
Hardware name: Acme Gateway GW-7 (DT)
Call trace:
 dump_backtrace+0x0/0x1a0
 oom_kill_process+0x2b0/0x2c0
memory: usage 65536kB, limit 65536kB, failcnt 4711
swap: usage 0kB, limit 0kB, failcnt 0
Memory cgroup stats for /system.slice/sensor-agent.service:
anon 64225280
file 536576
Tasks state (memory values in pages):
[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
[   2211]   998  2211    40960    16010   184320        0           200 sensor-agent
[   2240]   998  2240     1200      150    40960        0           200 sh
oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/system.slice/sensor-agent.service,task_memcg=/system.slice/sensor-agent.service,task=sensor-agent,pid=2211,uid=998
Memory cgroup out of memory: Killed process 2211 (sensor-agent) total-vm:163840kB, anon-rss:62720kB, file-rss:1320kB, shmem-rss:0kB, UID:998 pgtables:180kB oom_score_adj:200
"""

# A parent cgroup at its limit, old shape (< 4.19: "Task in ... killed as a result of limit
# of ..."), from dmesg with timestamps; two children share /apps' 128 MiB.
PARENT_LIMIT_OLD = """\
[ 5021.100200] logrotate invoked oom-killer: gfp_mask=0x14000c0(GFP_KERNEL), nodemask=(null), order=0, oom_score_adj=0
[ 5021.100230] logrotate cpuset=/ mems_allowed=0
[ 5021.100260] CPU: 0 PID: 3301 Comm: logrotate Not tainted 4.14.98 #1
[ 5021.100300] Task in /apps/webui killed as a result of limit of /apps
[ 5021.100310] memory: usage 131072kB, limit 131072kB, failcnt 92
[ 5021.100320] memory+swap: usage 131072kB, limit 9007199254740988kB, failcnt 0
[ 5021.100330] kmem: usage 2048kB, limit 9007199254740988kB, failcnt 0
[ 5021.100400] Memory cgroup stats for /apps: cache:0KB rss:0KB rss_huge:0KB
[ 5021.100410] Memory cgroup stats for /apps/webui: cache:1024KB rss:90112KB rss_huge:0KB
[ 5021.100500] [ pid ]   uid  tgid total_vm      rss nr_ptes nr_pmds swapents oom_score_adj name
[ 5021.100510] [ 3120]     0  3120    30000    22528      50       3        0             0 webui
[ 5021.100520] [ 3301]     0  3301     2000      300       8       3        0             0 logrotate
[ 5021.100600] Memory cgroup out of memory: Kill process 3120 (webui) score 690 or sacrifice child
[ 5021.100700] Killed process 3120 (webui) total-vm:120000kB, anon-rss:89700kB, file-rss:412kB, shmem-rss:0kB
[ 5021.130000] oom_reaper: reaped process 3120 (webui), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB
"""

# The whole host short: a 256 MiB board, no swap, zones below min, from dmesg.
HOST_SHORT = """\
[  812.331000] mqtt-bridge invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0
[  812.331010] CPU: 2 PID: 1402 Comm: mqtt-bridge Not tainted 5.15.61-v8+ #1
[  812.331020] Hardware name: Small Board Rev 2 (DT)
[  812.331030] Call trace:
[  812.331040]  out_of_memory+0x2f8/0x330
[  812.331100] Mem-Info:
[  812.331110] active_anon:48010 inactive_anon:7012 isolated_anon:0
                active_file:70 inactive_file:41 isolated_file:0
                unevictable:0 dirty:0 writeback:0
                slab_reclaimable:1500 slab_unreclaimable:3100
                mapped:90 shmem:120 pagetables:410 bounce:0
                free:1380 free_pcp:12 free_cma:0
[  812.331200] Node 0 active_anon:192040kB inactive_anon:28048kB active_file:280kB inactive_file:164kB unevictable:0kB isolated(anon):0kB isolated(file):0kB mapped:360kB dirty:0kB writeback:0kB shmem:480kB writeback_tmp:0kB kernel_stack:1760kB all_unreclaimable? yes
[  812.331300] Node 0 DMA free:5520kB boost:0kB min:5632kB low:7040kB high:8448kB reserved_highatomic:0KB active_anon:192040kB inactive_anon:28048kB active_file:280kB inactive_file:164kB unevictable:0kB writepending:0kB present:262144kB managed:238212kB mlocked:0kB bounce:0kB free_pcp:48kB local_pcp:0kB free_cma:0kB
[  812.331310] lowmem_reserve[]: 0 0 0 0
[  812.331400] Node 0 DMA: 240*4kB (UME) 140*8kB (UME) 60*16kB (UM) 20*32kB (M) 8*64kB (M) 2*128kB (M) 0*256kB 0*512kB 0*1024kB 0*2048kB 0*4096kB = 4448kB
[  812.331500] 231 total pagecache pages
[  812.331510] 0 pages in swap cache
[  812.331520] Free swap  = 0kB
[  812.331530] Total swap = 0kB
[  812.331540] 65536 pages RAM
[  812.331550] 0 pages HighMem/MovableOnly
[  812.331560] 5983 pages reserved
[  812.331600] Tasks state (memory values in pages):
[  812.331610] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
[  812.331620] [    201]     0   201     2900      310    32768        0         -1000 udevd
[  812.331630] [    640]     0   640     5100      700    45056        0             0 dropbear
[  812.331640] [   1402]  1000  1402    70000    39800   380928        0             0 mqtt-bridge
[  812.331650] [   1490]  1000  1490    31000    14100   184320        0           100 webui
[  812.331700] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=mqtt-bridge,pid=1402,uid=1000
[  812.331710] Out of memory: Killed process 1402 (mqtt-bridge) total-vm:280000kB, anon-rss:158900kB, file-rss:300kB, shmem-rss:0kB, UID:1000 pgtables:372kB oom_score_adj:0
"""

# One NUMA node short under a cpuset while node 1 has plenty (only node 0 is printed: the
# kernel filters Mem-Info by the cpuset). journalctl -k shape.
NUMA_CPUSET = """\
Mar 03 10:15:01 edge-17 kernel: solver invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0
Mar 03 10:15:01 edge-17 kernel: CPU: 3 PID: 7781 Comm: solver Not tainted 6.6.8 #1
Mar 03 10:15:01 edge-17 kernel: Mem-Info:
Mar 03 10:15:01 edge-17 kernel: Node 0 Normal free:10240kB boost:0kB min:11264kB low:14080kB high:16896kB reserved_highatomic:0KB active_anon:1800000kB present:2097152kB managed:2031616kB
Mar 03 10:15:01 edge-17 kernel: lowmem_reserve[]: 0 0 0 0 0
Mar 03 10:15:01 edge-17 kernel: Node 0 Normal: 500*4kB (UME) 300*8kB (UM) 200*16kB (M) 100*32kB (M) 0*64kB 0*128kB 0*256kB 0*512kB 0*1024kB 0*2048kB 0*4096kB = 10800kB
Mar 03 10:15:01 edge-17 kernel: Free swap  = 0kB
Mar 03 10:15:01 edge-17 kernel: Total swap = 0kB
Mar 03 10:15:01 edge-17 kernel: oom-kill:constraint=CONSTRAINT_CPUSET,nodemask=(null),cpuset=solver,mems_allowed=0,global_oom,task_memcg=/system.slice/solver.service,task=solver,pid=7781,uid=0
Mar 03 10:15:01 edge-17 kernel: Out of memory: Killed process 7781 (solver) total-vm:1900000kB, anon-rss:1790000kB, file-rss:1000kB, shmem-rss:0kB, UID:0 pgtables:3600kB oom_score_adj:0
"""

# Two nodes both printed (a memory policy bound to node 0), node 1 roomy.
NUMA_TWO_NODES = """\
[ 100.000000] numbercrunch invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0
[ 100.000100] Node 0 Normal free:9000kB boost:0kB min:11000kB low:14000kB high:17000kB present:4194304kB
[ 100.000200] Node 1 Normal free:2900000kB boost:0kB min:11000kB low:14000kB high:17000kB present:4194304kB
[ 100.000300] oom-kill:constraint=CONSTRAINT_MEMORY_POLICY,nodemask=0,cpuset=/,mems_allowed=0-1,task_memcg=/,task=numbercrunch,pid=900,uid=0
[ 100.000400] Out of memory: Killed process 900 (numbercrunch) total-vm:4300000kB, anon-rss:4100000kB, file-rss:100kB, shmem-rss:0kB, UID:0 pgtables:8000kB oom_score_adj:0
"""

# Fragmentation: an order-3 (32 KiB) allocation by a Wi-Fi driver's thread; plenty free above
# low, but nothing at order >= 3. BusyBox syslogd shape.
FRAGMENTED = """\
Jan  1 00:42:17 board kern.warn kernel: [ 2537.004400] kworker/u4:2 invoked oom-killer: gfp_mask=0x42dc0(GFP_KERNEL|__GFP_NOWARN|__GFP_COMP|__GFP_ZERO), order=3, oom_score_adj=0
Jan  1 00:42:17 board kern.warn kernel: [ 2537.004410] CPU: 0 PID: 77 Comm: kworker/u4:2 Not tainted 5.10.110 #1
Jan  1 00:42:17 board kern.warn kernel: [ 2537.004500] Mem-Info:
Jan  1 00:42:17 board kern.warn kernel: [ 2537.004600] Node 0 Normal free:38000kB boost:0kB min:2800kB low:3500kB high:4200kB reserved_highatomic:0KB present:262144kB managed:245000kB
Jan  1 00:42:17 board kern.warn kernel: [ 2537.004610] lowmem_reserve[]: 0 0
Jan  1 00:42:17 board kern.warn kernel: [ 2537.004700] Node 0 Normal: 5500*4kB (UME) 1875*8kB (UME) 0*16kB 0*32kB 0*64kB 0*128kB 0*256kB 0*512kB 0*1024kB 0*2048kB 0*4096kB = 37000kB
Jan  1 00:42:17 board kern.info kernel: [ 2537.004710] Free swap  = 0kB
Jan  1 00:42:17 board kern.info kernel: [ 2537.004720] Total swap = 0kB
Jan  1 00:42:17 board kern.info kernel: [ 2537.004730] 65536 pages RAM
Jan  1 00:42:17 board kern.warn kernel: [ 2537.004800] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=camera-daemon,pid=615,uid=0
Jan  1 00:42:17 board kern.err kernel: [ 2537.004810] Out of memory: Killed process 615 (camera-daemon) total-vm:98000kB, anon-rss:41000kB, file-rss:2200kB, shmem-rss:4096kB, UID:0 pgtables:96kB oom_score_adj:0
"""

# Interleaved: other CPUs' and other programs' lines between the report's, two reports in a
# row, in journal shape (including a non-kernel line that mimics a kernel one).
INTERLEAVED = """\
Mar 03 11:00:00 edge-17 kernel: usb 1-1: new high-speed USB device number 5 using ehci-platform
Mar 03 11:00:01 edge-17 kernel: [  600.000100] worker invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
Mar 03 11:00:01 edge-17 kernel: [  600.000110] EXT4-fs (mmcblk0p2): re-mounted. Opts: (null)
Mar 03 11:00:01 edge-17 systemd[1]: Out of memory: Killed process 1 (fake) total-vm:1kB, anon-rss:1kB, file-rss:1kB, shmem-rss:0kB
Mar 03 11:00:01 edge-17 kernel: [  600.000120] CPU: 1 PID: 4100 Comm: worker Not tainted 6.1.0 #1
Mar 03 11:00:01 edge-17 kernel: [  600.000130] memory: usage 32768kB, limit 32768kB, failcnt 12
Mar 03 11:00:01 edge-17 kernel: [  600.000135] wlan0: deauthenticating from 00:11:22:33:44:55 by local choice (Reason: 3=DEAUTH_LEAVING)
Mar 03 11:00:01 edge-17 kernel: [  600.000140] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/jobs,task_memcg=/jobs/batch-7,task=worker,pid=4100,uid=0
Mar 03 11:00:01 edge-17 sshd[900]: Accepted publickey for root from 10.0.0.2 port 50000
Mar 03 11:00:01 edge-17 kernel: [  600.000150] Memory cgroup out of memory: Killed process 4100 (worker) total-vm:50000kB, anon-rss:30000kB, file-rss:800kB, shmem-rss:0kB, UID:0 pgtables:80kB oom_score_adj:0
Mar 03 11:00:02 edge-17 kernel: [  601.500000] cruncher invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
Mar 03 11:00:02 edge-17 kernel: [  601.500010] memory: usage 16384kB, limit 16384kB, failcnt 3
Mar 03 11:00:02 edge-17 kernel: [  601.500020] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/jobs/batch-8,task_memcg=/jobs/batch-8,task=cruncher,pid=4200,uid=0
Mar 03 11:00:02 edge-17 kernel: [  601.500030] Memory cgroup out of memory: Killed process 4200 (cruncher) total-vm:20000kB, anon-rss:15000kB, file-rss:500kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0
"""

# Truncated at the front: rate-limited reports print only the victim line.
ONLY_VICTIM = """\
[ 9000.000000] Out of memory: Killed process 3000 (leaky) total-vm:200000kB, anon-rss:180000kB, file-rss:10kB, shmem-rss:0kB, UID:0 pgtables:360kB oom_score_adj:0
[ 9005.000000] Memory cgroup out of memory: Killed process 3100 (leaky2) total-vm:20000kB, anon-rss:18000kB, file-rss:10kB, shmem-rss:0kB, UID:0 pgtables:36kB oom_score_adj:0
"""

# Truncated at the end: the saved log stops in the middle of the report.
CUT_SHORT = """\
[  70.000000] hog invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0
[  70.000100] CPU: 0 PID: 555 Comm: hog Not tainted 6.1.0 #1
[  70.000200] Mem-Info:
[  70.000300] Node 0 Normal free:2000kB boost:0kB min:2800kB low:3500kB high:4200kB present:262144kB
[  70.000400] Node 0 Normal: 100*4kB (UM) 50*8kB (M) 25*16kB 25*32kB 0*64kB 0*128kB 0*256kB 0*512kB 0*1024kB 0*2048kB 0*4096kB = 2000kB
[  70.000500] Tasks state (memory values in pages):
[  70.000600] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
[  70.000700] [    555]     0   555    60000    5"""

# A kernel slab leak: the kernel lists its unreclaimable slabs.
SLAB_LEAK = """\
[ 400.0] app invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[ 400.1] Mem-Info:
[ 400.2] active_anon:2000 inactive_anon:0 isolated_anon:0
[ 400.3]  slab_reclaimable:500 slab_unreclaimable:40000
[ 400.4] Node 0 Normal free:2500kB boost:0kB min:2800kB low:3500kB high:4200kB present:262144kB
[ 400.5] 65536 pages RAM
[ 400.6] Unreclaimable slab info:
[ 400.7] Name                      Used          Total
[ 400.8] kmalloc-256            150000KB     150100KB
[ 400.9] skbuff_head_cache        2000KB       2100KB
[ 401.0] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=app,pid=12,uid=0
[ 401.1] Out of memory: Killed process 12 (app) total-vm:9000kB, anon-rss:7000kB, file-rss:100kB, shmem-rss:0kB, UID:0 pgtables:20kB oom_score_adj:0
"""
