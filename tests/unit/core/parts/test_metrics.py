"""The Prometheus textfile: every file written must parse with prometheus_client's parser."""
import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardian.core.parts.metrics import Metrics


parser = pytest.importorskip("prometheus_client.parser")


def parse(text):
    families = list(parser.text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "a family split in two: %s" % names
    assert all(f.type != "unknown" for f in families), [f for f in families if f.type == "unknown"]
    return {f.name: f for f in families}


def samples(families, name):
    return {tuple(sorted(s.labels.items())): s.value for f in families.values() for s in f.samples if s.name == name}


def full_metrics(path=None):
    m = Metrics(path)
    m.update(mem_total_bytes=256 << 20, mem_available_bytes=31 << 20, swap_total_bytes=0, swap_free_bytes=0,
             psi_some_avg10=12.5, psi_full_avg10=3.0, psi_some_total_us=1_500_000, psi_full_total_us=250_000,
             rung="terminate", wait_mode="psi-trigger-2s", kernel_oom_kills=4,
             lines_bytes={"reclaim": 38 << 20, "terminate": 25 << 20, "kill": 16 << 20},
             leak_slopes={"mqtt-bridge": 20480.5})
    m.update(tick_seconds=0.002)
    m.update(tick_seconds=0.004)
    m.observe_event("kill", {"name": "webui"})
    m.observe_event("kill", {"name": "webui"})
    m.observe_event("terminate", {"name": "logger"})
    m.observe_event("reclaim", {"step": "compact"})
    m.observe_event("kill", {"name": "x", "dry_run": True})
    m.observe_event("kernel_oom", {"cause": "host_memory"})
    return m


def test_everything_parses_with_the_values_given():
    fams = parse(full_metrics().render())
    assert samples(fams, "guardian_memory_available_bytes") == {(): 31 << 20}
    assert samples(fams, "guardian_psi_memory_some_avg10_ratio") == {(): 0.125}
    assert samples(fams, "guardian_psi_memory_some_stall_seconds_total") == {(): 1.5}
    assert samples(fams, "guardian_rung") == {(): 2}
    assert samples(fams, "guardian_wait_mode") == {(("mode", "psi-trigger-2s"),): 1}
    assert samples(fams, "guardian_actions_total") == {
        (("kind", "kill"),): 2, (("kind", "terminate"),): 1, (("kind", "reclaim"),): 1,
        (("kind", "restart"),): 0, (("kind", "leak"),): 0}
    assert samples(fams, "guardian_kills_total") == {(("name", "webui"),): 2}
    assert samples(fams, "guardian_kernel_oom_kills_total") == {(): 4}
    assert samples(fams, "guardian_kernel_oom_reports_total") == {(("cause", "host_memory"),): 1}
    assert samples(fams, "guardian_leak_slope_bytes_per_second") == {(("name", "mqtt-bridge"),): 20480.5}
    assert samples(fams, "guardian_line_bytes")[(("rung", "kill"),)] == 16 << 20
    assert samples(fams, "guardian_tick_duration_seconds_count") == {(): 2}
    assert samples(fams, "guardian_tick_duration_seconds_sum") == {(): pytest.approx(0.006)}
    assert samples(fams, "guardian_tick_duration_max_seconds") == {(): 0.004}
    assert fams["guardian_actions"].type == "counter"
    assert fams["guardian_tick_duration_seconds"].type == "summary"
    assert fams["guardian_memory_available_bytes"].type == "gauge"


def test_empty_metrics_still_parse():
    fams = parse(Metrics(None).render())
    assert "guardian_start_time_seconds" in fams
    assert "guardian_memory_available_bytes" not in fams  # nothing known yet: nothing claimed


def test_rung_by_number_and_unknown_name():
    m = Metrics(None)
    m.update(rung=3)
    assert samples(parse(m.render()), "guardian_rung") == {(): 3}
    m.update(rung="sideways")
    assert "guardian_rung" not in parse(m.render())


def test_unknown_key_is_a_wiring_mistake():
    with pytest.raises(TypeError, match="mem_avail"):
        Metrics(None).update(mem_avail=1)


def test_non_finite_values_parse():
    m = Metrics(None)
    m.update(leak_slopes={"a": float("inf"), "b": float("nan")})
    got = samples(parse(m.render()), "guardian_leak_slope_bytes_per_second")
    assert got[(("name", "a"),)] == math.inf and math.isnan(got[(("name", "b"),)])


@settings(max_examples=200, deadline=None)
@given(names=st.lists(st.text(min_size=1, max_size=20), max_size=5), mode=st.text(max_size=20))
def test_any_process_name_is_escaped(names, mode):
    m = Metrics(None)
    m.update(wait_mode=mode, leak_slopes={n: 1.0 for n in names})
    for n in names:
        m.observe_event("kill", {"name": n})
    fams = parse(m.render())
    assert set(dict(k)["name"] for k in samples(fams, "guardian_kills_total")) == set(names)
    assert samples(fams, "guardian_wait_mode") == {(("mode", mode),): 1}


def test_write_is_atomic_and_rate_limited(tmp_path):
    path = str(tmp_path / "textfile" / "guardian.prom")
    m = full_metrics(path)
    assert m.write(100.0) is True
    first = open(path).read()
    parse(first)
    m.update(mem_available_bytes=1)
    assert m.write(105.0) is False  # within 10 s
    assert open(path).read() == first
    assert m.write(105.0, force=True) is True
    assert samples(parse(open(path).read()), "guardian_memory_available_bytes") == {(): 1}
    assert m.write(116.0) is True
    assert sorted(os.listdir(os.path.dirname(path))) == ["guardian.prom"]  # no temp file left
    m.remove()
    assert not os.path.exists(path)


def test_readers_never_see_a_partial_file(tmp_path, monkeypatch):
    path = str(tmp_path / "guardian.prom")
    m = full_metrics(path)
    m.write(0.0)
    real_replace = os.replace
    seen = []

    def replace(src, dst, src_dir_fd=None, dst_dir_fd=None):
        def at(name, dfd):
            return name if dfd is None else os.path.join("/proc/self/fd/%d" % dfd, name)
        seen.append(open(at(dst, dst_dir_fd)).read())  # what a scrape sees while the new file is put in place
        parse(open(at(src, src_dir_fd)).read())
        real_replace(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    monkeypatch.setattr(os, "replace", replace)
    m.update(mem_available_bytes=7)
    m.write(20.0)
    parse(seen[0])
    assert samples(parse(open(path).read()), "guardian_memory_available_bytes") == {(): 7}


def test_disabled_writes_nothing(tmp_path):
    m = Metrics(None)
    assert not m.enabled and m.write(0.0, force=True) is False


def test_unwritable_path_logs_once(tmp_path, guardian_log):
    blocker = tmp_path / "file"
    blocker.write_text("")
    m = Metrics(str(blocker / "guardian.prom"))
    assert m.write(0.0) is False
    assert m.write(20.0) is False
    assert guardian_log.text.count("cannot write metrics") == 1
