/*
 * vmtool: the workloads and probes of the VM test suite, one static binary.
 *
 *   vmtool alloc [options]     allocate memory at a rate, in a pattern, up to a ceiling
 *   vmtool monitor FILE        sample MemAvailable every 20 ms until SIGTERM, then write a summary
 *   vmtool pidwait PID         block until PID exits (pidfd: no polling, no wake-ups)
 *   vmtool now                 wall-clock time, seconds with milliseconds
 *
 * alloc options:
 *   --name NAME         process name (comm) for board configs to match
 *   --rate MIB_S        fill rate (0: as fast as possible)
 *   --ceiling MIB       stop growing there and hold (0: no ceiling, grow until killed)
 *   --pattern P         linear (default) | burst (rate for --on s, idle for --off s)
 *                       | sawtooth (grow to the ceiling, free everything, again)
 *   --on S --off S      burst timing (default 1 and 2)
 *   --chunk KIB         allocation unit (default 256 KiB)
 *   --base MIB          allocate this much at once first (at full speed), then follow the rate
 *   --forks N           fork N workers running the same plan (a forking server);
 *                       the parent holds nothing and waits for them
 *   --progress FILE     keep "<MiB allocated> <seconds since start>" in FILE (tmpfs)
 *   --delay S           sleep before starting
 *   --fill BYTES        random bytes written at the start of every page (default 0: one
 *                       nonzero byte per page); swap on zram compresses a page to about
 *                       what is random in it, so 2048 is data that compresses 2:1
 *
 * Every chunk is written (at least one byte per page, nonzero) and its pointer kept in a global
 * array that is read back at the end, so the compiler cannot drop the allocation at -O2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)
#define MAX_CHUNKS (1 << 20)

static char *volatile chunks[MAX_CHUNKS];
static size_t nchunks;
static volatile uintptr_t checksum;
static size_t fill_bytes; /* --fill */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_real(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

struct plan {
	const char *name;
	double rate, ceiling, on, off, base, delay;
	size_t chunk;
	int forks;
	const char *pattern;
	const char *progress;
};

static int progress_fd = -1;

static void report(double allocated, double elapsed)
{
	if (progress_fd < 0)
		return;
	char buf[64];
	int n = snprintf(buf, sizeof buf, "%.1f %.3f\n", allocated / MIB, elapsed);
	if (pwrite(progress_fd, buf, n, 0) == n)
		(void)ftruncate(progress_fd, n);
}

static int grab(size_t size)
{
	if (nchunks >= MAX_CHUNKS)
		return -1;
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	for (size_t off = 0; off < size; off += 4096) {
		uint64_t *w = (uint64_t *)(p + off);
		for (size_t i = 0; i < fill_bytes / 8; i++) { /* xorshift64: incompressible */
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			w[i] = rng;
		}
		p[off] = (char)(1 + (off >> 12) % 251);
	}
	chunks[nchunks++] = p;
	return 0;
}

static void release_all(size_t size)
{
	for (size_t i = 0; i < nchunks; i++) {
		checksum += (uintptr_t)chunks[i][0];
		munmap(chunks[i], size);
		chunks[i] = NULL;
	}
	nchunks = 0;
}

static int run_plan(const struct plan *pl)
{
	double start = now_mono(), last_report = -1;
	double allocated = 0, ceiling = pl->ceiling * MIB;
	double rate = pl->rate * MIB; /* bytes per second; 0 = unlimited */
	double budget_t = start;       /* time the rate budget counts from */
	double budget_base = 0;        /* bytes allocated when it started */
	int sawtooth = strcmp(pl->pattern, "sawtooth") == 0;
	int burst = strcmp(pl->pattern, "burst") == 0;

	if (pl->base > 0) {
		while (allocated < pl->base * MIB && grab(pl->chunk) == 0)
			allocated += pl->chunk;
		budget_t = now_mono();
		budget_base = allocated;
	}
	for (;;) {
		double t = now_mono();
		if (t - last_report >= 0.02) {
			report(allocated, t - start);
			last_report = t;
		}
		if (ceiling > 0 && allocated + pl->chunk > ceiling) {
			if (sawtooth) {
				release_all(pl->chunk);
				allocated = 0;
				budget_t = now_mono();
				budget_base = 0;
				continue;
			}
			report(allocated, t - start);
			break;
		}
		if (burst) {
			double cycle = pl->on + pl->off;
			double phase = t - budget_t;
			double cycles = (double)(long)(phase / cycle);
			double in = phase - cycles * cycle;
			double due = budget_base + rate * (cycles * pl->on + (in < pl->on ? in : pl->on));
			if (rate > 0 && allocated >= due) {
				sleep_s(in < pl->on ? 0.005 : cycle - in);
				continue;
			}
		} else if (rate > 0) {
			double due = budget_base + rate * (t - budget_t);
			if (allocated >= due) {
				double wait = (allocated + pl->chunk - due) / rate;
				sleep_s(wait < 0.1 ? wait : 0.1);
				continue;
			}
		}
		if (grab(pl->chunk) < 0) {
			sleep_s(0.05);
			continue;
		}
		allocated += pl->chunk;
	}
	/* Hold what we have, forever (until a signal). */
	for (;;) {
		pause();
		for (size_t i = 0; i < nchunks; i++)
			checksum += (uintptr_t)chunks[i][0];
	}
	return 0;
}

static int cmd_alloc(int argc, char **argv)
{
	struct plan pl = { .name = NULL, .rate = 0, .ceiling = 0, .on = 1, .off = 2,
			   .chunk = 256 * 1024, .forks = 0, .pattern = "linear" };
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			fprintf(stderr, "vmtool alloc: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--name"))
			pl.name = v;
		else if (!strcmp(a, "--rate"))
			pl.rate = atof(v);
		else if (!strcmp(a, "--ceiling"))
			pl.ceiling = atof(v);
		else if (!strcmp(a, "--pattern"))
			pl.pattern = v;
		else if (!strcmp(a, "--on"))
			pl.on = atof(v);
		else if (!strcmp(a, "--off"))
			pl.off = atof(v);
		else if (!strcmp(a, "--chunk"))
			pl.chunk = (size_t)atol(v) * 1024;
		else if (!strcmp(a, "--base"))
			pl.base = atof(v);
		else if (!strcmp(a, "--forks"))
			pl.forks = atoi(v);
		else if (!strcmp(a, "--progress"))
			pl.progress = v;
		else if (!strcmp(a, "--delay"))
			pl.delay = atof(v);
		else if (!strcmp(a, "--fill"))
			fill_bytes = (size_t)atol(v) > 4096 ? 4096 : (size_t)atol(v);
		else {
			fprintf(stderr, "vmtool alloc: unknown option %s\n", a);
			return 2;
		}
	}
	if (pl.chunk < 4096)
		pl.chunk = 4096;
	if (pl.name)
		prctl(PR_SET_NAME, pl.name, 0, 0, 0);
	if (pl.progress) {
		progress_fd = open(pl.progress, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	}
	sleep_s(pl.delay);
	if (pl.forks > 0) {
		for (int i = 0; i < pl.forks; i++) {
			pid_t pid = fork();
			if (pid == 0) {
				progress_fd = -1;
				return run_plan(&pl);
			}
		}
		/* The server: holds nothing, reaps workers, lives on when some are gone. */
		for (;;) {
			if (wait(NULL) < 0 && errno == ECHILD)
				pause();
		}
	}
	return run_plan(&pl);
}

/* The monitor: every 20 ms, MemAvailable and MemFree; on SIGTERM a JSON summary. */
static volatile sig_atomic_t stop_monitor;

static void on_term(int sig)
{
	(void)sig;
	stop_monitor = 1;
}

static long meminfo_kib(const char *buf, const char *key)
{
	const char *p = strstr(buf, key);
	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static long long psi_total(int fd, const char *kind)
{
	char buf[256];
	if (fd < 0)
		return -1;
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	const char *line = strstr(buf, kind);
	if (!line)
		return -1;
	const char *t = strstr(line, "total=");
	return t ? atoll(t + 6) : -1;
}

static int cmd_monitor(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: vmtool monitor FILE LOW_KIB\n");
		return 2;
	}
	long low = atol(argv[1]);
	struct sigaction sa = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	prctl(PR_SET_NAME, "vmmonitor", 0, 0, 0);
	int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
	int psi = open("/proc/pressure/memory", O_RDONLY | O_CLOEXEC);
	long long psi_some0 = psi_total(psi, "some"), psi_full0 = psi_total(psi, "full");
	long min_avail = -1, min_free = -1;
	double start = now_mono(), below_since = -1, below_total = 0, first_below = -1, last_recovered = -1;
	double start_real = now_real();
	long samples = 0;
	char buf[4096];
	while (!stop_monitor) {
		ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
		if (n > 0) {
			buf[n] = 0;
			long avail = meminfo_kib(buf, "MemAvailable:");
			long mfree = meminfo_kib(buf, "MemFree:");
			double t = now_mono();
			samples++;
			if (min_avail < 0 || avail < min_avail)
				min_avail = avail;
			if (min_free < 0 || mfree < min_free)
				min_free = mfree;
			if (avail < low) {
				if (below_since < 0)
					below_since = t;
				if (first_below < 0)
					first_below = t;
			} else if (below_since >= 0) {
				below_total += t - below_since;
				below_since = -1;
				last_recovered = t;
			}
		}
		sleep_s(0.02);
	}
	double end = now_mono();
	if (below_since >= 0)
		below_total += end - below_since;
	FILE *out = fopen(argv[0], "w");
	if (!out)
		return 1;
	long long some = psi_total(psi, "some"), full = psi_total(psi, "full");
	fprintf(out,
		"{\"start\": %.3f, \"seconds\": %.2f, \"samples\": %ld, \"low_kib\": %ld, "
		"\"min_available_kib\": %ld, \"min_free_kib\": %ld, \"below_low_ms\": %.0f, "
		"\"recover_ms\": %.0f, \"still_below\": %s, \"psi_some_ms\": %.0f, \"psi_full_ms\": %.0f}\n",
		start_real, end - start, samples, low, min_avail, min_free, below_total * 1000,
		first_below < 0 ? 0 : ((below_since >= 0 ? end : last_recovered) - first_below) * 1000,
		below_since >= 0 ? "true" : "false",
		some >= 0 && psi_some0 >= 0 ? (some - psi_some0) / 1000.0 : -1.0,
		full >= 0 && psi_full0 >= 0 ? (full - psi_full0) / 1000.0 : -1.0);
	fclose(out);
	return 0;
}

static int cmd_pidwait(int argc, char **argv)
{
	if (argc < 1)
		return 2;
	pid_t pid = atoi(argv[0]);
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return errno == ESRCH ? 0 : 1;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: vmtool alloc|monitor|pidwait|now ...\n");
		return 2;
	}
	if (!strcmp(argv[1], "alloc"))
		return cmd_alloc(argc - 2, argv + 2);
	if (!strcmp(argv[1], "monitor"))
		return cmd_monitor(argc - 2, argv + 2);
	if (!strcmp(argv[1], "pidwait"))
		return cmd_pidwait(argc - 2, argv + 2);
	if (!strcmp(argv[1], "now")) {
		printf("%.3f\n", now_real());
		return 0;
	}
	fprintf(stderr, "vmtool: unknown command %s\n", argv[1]);
	return 2;
}
