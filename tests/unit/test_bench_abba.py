"""The benches' on/off figure: ABBA block ratios, their median and its bootstrap interval."""

from __future__ import annotations

import pytest

from bench.abba import ORDER, block_ratio, spread


def test_a_block_is_abba_and_its_ratio_cancels_a_linear_drift() -> None:
    assert ORDER == ("A", "B", "B", "A")
    # the machine slows by 1 per round; B costs 10% more than A at every moment
    drift = [10.0, 11.0, 12.0, 13.0]
    a = [drift[0], drift[3]]
    b = [drift[1] * 1.1, drift[2] * 1.1]
    assert block_ratio(a, b) == pytest.approx(1.1)


def test_spread_names_median_quartiles_range_and_an_interval_around_the_median() -> None:
    ratios = [0.98, 1.00, 1.01, 1.02, 1.03, 1.04, 1.30]  # one block spoiled by a preemption
    figure = spread(ratios)
    assert figure.blocks == 7
    assert figure.median == 1.02
    assert (figure.low, figure.high) == (0.98, 1.30)
    assert figure.q1 == pytest.approx(1.005) and figure.q3 == pytest.approx(1.035)
    assert figure.low <= figure.ci_low <= figure.median <= figure.ci_high <= figure.high
    assert figure.ci_high < 1.30  # the outlier moves the median's interval little
    assert spread(ratios) == figure  # a fixed seed: the same rounds give the same figures
    assert figure.within(1.05) is (figure.ci_high <= 1.05)
    assert "median 1.020x" in str(figure)


def test_a_wide_spread_is_not_shown_within_the_bound() -> None:
    figure = spread([0.93, 1.13, 0.95, 1.10, 1.00, 1.12])
    assert not figure.within(1.05)


def test_no_blocks_is_an_error_and_one_block_is_its_own_interval() -> None:
    with pytest.raises(ValueError, match="no block ratios"):
        spread([])
    one = spread([1.02])
    assert (one.median, one.ci_low, one.ci_high) == (1.02, 1.02, 1.02)
