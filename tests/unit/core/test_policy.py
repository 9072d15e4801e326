"""The pure policy: rungs, lines, hysteresis, victim choice, and the state after acts."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardian.core import policy
from guardian.config import MIB, Config, Critical, LowPriority, Match
from guardian.kernel.procs import ProcInfo
from guardian.core.match import Role
from guardian.core.policy import KILL, NORMAL, RECLAIM, TERMINATE, PolicyState, Reading, Recent
from guardian.record import replace
from tests.support.fakes import procinfo


TOTAL = 1024 * MIB
CFG = Config()


def reading(avail_mib, t=100.0, procs=None, **kw):
    return Reading(time=t, total=kw.pop("total", TOTAL), available=int(avail_mib * MIB), procs=procs,
                   self_pid=kw.pop("self_pid", 99999), **kw)


def lines(total=TOTAL, cfg=CFG, rate=0.0):
    return policy.lines_for(Reading(time=0, total=total, available=total), Recent(fill_rate=rate), cfg)


# --- lines -----------------------------------------------------------------------------------

def test_lines_percent_wins_on_big_memory_and_floor_on_small():
    big = lines(total=8192 * MIB)
    assert big.kill == int(8192 * MIB * 0.05)
    board = lines(total=205 * MIB)  # a 256 MiB board: 5 % would be 10 MiB, the floor is 16 MiB
    assert (board.reclaim, board.terminate, board.kill) == (32 * MIB, 24 * MIB, 16 * MIB)
    # 128 MiB (80 MiB MemTotal): the default floors shrink to 20/15/12.5 % of the total, so a
    # board at rest with 30 MiB available is not above them by a hair.
    small = lines(total=80 * MIB)
    assert (small.reclaim, small.terminate, small.kill) == (16 * MIB, 12 * MIB, 10 * MIB)


def test_a_floor_the_board_writes_is_used_as_written():
    from guardian.board.load import build_config
    cfg = build_config({"thresholds": {"kill": {"percent": 5, "min_mib": 11}, "terminate": {"percent": 12}}},
                       "b.toml", ("b.toml",), "b")
    small = lines(total=80 * MIB, cfg=cfg)
    assert small.kill == 11 * MIB  # written: as is, though above 12.5 % of the total
    assert small.terminate == int(80 * MIB * 0.15)  # floor not written: the default, capped at 15 %


def test_kill_line_grows_with_the_observed_fill_rate():
    calm = lines(rate=0.0)
    fast = lines(rate=400 * MIB)  # 400 MiB/s * 0.25 s reaction = 100 MiB, less the slack
    slack = calm.kill // 2  # the lower half of the kill line
    assert fast.kill - calm.kill == 100 * MIB - slack
    assert fast.terminate - calm.terminate == 100 * MIB - slack and fast.reclaim - calm.reclaim == 100 * MIB - slack


def test_a_fill_one_reaction_cannot_carry_past_the_slack_raises_no_line():
    """Twelve workers growing 2 MiB/s each on a 256 MiB board: lines raised by that fill
    would end a second worker while the end state fits above the board's own lines."""
    board = 205 * MIB
    calm = lines(total=board)
    moderate = lines(total=board, rate=24 * MIB)  # 6 MiB a reaction, under the 8 MiB slack
    assert moderate == calm
    fast = lines(total=board, rate=200 * MIB)
    assert fast.kill == calm.kill + 50 * MIB - calm.kill // 2


def test_kill_line_never_exceeds_half_the_total():
    wild = lines(rate=1e15)
    assert wild.kill == TOTAL // 2


# --- rungs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("avail,rung", [(900, NORMAL), (150, RECLAIM), (100, TERMINATE), (40, KILL)])
def test_rung_from_available(avail, rung):
    got, why = policy.rung_for(reading(avail), lines(), CFG)
    assert got == rung, why


def test_swap_with_room_caps_the_rung_at_reclaim():
    r = reading(40, swap_total=1024 * MIB, swap_free=800 * MIB)
    got, why = policy.rung_for(r, lines(), CFG)
    assert got == RECLAIM and "swap" in why
    r = reading(40, swap_total=1024 * MIB, swap_free=10 * MIB)
    assert policy.rung_for(r, lines(), CFG)[0] == KILL


def test_psi_raises_the_rung():
    assert policy.rung_for(reading(900, psi_some_avg10=25.0), lines(), CFG)[0] == RECLAIM
    # Full stalls end a process only when memory is short by the lines too; above the reclaim
    # line they are page cache churning, which reclaim answers.
    assert policy.rung_for(reading(900, psi_full_avg10=60.0), lines(), CFG)[0] == RECLAIM
    assert policy.rung_for(reading(150, psi_full_avg10=60.0), lines(), CFG)[0] == TERMINATE
    off = replace(CFG, thresholds=replace(CFG.thresholds, psi_full_terminate=None, psi_some_reclaim=None))
    assert policy.rung_for(reading(900, psi_full_avg10=60.0, psi_some_avg10=90.0), lines(cfg=off), off)[0] == NORMAL


def test_commit_charge_counts_only_in_strict_overcommit():
    kw = dict(committed_as=990 * MIB, commit_limit=1000 * MIB)
    assert policy.rung_for(reading(900, overcommit_mode=0, **kw), lines(), CFG)[0] == NORMAL
    assert policy.rung_for(reading(900, overcommit_mode=2, **kw), lines(), CFG)[0] == KILL
    kw = dict(committed_as=960 * MIB, commit_limit=1000 * MIB)
    assert policy.rung_for(reading(900, overcommit_mode=2, **kw), lines(), CFG)[0] == TERMINATE


# --- victim choice ---------------------------------------------------------------------------

def test_culprit_goes_first_even_with_low_priority_services():
    procs = (procinfo(10, "hog", rss_mib=300, oom_score=300), procinfo(11, "webui", rss_mib=50, oom_score=50))
    cfg = replace(CFG, low_priority=(LowPriority("webui", Match(comm="webui"), stop=("/etc/init.d/S60webui", "stop")),))
    roles = {11: Role("low_priority", cfg.low_priority[0])}
    recent = Recent(growth={10: 250 * MIB, 11: 1 * MIB}, growth_span_s=20)
    v = policy.choose_victim(procs, roles, recent, cfg, TOTAL, 99999)
    assert v.pid == 10 and "culprit" in v.why
    assert "webui" in v.runner_up


def test_on_a_small_board_a_few_mib_of_growth_make_a_culprit():
    """80 MiB: a runaway crosses the lines after growing ~5 MiB, under the 8 MiB floor; 5 % of
    MemTotal (4 MiB) is the bar there. On 1 GiB the 8 MiB floor still holds."""
    procs = (procinfo(10, "hog", rss_mib=6, oom_score=80), procinfo(11, "webui", rss_mib=12, oom_score=150))
    cfg = replace(CFG, low_priority=(LowPriority("webui", Match(comm="webui")),))
    roles = {11: Role("low_priority", cfg.low_priority[0])}
    recent = Recent(growth={10: 5 * MIB, 11: 0}, growth_span_s=2)
    small = policy.choose_victim(procs, roles, recent, cfg, 80 * MIB, 99999)
    assert small.pid == 10 and "culprit" in small.why
    # On 1 GiB the 8 MiB floor holds when others grow too (5 of 6.5 MiB: no sole grower)...
    shared = Recent(growth={10: 5 * MIB, 11: 0, 12: int(1.5 * MIB)}, growth_span_s=2)
    procs3 = procs + (procinfo(12, "app", rss_mib=3, oom_score=20),)
    big = policy.choose_victim(procs3, roles, shared, cfg, TOTAL, 99999)
    assert big.pid == 11 and "low priority" in big.why
    strict = replace(cfg, victims=replace(cfg.victims, culprit_min_percent=100))
    assert policy.choose_victim(procs3, roles, shared, strict, 80 * MIB, 99999).pid == 11
    # ...and a process making over 90 % of the growth is the culprit at any size.
    assert policy.choose_victim(procs, roles, recent, cfg, TOTAL, 99999).pid == 10


def test_low_priority_first_without_a_clear_culprit_in_board_order():
    procs = (procinfo(10, "app", rss_mib=300, oom_score=300), procinfo(11, "webui", rss_mib=50),
             procinfo(12, "nodered", rss_mib=80))
    cfg = replace(CFG, low_priority=(LowPriority("nodered", Match(comm="nodered"), order=2),
                                     LowPriority("webui", Match(comm="webui"), order=1, stop=("stopit",))))
    roles = {11: Role("low_priority", cfg.low_priority[1]), 12: Role("low_priority", cfg.low_priority[0])}
    recent = Recent(growth={10: 5 * MIB, 11: 4 * MIB, 12: 4 * MIB})
    v = policy.choose_victim(procs, roles, recent, cfg, TOTAL, 99999)
    assert v.pid == 11 and v.low_priority and v.stop == ("stopit",)
    assert "nodered" in v.runner_up and "later in board order" in v.runner_up


def test_highest_score_otherwise_with_growth_adjustment():
    procs = (procinfo(10, "a", oom_score=300), procinfo(11, "b", oom_score=250))
    assert policy.choose_victim(procs, {}, Recent(), CFG, TOTAL, 99999).pid == 10
    # b grew 100 MiB of a 1 GiB total (+~98 points) but not enough to be a culprit (a grew too).
    recent = Recent(growth={10: 90 * MIB, 11: 100 * MIB})
    v = policy.choose_victim(procs, {}, recent, CFG, TOTAL, 99999)
    assert v.pid == 11 and "score" in v.runner_up


def test_protected_processes_are_never_victims():
    crit = Critical("connman", Match(comm="connmand"))
    procs = (procinfo(1, "init", oom_score=999), procinfo(2, "kthreadd", kthread=True, oom_score=999),
             procinfo(50, "me", oom_score=999), procinfo(51, "sshd", adj=-1000, oom_score=0),
             procinfo(52, "connmand", oom_score=999))
    roles = {52: Role("critical", crit)}
    assert policy.choose_victim(procs, roles, Recent(growth={52: 500 * MIB}), CFG, TOTAL, 50) is None


# --- decide: the ladder ----------------------------------------------------------------------

def test_normal_does_nothing():
    plan = policy.decide(reading(900), Recent(), PolicyState(), CFG, {})
    assert plan.action == "none" and plan.rung == NORMAL


def test_reclaim_then_rate_limited():
    plan = policy.decide(reading(150, high_order_free_percent=2.0), Recent(), PolicyState(), CFG, {})
    assert plan.action == "reclaim" and plan.reclaim_steps == ("compact", "drop_caches")
    state = policy.after_reclaim(plan.state, 100.0, {"compact": 0, "drop_caches": 5 * MIB})
    again = policy.decide(reading(150, t=110.0, high_order_free_percent=2.0), Recent(), state, CFG, {})
    assert again.action == "none"  # within reclaim_interval_s
    later = policy.decide(reading(150, t=200.0, high_order_free_percent=2.0), Recent(), again.state, CFG, {})
    assert later.reclaim_steps == ("drop_caches",)  # compaction freed nothing last time: skipped once
    state = policy.after_reclaim(later.state, 200.0, {"drop_caches": 0})
    once_more = policy.decide(reading(150, t=300.0, high_order_free_percent=2.0), Recent(), state, CFG, {})
    assert once_more.reclaim_steps == ("compact",)  # ... and tried again after that


def test_terminate_rung_reclaims_first_once_then_terminates():
    procs = (procinfo(10, "app", oom_score=500),)
    plan = policy.decide(reading(100, procs=procs), Recent(), PolicyState(), CFG, {})
    assert plan.action == "reclaim"
    state = policy.after_reclaim(plan.state, 100.0, {"drop_caches": 0})
    plan = policy.decide(reading(100, t=100.5, procs=procs), Recent(), state, CFG, {})
    assert plan.action == "terminate" and plan.victim.pid == 10


def test_kill_rung_kills_without_reclaim():
    procs = (procinfo(10, "app", oom_score=500),)
    plan = policy.decide(reading(40, procs=procs), Recent(), PolicyState(), CFG, {})
    assert plan.action == "kill" and plan.victim.pid == 10


def test_needs_procs_when_the_table_was_not_read():
    plan = policy.decide(reading(40), Recent(), PolicyState(), CFG, {})
    assert plan.action == "wait" and plan.needs_procs


def test_no_candidate_is_said_not_crashed():
    plan = policy.decide(reading(40, procs=(procinfo(1, "init"),)), Recent(), PolicyState(), CFG, {})
    assert plan.action == "none" and "no process" in plan.reason


def test_graceful_stop_grace_escalation_and_exit():
    procs = (procinfo(10, "app", oom_score=500),)
    plan = policy.decide(reading(100, procs=procs), Recent(), PolicyState(reclaimed_this_episode=True, rung=TERMINATE),
                         CFG, {})
    assert plan.action == "terminate"
    state = policy.after_terminate(plan.state, plan.victim, 100.0, 5.0)
    # within grace, still short but above the kill line: watch
    assert policy.decide(reading(100, t=101, procs=procs), Recent(), state, CFG, {}).action == "wait"
    # below the kill line within grace: kill the same victim at once
    early = policy.decide(reading(40, t=101, procs=procs), Recent(), state, CFG, {})
    assert early.action == "kill" and early.victim.pid == 10
    # grace over and still short: kill
    late = policy.decide(reading(100, t=105.5, procs=procs), Recent(), state, CFG, {})
    assert late.action == "kill" and "grace" in late.victim.why
    # grace over and memory back: leave it
    fine = policy.decide(reading(900, t=105.5, procs=procs), Recent(), state, CFG, {})
    assert fine.action == "none" and fine.state.pending is None
    # it stopped: no second act before it settles
    gone = policy.decide(reading(100, t=102, procs=()), Recent(), state, CFG, {})
    assert gone.action == "wait" and gone.state.pending is None
    assert policy.decide(reading(100, t=102.03, procs=(procinfo(11),)), Recent(), gone.state, CFG, {}).action == "wait"


def test_pid_reuse_during_grace_is_not_the_victim():
    procs = (procinfo(10, "app", oom_score=500, starttime=100),)
    plan = policy.decide(reading(100, procs=procs), Recent(), PolicyState(reclaimed_this_episode=True), CFG, {})
    state = policy.after_terminate(plan.state, plan.victim, 100.0, 5.0)
    reused = (procinfo(10, "other", oom_score=500, starttime=555),)
    assert policy.decide(reading(40, t=101, procs=reused), Recent(), state, CFG, {}).action == "wait"


def test_hysteresis_keeps_the_episode_until_clear_of_the_line():
    state = PolicyState(rung=TERMINATE)
    ln = lines()
    just_above = (ln.terminate + ln.hysteresis // 2) / MIB
    plan = policy.decide(reading(just_above), Recent(), state, CFG, {})
    assert plan.state.rung == TERMINATE and plan.action != "kill" and plan.action != "terminate"
    clear = (ln.reclaim + ln.hysteresis + MIB) / MIB
    assert policy.decide(reading(clear), Recent(), state, CFG, {}).state.rung == NORMAL


# --- properties ------------------------------------------------------------------------------

procs_strategy = st.lists(
    st.builds(procinfo, pid=st.integers(1, 400), comm=st.sampled_from(["a", "b", "connmand", "webui"]),
              rss_mib=st.floats(0, 500), oom_score=st.integers(0, 2000), adj=st.sampled_from([-1000, -500, 0, 500]),
              kthread=st.booleans(), starttime=st.one_of(st.none(), st.integers(1, 6000))),
    max_size=30, unique_by=lambda p: p.pid)

BOARD = replace(CFG, critical=(Critical("connman", Match(comm="connmand")),),
                low_priority=(LowPriority("webui", Match(comm="webui")),))


def roles_of(procs):
    from guardian.core.match import classify
    return classify(procs, BOARD)


@settings(max_examples=300, deadline=None)
@given(procs=procs_strategy, avail=st.floats(0, 1024),
       growth=st.dictionaries(st.integers(1, 400), st.integers(-100 * MIB, 900 * MIB)), self_pid=st.integers(1, 400))
def test_property_never_picks_a_protected_process(procs, avail, growth, self_pid):
    r = reading(avail, procs=tuple(procs), self_pid=self_pid)
    plan = policy.decide(r, Recent(growth=growth), PolicyState(reclaimed_this_episode=True), BOARD, roles_of(procs))
    if plan.victim is not None:
        v = next(p for p in procs if p.pid == plan.victim.pid)
        assert v.pid != 1 and v.pid != self_pid and not v.kthread and v.oom_score_adj != -1000
        assert v.comm != "connmand"


@settings(max_examples=300, deadline=None)
@given(total_mib=st.integers(64, 65536), frac=st.floats(0, 1), rate=st.floats(0, 2000),
       some=st.floats(0, 100), full=st.floats(0, 100), procs=procs_strategy)
def test_property_never_escalates_while_every_signal_is_fine(total_mib, frac, rate, some, full, procs):
    total = total_mib * MIB
    recent = Recent(fill_rate=rate * MIB)
    ln = policy.lines_for(Reading(time=0, total=total, available=total), recent, CFG)
    avail = ln.reclaim + int(frac * (total - ln.reclaim))
    th = CFG.thresholds
    r = Reading(time=10, total=total, available=avail, psi_some_avg10=some * th.psi_some_reclaim / 100.0 * 0.999,
                psi_full_avg10=full * th.psi_full_terminate / 100.0 * 0.999, procs=tuple(procs), self_pid=99999)
    plan = policy.decide(r, recent, PolicyState(), CFG, {})
    assert plan.rung == NORMAL and plan.action == "none"


@settings(max_examples=300, deadline=None)
@given(procs=procs_strategy, avail=st.floats(0, 60), later=st.floats(0, 0.999).map(lambda f: f * CFG.actions.settle_s),
       t=st.floats(0, 1e6))
def test_property_one_shortage_never_yields_two_kills(procs, avail, later, t):
    """After a kill, the same (or any) reading taken before the victim's exit has settled
    never yields a second kill: the next act needs a fresh reading."""
    r = reading(avail, t=t, procs=tuple(procs))
    plan = policy.decide(r, Recent(), PolicyState(), BOARD, roles_of(procs))
    if plan.action != "kill":
        return
    state = policy.after_kill(plan.state, t + 0.01)
    again = policy.decide(replace(r, time=t + 0.01 + later), Recent(), state, BOARD, roles_of(procs))
    assert again.action not in ("kill", "terminate")
    stale = policy.decide(r, Recent(), state, BOARD, roles_of(procs))
    assert stale.action not in ("kill", "terminate")


def test_the_guardians_other_processes_are_never_victims():
    # a onefile build runs as two processes: the unpacker (our parent) and us
    procs = (procinfo(60, "guardian", rss_mib=20, oom_score=900), procinfo(61, "app", oom_score=100))
    r = reading(40, procs=procs, self_pid=62, own_pids=(60,))
    plan = policy.decide(r, Recent(growth={60: 20 * MIB}), PolicyState(), CFG, {})
    assert plan.action == "kill" and plan.victim.pid == 61


def test_a_process_holding_almost_nothing_is_no_victim():
    procs = (procinfo(10, "sleep", rss_mib=0.5, oom_score=999), procinfo(11, "app", rss_mib=50, oom_score=100))
    plan = policy.decide(reading(40, procs=procs), Recent(), PolicyState(), CFG, {})
    assert plan.victim.pid == 11


def test_after_a_kernel_oom_kill_the_guardian_waits_for_its_memory_instead_of_ending_a_bystander():
    """The kernel killed the runaway between two wakes (seen on an 80 MiB VM at 100 MiB/s): on
    a reading taken before its memory is back, ending the low-priority service is one too many."""
    cfg = replace(CFG, low_priority=(LowPriority("webui", Match(comm="webui")),))
    procs = (procinfo(11, "webui", rss_mib=50),)
    roles = {11: Role("low_priority", cfg.low_priority[0])}
    before = policy.decide(reading(900, t=99.0, oom_kills=3), Recent(), PolicyState(), cfg, roles)
    assert before.action == "none" and before.state.kernel_oom_kills == 3
    after = policy.decide(reading(20, t=100.0, procs=procs, oom_kills=4), Recent(), before.state, cfg, roles)
    assert after.action == "wait" and after.victim is None and "kernel OOM killer" in after.reason
    assert after.needs_settle
    # The same count on a reading taken once the victim's memory is back: back above the
    # lines, nothing to do...
    settled = policy.decide(reading(900, t=100.1, procs=procs, oom_kills=4, oom_settled=True), Recent(),
                            before.state, cfg, roles)
    assert settled.action == "none" and settled.state.kernel_oom_kills == 4


def test_after_a_kernel_oom_kill_a_settled_reading_still_short_is_acted_on_at_once():
    """A load generator respawns what the kernel killed: standing aside lets the kernel kill
    again and again (22 times in 40 s with stress-ng). Still short after the victim's memory
    is back: the ladder goes on at once, and the respawn is the one ended."""
    procs = (procinfo(11, "webui", rss_mib=15, oom_score=700),
             replace(procinfo(20, "stress-ng-vm", rss_mib=30, oom_score=300), ppid=18))
    ended = (policy.Ended(pid=19, starttime=150, comm="stress-ng-vm", ppid=18, uid=0, cgroup="0::/",
                          time=99.5, by="kernel"),)
    before = policy.decide(reading(900, t=99.0, oom_kills=3), Recent(), PolicyState(), CFG, {})
    # Born after the kill, it holds 30 MiB: all of it growth (its first reading).
    recent = Recent(growth={20: 30 * MIB}, growth_span_s=0.5, ended=ended)
    for settled in (False, True):
        plan = policy.decide(reading(20, t=100.0, procs=procs, oom_kills=4, oom_settled=settled),
                             recent, before.state, CFG, {})
        if not settled:
            assert plan.action == "wait" and plan.needs_settle and plan.victim is None
    assert plan.action == "kill" and plan.victim.pid == 20 and "respawn of stress-ng-vm[19]" in plan.victim.why
    assert "kernel" in plan.victim.why and plan.victim.respawns == 1


def test_a_respawn_is_the_culprit_from_its_first_reading():
    """Same name, owner and parent as a process ended 2 s ago, growing: it goes first though it
    holds less than an idle bystander with a higher score and the low-priority service."""
    cfg = replace(CFG, low_priority=(LowPriority("webui", Match(comm="webui")),))
    roles = {11: Role("low_priority", cfg.low_priority[0])}
    worker = ProcInfo(pid=31, ppid=30, pgid=30, comm="worker", cmdline=("worker",), uid=1000, rss=3 * MIB,
                      rss_anon=3 * MIB, oom_score=40, oom_score_adj=0, kthread=False, cgroup="0::/", starttime=900)
    procs = (procinfo(11, "webui", rss_mib=50, oom_score=800), worker)
    ended = (policy.Ended(pid=29, starttime=500, comm="worker", ppid=30, uid=1000, cgroup="0::/", time=98.0,
                          by="guardian"),)
    recent = Recent(growth={31: 1 * MIB}, growth_span_s=1.0, ended=ended)
    v = policy.choose_victim(procs, roles, recent, cfg, TOTAL, 99999, now=100.0)
    assert v.pid == 31 and "respawn of worker[29]" in v.why and "no listed service" in v.why
    # Another owner, or another parent and cgroup, is no respawn of it.
    # (As the only grower it is still the culprit, but not as a respawn.)
    for other in (replace(worker, uid=0), replace(worker, ppid=77, cgroup="0::/user")):
        v = policy.choose_victim((procs[0], other), roles, recent, cfg, TOTAL, 99999, now=100.0)
        assert "respawn of" not in v.why and not v.respawns
    # Past the respawn window it is an ordinary process again.
    v = policy.choose_victim(procs, roles, recent, cfg, TOTAL, 99999, now=100.0 + policy.RESPAWN_WINDOW_S + 1)
    assert "respawn of" not in v.why and not v.respawns


def test_a_sibling_forked_in_the_same_tick_as_the_ended_one_is_no_respawn_of_it():
    """A forking server's workers share name, owner, parent and starttime (clock ticks): the
    one born after the end is the respawn, the one alive when it was ended is not."""
    worker = ProcInfo(pid=31, ppid=30, pgid=30, comm="worker", cmdline=("worker",), uid=1000, rss=90 * MIB,
                      rss_anon=90 * MIB, oom_score=600, oom_score_adj=0, kthread=False, cgroup="0::/", starttime=500)
    respawned = replace(worker, pid=40, rss=5 * MIB, starttime=1_000)
    ended = (policy.Ended(pid=29, starttime=500, comm="worker", ppid=30, uid=1000, cgroup="0::/", time=98.0,
                          by="guardian", born_after=980),)
    assert policy.respawn_of(worker, ended, 100.0) == []
    assert policy.respawn_of(respawned, ended, 100.0) == list(ended)
    assert policy.respawn_of(replace(respawned, starttime=979), ended, 100.0) == []
    # Where the end's time is unknown (0), starttime alone decides, as before.
    unknown = (replace(ended[0], born_after=0),)
    assert policy.respawn_of(worker, unknown, 100.0) == list(unknown)
    v = policy.choose_victim((worker,), {}, Recent(growth={31: 40 * MIB}, growth_span_s=10.0, ended=ended), CFG,
                             TOTAL, 99999, now=100.0)
    assert v.pid == 31 and "respawn" not in v.why and not v.respawns


def test_a_respawning_childs_parent_listed_as_low_priority_is_stopped_instead():
    cfg = replace(CFG, low_priority=(LowPriority("loadgen", Match(comm="loadgen"),
                                                 stop=("/etc/init.d/S70loadgen", "stop")),))
    parent = ProcInfo(pid=30, ppid=1, pgid=30, comm="loadgen", cmdline=("loadgen",), uid=0, rss=2 * MIB,
                      rss_anon=2 * MIB, oom_score=5, oom_score_adj=0, kthread=False, cgroup="0::/", starttime=100)
    child = replace(parent, pid=31, ppid=30, rss=20 * MIB, starttime=900)
    roles = {30: Role("low_priority", cfg.low_priority[0])}
    ended = (policy.Ended(pid=29, starttime=500, comm="loadgen", ppid=30, uid=0, cgroup="0::/", time=99.0,
                          by="kernel"),)
    v = policy.choose_victim((parent, child), roles, Recent(growth={31: 20 * MIB}, ended=ended), cfg, TOTAL, 99999,
                             now=100.0)
    assert v.pid == 30 and v.stop == ("/etc/init.d/S70loadgen", "stop") and "parent of a respawning" in v.why


def test_a_newborn_runaway_goes_before_an_idle_bystander_with_a_higher_score():
    """128 MiB board: an idle web UI (15.5 MiB, oom_score 796) and a runaway born 1 s ago,
    seen in one table only: its whole RSS is its growth, so it is the culprit."""
    from guardian.core.history import Growth
    total = 80 * MIB
    g = Growth(window_s=30.0, clock_ticks=100)
    webui = procinfo(11, "webui", rss_mib=15.5, oom_score=796, starttime=100)
    hog = procinfo(40, "hog", rss_mib=9, oom_score=110, starttime=99_900)
    g.add(50.0, (webui, hog), uptime_s=1000.0)
    v = policy.choose_victim((webui, hog), {}, Recent(growth=g.growth(), growth_span_s=g.span_s()), CFG, total, 99999)
    assert v.pid == 40 and v.why.startswith("culprit")


def test_no_reclaim_while_memory_falls_faster_than_reclaim_returns_it():
    """drop_caches blocked the loop for up to 0.45 s while a stressor filled memory: with the
    kill line under a second away at the fill rate seen, the ladder goes straight on."""
    procs = (procinfo(20, "hog", rss_mib=100, oom_score=500),)
    fast = Recent(fill_rate=300 * MIB, growth={20: 100 * MIB}, growth_span_s=1.0)
    plan = policy.decide(reading(110, procs=procs), fast, PolicyState(), CFG, {})
    assert plan.action in ("terminate", "kill") and "no time to reclaim" in plan.reason
    slow = Recent(fill_rate=1 * MIB, growth={20: 100 * MIB}, growth_span_s=1.0)
    plan = policy.decide(reading(100, procs=procs), slow, PolicyState(), CFG, {})
    assert plan.action == "reclaim"
    # A pass that took long raises the time it needs.
    state = policy.after_reclaim(PolicyState(), -100.0, {"drop_caches": 0}, cost_s=3.0)
    state = replace(state, reclaimed_this_episode=False)
    mid = Recent(fill_rate=10 * MIB, growth={20: 100 * MIB}, growth_span_s=1.0)
    assert policy.decide(reading(100, procs=procs), mid, PolicyState(), CFG, {}).action == "reclaim"
    assert "no time to reclaim" in policy.decide(reading(100, procs=procs), mid, state, CFG, {}).reason


def test_zram_swap_is_ram_it_counts_in_the_headroom_and_never_as_a_reprieve():
    total = 80 * MIB
    small = lines(total=total)
    # 8 MiB available, 40 MiB of zram free that would still give 20 MiB: above the kill line.
    r = reading(8, total=total, swap_total=64 * MIB, swap_free=40 * MIB, zram_swap_total=64 * MIB,
                zram_swap_free=40 * MIB, zram_relief=20 * MIB)
    assert policy.rung_for(r, small, CFG)[0] == NORMAL
    # zram nearly full: the swap-free reprieve of disk swap does not apply.
    r = replace(r, swap_free=30 * MIB, zram_swap_free=30 * MIB, zram_relief=1 * MIB)
    got, why = policy.rung_for(r, small, CFG)
    assert got == KILL and "zram" in why and "swap" not in why.split("zram")[-1]


def test_a_low_priority_service_the_fill_eats_within_a_second_is_no_remedy():
    cfg = replace(CFG, low_priority=(LowPriority("webui", Match(comm="webui")),))
    roles = {11: Role("low_priority", cfg.low_priority[0])}
    procs = (procinfo(11, "webui", rss_mib=16, oom_score=100),) + tuple(
        procinfo(20 + i, "worker", rss_mib=10, oom_score=50 + i) for i in range(4))
    growth = {20 + i: 5 * MIB for i in range(4)}
    slow = policy.choose_victim(procs, roles, Recent(fill_rate=4 * MIB, growth=growth), cfg, TOTAL, 99999)
    assert slow.pid == 11
    fast = policy.choose_victim(procs, roles, Recent(fill_rate=40 * MIB, growth=growth), cfg, TOTAL, 99999)
    assert fast.pid != 11 and fast.name == "worker"
    # The growers' own pace is fast too (20 MiB in 0.5 s): the same.
    fast = policy.choose_victim(procs, roles, Recent(fill_rate=40 * MIB, growth=growth, growth_rate=40 * MIB), cfg,
                                TOTAL, 99999)
    assert fast.pid != 11 and fast.name == "worker"


def test_a_burst_between_two_glances_does_not_cost_the_low_priority_service_its_turn():
    """Seen in a 512 MiB VM: three workers growing 3 MiB/s each, held in reclaim and catching
    up at once; the glances saw 127 MiB/s. Their growth says 9 MiB/s: the 48 MiB service lasts
    5 s at that pace and goes first, as the board asks, even at the kill rung."""
    cfg = replace(CFG, low_priority=(LowPriority("lowprio", Match(comm="lowprio")),))
    roles = {11: Role("low_priority", cfg.low_priority[0])}
    procs = (procinfo(11, "lowprio", rss_mib=48, oom_score=736),) + tuple(
        procinfo(20 + i, "worker", rss_mib=107, oom_score=822) for i in range(3))
    recent = Recent(fill_rate=127 * MIB, growth={20 + i: 107 * MIB for i in range(3)}, growth_span_s=30.0,
                    growth_rate=9 * MIB)
    v = policy.choose_victim(procs, roles, recent, cfg, 512 * MIB, 99999)
    assert v.pid == 11 and "low priority 'lowprio'" in v.why
    plan = policy.decide(reading(10, procs=procs, total=512 * MIB), recent, PolicyState(), cfg, roles)
    assert plan.action == "kill" and plan.victim.pid == 11
    # Without a growth rate (one table, no boot clock), the glances' rate decides, as before.
    v = policy.choose_victim(procs, roles, replace(recent, growth_rate=0.0), cfg, 512 * MIB, 99999)
    assert v.name == "worker"


def test_a_respawn_gets_its_graceful_stop_too():
    """stress-ng ends a worker that is sent SIGTERM and restarts one that is SIGKILLed: the
    graceful stop is what ends a respawning load for good (4 ends in 40 s against 129)."""
    procs = (replace(procinfo(20, "stress-ng-vm", rss_mib=100, oom_score=900, starttime=900), ppid=18),)
    ended = (policy.Ended(pid=19, starttime=500, comm="stress-ng-vm", ppid=18, uid=0, cgroup="0::/",
                          time=99.0, by="guardian"),)
    recent = Recent(growth={20: 100 * MIB}, growth_span_s=0.3, ended=ended)
    state = PolicyState(reclaimed_this_episode=True, rung=TERMINATE)
    plan = policy.decide(reading(100, procs=procs), recent, state, CFG, {})
    assert plan.action == "terminate" and plan.victim.respawns == 1
    pending = policy.after_terminate(plan.state, plan.victim, 100.0, 5.0).pending
    assert pending.respawns == 1


def test_a_kill_asks_with_sigterm_first_only_where_the_fill_leaves_time():
    procs = (procinfo(20, "hog", rss_mib=100, oom_score=900),)
    growth = {20: 100 * MIB}
    # 48 MiB available, kill line 51.2 MiB, reserve 25.6 MiB: 22.4 MiB at the assumed
    # 100 MiB/s is 0.22 s, half of it over the 0.1 s cap.
    calm = policy.decide(reading(48, procs=procs), Recent(growth=growth), PolicyState(), CFG, {})
    assert calm.action == "kill" and calm.term_first_s == policy.TERM_FIRST_MAX_S
    fast = policy.decide(reading(48, procs=procs), Recent(fill_rate=300 * MIB, growth=growth), PolicyState(), CFG, {})
    assert fast.action == "kill" and 0 < fast.term_first_s < policy.TERM_FIRST_MAX_S
    # At the reserve there is no time to ask: SIGKILL at once.
    late = policy.decide(reading(26, procs=procs), Recent(growth=growth), PolicyState(), CFG, {})
    assert late.action == "kill" and late.term_first_s == 0.0
    # Terminate plans are graceful stops already.
    assert policy.decide(reading(100, procs=procs), Recent(growth=growth), PolicyState(reclaimed_this_episode=True),
                         CFG, {}).term_first_s == 0.0


@settings(max_examples=300, deadline=None)
@given(peak=st.floats(0, 2000), now_rate=st.floats(-50, 2000), long_rate=st.floats(0, 2000), avail_frac=st.floats(0, 1),
       procs=procs_strategy, grown_mib=st.floats(-20, 100))
def test_property_the_reclaim_rung_ends_a_process_only_with_the_kill_line_a_reaction_away(
        peak, now_rate, long_rate, avail_frac, procs, grown_mib):
    """Seen in a zram VM: with no time to reclaim, the reclaim rung fell through to a victim.
    It ends one only where the kill line is nearer than one reaction at the fill between the
    last two readings (not a decaying peak, not the fastest of the last minutes), and only a
    process that grew by the culprit minimum."""
    total = 80 * MIB
    growth = {procs[0].pid: int(grown_mib * MIB)} if procs else {}
    recent = Recent(fill_rate=peak * MIB, fill_now=now_rate * MIB, fill_rate_long=long_rate * MIB, growth=growth,
                    growth_span_s=10.0)
    ln = policy.lines_for(Reading(time=0, total=total, available=total), recent, CFG)
    avail = ln.terminate + int(avail_frac * (ln.reclaim - ln.terminate - 1))
    r = Reading(time=10, total=total, available=avail, procs=tuple(procs), self_pid=99999)
    plan = policy.decide(r, recent, PolicyState(), CFG, {})
    grew_enough = 4 * MIB  # the culprit minimum: 5 % of 80 MiB
    ahead = now_rate > 0 and avail - int(now_rate * MIB * CFG.thresholds.reaction_time_s) < ln.kill \
        and grown_mib * MIB >= grew_enough
    if plan.action in ("terminate", "kill"):
        assert ahead and plan.rung == TERMINATE and "closer than one reaction" in plan.reason
        assert plan.victim.pid == procs[0].pid and plan.victim.growth >= grew_enough
    else:
        assert plan.action in ("none", "reclaim")
        if not ahead:
            assert plan.rung == RECLAIM


def test_the_kill_line_a_reaction_away_at_the_reclaim_rung_ends_the_grower_now():
    """The zram VM's last reading before the kernel won: 20.4 MiB of headroom (9.5 available,
    10.9 zram could still take in) below the reclaim line, 3 MiB above the kill line at
    49 MiB/s, a runaway that grew 56 MiB. The guardian waited for the terminate line at the
    reclaim rung, and its next reading came 0.3 s late, with zram full."""
    total = 80 * MIB
    hog = procinfo(356, "hog", rss_mib=56, oom_score=928)
    idle = procinfo(140, "lowprio", rss_mib=8, oom_score=704)
    r = Reading(time=10, total=total, available=int(9.5 * MIB), swap_total=64 * MIB, swap_free=22 * MIB,
                zram_swap_total=64 * MIB, zram_swap_free=22 * MIB, zram_relief=int(10.9 * MIB),
                procs=(hog, idle), self_pid=99999)
    fast = Recent(fill_rate=49 * MIB, fill_now=49 * MIB, growth={356: 56 * MIB, 140: 0}, growth_span_s=30.0)
    ln = policy.lines_for(r, fast, CFG)
    assert ln.terminate <= r.headroom < ln.reclaim  # the reclaim rung by the lines alone
    plan = policy.decide(r, fast, PolicyState(), CFG, {})
    assert plan.rung == TERMINATE and plan.action == "kill" and plan.victim.pid == 356
    assert "closer than one reaction" in plan.reason and "no time for a grace" in plan.reason
    # Nothing grew: the fill is not a process's, and no end answers it.
    still = policy.decide(r, replace(fast, growth={356: MIB}), PolicyState(), CFG, {})
    assert still.rung == RECLAIM and still.action == "none"
    # The same headroom with the kill line a second away (a slower fill): the reclaim rung waits.
    slower = replace(fast, fill_rate=12 * MIB, fill_now=12 * MIB)
    assert policy.lines_for(r, slower, CFG).terminate <= r.headroom
    assert policy.decide(r, slower, PolicyState(), CFG, {}).action in ("none", "reclaim")
    # Only the fastest fill of the last minutes (a runaway ended before), or a peak of seconds
    # ago still decaying while memory stands still: no end on either alone.
    old = replace(fast, fill_rate=0.0, fill_now=0.0, fill_rate_long=49 * MIB)
    assert policy.decide(r, old, PolicyState(), CFG, {}).action == "none"
    over = replace(fast, fill_now=0.0)
    assert policy.decide(r, over, PolicyState(), CFG, {}).action == "none"
    # The reclaim rung that PSI calls for above the reclaim line: no end by this rule.
    churn = replace(r, available=int(13 * MIB), zram_relief=int(11 * MIB), psi_some_avg10=20.0)
    assert churn.headroom >= ln.reclaim
    assert policy.decide(churn, fast, PolicyState(), CFG, {}).action == "none"
    # The victim the table names did not grow (the grower is protected): no end ahead of the
    # terminate line.
    crit = replace(CFG, critical=(Critical("hog", Match(comm="hog")),))
    roles = {356: Role("critical", crit.critical[0])}
    quiet = policy.decide(r, fast, PolicyState(), crit, roles)
    assert quiet.action == "none" and "no end ahead of the terminate line" in quiet.reason
    # Swap on a disk, mostly free: the kill line would stand aside a reaction on, and so does
    # this rung now; with that swap nearly full, it goes on as without swap.
    disk = replace(r, available=int(20.4 * MIB), swap_total=256 * MIB, swap_free=200 * MIB, zram_swap_total=0,
                   zram_swap_free=0, zram_relief=0)
    assert ln.terminate <= disk.headroom < ln.reclaim
    assert policy.decide(disk, fast, PolicyState(), CFG, {}).action in ("none", "reclaim")
    full = replace(disk, swap_free=2 * MIB)
    assert policy.decide(full, fast, PolicyState(), CFG, {}).action == "kill"
    # A clear culprit goes before a low-priority service, as at any rung.
    cfg = replace(CFG, low_priority=(LowPriority("lp", Match(comm="lowprio"), stop=("/bin/true",)),))
    roles = {140: Role("low_priority", cfg.low_priority[0])}
    assert policy.decide(r, fast, PolicyState(), cfg, roles).victim.pid == 356


ended_strategy = st.lists(st.builds(
    policy.Ended, pid=st.integers(1, 400), starttime=st.integers(0, 5000),
    comm=st.sampled_from(["a", "b", "connmand", "webui"]), ppid=st.integers(0, 5), uid=st.sampled_from([0, 1000]),
    cgroup=st.sampled_from(["", "0::/", "0::/svc"]), time=st.floats(0, 100),
    by=st.sampled_from(["guardian", "kernel"]), born_after=st.integers(0, 6000)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(procs=procs_strategy, ended=ended_strategy,
       growth=st.dictionaries(st.integers(1, 400), st.integers(-10 * MIB, 90 * MIB)),
       ppids=st.lists(st.integers(0, 5), min_size=30, max_size=30), now=st.floats(0, 200))
def test_property_a_respawn_is_never_a_protected_process_and_always_like_what_was_ended(procs, ended, growth, ppids,
                                                                                        now):
    procs = [replace(p, ppid=ppids[i]) for i, p in enumerate(procs)]
    roles = roles_of(procs)
    v = policy.choose_victim(procs, roles, Recent(growth=growth, ended=tuple(ended)), BOARD, TOTAL, 99999, now)
    if v is None:
        return
    chosen = next(p for p in procs if p.pid == v.pid)
    assert policy.is_protected(chosen, roles, 99999, BOARD) is None
    if v.respawns and "parent of a respawning" not in v.why:
        like = [e for e in ended
                if e.comm == chosen.comm and e.uid == chosen.uid and now - e.time <= policy.RESPAWN_WINDOW_S
                and chosen.starttime >= e.born_after]
        assert len(like) >= v.respawns and growth.get(chosen.pid, 0) > 0


@settings(max_examples=200, deadline=None)
@given(rss=st.lists(st.integers(1, 500), min_size=1, max_size=20),
       ages=st.lists(st.floats(0, 120), min_size=20, max_size=20))
def test_property_growth_from_birth_counts_the_whole_rss_of_the_newborn_only(rss, ages):
    from guardian.core.history import Growth
    g = Growth(window_s=30.0, clock_ticks=100)
    uptime = 1000.0
    procs = [procinfo(10 + i, rss_mib=r, starttime=int((uptime - ages[i]) * 100)) for i, r in enumerate(rss)]
    g.add(5.0, procs, uptime_s=uptime)
    grown = g.growth()
    for i, p in enumerate(procs):
        if ages[i] < 29.9:
            assert grown[p.pid] == p.rss
        elif ages[i] > 30.1:
            assert p.pid not in grown


def test_a_runaway_swapped_out_to_zram_is_still_a_victim():
    """Seen in a 128 MiB VM with zram swap: the runaway's pages lived in zram (VmRSS near 0),
    so it 'held almost no memory', nothing could be ended and the kernel killed it."""
    hog = replace(procinfo(20, "hog", rss_mib=0.2, oom_score=900), swap=48 * MIB)
    v = policy.choose_victim((hog, procinfo(11, "webui", rss_mib=8, oom_score=300)), {}, Recent(growth={20: 48 * MIB}),
                             CFG, 80 * MIB, 99999)
    assert v.pid == 20 and v.rss == hog.rss + 48 * MIB and "swap 48.0 MiB" in v.why


def test_full_stalls_that_outlast_a_reclaim_pass_go_on_to_terminate():
    procs = (procinfo(20, "hog", rss_mib=100, oom_score=900),)
    thrash = reading(200, t=100.0, procs=procs, psi_full_avg10=70.0)  # above the reclaim line (161 MiB)
    first = policy.decide(thrash, Recent(), PolicyState(), CFG, {})
    assert first.rung == RECLAIM and first.action == "reclaim"
    state = policy.after_reclaim(first.state, 100.0, {"drop_caches": 5 * MIB})
    soon = policy.decide(replace(thrash, time=105.0), Recent(), state, CFG, {})
    assert soon.action not in ("terminate", "kill")
    later = policy.decide(replace(thrash, time=111.0), Recent(), state, CFG, {})
    assert later.rung == TERMINATE and later.action == "terminate" and "thrashing" in later.reason


def test_after_a_kill_the_fastest_fill_of_the_last_minutes_still_leaves_no_time_to_reclaim():
    """stress-ng bigheap: the first heap was killed and its burst forgotten (the lines return to
    the board's own), then its respawn, growing 400 MiB/s, was met with drop_caches and the
    kernel won. The pace of the last minutes still says there is no time to reclaim."""
    procs = (procinfo(20, "stress-ng-bighe", rss_mib=90, oom_score=900),)
    recent = Recent(fill_rate=0.0, fill_rate_long=400 * MIB, growth={20: 90 * MIB})
    plan = policy.decide(reading(100, procs=procs), recent, PolicyState(), CFG, {})
    # No time to reclaim, and none for a 5 s grace either: SIGTERM, then SIGKILL.
    assert plan.action == "kill" and "no time to reclaim" in plan.reason and "no time for a grace" in plan.reason
    assert 0 < plan.term_first_s <= policy.TERM_FIRST_MAX_S
    assert policy.decide(reading(100, procs=procs), replace(recent, fill_rate_long=0.0), PolicyState(), CFG,
                         {}).action == "reclaim"
    # A low-priority service with a stop command still gets its stop command.
    cfg = replace(CFG, low_priority=(LowPriority("bh", Match(comm="stress-ng-bighe"), stop=("/bin/true",)),))
    roles = {20: Role("low_priority", cfg.low_priority[0])}
    assert policy.decide(reading(100, procs=procs), recent, PolicyState(), cfg, roles).action == "terminate"


def test_lines_raised_by_a_burst_end_no_idle_bystander():
    """After stress-ng left, the kept peak of its respawns held the terminate line at 123 MiB
    with 117 MiB available at rest, and an idle web UI was stopped."""
    board = 205 * MIB
    assert lines(total=board, rate=450 * MIB).terminate > 117 * MIB
    idle = (procinfo(11, "webui", rss_mib=16, oom_score=718),)
    plan = policy.decide(reading(117, total=board, procs=idle), Recent(fill_rate=450 * MIB, growth={11: -MIB}),
                         PolicyState(), CFG, {})
    assert plan.action == "none" and "only the fill-rate margin" in plan.reason
    small = policy.decide(reading(117, total=board, procs=idle), Recent(fill_rate=450 * MIB, growth={11: 2 * MIB}),
                          PolicyState(), CFG, {})
    assert small.action == "none"  # 2 MiB is no burst
    # A grower on the same raised lines is ended: the burst is still on.
    growing = idle + (procinfo(20, "stress-ng-bighe", rss_mib=20, oom_score=900),)
    plan = policy.decide(reading(97, total=board, procs=growing), Recent(fill_rate=450 * MIB, growth={20: 20 * MIB}),
                         PolicyState(), CFG, {})
    assert plan.action in ("terminate", "kill") and plan.victim.pid == 20
    # Workers that still grow, and the low-priority service chosen before them (no grower
    # itself): the bursts go on, so does the ladder (a memory cgroup's OOM killer fired there).
    cfg = replace(CFG, low_priority=(LowPriority("webui", Match(comm="webui")),))
    workers = tuple(procinfo(20 + i, "worker", rss_mib=40, oom_score=600) for i in range(3))
    plan = policy.decide(reading(117, total=board, procs=idle + workers),
                         Recent(fill_rate=450 * MIB, growth={20 + i: 15 * MIB for i in range(3)}, growth_rate=9 * MIB),
                         PolicyState(), cfg, {11: Role("low_priority", cfg.low_priority[0])})
    assert plan.action in ("terminate", "kill") and plan.victim.pid == 11, plan.reason


def test_a_small_newborn_that_makes_all_the_growth_is_the_culprit():
    """newborn-128: memory at rest 2 MiB above the terminate line; the runaway crossed it at
    2.4 MiB, under the culprit minimum, and the highest score (an idle web UI) was ended."""
    webui = procinfo(11, "webui", rss_mib=16, oom_score=800)
    hog = procinfo(40, "hog", rss_mib=2.4, oom_score=686)
    v = policy.choose_victim((webui, hog), {}, Recent(growth={40: int(2.4 * MIB), 11: 0}), CFG, 80 * MIB, 99999)
    assert v.pid == 40 and v.why.startswith("culprit")
    # Two small growers of equal share: no sole culprit, the score decides.
    other = procinfo(41, "hog2", rss_mib=2.4, oom_score=600)
    v = policy.choose_victim((webui, hog, other), {}, Recent(growth={40: int(2.4 * MIB), 41: int(2.4 * MIB)}),
                             CFG, 80 * MIB, 99999)
    assert v.pid == 11
