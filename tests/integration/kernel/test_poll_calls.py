"""poll, epoll_create and epoll_add (guardian.kernel.libc), json_quote (guardian.jsontext), erfc
and sqrt (guardian.analysis.trend) and exp (guardian.core.history): from the C extension where it
is built, else from select, _json and math. Both give the same results on real descriptors,
signals, strings and numbers; the extension's numbers without a page of libm."""
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


def _both(fallback, name=None):
    """The fallback and the extension (the module, or its function `name`)."""
    return fallback_and_extension(fallback, "stdlib", _rest if name is None or _rest is None else getattr(_rest, name))


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
    from guardian.core import history
    assert jsontext._quote is _rest.json_quote and trend.erfc is _rest.erfc and trend.sqrt is _rest.sqrt
    assert history.exp is _rest.exp


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


@pytest.mark.parametrize("quote", _both(_json.encode_basestring_ascii, "json_quote"))
def test_json_quote_writes_what_json_writes(quote):
    rng = random.Random(7)
    for _ in range(5000):
        text = "".join(rng.choice(_CHARS) for _ in range(rng.randint(0, 24)))
        assert quote(text) == _json.encode_basestring_ascii(text), repr(text)
    assert quote("") == '""' and quote('a"\\\n\x01é😀') == '"a\\"\\\\\\n\\u0001\\u00e9\\ud83d\\ude00"'
    with pytest.raises(TypeError):
        quote(b"bytes")


@pytest.mark.parametrize("erfc", _both(math.erfc, "erfc"))
def test_erfc_is_maths(erfc):
    rng = random.Random(7)
    xs = [-30.0, -3.0, -1.5, -0.5, -0.0, 0.0, 1e-300, 0.1, 1.0, 1.4999999, 1.5, 2.5, 5.0, 27.0, 29.999, 30.0,
          1e308, math.inf, -math.inf, 3] + [rng.uniform(-6.0, 28.0) for _ in range(20000)]
    for x in xs:  # the extension's is computed without libm: within 1e-13 of it, relatively
        assert erfc(x) == pytest.approx(math.erfc(x), rel=1e-13, abs=1e-300), x
    assert math.isnan(erfc(math.nan))
    with pytest.raises(TypeError):
        erfc("1.0")


@pytest.mark.parametrize("exp", _both(math.exp, "exp"))
def test_exp_is_maths(exp):
    rng = random.Random(7)
    xs = [-1e308, -746.0, -745.1, -740.0, -708.5, -1.0, -0.0, 0.0, 1e-300, 0.5, 1.0, 100.0, 709.78, -math.inf,
          math.inf, 3] + [rng.uniform(-745.0, 709.0) for _ in range(20000)]
    for x in xs:  # within an ulp or two of libm's (subnormal results: within their last place)
        assert exp(x) == pytest.approx(math.exp(x), rel=4.5e-16, abs=1e-323), x
    assert exp(0.0) == 1.0 and math.isnan(exp(math.nan))
    with pytest.raises(OverflowError):
        exp(710.0)
    with pytest.raises(TypeError):
        exp("1.0")


@pytest.mark.parametrize("sqrt", _both(math.sqrt, "sqrt"))
def test_sqrt_is_maths(sqrt):
    rng = random.Random(7)
    for x in [0.0, -0.0, 5e-324, 1e-300, 0.25, 2.0, 3, 1e308, math.inf] + [rng.uniform(0, 1e9) for _ in range(5000)]:
        assert sqrt(x) == math.sqrt(x), x
    assert math.isnan(sqrt(math.nan))
    with pytest.raises(ValueError):
        sqrt(-1.0)


# The extension's exp, erfc and sqrt map no page of libm, where libm's pow does (its code and
# tables, as the kernel maps them around each fault): read in a fresh interpreter, before and
# after each call, from /proc/self/pagemap.
_LIBM_PAGES = r"""
import os, struct, sys
def libm_pages():
    pages = set()
    with open("/proc/self/maps") as maps, open("/proc/self/pagemap", "rb") as pagemap:
        for line in maps:
            f = line.split()
            if len(f) > 5 and os.path.basename(f[5]).startswith("libm."):
                lo, hi = (int(x, 16) for x in f[0].split("-"))
                pagemap.seek(lo // 4096 * 8)
                data = pagemap.read((hi - lo) // 4096 * 8)
                pages |= {lo + i * 4096 for i in range(len(data) // 8)
                          if struct.unpack_from("<Q", data, i * 8)[0] >> 63}
    return pages
from guardian import _rest
x = float(sys.argv[1])
before = libm_pages()
_rest.exp(-x); _rest.erfc(x); _rest.sqrt(x); _rest.exp(-x * 300); _rest.erfc(x * 3)
ours = len(libm_pages() - before)
before = libm_pages()
x ** 0.37
print(ours, len(libm_pages() - before), len(before))
"""


def test_exp_erfc_and_sqrt_map_no_page_of_libm():
    if _rest is None:
        pytest.skip(NO_EXTENSION)
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-S", "-c", _LIBM_PAGES, "1.37"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(_rest.__file__))))
    assert out.returncode == 0, out.stderr
    ours, pows, mapped = map(int, out.stdout.split())
    if not mapped:
        pytest.skip("this interpreter maps no libm (%s): nothing to compare" % sys.executable)
    if not pows:
        pytest.skip("pow mapped no page of libm here either (not in the page cache?): the check cannot fail")
    assert ours == 0, "the extension's exp, erfc and sqrt mapped %d pages of libm (pow: %d)" % (ours, pows)
