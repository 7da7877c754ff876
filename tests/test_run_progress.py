"""lift run's time-left estimate: recorded times, another seed's time, the median fallback."""

from __future__ import annotations

import pytest

from lift.run.progress import duration, status_suffix, time_left
from lift.run.record import RunRecord


def test_time_left_sums_recorded_estimates_and_falls_back_to_the_median_of_done_walls():
    assert time_left([10.0, 20.0], []) == 30.0
    assert time_left([None], []) is None  # nothing ran, nothing recorded: unknown
    # one 53-minute prior and two 30-second units: an unknown unit counts as 30 s, not ~18 min
    assert time_left([None, None], [3180.0, 30.0, 30.0]) == pytest.approx(60.0)
    assert time_left([None, 5.0], [10.0, 20.0]) == pytest.approx(20.0)  # even count: midpoint
    assert status_suffix(70.0, 60.0, 2) == "(elapsed 1m10s, about 1m00s left)"
    assert status_suffix(70.0, None, 2) == "(elapsed 1m10s, time left unknown)"
    assert status_suffix(70.0, None, 0) == "(elapsed 1m10s)"
    assert duration(3720) == "1h02m"


def test_a_unit_without_its_own_time_is_estimated_from_the_same_unit_in_other_seeds(tmp_path):
    record = RunRecord(tmp_path)
    record.update_unit("prior/seed0", kind="stage", estimate_s=3000.0)
    record.update_unit("prior/seed1", kind="stage", estimate_s=3400.0)
    record.update_unit("prior/seed2", kind="stage")                 # running, no time yet
    record.update_unit("ours/seed0/test", kind="method", estimate_s=100.0)
    assert record.estimate("prior/seed1") == 3400.0                  # its own time first
    assert record.estimate("prior/seed2") == pytest.approx(3200.0)  # median of seeds 0 and 1
    assert record.estimate("prior/seed5") == pytest.approx(3200.0)  # not in the record at all
    assert record.estimate("ours/seed1/test") == 100.0
    assert record.estimate("translate_wplus/seed0") is None          # never run anywhere
    # the record survives a reload with the same estimates
    assert RunRecord.load(tmp_path).estimate("prior/seed2") == pytest.approx(3200.0)
