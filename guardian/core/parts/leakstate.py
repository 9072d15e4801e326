"""The leak watch's memory: a Series of samples per watched process, and leaks.json, the file
that carries the series across a guardian restart.

The watcher writes the file atomically (guardian.safefile: temp file, fsync, rename, fsync of
the directory) at most once per save_interval_s (60 s) while something grows, restarts or
fires, else once per save_idle_interval_s (10 min): a crash then loses at most ten minutes of
flat history. A torn or garbled file is ignored with a message. Deltas and runs keep the file
small (about 600 bytes for three flat daemons with full windows), but each save costs about
20 KiB at the block layer on ext4 (a data block and the journal), so the number of saves is
what wears the flash.

Times are kept as ages before the save, whose time is kept on the monotonic clock and on the
wall clock. In the same boot (same boot_id) the ages go back onto the monotonic clock and the
PIDs still mean something. After a reboot only the wall clock links the two (history that
seems over 30 days old or a minute in the future is dropped: no RTC, no NTP yet), every process
is new, and the series of processes watched by size (their identity is a PID) are dropped.
"""
from __future__ import annotations

import os
import time
from _struct import pack, pack_into, unpack, unpack_from  # struct.py's own C module

from guardian import jsontext  # not json: it imports re (~1 MiB together)
from guardian import safefile
from guardian.analysis.trend import EMPTY, Trend, duration
from guardian.config import MIB
from guardian.kernel.sysctl import read_sysctl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

__all__ = ["Series", "encode", "decode", "read_boot_id", "why", "STATE_NAME", "MAX_STATE_BYTES"]

STATE_NAME = "leaks.json"
FORMAT = 1
KIB = 1024  # sizes are kept in KiB
MAX_STATE_BYTES = 4 * MIB  # a state file bigger than this is not ours
RESTARTS_KEPT = 16

_INF = float("inf")


if TYPE_CHECKING:
    _Sequence = Sequence[Any]  # what the type checker takes a Column for
else:
    _Sequence = object


class Column(_Sequence):
    """A growing column of 8-byte numbers ("d": floats, "q": integers), packed in a bytearray:
    what the series need of array.array (append, len, indexing, slices as lists, iteration,
    item assignment, deleting a leading slice, count, tolist). array would import collections.abc, and with it
    collections, keyword, operator and reprlib (~0.3 MiB resident), into the daemon."""

    __slots__ = ("code", "data")

    def __init__(self, code: str):
        self.code = code
        self.data = bytearray()

    def append(self, value: Any) -> None:
        self.data += pack(self.code, value)

    def __len__(self) -> int:
        return len(self.data) >> 3

    def _index(self, index: int) -> int:
        n = len(self.data) >> 3
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("column index out of range")
        return index << 3

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self.data) >> 3)
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            if stop <= start:
                return []
            return list(unpack("%d%s" % (stop - start, self.code), self.data[start << 3:stop << 3]))
        return unpack_from(self.code, self.data, self._index(index))[0]

    def __setitem__(self, index: int, value: Any) -> None:
        pack_into(self.code, self.data, self._index(index), value)

    def __delitem__(self, index: slice) -> None:
        start, stop, step = index.indices(len(self.data) >> 3)
        if step != 1:
            raise ValueError("only a run of samples can be deleted")
        del self.data[start << 3:stop << 3]

    def __iter__(self) -> Iterator[Any]:
        return iter(self[:])

    def count(self, value: Any) -> int:
        return self[:].count(value)

    def tolist(self) -> List[Any]:
        return self[:]  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return "Column(%r, %r)" % (self.code, self[:])


class Series:
    """The samples of one identity (a [[critical]] entry's name, or one big process)."""

    __slots__ = ("key", "name", "kind", "pid", "starttime", "t", "rss", "anon", "pss", "seg", "segment",
                 "restarts", "fired", "baseline", "grew", "grew_span", "last_smaps", "trend", "planned")

    def __init__(self, key: str, name: str, kind: str):
        self.key, self.name, self.kind = key, name, kind
        self.pid: Optional[int] = None
        self.starttime: Optional[int] = None
        self.t = Column("d")
        self.rss = Column("q")
        self.anon = Column("q")
        self.pss = Column("q")  # -1: not known
        self.seg = Column("q")
        self.segment = 0
        self.restarts: List[Tuple[float, Optional[int], int, bool]] = []  # (time, old pid, new pid, planned)
        self.fired: Optional[float] = None  # the last leak event (cooldown)
        self.baseline: Optional[Tuple[float, int, Dict[str, int]]] = None  # (time, pid, smaps)
        self.grew: List[Tuple[str, int, int]] = []
        self.grew_span: Optional[Tuple[float, float, int]] = None  # (from, to, pid)
        self.last_smaps = -_INF
        self.trend: Trend = EMPTY
        self.planned: Optional[float] = None  # a restart we asked for: the next new PID is planned

    def add(self, now: float, pid: int, starttime: int, rss: int, anon: int, pss: int) -> Optional[Tuple]:
        """Append a sample; returns the restart it marks, if the process is a new one."""
        restart = None
        if (pid, starttime) != (self.pid, self.starttime) and (self.pid is not None or len(self.t)):
            if len(self.t):
                self.segment += 1
            planned = self.planned is not None
            restart = (now, self.pid, pid, planned)
            self.restarts.append(restart)
            del self.restarts[:-RESTARTS_KEPT]
            self.planned = None
            if self.baseline is not None and self.baseline[1] != pid:
                self.baseline = None
        self.pid, self.starttime = pid, starttime
        self.t.append(now)
        self.rss.append(rss)
        self.anon.append(anon)
        self.pss.append(pss)
        self.seg.append(self.segment)
        return restart

    def prune(self, now: float, window_s: float, max_samples: int) -> None:
        cut = 0
        n = len(self.t)
        oldest = now - window_s
        while cut < n and self.t[cut] < oldest:
            cut += 1
        cut = max(cut, n - max_samples)
        if cut > 0:
            for arr in (self.t, self.rss, self.anon, self.pss, self.seg):
                del arr[:cut]

    def current(self, k: int = 3) -> List[int]:
        """The last k RSS values of the current process."""
        out: List[int] = []
        i = len(self.t) - 1
        while i >= 0 and len(out) < k and self.seg[i] == self.segment:
            out.append(self.rss[i])
            i -= 1
        return out


def encode(series: Iterable[Series], now: float, clock_now: float, boot_id: str) -> bytes:
    """The file's bytes: each series's times as ages before `now` (deciseconds), `now` itself
    on the watcher's clock (which reads clock_now at this moment) and on the wall clock, and
    the boot it was written in; sizes in KiB, packed (_pack)."""
    doc: Dict[str, Any] = {
        "format": FORMAT, "boot_id": boot_id, "mono": round(now, 1),
        "wall": round(time.time() - (clock_now - now), 1), "series": [],
    }
    for s in series:
        if not len(s.t):
            continue
        ages = [int(round((now - t) * 10)) for t in s.t]  # deciseconds before `now`
        segs = []
        for i, g in enumerate(s.seg):
            if i == 0 or g != s.seg[i - 1]:
                segs.append([i, g])
        item: Dict[str, Any] = {
            "key": s.key, "name": s.name, "kind": s.kind, "pid": s.pid, "start": s.starttime,
            "segment": s.segment, "age": _pack(ages), "rss": _pack([v // KIB for v in s.rss]),
            # RSS - anon (file-backed and shared pages) hardly moves: it packs to almost nothing
            "file": _pack([(r - a) // KIB for r, a in zip(s.rss, s.anon)]), "seg": segs,
        }
        if s.restarts:
            item["restarts"] = [[round(now - t, 1), old, new, planned] for t, old, new, planned in s.restarts]
        if s.fired is not None:
            item["fired"] = round(now - s.fired, 1)
        if s.grew:
            item["grew"] = [[k, g, n] for k, g, n in s.grew]
            if s.grew_span:
                item["grew_span"] = [round(now - s.grew_span[0], 1), round(now - s.grew_span[1], 1),
                                     s.grew_span[2]]
        doc["series"].append(item)
    return (jsontext.dumps(doc, separators=(",", ":")) + "\n").encode()


def parse(data: bytes) -> Any:
    """The file's JSON as plain data (no NaN nor Infinity, finite numbers only). ValueError (and
    friends) when it is not JSON."""
    return jsontext.loads(data.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)


def preread(state_dir: Optional[str]) -> Optional[List[Any]]:
    """The state file read and parsed in `run`'s start child (guardian.commands.cli.prepare_run),
    so that the daemon never holds the JSON parser: [path, "doc", the plain data], [path,
    "unreadable", why] or [path, "garbled", why]; None when there is no file. LeakWatcher takes it
    for what it would have read itself (marshal carries it: plain data)."""
    if not state_dir:
        return None
    path = os.path.join(state_dir, STATE_NAME)
    try:
        # Not blocking on a FIFO, not following a link, not trusting a directory others can
        # write (forged history could fire on_leak): guardian.safefile.
        data = safefile.read_regular(path, MAX_STATE_BYTES)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return [path, "unreadable", str(exc.strerror or exc)]
    try:
        if len(data) > MAX_STATE_BYTES:
            raise ValueError("larger than %d bytes" % MAX_STATE_BYTES)
        return [path, "doc", parse(data)]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        return [path, "garbled", why(exc)]


def decode(data: bytes, clock_now: float, boot_id: str) -> Tuple[List[Series], str]:
    """Series from the file's bytes, their times moved onto the watcher's clock (which reads
    clock_now at this moment), and a note on what was dropped ("" if nothing). Raises
    ValueError (and friends) for anything that is not a whole, well-formed file of ours."""
    return decode_doc(parse(data), clock_now, boot_id)


def decode_doc(doc: Any, clock_now: float, boot_id: str) -> Tuple[List[Series], str]:
    """decode, from the file's JSON already parsed (parse)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError("not format %d" % FORMAT)
    if not isinstance(doc.get("series"), list) or not all(isinstance(x, dict) for x in doc["series"]):
        raise ValueError("no list of series")
    same_boot = bool(doc.get("boot_id")) and doc["boot_id"] == boot_id
    if same_boot:
        elapsed = clock_now - float(doc["mono"])
    else:
        elapsed = time.time() - float(doc["wall"])
    note = ""
    if not same_boot:
        note = "from an earlier boot"
        if not (-60.0 <= elapsed < 30 * 86400.0):
            # No usable clock across the reboot (no RTC, no NTP yet): the ages mean nothing.
            return [], "from an earlier boot, %s apart by the wall clock: history dropped" % duration(abs(elapsed))
    if elapsed < 0:
        elapsed = 0.0
    base = clock_now - elapsed  # the saving `now` on our clock
    out = []
    for item in doc["series"]:
        s = Series(str(item["key"]), str(item["name"]), str(item["kind"]))
        if s.kind not in ("critical", "size"):
            raise ValueError("series kind %r" % s.kind)
        if s.kind == "size" and not same_boot:
            continue  # its identity is a PID of another boot
        ages = _unpack(item["age"])
        rss = _unpack(item["rss"])
        anon = [r - f for r, f in zip(rss, _unpack(item["file"]))]
        if not (len(ages) == len(rss) == len(anon)):
            raise ValueError("series %s: lengths differ" % s.key)
        segs = item["seg"]
        seg_of = []
        marks = {int(i): int(g) for i, g in segs}
        current = 0
        for i in range(len(ages)):
            current = marks.get(i, current)
            seg_of.append(current)
        for age, r, an, g in zip(ages, rss, anon, seg_of):
            s.t.append(base - age / 10.0)
            s.rss.append(int(r) * KIB)
            s.anon.append(int(an) * KIB)
            s.pss.append(-1)
            s.seg.append(g)
        if any(b < a for a, b in zip(s.t, s.t[1:])):
            raise ValueError("series %s: times out of order" % s.key)
        s.segment = int(item["segment"])
        if same_boot:
            s.pid = None if item["pid"] is None else int(item["pid"])
            s.starttime = None if item["start"] is None else int(item["start"])
        # After a reboot every process is new: the next sample starts a segment.
        for r in item.get("restarts", ()):
            s.restarts.append((base - float(r[0]), r[1], int(r[2]), bool(r[3])))
        if item.get("fired") is not None:
            s.fired = base - float(item["fired"])
        for k, g, n in item.get("grew", ()):
            s.grew.append((str(k), int(g), int(n)))
        span = item.get("grew_span")
        if span:
            s.grew_span = (base - float(span[0]), base - float(span[1]), int(span[2]))
        out.append(s)
    return out, note


def read_boot_id(proc_root: str = "/proc") -> str:
    """This boot's id ("" if unknown): a file from the same boot may trust its monotonic
    times and PIDs."""
    return read_sysctl("kernel.random.boot_id", proc_root) or ""


def _pack(values: Sequence[int]) -> List[Any]:
    """Deltas (the first against 0), a run of three or more equal deltas as [delta, count]:
    a regular sample interval and a flat process pack to a few numbers."""
    out: List[Any] = []
    prev = 0
    run_value: Optional[int] = None
    run = 0

    def flush() -> None:
        if run >= 3:
            out.append([run_value, run])
        else:
            out.extend([run_value] * run)

    for v in values:
        d = v - prev
        prev = v
        if d == run_value:
            run += 1
            continue
        if run:
            flush()
        run_value, run = d, 1
    if run:
        flush()
    return out


def _unpack(items: Iterable[Any]) -> List[int]:
    out: List[int] = []
    acc = 0
    for item in items:
        if isinstance(item, list):
            if len(item) != 2:
                raise ValueError("bad run %r" % (item,))
            d, count = item
            if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= 1000000:
                raise ValueError("bad run length %r" % (count,))
        else:
            d, count = item, 1
        if not isinstance(d, int) or isinstance(d, bool):
            raise ValueError("not an integer: %r" % (d,))
        for _ in range(count):
            acc += d
            out.append(acc)
    return out


def _no_constant(name: str) -> float:
    raise ValueError("%s is not a number this file holds" % name)


def _finite(text: str) -> float:
    value = float(text)
    if value != value or value in (_INF, -_INF):
        raise ValueError("%s is not a finite number" % text[:40])
    return value


def why(exc: BaseException) -> str:
    """One line for the log: what was wrong with the state file."""
    if isinstance(exc, KeyError):
        return "field %s missing" % str(exc)[:60]
    if isinstance(exc, RecursionError):
        return "nested too deep"
    if isinstance(exc, (TypeError, AttributeError, IndexError)):
        return "wrong shape: %s" % " ".join(str(exc).split())[:200]
    return " ".join(str(exc).split())[:200] or type(exc).__name__

