"""One module for windows: parsing, alignment to UTC boundaries (weeks from Monday), and their names."""

import numpy as np
import pytest

from monitoring.config import DriftConfig
from monitoring.windows import describe_window, parse_window, range_start, row_count, window_start

MONDAY = 1_797_206_400.0  # 2026-12-14T00:00Z, a Monday


@pytest.mark.parametrize("text, expected", [("day", "day"), (" Week ", "week"), ("10000", 10000), (250, 250)])
def test_parse_window_accepts_time_units_and_row_counts(text, expected):
    assert parse_window(text) == expected


@pytest.mark.parametrize("bad", ["month", "0", "-5", "1.5", "", True, 0, None])
def test_parse_window_refuses_with_the_accepted_forms(bad):
    with pytest.raises(ValueError, match="'hour', 'day', 'week' or a positive number of rows"):
        parse_window(bad)


def test_the_config_checks_windows_with_the_same_rule():
    assert DriftConfig(window="10000").window == "10000"
    with pytest.raises(ValueError, match="positive number of rows"):
        DriftConfig(window="fortnight")


def test_window_starts_are_utc_hours_days_and_monday_weeks():
    ts = MONDAY + 3 * 86400.0 + 5 * 3600.0 + 17.0  # Thursday 05:00:17
    assert window_start(ts, "hour") == MONDAY + 3 * 86400.0 + 5 * 3600.0
    assert window_start(ts, "day") == MONDAY + 3 * 86400.0
    assert window_start(ts, "week") == MONDAY
    np.testing.assert_array_equal(window_start(np.array([MONDAY - 1.0, MONDAY]), "week"),
                                  [MONDAY - 7 * 86400.0, MONDAY])
    assert range_start(MONDAY + 10.5 * 86400.0, 3, window="day") == MONDAY + 7 * 86400.0
    assert range_start(MONDAY + 10.5 * 86400.0, 3, window=500) == MONDAY + 7.5 * 86400.0
    assert range_start(MONDAY, None) is None


def test_row_counts_and_names_for_the_pages():
    assert row_count("10000") == 10000 and row_count("day") is None
    assert describe_window("day") == "per day" and describe_window("1000") == "per 1,000 predictions"
