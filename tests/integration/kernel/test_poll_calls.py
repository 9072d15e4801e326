"""poll, epoll_create and epoll_add (guardian.kernel.libc), json_quote (guardian.jsontext) and
erfc (guardian.analysis.trend): from the C extension where it is built, else from select, _json
and math. Both give the same results on real descriptors, signals and strings."""
import _json
import math
import os
import random
import select
import signal

import pytest

from guardian.kernel import libc as libc_mod
from guardian.kernel import libc_fallback
from tests.support.tools import NO_EXTENSION, fallback_and_extension

try:
    from guardian import _rest
except ImportError:
    _rest = None


def _both(fallback):
    return fallback_and_extension(fallback, "stdlib", _rest)


class _Select:
    poll = staticmethod(libc_fallback.select_poll)
    epoll_create = staticmethod(libc_fallback.select_epoll_create)
    epoll_add = staticmethod(libc_fallback.select_epoll_add)


@pytest.fixture(params=_both(_Select))
def calls(request):
    return request.param


def test_the_daemon_uses_the_extension_where_it_is_built():
    if _rest is None:
        pytest.skip(NO_EXTENSION)
    assert libc_mod.poll is _rest.poll and libc_mod.epoll_add is _rest.epoll_add
    from guardian import jsontext
    from guardian.analysis import trend
    assert jsontext._quote is _rest.json_quote and trend.erfc is _rest.erfc


def test_the_poll_bits_are_selects():
    assert (libc_mod.POLLIN, libc_mod.POLLPRI, libc_mod.POLLERR) == (select.POLLIN, select.POLLPRI, select.POLLERR)
    assert (libc_mod.POLLIN, libc_mod.POLLPRI) == (select.EPOLLIN, select.EPOLLPRI)


def test_poll_reports_the_ready_descriptors_only(calls, pipe):
    r, w = pipe
    r2, w2 = os.pipe()
    try:
        assert calls.poll([(r, select.POLLIN), (r2, select.POLLIN)], 0) == []
        os.write(w2, b"x")
        assert calls.poll([(r, select.POLLIN), (r2, select.POLLIN)], 0) == [(r2, select.POLLIN)]
        os.close(w2)
        w2 = None
        os.read(r2, 1)
        assert calls.poll(((r2, select.POLLIN),), 1.0) == [(r2, select.POLLHUP)]  # the writer is gone
        assert calls.poll([(w, select.POLLOUT)], -1) == [(w, select.POLLOUT)]  # negative: no timeout
    finally:
        os.close(r2)
        if w2 is not None:
            os.close(w2)


def test_poll_waits_its_timeout_and_a_closed_descriptor_is_pollnval(calls, pipe):
    r, _ = pipe
    t0 = os.times().elapsed
    assert calls.poll([(r, select.POLLIN)], 0.2) == []
    assert os.times().elapsed - t0 >= 0.15
    spare = os.dup(r)
    os.close(spare)
    assert calls.poll([(spare, select.POLLIN)], 0) == [(spare, select.POLLNVAL)]


def test_poll_rejects_what_is_not_fd_pairs(calls):
    with pytest.raises((TypeError, ValueError)):
        calls.poll([(1,)], 0)
    with pytest.raises(TypeError):
        calls.poll(5, 0)


def _with_timer(handler, fn):
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_a_signal_runs_its_handler_and_the_wait_goes_on(calls, pipe):
    """As select.poll (PEP 475): the handler runs during the wait, which then lasts its time."""
    r, _ = pipe
    ran = []
    t0 = os.times().elapsed
    woke = _with_timer(lambda *a: ran.append(os.times().elapsed - t0), lambda: calls.poll([(r, select.POLLIN)], 0.4))
    assert woke == []
    assert len(ran) == 1 and ran[0] < 0.35 and os.times().elapsed - t0 >= 0.35


def test_a_handler_that_raises_ends_the_wait(calls, pipe):
    r, _ = pipe

    def boom(*_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _with_timer(boom, lambda: calls.poll([(r, select.POLLIN)], 5.0))


def test_epoll_set_reports_what_was_added(calls, pipe):
    r, w = pipe
    ep = calls.epoll_create()
    try:
        assert not os.get_inheritable(ep)
        assert calls.epoll_add(ep, r, select.EPOLLIN) == 0
        with pytest.raises(FileExistsError):
            calls.epoll_add(ep, r, select.EPOLLIN)
        os.write(w, b"x")
        reader = select.epoll.fromfd(os.dup(ep))
        try:
            assert reader.poll(1.0) == [(r, select.EPOLLIN)]
        finally:
            reader.close()
        assert calls.poll([(ep, select.POLLIN)], 0) == [(ep, select.POLLIN)]  # an epoll fd polls as ready
    finally:
        os.close(ep)
    with pytest.raises(OSError):
        calls.epoll_add(ep, r, select.EPOLLIN)  # closed


_CHARS = [chr(i) for i in range(0, 260)] + ["\ud800", "\udfff", "\udc80", "\U0001f600", "\U0010ffff", "\u2028",
                                            "\uffff", "\u0100", "\u07ff"]


@pytest.mark.parametrize("quote", _both(_json.encode_basestring_ascii))
def test_json_quote_writes_what_json_writes(quote):
    if quote is _rest:
        quote = _rest.json_quote
    rng = random.Random(7)
    for _ in range(5000):
        text = "".join(rng.choice(_CHARS) for _ in range(rng.randint(0, 24)))
        assert quote(text) == _json.encode_basestring_ascii(text), repr(text)
    assert quote("") == '""' and quote('a"\\\n\x01é😀') == '"a\\"\\\\\\n\\u0001\\u00e9\\ud83d\\ude00"'
    with pytest.raises(TypeError):
        quote(b"bytes")


@pytest.mark.parametrize("erfc", _both(math.erfc))
def test_erfc_is_maths(erfc):
    if erfc is _rest:
        erfc = _rest.erfc
    for x in (-30.0, -3.0, -0.5, -0.0, 0.0, 1e-300, 0.1, 1.0, 2.5, 5.0, 27.0, 1e308, math.inf, -math.inf, 3):
        assert erfc(x) == math.erfc(x)
    assert math.isnan(erfc(math.nan))
    with pytest.raises(TypeError):
        erfc("1.0")
