/* guardian._rest: the daemon's loop at rest (Daemon._rest in guardian/core/daemon.py) in C.
 *
 * At rest the guardian wakes several times a second (the sleep is the headroom above the kill
 * line over the fastest fill), and on a small board under emulation each wake through the
 * Python interpreter cost three times one of earlyoom's. This loop makes the same wakes with
 * the same syscalls and no Python at all: epoll_wait(2) on the waiter's epoll set (or poll(2)
 * on its descriptors), then on a quiet timeout clock_gettime(CLOCK_MONOTONIC), pread(2) of
 * /proc/meminfo into a stack buffer, the parse of MemTotal and MemAvailable, and the next
 * sleep, all with the GIL released.
 *
 * It mirrors, and tests/unit/test_rest_c.py compares it with on many inputs:
 *   glance()          guardian.kernel.meminfo.glance_meminfo (what it rejects, it rejects)
 *   adaptive_timeout  guardian.core.waiter.adaptive_timeout (the same double arithmetic)
 *   rest()            the while loop of Daemon._rest
 * The Python versions stay: an install without a compiler, or another interpreter, runs them.
 *
 * It also makes the few libc calls os lacks (guardian.kernel.libc: mlockall, prctl, syscall,
 * timerfd, a socket filter), so that the daemon need not hold ctypes and libffi for them (~0.4 MiB resident,
 * twice that where libffi is a shared library); and stands in for the standard library's C
 * modules the daemon used for a call or two (each 30-200 KiB resident, mapped and locked): poll
 * and epoll for select, json_quote for _json, erfc for math, and a socket type for _socket (its
 * exp, erfc and sqrt use no libm: see rest_exp).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <string.h>
#include <linux/filter.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MIB_F 1048576.0
#define READ_MAX 8192   /* os.pread(fd, 8192, 0) in the Python loop */
#define FDS_ON_STACK 8
#define EPOLL_EVENTS 8  /* at most this many per wake; the rest stay ready for the next */
#define INT_MAX_STR_DIGITS 4300 /* CPython's default limit on int() of a string (3.11, 3.10.7, 3.9.14) */
/* A value in kB whose bytes fit in a long long. Python takes larger ones, which never equal
 * the kept MemTotal or make a sleep other than the ceiling: here they are a look (the loop's
 * own glance, in Python, then says what they mean). */
#define KB_MAX ((1LL << 53) - 1)

/* Py_ISSPACE: what int() skips around the digits (not str.isspace's 0x1c-0x1f) */
static int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* int(bytes) of CPython, base 10, times 1024: leading and trailing whitespace, one sign,
 * digits with single underscores between them. 0 and *out set, or -1 for what int() refuses
 * (ValueError) and for values out of range (see KB_MAX). */
static int parse_kb(const char *s, Py_ssize_t n, long long *out)
{
    Py_ssize_t i = 0, digits = 0;
    unsigned long long v = 0;
    int neg = 0, over = 0;
    char prev = 0;

    if (n < 0)
        return -1;
    while (i < n && is_space((unsigned char)s[i]))
        i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        neg = s[i] == '-';
        i++;
    }
    if (i < n && s[i] == '_')
        return -1;
    while (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_')) {
        if (s[i] == '_') {
            if (prev == '_')
                return -1;
        } else {
            digits++;
            if (!over) {
                v = v * 10 + (unsigned long long)(s[i] - '0');
                over = v > (unsigned long long)KB_MAX;
            }
        }
        prev = s[i];
        i++;
    }
    if (prev == '_' || digits == 0 || digits > INT_MAX_STR_DIGITS)
        return -1;
    while (i < n && is_space((unsigned char)s[i]))
        i++;
    if (i != n || over)
        return -1;
    *out = (neg ? -(long long)v : (long long)v) * 1024;
    return 0;
}

/* bytes.find(needle, start): the index, or -1 (NULs are bytes like any other) */
static Py_ssize_t find(const char *s, Py_ssize_t n, Py_ssize_t start, const char *needle, Py_ssize_t m)
{
    for (Py_ssize_t i = start; i + m <= n; i++) {
        if (s[i] == needle[0] && memcmp(s + i, needle, (size_t)m) == 0)
            return i;
    }
    return -1;
}

/* glance_meminfo: MemTotal first, then "\nMemAvailable:" anywhere after it; each value runs
 * from after its colon to the first "kB" after its key. 0 with both in bytes, or -1. */
static int glance(const char *d, Py_ssize_t n, long long *total, long long *available)
{
    Py_ssize_t at, k;

    if (n < 9 || memcmp(d, "MemTotal:", 9) != 0)
        return -1;
    at = find(d, n, 9, "\nMemAvailable:", 14);
    if (at < 0)
        return -1;
    k = find(d, n, 9, "kB", 2);
    if (k < 0 || parse_kb(d + 9, k - 9, total) < 0)
        return -1;
    k = find(d, n, at, "kB", 2);
    if (k < 0 || parse_kb(d + at + 14, k - (at + 14), available) < 0)
        return -1;
    return 0;
}

/* Sensor.headroom with swap on zram: MemAvailable plus what zram could still take in, from
 * SwapTotal and SwapFree (anywhere after MemTotal) at the ratio of the last full read (z_total,
 * z_free, z_relief: kernel.zram.ZramSwap's total, free, relief). 0 with *headroom set, or -1
 * where a field is missing or the product passes 64 bits (the caller then looks itself). */
static int zram_headroom(const char *d, Py_ssize_t n, long long available, long long z_total, long long z_free,
                         long long z_relief, long long *headroom)
{
    Py_ssize_t at, k;
    long long swap_total, swap_free, disk_free, zram_free;

    *headroom = available;
    at = find(d, n, 9, "\nSwapTotal:", 11);
    if (at < 0 || (k = find(d, n, at, "kB", 2)) < 0 || parse_kb(d + at + 11, k - (at + 11), &swap_total) < 0)
        return -1;
    at = find(d, n, 9, "\nSwapFree:", 10);
    if (at < 0 || (k = find(d, n, at, "kB", 2)) < 0 || parse_kb(d + at + 10, k - (at + 10), &swap_free) < 0)
        return -1;
    if (z_free <= 0 || swap_total <= 0)
        return 0;
    disk_free = swap_total > z_total && swap_free > z_free ? swap_free - z_free : 0;
    zram_free = swap_free - disk_free < z_free ? swap_free - disk_free : z_free;
    if (zram_free <= 0)
        return 0;
    if (z_relief < 0 || (z_relief > 0 && (unsigned long long)zram_free > ULLONG_MAX / (unsigned long long)z_relief))
        return -1;
    *headroom = available + (long long)((unsigned long long)z_relief * (unsigned long long)zram_free /
                                        (unsigned long long)z_free);
    return 0;
}

/* adaptive_timeout(headroom, fill_rate, wait, armed), `ceiling` being max_timeout_s when armed
 * else max_timeout_poll_s. Python's max(a, b) is a unless b > a; min(a, b) is a unless b < a. */
static double adaptive(long long headroom, double fill, double assumed_mib_s, double min_s, double ceiling)
{
    double rate = assumed_mib_s * MIB_F, twice = 2.0 * fill, t;

    if (twice > rate)
        rate = twice;
    if (headroom <= 0)
        return min_s;
    t = (double)headroom / rate;
    if (t < ceiling)
        ceiling = t;
    return ceiling > min_s ? ceiling : min_s;
}

/* time.monotonic(): nanoseconds of CLOCK_MONOTONIC to seconds, as CPython rounds them */
static double monotonic_s(void)
{
    struct timespec ts;
    long long ns;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    if (ns % 1000000000LL == 0)
        return (double)(ns / 1000000000LL);
    return (double)ns / 1e9;
}

/* poll.poll(timeout * 1000.0): milliseconds rounded up. The loop never sleeps forever: a
 * timeout <= 0 polls without waiting (the daemon never passes one). */
static int to_ms(double timeout)
{
    double ms = timeout * 1000.0;
    int whole;

    if (!(ms > 0.0))
        return 0;
    if (ms >= (double)INT_MAX)
        return INT_MAX;
    whole = (int)ms;  /* ceil, without libm (see rest_exp) */
    return whole + (ms > (double)whole);
}

static long long sub_sat(long long a, long long b)
{
    long long r;

    if (__builtin_sub_overflow(a, b, &r))
        return b < 0 ? LLONG_MAX : LLONG_MIN;
    return r;
}

static long long floor_div(long long a, long long b)
{
    long long q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

enum { KIND_EVENTS, KIND_SIGNAL, KIND_LOOK, KIND_ERROR };

PyDoc_STRVAR(rest_doc,
"rest(fds, meminfo_fd, timeout, until, line, kill, total, before, fill,\n"
"     assumed_fill_rate_mib_s, min_timeout_s, ceiling, zram=None) -> (kind, events, last_time, last_available)\n\n"
"Daemon._rest's loop: poll fds ((fd, events) pairs; or wait on fds, an epoll descriptor holding\n"
"them, which costs a wake less) for timeout seconds; on a quiet timeout\n"
"before until (time.monotonic() seconds), read meminfo_fd and, while MemTotal == total and\n"
"MemAvailable is >= line and has not fallen by more than total // 100 since before, sleep\n"
"again for min(adaptive_timeout(available - kill, ...), until - now). kind: \"events\" (events\n"
"is the list of (fd, revents) poll returned), \"signal\" (a wait was interrupted; the signal\n"
"handlers have run), \"look\" (due, not at ease, or the read or parse failed: the caller\n"
"glances itself). last_time, last_available: the last quiet glance (None, before if none).\n"
"zram: None, or (total, free, relief) of the last full read of swap on zram: MemAvailable is\n"
"then the headroom Sensor.headroom makes of it with SwapTotal and SwapFree.");

static PyObject *rest(PyObject *self, PyObject *args)
{
    PyObject *fds_obj, *zram_obj = Py_None, *seq = NULL, *result = NULL, *events = NULL, *last_time;
    long long z_total = 0, z_free = 0, z_relief = 0;
    int with_zram = 0;
    int meminfo_fd, kind = KIND_LOOK, err = 0, nready = 0, looked = 0;
    double timeout, until, fill, assumed, min_s, ceiling, last_t = 0.0;
    long long line, kill, total, before;
    struct pollfd on_stack[FDS_ON_STACK], *pfds = on_stack;
    struct epoll_event ready[EPOLL_EVENTS];
    Py_ssize_t nfds = 0, i;
    int epfd = -1;
    static const char *const kinds[] = {"events", "signal", "look"};

    (void)self;
    if (!PyArg_ParseTuple(args, "OiddLLLLdddd|O:rest", &fds_obj, &meminfo_fd, &timeout, &until, &line, &kill,
                          &total, &before, &fill, &assumed, &min_s, &ceiling, &zram_obj))
        return NULL;
    if (zram_obj != Py_None) {
        if (!PyArg_ParseTuple(zram_obj, "LLL;rest: zram must be None or (total, free, relief)", &z_total, &z_free,
                              &z_relief))
            return NULL;
        with_zram = 1;
    }
    if (PyLong_Check(fds_obj)) {  /* an epoll descriptor */
        long fd = PyLong_AsLong(fds_obj);  /* not _PyLong_AsInt: Python 3.13 took it out of the API */
        if (fd == -1 && PyErr_Occurred())
            return NULL;
        if (fd < 0 || fd > INT_MAX) {
            PyErr_SetString(PyExc_ValueError, "rest: file descriptor out of range");
            return NULL;
        }
        epfd = (int)fd;
    } else {
        seq = PySequence_Fast(fds_obj, "rest: fds must be a sequence of (fd, events) or an epoll descriptor");
        if (seq == NULL)
            return NULL;
        nfds = PySequence_Fast_GET_SIZE(seq);
    }
    if (nfds > FDS_ON_STACK) {
        pfds = PyMem_New(struct pollfd, (size_t)nfds);
        if (pfds == NULL) {
            Py_XDECREF(seq);
            return PyErr_NoMemory();
        }
    }
    for (i = 0; i < nfds; i++) {
        int fd, mask;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "ii;rest: fds must be (fd, events) pairs",
                              &fd, &mask))
            goto done;
        if (fd < 0) {
            PyErr_SetString(PyExc_ValueError, "rest: negative file descriptor");
            goto done;
        }
        pfds[i].fd = fd;
        pfds[i].events = (short)mask;
        pfds[i].revents = 0;
    }

    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        char buf[READ_MAX];
        ssize_t got;
        long long avail_total, available;
        double now, next, left;

        if (epfd >= 0)
            nready = epoll_wait(epfd, ready, EPOLL_EVENTS, to_ms(timeout));
        else
            nready = poll(pfds, (nfds_t)nfds, to_ms(timeout));
        if (nready < 0) {
            err = errno;
            kind = err == EINTR ? KIND_SIGNAL : KIND_ERROR;
            break;
        }
        if (nready > 0) {
            kind = KIND_EVENTS;
            break;
        }
        now = monotonic_s();
        if (now >= until)
            break;
        got = pread(meminfo_fd, buf, sizeof buf, 0);
        if (got < 0) {
            kind = errno == EINTR ? KIND_SIGNAL : KIND_LOOK;
            break;
        }
        if (glance(buf, got, &avail_total, &available) < 0 || avail_total != total)
            break;
        if (with_zram && zram_headroom(buf, got, available, z_total, z_free, z_relief, &available) < 0)
            break;
        if (available < line || available < sub_sat(before, floor_div(total, 100)))
            break;
        before = available;
        last_t = now;
        looked = 1;
        next = adaptive(sub_sat(available, kill), fill, assumed, min_s, ceiling);
        left = until - now;
        timeout = left < next ? left : next;
    }
    Py_END_ALLOW_THREADS

    if (kind == KIND_ERROR) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    if (kind == KIND_SIGNAL && PyErr_CheckSignals() < 0)
        goto done;  /* a handler raised: so does the wait, as poll.poll() would */
    if (kind == KIND_EVENTS) {
        Py_ssize_t j = 0;
        events = PyList_New(nready);
        if (events == NULL)
            goto done;
        for (i = 0; epfd >= 0 && i < nready; i++) {  /* select.epoll keeps the fd as the event's data */
            PyObject *pair = Py_BuildValue("(ii)", ready[i].data.fd, (int)(ready[i].events & 0xffff));
            if (pair == NULL)
                goto done;
            PyList_SET_ITEM(events, j++, pair);
        }
        for (i = 0; epfd < 0 && i < nfds && j < nready; i++) {
            PyObject *pair;
            if (!pfds[i].revents)
                continue;
            pair = Py_BuildValue("(ii)", pfds[i].fd, pfds[i].revents & 0xffff);
            if (pair == NULL)
                goto done;
            PyList_SET_ITEM(events, j++, pair);
        }
    } else {
        Py_INCREF(Py_None);
        events = Py_None;
    }
    if (looked) {
        last_time = PyFloat_FromDouble(last_t);
        if (last_time == NULL)
            goto done;
    } else {
        Py_INCREF(Py_None);
        last_time = Py_None;
    }
    result = Py_BuildValue("(sNNL)", kinds[kind], events, last_time, before);
    events = NULL;  /* N: stolen, or dropped if the tuple failed */

done:
    Py_XDECREF(events);
    Py_XDECREF(seq);
    if (pfds != on_stack)
        PyMem_Free(pfds);
    return result;
}

PyDoc_STRVAR(glance_doc,
"glance(data) -> (total, available) or None\n\n"
"glance_meminfo in C, for the tests; None also for values whose bytes overflow 64 bits.");

static PyObject *py_glance(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    long long total, available;
    int bad;

    (void)self;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    bad = glance((const char *)view.buf, view.len, &total, &available);
    PyBuffer_Release(&view);
    if (bad)
        Py_RETURN_NONE;
    return Py_BuildValue("(LL)", total, available);
}

PyDoc_STRVAR(headroom_doc,
"zram_headroom(data, available, z_total, z_free, z_relief) -> headroom or None\n\n"
"rest()'s headroom with swap on zram, for the tests (Sensor.headroom's).");

static PyObject *py_zram_headroom(PyObject *self, PyObject *args)
{
    Py_buffer view;
    long long available, z_total, z_free, z_relief, headroom;
    int ret;

    (void)self;
    if (!PyArg_ParseTuple(args, "y*LLLL:zram_headroom", &view, &available, &z_total, &z_free, &z_relief))
        return NULL;
    ret = zram_headroom((const char *)view.buf, view.len, available, z_total, z_free, z_relief, &headroom);
    PyBuffer_Release(&view);
    if (ret < 0)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(headroom);
}

PyDoc_STRVAR(adaptive_doc,
"adaptive_timeout(headroom, fill_rate, assumed_fill_rate_mib_s, min_timeout_s, ceiling) -> float\n\n"
"waiter.adaptive_timeout in C, for the tests.");

static PyObject *py_adaptive(PyObject *self, PyObject *args)
{
    long long headroom;
    double fill, assumed, min_s, ceiling;

    (void)self;
    if (!PyArg_ParseTuple(args, "Ldddd:adaptive_timeout", &headroom, &fill, &assumed, &min_s, &ceiling))
        return NULL;
    return PyFloat_FromDouble(adaptive(headroom, fill, assumed, min_s, ceiling));
}

/* ------------------------------------------------------------------ the libc calls os lacks
 * Each returns the call's result, or raises OSError with its errno (as os does). */

PyDoc_STRVAR(mlockall_doc, "mlockall(flags) -> 0");

static PyObject *py_mlockall(PyObject *self, PyObject *args)
{
    int flags;

    (void)self;
    if (!PyArg_ParseTuple(args, "i:mlockall", &flags))
        return NULL;
    if (mlockall(flags) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(0);
}

PyDoc_STRVAR(prctl_doc, "prctl(option, arg2=0, arg3=0, arg4=0, arg5=0) -> int");

static PyObject *py_prctl(PyObject *self, PyObject *args)
{
    int option, ret;
    unsigned long arg[4] = {0, 0, 0, 0};

    (void)self;
    if (!PyArg_ParseTuple(args, "i|kkkk:prctl", &option, &arg[0], &arg[1], &arg[2], &arg[3]))
        return NULL;
    ret = prctl(option, arg[0], arg[1], arg[2], arg[3]);
    if (ret == -1)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(ret);
}

PyDoc_STRVAR(syscall_doc,
"syscall(number, *args) -> int\n\n"
"syscall(2) with up to six integer arguments; the GIL is released (process_mrelease reaps a\n"
"whole address space before it returns).");

static PyObject *py_syscall(PyObject *self, PyObject *args)
{
    long number, ret, arg[6] = {0, 0, 0, 0, 0, 0};

    (void)self;
    if (!PyArg_ParseTuple(args, "l|llllll:syscall", &number, &arg[0], &arg[1], &arg[2], &arg[3], &arg[4], &arg[5]))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    ret = syscall(number, arg[0], arg[1], arg[2], arg[3], arg[4], arg[5]);
    Py_END_ALLOW_THREADS
    if (ret == -1)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(ret);
}

PyDoc_STRVAR(eventfd_doc, "eventfd(initval, flags) -> fd (os.eventfd came in Python 3.10)");

static PyObject *py_eventfd(PyObject *self, PyObject *args)
{
    unsigned int initval;
    int flags, fd;

    (void)self;
    if (!PyArg_ParseTuple(args, "Ii:eventfd", &initval, &flags))
        return NULL;
    fd = eventfd(initval, flags);
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(fd);
}

PyDoc_STRVAR(timerfd_create_doc, "timerfd_create(clockid, flags) -> fd");

static PyObject *py_timerfd_create(PyObject *self, PyObject *args)
{
    int clockid, flags, fd;

    (void)self;
    if (!PyArg_ParseTuple(args, "ii:timerfd_create", &clockid, &flags))
        return NULL;
    fd = timerfd_create(clockid, flags);
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(fd);
}

PyDoc_STRVAR(timerfd_settime_doc,
"timerfd_settime(fd, interval_s) -> 0\n\n"
"Fire every interval_s seconds from now on (0: stop), as the keeper's ticker wants.");

static PyObject *py_timerfd_settime(PyObject *self, PyObject *args)
{
    int fd;
    double interval, whole;
    struct itimerspec spec;

    (void)self;
    if (!PyArg_ParseTuple(args, "id:timerfd_settime", &fd, &interval))
        return NULL;
    if (!(interval >= 0.0) || interval > (double)INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "timerfd_settime: interval_s must be in 0..INT_MAX");
        return NULL;
    }
    whole = (double)(time_t)interval;  /* floor and round of non-negative numbers, without libm */
    spec.it_interval.tv_sec = spec.it_value.tv_sec = (time_t)whole;
    spec.it_interval.tv_nsec = spec.it_value.tv_nsec = (long)((interval - whole) * 1e9 + 0.5);
    if (spec.it_value.tv_nsec >= 1000000000L) {  /* 0.9999999999 rounds up to the next second */
        spec.it_interval.tv_sec = spec.it_value.tv_sec = (time_t)whole + 1;
        spec.it_interval.tv_nsec = spec.it_value.tv_nsec = 0;
    }
    if (timerfd_settime(fd, 0, &spec, NULL) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(0);
}

PyDoc_STRVAR(attach_filter_doc,
"attach_filter(fd, program) -> 0\n\n"
"setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER) with a classic BPF program (8-byte instructions):\n"
"the sock_fprog points at the program, which Python's setsockopt cannot say.");

static PyObject *py_attach_filter(PyObject *self, PyObject *args)
{
    int fd, ret;
    Py_buffer prog;
    struct sock_fprog fprog;

    (void)self;
    if (!PyArg_ParseTuple(args, "iy*:attach_filter", &fd, &prog))
        return NULL;
    if (prog.len == 0 || prog.len % sizeof(struct sock_filter) != 0 ||
            prog.len / sizeof(struct sock_filter) > 0xffff) {
        PyBuffer_Release(&prog);
        PyErr_SetString(PyExc_ValueError, "attach_filter: the program must be 1..65535 8-byte instructions");
        return NULL;
    }
    fprog.len = (unsigned short)(prog.len / sizeof(struct sock_filter));
    fprog.filter = (struct sock_filter *)prog.buf;
    ret = setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog));  /* the kernel copies it */
    PyBuffer_Release(&prog);
    if (ret != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(0);
}

/* ------------------------------------------------------------------ what a C module each cost
 * The daemon used select (poll, epoll), _json (encode_basestring_ascii) and math (erfc) for one
 * or two calls each; each extension module held 30-80 KiB of RSS, mapped and locked. */

PyDoc_STRVAR(poll_doc,
"poll(fds, timeout_s) -> [(fd, revents), ...]\n\n"
"poll(2) on (fd, events) pairs, as select.poll().poll(timeout_s * 1000) on them: the timeout in\n"
"milliseconds rounded up, a negative one waits for ever; the GIL is released; a signal runs its\n"
"handler and the wait goes on.");

static PyObject *py_poll(PyObject *self, PyObject *args)
{
    PyObject *seq, *fast, *out;
    int timeout, ret, err;
    double timeout_s, deadline;
    Py_ssize_t n, i;
    struct pollfd stack[FDS_ON_STACK], *pfds = stack;

    (void)self;
    if (!PyArg_ParseTuple(args, "Od:poll", &seq, &timeout_s))
        return NULL;
    timeout = timeout_s < 0.0 ? -1 : to_ms(timeout_s);
    fast = PySequence_Fast(seq, "poll: fds must be a sequence of (fd, events)");
    if (fast == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(fast);
    if (n > FDS_ON_STACK && (pfds = PyMem_New(struct pollfd, n)) == NULL) {
        Py_DECREF(fast);
        return PyErr_NoMemory();
    }
    for (i = 0; i < n; i++) {
        int fd, events;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "ii;poll: each fd is an (fd, events) pair",
                              &fd, &events))
            goto fail;
        pfds[i].fd = fd;
        pfds[i].events = (short)events;
        pfds[i].revents = 0;
    }
    deadline = monotonic_s() + timeout_s;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        ret = poll(pfds, (nfds_t)n, timeout);
        err = errno;
        Py_END_ALLOW_THREADS
        if (ret >= 0 || err != EINTR)
            break;
        /* as select.poll (PEP 475): run the signal handlers, then wait out the rest */
        if (PyErr_CheckSignals() != 0)
            goto fail;
        if (timeout > 0)
            timeout = to_ms(deadline - monotonic_s());
    }
    if (ret < 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        goto fail;
    }
    if ((out = PyList_New(0)) == NULL)
        goto fail;
    for (i = 0; i < n && ret > 0; i++) {
        PyObject *pair;
        if (!pfds[i].revents)
            continue;
        ret--;
        pair = Py_BuildValue("(ii)", pfds[i].fd, (int)(unsigned short)pfds[i].revents);
        if (pair == NULL || PyList_Append(out, pair) != 0) {
            Py_XDECREF(pair);
            Py_DECREF(out);
            goto fail;
        }
        Py_DECREF(pair);
    }
    if (pfds != stack)
        PyMem_Free(pfds);
    Py_DECREF(fast);
    return out;
fail:
    if (pfds != stack)
        PyMem_Free(pfds);
    Py_DECREF(fast);
    return NULL;
}

PyDoc_STRVAR(epoll_create_doc, "epoll_create() -> fd\n\nepoll_create1(EPOLL_CLOEXEC).");

static PyObject *py_epoll_create(PyObject *self, PyObject *noargs)
{
    int fd;

    (void)self;
    (void)noargs;
    fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(fd);
}

PyDoc_STRVAR(epoll_add_doc,
"epoll_add(epfd, fd, events) -> 0\n\n"
"epoll_ctl(EPOLL_CTL_ADD) of fd, its data the fd (what rest() returns): select.epoll's register.");

static PyObject *py_epoll_add(PyObject *self, PyObject *args)
{
    int epfd, fd;
    unsigned int events;
    struct epoll_event ev;

    (void)self;
    if (!PyArg_ParseTuple(args, "iiI:epoll_add", &epfd, &fd, &events))
        return NULL;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.fd = fd;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(0);
}

PyDoc_STRVAR(json_quote_doc,
"json_quote(text) -> str\n\n"
"text as a JSON string, quotes included, in ASCII: _json.encode_basestring_ascii's output\n"
"(\\\" \\\\ \\n \\r \\t \\b \\f, other characters below 0x20 and above 0x7e as \\uXXXX,\n"
"those above 0xffff as a surrogate pair; a lone surrogate as itself escaped).");

static PyObject *py_json_quote(PyObject *self, PyObject *arg)
{
    static const char hex[] = "0123456789abcdef";
    Py_ssize_t n, i, size = 2;
    int kind;
    const void *data;
    PyObject *out;
    Py_UCS1 *o;

    (void)self;
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "json_quote: str expected, not %.80s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    if (PyUnicode_READY(arg) < 0)
        return NULL;
    n = PyUnicode_GET_LENGTH(arg);
    kind = PyUnicode_KIND(arg);
    data = PyUnicode_DATA(arg);
    for (i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        Py_ssize_t d;
        if (c >= ' ' && c <= '~' && c != '"' && c != '\\')
            d = 1;
        else if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f')
            d = 2;
        else
            d = c > 0xffff ? 12 : 6;
        if (size > PY_SSIZE_T_MAX - d) {
            PyErr_SetString(PyExc_OverflowError, "json_quote: string is too long to escape");
            return NULL;
        }
        size += d;
    }
    if ((out = PyUnicode_New(size, 127)) == NULL)
        return NULL;
    o = PyUnicode_1BYTE_DATA(out);
    *o++ = '"';
    for (i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c >= ' ' && c <= '~' && c != '"' && c != '\\') {
            *o++ = (Py_UCS1)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; continue;
        case '\\': *o++ = '\\'; continue;
        case '\n': *o++ = 'n'; continue;
        case '\r': *o++ = 'r'; continue;
        case '\t': *o++ = 't'; continue;
        case '\b': *o++ = 'b'; continue;
        case '\f': *o++ = 'f'; continue;
        }
        if (c > 0xffff) {  /* a surrogate pair, each as \uXXXX */
            Py_UCS4 v = c - 0x10000, hi = 0xd800 | ((v >> 10) & 0x3ff);
            *o++ = 'u';
            *o++ = hex[(hi >> 12) & 0xf]; *o++ = hex[(hi >> 8) & 0xf];
            *o++ = hex[(hi >> 4) & 0xf]; *o++ = hex[hi & 0xf];
            *o++ = '\\';
            c = 0xdc00 | (v & 0x3ff);
        }
        *o++ = 'u';
        *o++ = hex[(c >> 12) & 0xf]; *o++ = hex[(c >> 8) & 0xf];
        *o++ = hex[(c >> 4) & 0xf]; *o++ = hex[c & 0xf];
    }
    *o++ = '"';
    return out;
}

/* ------------------------------------------------------------------ exp, erfc, sqrt: no libm
 * The leak trend's p-value (erfc, sqrt) and the fill rate's decaying peak (exp) run at rest.
 * The first call of libm's pow or erfc maps its code and tables, 64-240 KiB of libm as the kernel
 * maps it around each fault, into the guardian's locked memory; these use none of libm:
 *   exp   x = k ln2 + r with |r| <= ln2/2, exp(r) by its Taylor series to r^13 (relative error
 *         below 1e-17 there), times 2^k made from its bits; within 1 ulp of libm's
 *   erfc  1 - erf by erf's power series below 1.5, else erfc's continued fraction; within
 *         1e-13 of libm's, relative to it
 *   sqrt  the processor's square root instruction (built with -fno-math-errno)
 * tests/integration/kernel/test_poll_calls.py compares them with math's, and checks that they
 * map no page of libm. */

static const double LN2_HI = 6.93147180369123816490e-01;  /* ln 2 in two parts: k * LN2_HI is exact */
static const double LN2_LO = 1.90821492927058770002e-10;
static const double INV_LN2 = 1.44269504088896338700e+00;
static const double SQRT_PI = 1.77245385090551602729816748334114518;

static double scale2(double p, int k)  /* p * 2^k, k in -1100..1024 */
{
    union { double d; unsigned long long u; } two;

    if (k > 1023) {
        p *= 2.0;
        k -= 1;
    } else if (k < -1021) {  /* a subnormal result: two steps, the first exact */
        p *= 8.67361737988403547206e-19;  /* 2^-60 */
        k += 60;
    }
    two.u = (unsigned long long)(k + 1023) << 52;
    return p * two.d;
}

static double rest_exp(double x)
{
    double r, p;
    int k, i;

    if (x != x)
        return x;
    if (x > 709.782712893384)
        return HUGE_VAL;
    if (x < -745.2)
        return 0.0;
    k = (int)(x * INV_LN2 + (x < 0.0 ? -0.5 : 0.5));
    r = (x - k * LN2_HI) - k * LN2_LO;
    p = 1.0;
    for (i = 13; i >= 1; i--)
        p = 1.0 + p * r / i;
    return scale2(p, k);
}

static double rest_erfc(double x)
{
    double ax = x < 0.0 ? -x : x, x2 = x * x, acc, fk, a, da, p, p0, q, q0, b, t, cf;
    int i;

    if (x != x)
        return x;
    if (ax < 1.5) {  /* erf(x) = 2x exp(-x^2) / sqrt(pi) * sum (2x^2)^n / (1*3*...*(2n+1)) */
        acc = 0.0;
        fk = 25.5;
        for (i = 0; i < 25; i++) {
            acc = 2.0 + x2 * acc / fk;
            fk -= 1.0;
        }
        return 1.0 - acc * x * rest_exp(-x2) / SQRT_PI;
    }
    if (ax >= 30.0) {
        cf = 0.0;
    } else {  /* erfc(x) = exp(-x^2) / sqrt(pi) * x / (x^2 + 1/2 - (1/2) / (x^2 + 5/2 - ...)) */
        a = 0.0;
        da = 0.5;
        p = 1.0;
        p0 = 0.0;
        q = da + x2;
        q0 = 1.0;
        for (i = 0; i < 50; i++) {
            a += da;
            da += 2.0;
            b = da + x2;
            t = p;
            p = b * p - a * p0;
            p0 = t;
            t = q;
            q = b * q - a * q0;
            q0 = t;
        }
        cf = p / q * ax * rest_exp(-x2) / SQRT_PI;
    }
    return x > 0.0 ? cf : 2.0 - cf;
}

static double float_arg(PyObject *arg, int *failed)
{
    double x = PyFloat_AsDouble(arg);

    *failed = x == -1.0 && PyErr_Occurred();
    return x;
}

PyDoc_STRVAR(exp_doc, "exp(x) -> float\n\nmath.exp(x), without libm (within 1 ulp of it).");

static PyObject *py_exp(PyObject *self, PyObject *arg)
{
    int failed;
    double x = float_arg(arg, &failed);

    (void)self;
    if (failed)
        return NULL;
    if (x > 709.782712893384 && x != HUGE_VAL) {
        PyErr_SetString(PyExc_OverflowError, "math range error");
        return NULL;
    }
    return PyFloat_FromDouble(rest_exp(x));
}

PyDoc_STRVAR(erfc_doc, "erfc(x) -> float\n\nmath.erfc(x), without libm (within 1e-13 of it, relatively).");

static PyObject *py_erfc(PyObject *self, PyObject *arg)
{
    int failed;
    double x = float_arg(arg, &failed);

    (void)self;
    if (failed)
        return NULL;
    return PyFloat_FromDouble(rest_erfc(x));
}

PyDoc_STRVAR(sqrt_doc, "sqrt(x) -> float\n\nmath.sqrt(x), without libm.");

static PyObject *py_sqrt(PyObject *self, PyObject *arg)
{
    int failed;
    double x = float_arg(arg, &failed);

    (void)self;
    if (failed)
        return NULL;
    if (x < 0.0) {
        PyErr_SetString(PyExc_ValueError, "math domain error");
        return NULL;
    }
    return PyFloat_FromDouble(__builtin_sqrt(x));
}

/* ------------------------------------------------------------------ socket: _socket's, in part
 * guardian._rest.socket(family, type, proto=0): the daemon's sockets (the netlink proc connector
 * and uevents, syslog, sd_notify) without _socket, Python's socket module in C (~0.1-0.2 MiB
 * resident, mapped and locked). AF_UNIX and AF_NETLINK only, and only the methods the daemon
 * calls; those take the same arguments, return the same results and addresses and raise the same
 * exceptions as _socket.socket's (tests/integration/kernel/test_rest_socket.py runs both). As
 * _socket: always close-on-exec; `type` without SOCK_NONBLOCK and SOCK_CLOEXEC; a call a signal
 * interrupts runs the handlers, then is made again (PEP 475); the GIL is released around the calls
 * that may block. There are no timeouts: blocking or not is the descriptor's O_NONBLOCK.
 * The headers are here, not at the top, so that this section stands alone. */
#include <fcntl.h>
#include <stddef.h>
#include <structmember.h>
#include <sys/un.h>
#include <linux/netlink.h>

typedef struct {
    PyObject_HEAD
    int fd;  /* -1 once closed or detached */
    int family;
    int type;
    int proto;
} SocketObject;

typedef union {
    struct sockaddr sa;
    struct sockaddr_un un;
    struct sockaddr_nl nl;
} SockAddr;

/* After a failed call: 1 to make it again (EINTR, and the signal handlers did not raise), else 0
 * with the exception set. */
static int again(void)
{
    if (errno == EINTR && PyErr_CheckSignals() == 0)
        return 1;
    if (!PyErr_Occurred())
        PyErr_SetFromErrno(PyExc_OSError);
    return 0;
}

/* An address as _socket's getsockaddrarg takes it: for AF_NETLINK a (pid, groups) tuple, for
 * AF_UNIX a path, str (in the file system encoding) or bytes, where a leading NUL (or nothing:
 * autobind) is Linux's abstract namespace, whose names have no terminating NUL. 0 with *len set,
 * or -1 with the exception set. */
static int sockaddr_from(const SocketObject *s, PyObject *obj, SockAddr *addr, socklen_t *len, const char *caller)
{
    PyObject *bytes;
    Py_buffer path;
    int abstract, ret = -1;

    memset(addr, 0, sizeof *addr);
    if (s->family == AF_NETLINK) {
        unsigned int pid, groups;
        if (!PyTuple_Check(obj)) {
            PyErr_Format(PyExc_TypeError, "%s(): AF_NETLINK address must be tuple, not %.500s", caller,
                         Py_TYPE(obj)->tp_name);
            return -1;
        }
        if (!PyArg_ParseTuple(obj, "II;AF_NETLINK address must be a pair (pid, groups)", &pid, &groups))
            return -1;
        addr->nl.nl_family = AF_NETLINK;
        addr->nl.nl_pid = pid;
        addr->nl.nl_groups = groups;
        *len = sizeof addr->nl;
        return 0;
    }
    if (PyUnicode_Check(obj)) {
        bytes = PyUnicode_EncodeFSDefault(obj);
        if (bytes == NULL)
            return -1;
    } else {
        Py_INCREF(obj);
        bytes = obj;
    }
    if (!PyArg_Parse(bytes, "y*", &path)) {
        Py_DECREF(bytes);
        return -1;
    }
    abstract = path.len == 0 || ((const char *)path.buf)[0] == 0;
    if ((size_t)path.len + !abstract > sizeof addr->un.sun_path) {
        PyErr_SetString(PyExc_OSError, "AF_UNIX path too long");
    } else {
        addr->un.sun_family = AF_UNIX;
        memcpy(addr->un.sun_path, path.buf, (size_t)path.len);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)path.len + !abstract);
        ret = 0;
    }
    PyBuffer_Release(&path);
    Py_DECREF(bytes);
    return ret;
}

/* A sender's address as _socket's makesockaddr makes it: None for none (an unbound AF_UNIX
 * sender), (port_id, groups) for AF_NETLINK, bytes for an abstract AF_UNIX name, else a str. */
static PyObject *sockaddr_to(const SocketObject *s, const SockAddr *addr, socklen_t len)
{
    size_t path_len;

    if (len == 0)
        Py_RETURN_NONE;
    if (s->family == AF_NETLINK)
        return Py_BuildValue("(II)", addr->nl.nl_pid, addr->nl.nl_groups);
    if (len > sizeof addr->un)  /* the kernel says how long the name was, not how much it wrote */
        len = sizeof addr->un;
    path_len = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    if (path_len > 0 && addr->un.sun_path[0] == 0)
        return PyBytes_FromStringAndSize(addr->un.sun_path, (Py_ssize_t)path_len);
    return PyUnicode_DecodeFSDefaultAndSize(addr->un.sun_path, (Py_ssize_t)strnlen(addr->un.sun_path, path_len));
}

PyDoc_STRVAR(socket_doc,
"socket(family, type, proto=0)\n\n"
"_socket.socket's methods the daemon calls, for AF_UNIX and AF_NETLINK (see guardian/_rest.c).");

static PyObject *sock_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"family", "type", "proto", NULL};
    int family, kind, proto = 0, fd;
    SocketObject *s;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "ii|i:socket", kwlist, &family, &kind, &proto))
        return NULL;
    if (family != AF_UNIX && family != AF_NETLINK) {  /* no other family's addresses are known here */
        errno = EAFNOSUPPORT;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    fd = socket(family, kind | SOCK_CLOEXEC, proto);
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    s = (SocketObject *)type->tp_alloc(type, 0);
    if (s == NULL) {
        close(fd);
        return NULL;
    }
    s->fd = fd;
    s->family = family;
    s->type = kind & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    s->proto = proto;
    return (PyObject *)s;
}

/* Unlike _socket, no ResourceWarning: the daemon lets go of sockets it is done with. */
static void sock_dealloc(PyObject *self)
{
    SocketObject *s = (SocketObject *)self;

    if (s->fd >= 0)
        close(s->fd);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *sock_fileno(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLong(((SocketObject *)self)->fd);
}

static PyObject *sock_detach(PyObject *self, PyObject *unused)
{
    SocketObject *s = (SocketObject *)self;
    int fd = s->fd;

    (void)unused;
    s->fd = -1;
    return PyLong_FromLong(fd);
}

static PyObject *sock_close(PyObject *self, PyObject *unused)
{
    SocketObject *s = (SocketObject *)self;
    int fd = s->fd, ret;

    (void)unused;
    if (fd < 0)
        Py_RETURN_NONE;
    s->fd = -1;
    Py_BEGIN_ALLOW_THREADS
    ret = close(fd);  /* not again after EINTR: the descriptor is gone either way */
    Py_END_ALLOW_THREADS
    if (ret < 0 && errno != ECONNRESET)  /* the peer's reset is no error of ours (_socket, bpo-30319) */
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *sock_setblocking(PyObject *self, PyObject *arg)
{
    int fd = ((SocketObject *)self)->fd, flags;
    long block = PyLong_AsLong(arg);

    if (block == -1 && PyErr_Occurred())
        return NULL;
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, block ? flags & ~O_NONBLOCK : flags | O_NONBLOCK) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *sock_bind(PyObject *self, PyObject *arg)
{
    SocketObject *s = (SocketObject *)self;
    SockAddr addr;
    socklen_t len;

    if (sockaddr_from(s, arg, &addr, &len, "bind") < 0)
        return NULL;
    if (bind(s->fd, &addr.sa, len) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

/* Made again after EINTR like the others, which is right for AF_UNIX (interrupted, a connect has
 * not begun), not for TCP's, which _socket then waits for. */
static PyObject *sock_connect(PyObject *self, PyObject *arg)
{
    SocketObject *s = (SocketObject *)self;
    SockAddr addr;
    socklen_t len;
    int fd, ret;

    if (sockaddr_from(s, arg, &addr, &len, "connect") < 0)
        return NULL;
    do {
        fd = s->fd;
        Py_BEGIN_ALLOW_THREADS
        ret = connect(fd, &addr.sa, len);
        Py_END_ALLOW_THREADS
    } while (ret < 0 && again());
    if (ret < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* send and sendto (addr not NULL): the count sent, or NULL with the exception set. Releases data. */
static PyObject *transmit(SocketObject *s, Py_buffer *data, int flags, const SockAddr *addr, socklen_t len)
{
    ssize_t n;
    int fd;

    do {
        fd = s->fd;
        Py_BEGIN_ALLOW_THREADS
        n = sendto(fd, data->buf, (size_t)data->len, flags, addr ? &addr->sa : NULL, len);
        Py_END_ALLOW_THREADS
    } while (n < 0 && again());
    PyBuffer_Release(data);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *sock_send(PyObject *self, PyObject *args)
{
    Py_buffer data;
    int flags = 0;

    if (!PyArg_ParseTuple(args, "y*|i:send", &data, &flags))
        return NULL;
    return transmit((SocketObject *)self, &data, flags, NULL, 0);
}

static PyObject *sock_sendto(PyObject *self, PyObject *args)
{
    Py_buffer data;
    PyObject *addr_obj;
    SockAddr addr;
    socklen_t len;

    if (!PyArg_ParseTuple(args, "y*O:sendto", &data, &addr_obj))
        return NULL;
    if (sockaddr_from((SocketObject *)self, addr_obj, &addr, &len, "sendto") < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    return transmit((SocketObject *)self, &data, 0, &addr, len);
}

/* recv, and recvfrom (from not NULL, *from_len set): up to size bytes, or NULL with the exception set. */
static PyObject *receive(SocketObject *s, Py_ssize_t size, int flags, SockAddr *from, socklen_t *from_len,
                         const char *caller)
{
    PyObject *buf;
    ssize_t n;
    int fd;

    if (size < 0) {
        PyErr_Format(PyExc_ValueError, "negative buffersize in %s", caller);
        return NULL;
    }
    if (size == 0 && from == NULL)  /* _socket's recv(0) reads nothing, not even an empty datagram; recvfrom does */
        return PyBytes_FromStringAndSize(NULL, 0);
    buf = PyBytes_FromStringAndSize(NULL, size);
    if (buf == NULL)
        return NULL;
    do {
        fd = s->fd;
        if (from != NULL) {
            memset(from, 0, sizeof *from);
            *from_len = sizeof *from;
        }
        Py_BEGIN_ALLOW_THREADS
        n = recvfrom(fd, PyBytes_AS_STRING(buf), (size_t)size, flags, from ? &from->sa : NULL, from_len);
        Py_END_ALLOW_THREADS
    } while (n < 0 && again());
    if (n < 0) {
        Py_DECREF(buf);
        return NULL;
    }
    if (n != size && _PyBytes_Resize(&buf, n) < 0)
        return NULL;
    return buf;
}

static PyObject *sock_recv(PyObject *self, PyObject *args)
{
    Py_ssize_t size;
    int flags = 0;

    if (!PyArg_ParseTuple(args, "n|i:recv", &size, &flags))
        return NULL;
    return receive((SocketObject *)self, size, flags, NULL, NULL, "recv");
}

static PyObject *sock_recvfrom(PyObject *self, PyObject *args)
{
    SocketObject *s = (SocketObject *)self;
    Py_ssize_t size;
    int flags = 0;
    SockAddr from;
    socklen_t from_len;
    PyObject *data, *addr;

    if (!PyArg_ParseTuple(args, "n|i:recvfrom", &size, &flags))
        return NULL;
    data = receive(s, size, flags, &from, &from_len, "recvfrom");
    if (data == NULL)
        return NULL;
    addr = sockaddr_to(s, &from, from_len);
    if (addr == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    return Py_BuildValue("(NN)", data, addr);
}

static PyMethodDef sock_methods[] = {
    {"fileno", sock_fileno, METH_NOARGS, "fileno() -> int: the descriptor, -1 once closed"},
    {"detach", sock_detach, METH_NOARGS, "detach() -> int: the descriptor, no longer closed by this socket"},
    {"close", sock_close, METH_NOARGS, "close(): close the descriptor (again: nothing)"},
    {"setblocking", sock_setblocking, METH_O, "setblocking(flag): O_NONBLOCK off, or on"},
    {"bind", sock_bind, METH_O, "bind(address)"},
    {"connect", sock_connect, METH_O, "connect(address)"},
    {"send", sock_send, METH_VARARGS, "send(data[, flags]) -> int"},
    {"sendto", sock_sendto, METH_VARARGS, "sendto(data, address) -> int"},
    {"recv", sock_recv, METH_VARARGS, "recv(bufsize[, flags]) -> bytes"},
    {"recvfrom", sock_recvfrom, METH_VARARGS, "recvfrom(bufsize[, flags]) -> (bytes, address)"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef sock_members[] = {
    {"family", T_INT, offsetof(SocketObject, family), READONLY, NULL},
    {"type", T_INT, offsetof(SocketObject, type), READONLY, NULL},
    {"proto", T_INT, offsetof(SocketObject, proto), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject socket_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "guardian._rest.socket",
    .tp_basicsize = sizeof(SocketObject),
    .tp_dealloc = sock_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = socket_doc,
    .tp_methods = sock_methods,
    .tp_members = sock_members,
    .tp_new = sock_new,
};

static PyMethodDef methods[] = {
    {"rest", rest, METH_VARARGS, rest_doc},
    {"glance", py_glance, METH_O, glance_doc},
    {"adaptive_timeout", py_adaptive, METH_VARARGS, adaptive_doc},
    {"zram_headroom", py_zram_headroom, METH_VARARGS, headroom_doc},
    {"mlockall", py_mlockall, METH_VARARGS, mlockall_doc},
    {"prctl", py_prctl, METH_VARARGS, prctl_doc},
    {"syscall", py_syscall, METH_VARARGS, syscall_doc},
    {"eventfd", py_eventfd, METH_VARARGS, eventfd_doc},
    {"timerfd_create", py_timerfd_create, METH_VARARGS, timerfd_create_doc},
    {"timerfd_settime", py_timerfd_settime, METH_VARARGS, timerfd_settime_doc},
    {"attach_filter", py_attach_filter, METH_VARARGS, attach_filter_doc},
    {"poll", py_poll, METH_VARARGS, poll_doc},
    {"epoll_create", py_epoll_create, METH_NOARGS, epoll_create_doc},
    {"epoll_add", py_epoll_add, METH_VARARGS, epoll_add_doc},
    {"json_quote", py_json_quote, METH_O, json_quote_doc},
    {"erfc", py_erfc, METH_O, erfc_doc},
    {"exp", py_exp, METH_O, exp_doc},
    {"sqrt", py_sqrt, METH_O, sqrt_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "guardian._rest",
    "The daemon's loop at rest in C (see Daemon._rest), and the libc calls os lacks.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rest(void)
{
    PyObject *m;

    if (PyType_Ready(&socket_type) < 0)
        return NULL;
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&socket_type);
    if (PyModule_AddObject(m, "socket", (PyObject *)&socket_type) < 0) {
        Py_DECREF(&socket_type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
