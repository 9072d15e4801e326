"""What one tick senses: the reading the sensor produces and the policy judges. Apart from
both, so that sensing does not depend on deciding."""
from __future__ import annotations

from guardian.kernel.procs import ProcInfo
from guardian.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Tuple


@record
class Reading:
    """One tick's view of the scope (the system, or one cgroup). Sizes in bytes."""

    time: float
    total: int  # MemTotal, or the cgroup's limit
    available: int  # MemAvailable, or limit - usage + reclaimable
    swap_total: int = 0
    swap_free: int = 0
    committed_as: Optional[int] = None
    commit_limit: Optional[int] = None
    overcommit_mode: Optional[int] = None
    psi_some_avg10: Optional[float] = None
    psi_full_avg10: Optional[float] = None
    high_order_free_percent: Optional[float] = None  # of free memory, in blocks order >= 4
    procs: Optional[Tuple[ProcInfo, ...]] = None  # None when not sampled this tick
    self_pid: int = 0
    # Other processes of the guardian itself (a onefile build's unpacker, our parent).
    own_pids: Tuple[int, ...] = ()
    oom_kills: Optional[int] = None  # the kernel OOM killer's count for the scope, when known
    # Taken after the kernel OOM killer's victim was gone and its memory stopped coming back.
    oom_settled: bool = False
    # Swap on zram is RAM: the part of swap_total/swap_free on zram devices, and the RAM that
    # swapping into their free space would still give back (free x (1 - 1/compression)).
    zram_swap_total: int = 0
    zram_swap_free: int = 0
    zram_relief: int = 0

    @property
    def headroom(self) -> int:
        """What the lines are held against: MemAvailable, plus what zram can still take in."""
        return self.available + self.zram_relief
