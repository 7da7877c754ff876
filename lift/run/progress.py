"""Progress lines and the time-left estimate.

``[3/9] translate_wplus seed0 ... done in 4m12s (elapsed 9m01s, about 14m left)``

Time left is the sum, over the units still to run, of each one's wall time recorded in
``run.json`` by an earlier run (``estimate_s``: its last finished attempt, kept when it is
rerun), else of the same stage or method in another seed (``RunRecord.estimate``); a unit
with neither counts as the median wall time of the units run so far in this invocation (the
median: one long prior must not make every 30-second prediction look like an hour). With none
of these (nothing has run yet and no earlier times) it is unknown.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def duration(seconds: float) -> str:
    """``12s``, ``4m12s``, ``1h02m``."""
    s = int(math.floor(seconds + 0.5))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def median(values: Sequence[float]) -> float | None:
    """``statistics.median``, None when empty."""
    return statistics.median(values) if values else None


def time_left(estimates: Sequence[float | None], done_walls: Sequence[float]) -> float | None:
    """Seconds left for units with these recorded estimates (None: none recorded), given the
    wall times of the units run so far; None when unknown."""
    typical = median(done_walls)
    total = 0.0
    for est in estimates:
        if est is None:
            if typical is None:
                return None
            est = typical
        total += est
    return total


def status_suffix(elapsed: float, left: float | None, remaining: int) -> str:
    if remaining == 0:
        return f"(elapsed {duration(elapsed)})"
    if left is None:
        return f"(elapsed {duration(elapsed)}, time left unknown)"
    return f"(elapsed {duration(elapsed)}, about {duration(left)} left)"


def prefix(index: int, total: int, label: str) -> str:
    width = len(str(total))
    return f"[{index:>{width}}/{total}] {label} ..."
