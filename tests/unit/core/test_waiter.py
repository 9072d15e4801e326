"""The waiter's poll set with real descriptors: pipes added and removed between waits, a
timeout that reports nothing, and what woke it."""
import os
import select

from guardian.config import Wait
from guardian.core.waiter import Waiter
from guardian.kernel.libc import poll


def test_a_timeout_reports_nothing_and_a_readable_fd_runs_its_callback():
    w = Waiter(Wait(use_psi=False), None)
    r, wr = os.pipe()
    seen = []
    try:
        w.add(r, lambda: seen.append(os.read(r, 16)))
        assert w.wait_for(0.01) == []
        os.write(wr, b"x")
        assert w.wait_for(1.0) == ["fd"] and seen == [b"x"]
    finally:
        w.close()
        os.close(r)
        os.close(wr)


def test_the_poll_set_follows_descriptors_added_and_removed_between_waits():
    w = Waiter(Wait(use_psi=False), None)
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    seen = []
    try:
        w.add(a_r, lambda: seen.append("a"))
        assert w.wait_for(0.0) == []  # the set is built and kept
        w.add(b_r, lambda: seen.append("b"))
        os.write(b_w, b"x")
        assert w.wait_for(1.0) == ["fd"] and seen == ["b"]
        w.remove(b_r)  # still readable, but no longer watched
        assert w.wait_for(0.01) == [] and seen == ["b"]
        os.write(a_w, b"x")
        assert w.wait_for(1.0) == ["fd"] and seen == ["b", "a"]
    finally:
        w.close()
        for fd in (a_r, a_w, b_r, b_w):
            os.close(fd)


def test_the_poll_set_is_kept_in_step_with_the_descriptors():
    """What the loop in C polls (guardian._rest), and what poll() reports ready of it."""
    w = Waiter(Wait(use_psi=False), None)
    r, wr = os.pipe()
    r2, wr2 = os.pipe()
    try:
        assert w.poll_set() == ()
        w.add(r, lambda: None)
        w.add(r2, lambda: None)
        assert w.poll_set() == ((r, select.POLLIN | select.POLLPRI), (r2, select.POLLIN | select.POLLPRI))
        w.remove(r)
        os.write(wr, b"x")
        os.write(wr2, b"x")
        assert w.poll_set() == ((r2, select.POLLIN | select.POLLPRI),)
        assert poll(w.poll_set(), 0) == [(r2, select.POLLIN)]
    finally:
        for fd in (r, wr, r2, wr2):
            os.close(fd)


def _ready(epfd):
    ep = select.epoll.fromfd(os.dup(epfd))
    try:
        return ep.poll(1.0)
    finally:
        ep.close()


def test_rest_fds_is_one_epoll_set_of_the_poll_set_made_again_when_it_changes():
    waiter = Waiter(Wait(use_psi=False), None)
    assert waiter.rest_fds() == ()  # nothing to wait on: the loop only sleeps
    r, w = os.pipe()
    r2, w2 = os.pipe()
    seen = []
    try:
        waiter.add(r, lambda: seen.append(os.read(r, 1)))
        ep = waiter.rest_fds()
        assert isinstance(ep, int) and waiter.rest_fds() == ep  # kept between wakes
        os.write(w, b"x")
        events = _ready(ep)
        assert events == [(r, select.EPOLLIN)] and waiter.handle(events) == ["fd"] and seen == [b"x"]
        waiter.add(r2, lambda: None)
        ep2 = waiter.rest_fds()
        os.write(w2, b"y")
        assert _ready(ep2) == [(r2, select.EPOLLIN)]
    finally:
        waiter.close()
        for fd in (r, w, r2, w2):
            os.close(fd)
