"""Drift decisions that know the window's size: no false alarms from sampling noise, real shifts found.

A 100,000-row reference of 20 features (normal, skewed, uniform, integer and categorical
columns); windows that are fresh samples of the same distribution must flag nothing at any
size, and from 1,000 rows on each scripted shift must be found, and nothing else.
"""

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import (
    DriftWarning,
    build_profile,
    compute_drift,
    drifted_features,
    get_method,
    noise_level,
    summary,
)

N_REFERENCE = 100_000
CATEGORIES = np.array(["a", "b", "c", "d", "e"])
SHARES = np.array([0.4, 0.25, 0.15, 0.12, 0.08])


def sample(n: int, rng: np.random.Generator, *, shifted: frozenset = frozenset()) -> pd.DataFrame:
    """n rows of the 20-feature distribution; the named columns shifted as the issue describes."""
    columns = {}
    for i in range(6):  # normal features; n0 shifted by 0.3 sd, n1 40 % wider
        mean, spread = 10.0 * i, 1.0 + i
        shift = 0.3 * spread if f"n{i}" in shifted and i == 0 else 0.0
        widen = 1.4 if f"n{i}" in shifted and i == 1 else 1.0
        columns[f"n{i}"] = rng.normal(mean + shift, spread * widen, n)
    for i in range(4):  # skewed
        columns[f"s{i}"] = rng.lognormal(0.0, 0.5 + 0.2 * i, n)
    for i in range(4):  # uniform; u0 shifted by 10 % of its range
        low, high = 0.0, 100.0 * (i + 1)
        offset = 0.1 * (high - low) if f"u{i}" in shifted and i == 0 else 0.0
        columns[f"u{i}"] = rng.uniform(low, high, n) + offset
    for i in range(2):  # integers with few values
        columns[f"k{i}"] = rng.poisson(3 + 4 * i, n).astype(float)
    for i in range(4):  # categorical; c0's mix reversed
        shares = SHARES[::-1] if f"c{i}" in shifted and i == 0 else SHARES
        columns[f"c{i}"] = pd.Categorical(rng.choice(CATEGORIES, n, p=shares), categories=CATEGORIES)
    return pd.DataFrame(columns)


KINDS = {name: ("categorical" if name.startswith("c") else "numeric") for name in sample(1, np.random.default_rng(0))}
SHIFTED = frozenset({"n0", "n1", "u0", "c0"})


@pytest.fixture(scope="module")
def profile():
    return build_profile(sample(N_REFERENCE, np.random.default_rng(2026)), KINDS)


def one_window(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(ts=1_735_689_600.0)  # 2025-01-01 00:00 UTC: one day window


@pytest.mark.parametrize("n_rows", [200, 1_000, 10_000, 100_000])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_feature_is_flagged_on_windows_that_did_not_change(profile, n_rows, seed):
    report = compute_drift(profile, one_window(sample(n_rows, np.random.default_rng(seed))))
    assert len(report.features) == 20
    flagged = report.features.loc[report.features["drifted"], "feature"].tolist()
    assert flagged == []
    assert drifted_features(report) == []
    # 200 rows: every distance is within its noise, above the threshold, so the window is too small to judge
    expected = "Drift cannot be judged" if n_rows == 200 else "No feature drifted"
    assert summary(report).startswith(expected)


@pytest.mark.parametrize("n_rows", [1_000, 10_000, 100_000])
@pytest.mark.parametrize("seed", [4, 5])
def test_each_shift_is_found_from_a_thousand_rows_and_nothing_else(profile, n_rows, seed):
    report = compute_drift(profile, one_window(sample(n_rows, np.random.default_rng(seed), shifted=SHIFTED)))
    flagged = set(report.features.loc[report.features["drifted"], "feature"])
    assert flagged == SHIFTED


def test_small_windows_say_they_are_too_small_instead_of_crying_wolf(profile):
    report = compute_drift(profile, one_window(sample(200, np.random.default_rng(7))))
    rows = report.features.set_index("feature")
    too_small = rows[rows["status"] == "too small"]
    assert len(too_small)  # Jensen–Shannon over 5 categories and Wasserstein at 200 rows exceed 0.1 from noise
    assert (too_small["noise"] >= too_small["threshold"]).all()
    assert too_small["reason"].str.contains("from noise alone").all()
    assert (too_small["severity"] == "grey").all()
    # the noise level of the same column falls as the window grows, about as one over its square root
    column, method = profile.columns["n2"], get_method("wasserstein")
    small, large = noise_level(column, method, 1_000), noise_level(column, method, 16_000)
    assert 3.0 < small / large < 5.0


def test_noise_matches_real_no_change_windows(profile):
    """The simulated 99.9th percentile is what 2,000 real no-change windows of 500 rows show."""
    windows = sample(500 * 2000, np.random.default_rng(8))
    report = compute_drift(profile, windows[["n3", "c1"]].assign(**{
        name: 0.0 for name in KINDS if name not in ("n3", "c1")}).pipe(lambda f: f[list(KINDS)]),
        window=500, noise=False)
    for name in ("n3", "c1"):
        scores = report.features.loc[report.features["feature"] == name, "score"].to_numpy()
        method = get_method(report.features.loc[report.features["feature"] == name, "method"].iloc[0])
        simulated = noise_level(profile.columns[name], method, 500)
        assert np.quantile(scores, 0.999) == pytest.approx(simulated, rel=0.2)


def test_partial_windows_never_decide_the_headline(profile):
    rng = np.random.default_rng(9)
    closed = one_window(sample(2_000, rng))
    still_open = sample(2_000, rng, shifted=SHIFTED).assign(ts=1_735_689_600.0 + 86_400.0)
    now = 1_735_689_600.0 + 86_400.0 + 3_600.0  # one hour into the second day
    report = compute_drift(profile, pd.concat([closed, still_open], ignore_index=True), now=now)
    assert report.dataset["partial"].tolist() == [False, True]
    assert set(report.features.loc[report.features["drifted"], "feature"]) == SHIFTED  # shown, so far
    assert drifted_features(report) == []
    assert summary(report).startswith("No feature drifted")
    only_open = compute_drift(profile, still_open, now=now)
    assert summary(only_open).startswith("Too early to judge")


def test_bad_windows_and_columns_give_a_stated_cannot_judge():
    reference = pd.DataFrame({"constant": np.full(5000, 3.0), "x": np.random.default_rng(0).normal(size=5000),
                              "rare": pd.Categorical(["a"] * 4999 + ["z"]), "score": np.linspace(0, 1, 5000)})
    profile = build_profile(reference, {"constant": "numeric", "x": "numeric", "rare": "categorical"},
                            prediction_columns=("score",))
    one_row = one_window(pd.DataFrame({"constant": [3.0], "x": [0.1], "rare": ["z"], "score": [np.nan]}))
    with pytest.warns(DriftWarning, match="'score' has no values"):
        report = compute_drift(profile, one_row)
    assert not report.features["drifted"].any()
    assert set(report.features["status"]) == {"cannot judge"}
    reasons = report.features.set_index("feature")["reason"]
    assert "one value in the reference" in reasons["constant"]
    assert reasons["x"] == "only 1 value in this window; at least 30 are needed"
    assert report.prediction["status"].tolist() == ["cannot judge"]
    assert summary(report).startswith("Drift cannot be judged")
    # a category seen once in the reference and once in a large window is no drift
    many = one_window(pd.DataFrame({"constant": np.full(5000, 3.0), "x": np.random.default_rng(1).normal(size=5000),
                                    "rare": pd.Categorical(["a"] * 4999 + ["z"]), "score": np.linspace(0, 1, 5000)}))
    assert not compute_drift(profile, many).features["drifted"].any()


def test_false_alarm_bound_counts_judged_windows(profile):
    report = compute_drift(profile, one_window(sample(5_000, np.random.default_rng(10))), methods={"n0": "ks"},
                           thresholds={"ks": 0.05})
    expected, n_judged = report.false_alarm_bound()
    assert n_judged == 20
    assert expected == pytest.approx(0.05 + 19 * 0.001)


def test_kept_noise_levels_spare_a_fresh_process_the_simulation(profile, monkeypatch, tmp_path):
    import json

    import monitoring.drift._noise as noise
    from dashboard.state import drift as state

    method = get_method("wasserstein")
    noise.clear_noise_cache()
    levels = [noise_level(profile.columns["n0"], method, n) for n in (300, 5_000, 80_000)]
    monkeypatch.setenv("VANTAGE_VAR", str(tmp_path))
    monkeypatch.setattr(state, "_noise_saved", {"count": 0})
    state.keep_noise_levels()  # what a drift view does after computing
    kept = json.loads((tmp_path / "drift-profiles" / "noise-levels.json").read_text())
    assert len(kept) == 3

    noise.clear_noise_cache()  # a fresh process: nothing memoised, nothing may be simulated
    monkeypatch.setattr(state, "_noise_saved", {"count": -1})
    simulated = []
    monkeypatch.setattr(noise, "_simulate", lambda *args, **kwargs: simulated.append(args) or 0.0)
    state.recall_noise_levels()
    again = [noise_level(profile.columns["n0"], method, n) for n in (300, 5_000, 80_000)]
    assert again == levels and simulated == []
    assert noise.remember_noise_levels([["x"], "bad", ["k", "m", "not a number", 0.9, 5, 1.0]]) == 0  # skipped
