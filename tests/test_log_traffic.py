"""The Overview's traffic counted in one grouped pass equals the same counts made row by row in pandas."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from monitoring.log_queries import log_traffic

DAY = 86_400.0
START = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def _log(kind: str, n: int = 4_000, seed: int = 3) -> pd.DataFrame:
    """Twenty days of predictions with missing, infinite and future rows and two model versions."""
    rng = np.random.default_rng(seed)
    ts = START + np.sort(rng.uniform(0, 20 * DAY, n))
    prediction = rng.normal(40, 9, n) if kind == "regression" else rng.integers(0, 3, n).astype(float)
    prediction[::97] = np.nan
    prediction[5::211] = np.inf if kind == "regression" else np.nan
    frame = pd.DataFrame({"ts": ts, "prediction": prediction,
                          "score": np.where(rng.uniform(size=n) < 0.8, rng.uniform(size=n), np.nan),
                          "model_version": np.where(ts < START + 12.3 * DAY, "v1", "v2")})
    frame.loc[frame.index[::301], "ts"] = np.nan  # rows without a time count nowhere
    return frame


def _expected(frame: pd.DataFrame, *, now: float, since: float, max_values: int) -> dict:
    ts, prediction = frame["ts"].to_numpy(), frame["prediction"].to_numpy()
    counted = ts <= now
    known = counted & ~np.isnan(prediction)
    values = np.unique(prediction[known])[: max_values + 1]
    mixed = counted & (ts >= since) & np.isfinite(prediction)
    per_value = len(values) <= max_values
    mix = pd.DataFrame({"bucket": (ts[mixed] // DAY).astype(np.int64),
                        "value": prediction[mixed] if per_value else np.nan, "total": prediction[mixed]})
    mix = mix.groupby(["bucket", "value"], dropna=False).agg(n=("total", "size"), total=("total", "sum"))
    newest = frame.loc[counted].sort_values(["ts", "model_version"]).iloc[-1]
    hours = pd.Series(np.floor(ts[~np.isnan(ts)] / 3600.0) * 3600.0).value_counts().sort_index()
    return {"n_rows": int(counted.sum()), "today": int((counted & (ts >= now // DAY * DAY)).sum()),
            "last_7_days": int((counted & (ts >= now - 7 * DAY)).sum()),
            "previous_7_days": int(((ts >= now - 14 * DAY) & (ts < now - 7 * DAY)).sum()),
            "values": tuple(values.tolist()), "has_score": bool(np.isfinite(frame["score"].to_numpy()[counted]).any()),
            "whole": bool(np.all(np.isfinite(prediction[known]) & (prediction[known] == np.floor(prediction[known])))),
            "model_version": newest["model_version"],
            "version_since": float(frame.loc[counted & (frame["model_version"] == newest["model_version"]).to_numpy(),
                                             "ts"].min()),
            "mix": mix.reset_index()[["bucket", "value", "n", "total"]], "hours": hours}


@pytest.mark.parametrize("kind", ["classes", "regression"])
@pytest.mark.parametrize("now", [START + 15.37 * DAY, START + 19.999 * DAY, START + 30 * DAY])
def test_the_traffic_of_one_grouped_pass_equals_the_rows_counted_one_by_one(kind, now):
    frame = _log(kind)
    since = now - 9.5 * DAY
    backend = ibis.duckdb.connect()
    try:
        found = log_traffic(backend, ibis.memtable(frame), now=now, since=since, max_values=20)
    finally:
        backend.disconnect()
    expected = _expected(frame, now=now, since=since, max_values=20)
    for name in ("n_rows", "today", "last_7_days", "previous_7_days", "values", "has_score", "whole",
                 "model_version"):
        assert getattr(found, name) == expected[name], name
    assert found.version_since == expected["version_since"]
    pd.testing.assert_frame_equal(found.mix, expected["mix"], check_dtype=False, rtol=1e-12)
    assert found.hours["hour_start"].tolist() == expected["hours"].index.tolist()
    assert found.hours["n"].tolist() == expected["hours"].tolist()  # every row with a time, future ones too


def test_mix_buckets_must_be_whole_hours():
    backend = ibis.duckdb.connect()
    with pytest.raises(ValueError, match="whole number of hours"):
        log_traffic(backend, ibis.memtable(_log("classes")), now=START + DAY, since=START, max_values=20,
                    bucket_seconds=1800.0)
