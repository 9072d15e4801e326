"""guardian._rest (guardian/_rest.c): the loop at rest in C, against real descriptors, and its
parse and arithmetic against the Python they mirror (glance_meminfo, adaptive_timeout).

The extension is optional for an install (no compiler: the daemon runs the loop in Python), not
for these tests: a checkout built by `make deps` has it. GUARDIAN_PURE_PYTHON=1 runs the suite
without it, and then the tests here skip."""
import os
import select
import signal
import threading
import time

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from guardian.config import MIB, Wait
from guardian.core.waiter import adaptive_timeout
from guardian.kernel.meminfo import glance_meminfo

try:
    from guardian import _rest
except ImportError:
    _rest = None

PURE = os.environ.get("GUARDIAN_PURE_PYTHON") == "1"
needs_c = pytest.mark.skipif(_rest is None and PURE, reason="GUARDIAN_PURE_PYTHON=1: no guardian._rest")


def test_the_extension_is_built():
    if PURE:
        pytest.skip("GUARDIAN_PURE_PYTHON=1")
    assert _rest is not None, "guardian._rest did not import: `make deps` (gcc, python3-dev), or " \
                              "`python setup.py build_ext --inplace`; GUARDIAN_PURE_PYTHON=1 to test without"


# ---------------------------------------------------------------------------------------------
# The parse: what glance_meminfo takes, and what it refuses, byte for byte

KB_MAX = 2 ** 53 - 1  # _rest.c: larger values (in kB) are a look, not a number


def _expected(data):
    got = glance_meminfo(data)
    if got is not None and any(abs(v) // 1024 > KB_MAX for v in got):
        return None
    return got


MEMINFO = (b"MemTotal:        1012340 kB\nMemFree:          100000 kB\nMemAvailable:     812000 kB\n"
           b"Buffers:            1000 kB\nCached:            20000 kB\n")
CASES = [
    MEMINFO, MEMINFO[:60], b"", b"MemTotal:", b"MemTotal: 5 kB", b"MemTotal: 5 kB\nMemAvailable: 3 kB",
    b"MemTotal: 5 kB\nMemAvailable: 3", b"MemTotal: 5\nMemAvailable: 3 kB", b"memTotal: 5 kB\nMemAvailable: 3 kB",
    b" MemTotal: 5 kB\nMemAvailable: 3 kB", b"MemFree: 1 kB\nMemTotal: 5 kB\nMemAvailable: 3 kB",
    b"MemTotal: lots kB\nMemAvailable: 3 kB", b"MemTotal: 5 kB\nMemAvailable: -3 kB",
    b"MemTotal: +5 kB\nMemAvailable: 3kB", b"MemTotal:5kB\nMemAvailable:3kB", b"MemTotal: 1_000 kB\nMemAvailable: 3 kB",
    b"MemTotal: 1__000 kB\nMemAvailable: 3 kB", b"MemTotal: _1 kB\nMemAvailable: 3 kB",
    b"MemTotal: 1_ kB\nMemAvailable: 3 kB", b"MemTotal: - 1 kB\nMemAvailable: 3 kB",
    b"MemTotal: --1 kB\nMemAvailable: 3 kB",
    b"MemTotal: kB\nMemAvailable: 3 kB", b"MemTotal: 0x10 kB\nMemAvailable: 3 kB",
    b"MemTotal: 1 2 kB\nMemAvailable: 3 kB",
    b"MemTotal: \t\x0b\x0c\r5\t kB\nMemAvailable: 3 kB", b"MemTotal: \x1c5 kB\nMemAvailable: 3 kB",
    b"MemTotal: 5\x00 kB\nMemAvailable: 3 kB", b"MemTotal: 5 kB\nMemAvailable:\x003 kB",
    b"MemTotal: 5 kB\nMemAvailable: 3 KB\nX: 1 kB", b"MemTotal: 5 kB\nMemAvailable: 3 B",
    b"MemTotal: 5 kB\nMemAvailable: \xd9\xa3 kB", b"MemTotal: 5 kB\n\nMemAvailable: 3 kB",
    b"MemTotal: 5 kB\nMemAvailable: 3 kB\nMemAvailable: 4 kB", b"MemTotal: 9007199254740991 kB\nMemAvailable: 3 kB",
    b"MemTotal: 9007199254740992 kB\nMemAvailable: 3 kB", b"MemTotal: 5 kB\nMemAvailable: -9007199254740992 kB",
    b"MemTotal: 99999999999999999999999 kB\nMemAvailable: 3 kB",
    b"MemTotal: " + b"0" * 4300 + b"5 kB\nMemAvailable: 3 kB",
    b"MemTotal: " + b"0" * 4299 + b"5 kB\nMemAvailable: 3 kB",
]


@needs_c
@pytest.mark.parametrize("data", CASES)
def test_the_parse_takes_and_refuses_what_glance_meminfo_does(data):
    assert _rest.glance(data) == _expected(data)


PIECES = st.sampled_from([b"MemTotal:", b"\nMemAvailable:", b"kB", b" kB\n", b"\n", b" ", b"\t", b"\x0b", b"\x1c",
                          b"_", b"-", b"+", b"0", b"7", b"1024", b"9007199254740993", b"\x00", b"K", b"B", b"x", b":"])


@needs_c
@settings(max_examples=3000, deadline=None)
@given(st.lists(PIECES, max_size=24), st.binary(max_size=8))
@example([b"MemTotal:", b" ", b"1024", b" kB\n", b"\nMemAvailable:", b"7", b"kB"], b"")
def test_the_parse_agrees_with_glance_meminfo_on_pieces_of_meminfo(pieces, tail):
    data = b"".join(pieces) + tail
    assert _rest.glance(data) == _expected(data)


@needs_c
@settings(max_examples=1000, deadline=None)
@given(st.integers(min_value=-(2 ** 60), max_value=2 ** 60), st.integers(min_value=-(2 ** 60), max_value=2 ** 60),
       st.sampled_from([b" ", b"\t", b"", b"  \n "]), st.binary(max_size=4))
def test_the_parse_agrees_on_numbers(total, available, space, junk):
    data = b"MemTotal:%s%d%skB\nMemFree: 1 kB\nMemAvailable:%s%d kB%s" % (space, total, space, space, available, junk)
    assert _rest.glance(data) == _expected(data)


# ---------------------------------------------------------------------------------------------
# The sleep: adaptive_timeout's arithmetic, to the last bit

@needs_c
@settings(max_examples=3000, deadline=None)
@given(headroom=st.integers(min_value=-(2 ** 53), max_value=2 ** 53),
       fill=st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=1e12), st.integers(0, 10 ** 10).map(float)),
       assumed=st.one_of(st.floats(min_value=0.001, max_value=1e6), st.integers(1, 10 ** 5)),
       min_s=st.sampled_from([0.01, 0.1, 0.25, 1]), max_s=st.sampled_from([0.5, 1.0, 5.0, 10]),
       poll_s=st.sampled_from([0.3, 1.0, 2]), armed=st.booleans())
@example(headroom=100 * MIB, fill=0.0, assumed=100.0, min_s=0.1, max_s=5.0, poll_s=1.0, armed=True)
@example(headroom=0, fill=0.0, assumed=100.0, min_s=0.1, max_s=5.0, poll_s=1.0, armed=False)
def test_the_sleep_is_adaptive_timeouts(headroom, fill, assumed, min_s, max_s, poll_s, armed):
    wait = Wait(min_timeout_s=min_s, max_timeout_s=max_s, max_timeout_poll_s=poll_s, assumed_fill_rate_mib_s=assumed)
    want = adaptive_timeout(headroom, fill, wait, armed)
    got = _rest.adaptive_timeout(headroom, fill, assumed, min_s, max_s if armed else poll_s)
    assert got == want and type(got) is float


# ---------------------------------------------------------------------------------------------
# The loop, on real descriptors: a pipe, and a file standing in for /proc/meminfo

TOTAL = 1024 * MIB
LINE, KILL = 200 * MIB, 50 * MIB
SLEEP = (0.0, 100.0, 0.01, 0.05)  # fill, assumed MiB/s, min and ceiling: sleeps of 0.05 s here


def _meminfo(tmp_path, available_kib, total_kib=TOTAL // 1024, text=None):
    path = tmp_path / "meminfo"
    path.write_bytes(text if text is not None else
                     b"MemTotal: %d kB\nMemFree: 1 kB\nMemAvailable: %d kB\n" % (total_kib, available_kib))
    return os.open(str(path), os.O_RDONLY)


def _rest_for(fds, meminfo_fd, seconds, before=800 * MIB, timeout=0.01, total=TOTAL):
    until = time.monotonic() + seconds
    return _rest.rest(fds, meminfo_fd, timeout, until, LINE, KILL, total, before, *SLEEP), until


def _reads():
    """This process's read syscalls so far (the loop's preads of meminfo among them)."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("syscr:"))


@needs_c
def test_a_readable_descriptor_ends_the_wait_with_what_poll_returned(tmp_path, pipe):
    r, w = pipe
    fd = _meminfo(tmp_path, 800 * 1024)
    try:
        os.write(w, b"x")
        (kind, events, last, available), _ = _rest_for([(w, select.POLLPRI), (r, select.POLLIN)], fd, 5.0, timeout=5.0)
        assert (kind, events, last, available) == ("events", [(r, select.POLLIN)], None, 800 * MIB)
        # what select.poll returns for the same set, a closed descriptor among them (POLLNVAL)
        spare = os.dup(r)
        os.close(spare)
        fds = [(r, select.POLLIN | select.POLLPRI), (spare, select.POLLIN)]
        poller = select.poll()
        for f, mask in fds:
            poller.register(f, mask)
        kind, events, _, _ = _rest_for(fds, fd, 5.0, timeout=5.0)[0]
        assert kind == "events" and events == poller.poll(0) == [(r, select.POLLIN), (spare, select.POLLNVAL)]
    finally:
        os.close(fd)


@needs_c
def test_at_ease_it_glances_and_sleeps_again_until_until_then_says_look(tmp_path, pipe):
    fd = _meminfo(tmp_path, 800 * 1024)
    try:
        counted = _reads()
        reads = _reads()  # what reading the counter itself adds: reads - counted
        began = time.monotonic()
        (kind, events, last, available), until = _rest_for([(pipe[0], select.POLLIN)], fd, 0.3)
        glances = _reads() - reads - (reads - counted)
        assert time.monotonic() >= until
        assert (kind, events, available) == ("look", None, 800 * MIB)
        # it glanced (a pread of meminfo) and slept again, more than once, the last look before
        # until; how many times depends on how late a loaded machine wakes it: no time bound here
        assert began < last < until and glances >= 2, glances
    finally:
        os.close(fd)


@needs_c
@pytest.mark.parametrize("available_kib,total_kib,text", [
    (150 * 1024, TOTAL // 1024, None),  # below the line
    (780 * 1024, TOTAL // 1024, None),  # at ease, but 20 MiB (2 % of the total) gone since the last look
    (800 * 1024, TOTAL // 1024 + 4, None),  # the total changed (memory hot-plugged, balloon)
    (0, 0, b"MemTotal: lots kB\nMemAvailable: 800 kB\n"),  # garbage
    (0, 0, b""),  # empty
])
def test_not_at_ease_or_unreadable_says_look_at_the_first_wake(tmp_path, pipe, available_kib, total_kib, text):
    fd = _meminfo(tmp_path, available_kib, total_kib, text)
    try:
        (kind, events, last, available), until = _rest_for([(pipe[0], select.POLLIN)], fd, 5.0)
        assert (kind, events, last, available) == ("look", None, None, 800 * MIB)
        assert time.monotonic() < until
    finally:
        os.close(fd)


@needs_c
def test_a_fall_of_up_to_one_percent_is_at_ease_and_becomes_the_last_look(tmp_path, pipe):
    fd = _meminfo(tmp_path, 800 * 1024 - 10 * 1024)  # 10 MiB: < 1 % of 1 GiB
    try:
        (kind, _, last, available), until = _rest_for([(pipe[0], select.POLLIN)], fd, 0.2)
        assert kind == "look" and last is not None and available == 790 * MIB
    finally:
        os.close(fd)


@needs_c
def test_a_meminfo_that_does_not_read_says_look(pipe):
    # pread on a pipe: ESPIPE, as a read that failed
    (kind, _, last, _), until = _rest_for([], pipe[0], 5.0)
    assert kind == "look" and last is None and time.monotonic() < until


@needs_c
@pytest.mark.parametrize("raises", [False, True])
def test_a_signal_during_the_wait_runs_its_handler_and_returns(tmp_path, pipe, raises):
    got = []

    def handler(signum, frame):
        got.append(signum)
        if raises:
            raise KeyboardInterrupt

    fd = _meminfo(tmp_path, 800 * 1024)
    old = signal.signal(signal.SIGUSR1, handler)
    main = threading.main_thread().ident
    timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGUSR1))
    try:
        timer.start()
        began = time.monotonic()
        if raises:
            with pytest.raises(KeyboardInterrupt):
                _rest_for([(pipe[0], select.POLLIN)], fd, 30.0, timeout=30.0)
        else:
            kind, events, last, _ = _rest_for([(pipe[0], select.POLLIN)], fd, 30.0, timeout=30.0)[0]
            assert (kind, events, last) == ("signal", None, None)
        assert got == [signal.SIGUSR1] and time.monotonic() - began < 20.0
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGUSR1, old)
        os.close(fd)


@needs_c
def test_bad_arguments_are_refused(pipe):
    with pytest.raises(TypeError):
        _rest.rest([(pipe[0],)], pipe[0], 0.01, 0.0, LINE, KILL, TOTAL, 0, *SLEEP)
    with pytest.raises(ValueError):
        _rest.rest([(-1, select.POLLIN)], pipe[0], 0.01, 0.0, LINE, KILL, TOTAL, 0, *SLEEP)
    with pytest.raises(TypeError):
        _rest.rest(None, pipe[0], 0.01, 0.0, LINE, KILL, TOTAL, 0, *SLEEP)


@needs_c
def test_an_epoll_descriptor_is_waited_on_as_its_pairs_would_be(tmp_path, pipe):
    """The daemon hands the loop an epoll set (Waiter.rest_fds): what woke it comes back as
    (fd, revents) pairs, as from poll; at ease it glances and sleeps again the same way."""
    r, w = pipe
    fd = _meminfo(tmp_path, 800 * 1024)
    ep = select.epoll()
    try:
        ep.register(r, select.EPOLLIN | select.EPOLLPRI)
        (kind, events, last, _), until = _rest_for(ep.fileno(), fd, 0.3)
        assert time.monotonic() >= until and kind == "look" and events is None and last is not None
        os.write(w, b"x")
        (kind, events, last, available), _ = _rest_for(ep.fileno(), fd, 5.0, timeout=5.0)
        assert (kind, events, last, available) == ("events", [(r, select.POLLIN)], None, 800 * MIB)
        with pytest.raises(ValueError):
            _rest.rest(-1, fd, 0.01, 0.0, LINE, KILL, TOTAL, 0, *SLEEP)
        with pytest.raises(OSError):  # not an epoll descriptor: the wait fails as epoll_wait does
            _rest_for(fd, fd, 5.0)
    finally:
        ep.close()
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# Swap on zram: the loop glances at the headroom Sensor.headroom makes (MemAvailable plus what
# zram could still take in, from SwapTotal and SwapFree at the last full read's ratio)

def _zram_meminfo(available_kib, swap_total_kib, swap_free_kib, total_kib=TOTAL // 1024):
    return (b"MemTotal: %d kB\nMemFree: 1 kB\nMemAvailable: %d kB\nBuffers: 1 kB\nSwapCached: 0 kB\n"
            b"SwapTotal: %d kB\nSwapFree: %d kB\nDirty: 0 kB\n" % (total_kib, available_kib, swap_total_kib,
                                                                  swap_free_kib))


def _python_headroom(data, zram):
    from guardian.core.sense import Sensor
    from guardian.kernel.meminfo import parse_meminfo
    from guardian.kernel.zram import ZramSwap

    sensor = Sensor()
    sensor.last_zram = ZramSwap(zram[0], zram[1], 0, zram[2])
    return sensor.headroom(parse_meminfo(data.decode()))


@needs_c
@settings(max_examples=400, deadline=None)
@given(st.integers(0, 4 << 20), st.integers(0, 8 << 20), st.integers(0, 8 << 20),
       st.integers(0, 8 << 30), st.integers(0, 8 << 30), st.integers(0, 8 << 30))
@example(500 << 10, 1 << 20, 1 << 20, 1 << 30, 1 << 30, 600 << 20)  # all swap on zram, all free
@example(500 << 10, 3 << 20, 2 << 20, 1 << 30, 1 << 30, 600 << 20)  # and a disk: its free part is not zram's
@example(500 << 10, 0, 0, 1 << 30, 1 << 30, 600 << 20)  # swap gone since the last read
@example(500 << 10, 1 << 20, 1 << 20, 1 << 30, 0, 0)  # zram full
def test_the_zram_headroom_is_sensors(available_kib, swap_total_kib, swap_free_kib, z_total, z_free, z_relief):
    # Past 64 bits the C loop says look (the next test); no board's zram comes near.
    assume(z_relief * z_free < 1 << 64)
    data = _zram_meminfo(available_kib, swap_total_kib, swap_free_kib)
    zram = (z_total, z_free, z_relief)
    assert _rest.zram_headroom(data, available_kib * 1024, *zram) == _python_headroom(data, zram)


@needs_c
def test_the_zram_headroom_without_swap_lines_or_past_64_bits_says_look():
    assert _rest.zram_headroom(b"MemTotal: 1 kB\nMemAvailable: 1 kB\n", 1024, 1 << 30, 1 << 30, 1) is None
    data = _zram_meminfo(1, 1 << 40, 1 << 40)
    assert _rest.zram_headroom(data, 1024, 1 << 60, 1 << 50, 1 << 20) is None  # relief x free: 2^70
    assert _rest.zram_headroom(data, 1024, 1 << 62, 1 << 62, 1 << 10) == _python_headroom(data, (1 << 62, 1 << 62,
                                                                                                  1 << 10))


@needs_c
def test_with_zram_the_headroom_is_at_ease_where_memavailable_alone_is_not(tmp_path, pipe):
    """150 MiB available is below the 200 MiB line; with 512 MiB of zram free, 300 of relief, the
    headroom is 450 MiB: at ease, the loop sleeps on until until. Without the zram argument the
    same file says look at once."""
    fd = _meminfo(tmp_path, 0, text=_zram_meminfo(150 * 1024, 512 * 1024, 512 * 1024))
    zram = (512 * MIB, 512 * MIB, 300 * MIB)
    try:
        until = time.monotonic() + 0.3
        kind, _, last, headroom = _rest.rest([(pipe[0], select.POLLIN)], fd, 0.01, until, LINE, KILL, TOTAL,
                                             450 * MIB, *SLEEP, zram)
        assert (kind, headroom) == ("look", 450 * MIB) and last is not None and time.monotonic() >= until
        kind, _, last, _ = _rest_for([(pipe[0], select.POLLIN)], fd, 5.0)[0]
        assert (kind, last) == ("look", None)
        # the zram filling (SwapFree down to 100 MiB: relief 300 x 100 / 512 = 58.6 MiB) is a fall
        # of the headroom to 208.6 MiB, more than 1 % of the total: look
        fd2 = _meminfo(tmp_path, 0, text=_zram_meminfo(150 * 1024, 512 * 1024, 100 * 1024))
        try:
            kind, _, last, headroom = _rest.rest([(pipe[0], select.POLLIN)], fd2, 0.01, time.monotonic() + 5.0,
                                                 LINE, KILL, TOTAL, 450 * MIB, *SLEEP, zram)
            assert (kind, last, headroom) == ("look", None, 450 * MIB)
        finally:
            os.close(fd2)
    finally:
        os.close(fd)
    with pytest.raises(TypeError):
        _rest.rest([], fd, 0.01, 0.0, LINE, KILL, TOTAL, 0, *SLEEP, (1, 2))
