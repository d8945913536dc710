"""The Segments page's counts where the log lives (monitoring.segment_queries) equal the rows' own results.

Real parts: a Store over a Parquet log read by DuckDB, with a sealed personal column and labels
beside the log. The expected results are computed from every row of the period in pandas
(``assign_segments`` cuts them, scikit-learn, fairlearn and ``monitoring.drift.compute_drift``
measure them), as the page did before it counted where the log lives; the same aggregation over
the rows in memory (a prediction-log file's path) gives the same table. Time is an input: ``NOW``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, root_mean_squared_error

from explain.segments import (
    assign_segments,
    segment_drift_plan,
    segment_edges,
    segments_fairness,
    segments_from_counts,
    segments_report,
)
from monitoring.labels import LogLabels, join_labels
from monitoring.production import ParquetMirror, ProductionData
from monitoring.sealing import Sealer
from monitoring.segment_queries import segment_counts, segment_sample
from monitoring.statistics import group_metrics, wilson_interval
from monitoring.store import Store

DAY = 86_400.0
START = 1_767_225_600.0  # 2026-01-01 00:00 UTC
NOW = START + 3.5 * DAY  # the log runs until START + 4 days: rows after now are left out
DAYS = 2.0  # the period [START + 1.5 days, NOW) cuts the first two days' rows out
KEY = b"a-shared-secret-for-tests"
KINDS = {"channel": "categorical", "balance": "numeric", "age": "numeric", "email": "categorical",
         "tier": "numeric"}
EMAILS = [f"person{i}@example.org" for i in range(5)]


def _features(rng, n: int) -> pd.DataFrame:
    balance = rng.normal(1000.0, 300.0, n)
    balance[rng.random(n) < 0.05] = np.nan  # missing
    balance[:2] = np.inf  # not finite: missing too, in a bin of numbers
    channel = rng.choice(np.array(["web", "store", "phone", None], dtype=object), n, p=[0.45, 0.3, 0.2, 0.05])
    return pd.DataFrame({"channel": channel, "balance": balance, "age": rng.integers(18, 80, n).astype(float),
                         "email": rng.choice(EMAILS, n), "tier": rng.choice([1.0, 2.0, 3.0], n)})


def _predictions(rng, kind: str, n: int, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if kind == "regression":
        prediction = features["age"].to_numpy() * 10 + rng.normal(0, 5, n)
        return prediction, np.full(n, np.nan), prediction + rng.normal(0, 20, n)
    if kind == "multiclass":
        prediction = rng.integers(0, 3, n).astype(float)
        truth = np.where(rng.random(n) < 0.6, prediction, rng.integers(0, 3, n)).astype(float)
        return prediction, np.full(n, np.nan), truth
    score = rng.uniform(size=n)
    bias = np.where(features["channel"].to_numpy() == "web", 0.15, 0.0)
    prediction = (score + bias >= 0.5).astype(float)
    truth = np.where(rng.random(n) < 0.7, prediction, 1 - prediction)
    return prediction, score, truth


def _build(tmp_path, kind: str, *, n: int = 3_000, seed: int = 0):
    """A Parquet log of four days (three files) with labels for about half, one arriving after now; and the
    reference. Returns the store, the mirror, the labels, every logged row and the reference."""
    rng = np.random.default_rng(seed)
    features = _features(rng, n)
    prediction, score, truth = _predictions(rng, kind, n, features)
    ts = START + np.sort(rng.uniform(0, 4 * DAY, n))
    frame = pd.concat([pd.DataFrame({"id": [f"p{i}" for i in range(n)], "ts": ts, "prediction": prediction,
                                     "score": score}), features], axis=1)
    if kind == "binary":
        frame.loc[5, "prediction"] = np.nan  # a prediction that failed
    store = Store(f"sqlite:///{tmp_path / 'store.db'}", sealer=Sealer({"svc": ("email",)}, KEY),
                  log=f"duckdb:{tmp_path / 'log'}")
    store.prediction_table("svc", KINDS)
    for part in np.array_split(np.arange(n), 3):
        store.log_predictions("svc", frame.iloc[part])
    chosen = np.sort(rng.choice(n, n // 2, replace=False))
    arrival = ts[chosen] + rng.uniform(60, 0.5 * DAY, len(chosen))
    store.write_labels("svc", pd.DataFrame({"prediction_id": [f"p{i}" for i in chosen], "ts": arrival,
                                            "label": truth[chosen]}))
    reference = _features(np.random.default_rng(seed + 1), 2_000)
    return store, ParquetMirror(store.predictions, "svc"), LogLabels(store.predictions, "svc"), frame, reference


@pytest.fixture(params=["binary", "multiclass", "regression"])
def logged(request, tmp_path):
    store, mirror, labels, frame, reference = _build(tmp_path, request.param)
    yield SimpleNamespace(kind=request.param, store=store, mirror=mirror, labels=labels, frame=frame,
                          reference=reference)
    store.dispose()


def _in_memory(mirror, labels):
    """The same rows as a source that holds them in memory (a prediction-log file's path): the whole log read
    once, the labels joined in memory."""
    frame = mirror.read().frame
    every = labels.read()
    return SimpleNamespace(read=lambda: ProductionData(frame, "rows"),
                           join_labels=lambda _, *, now, task: join_labels(frame, every, now=now, task=task))


def _period_rows(mirror, labels) -> tuple[pd.DataFrame, object]:
    """Every row of the period with its label, as the page read them before (all rows in pandas)."""
    frame = mirror.read().frame
    joined = join_labels(frame, labels.read(), now=NOW)
    period = frame[(frame["ts"] >= NOW - DAYS * DAY) & (frame["ts"] < NOW)]
    label = pd.Series(joined.frame["label"].to_numpy(), index=joined.frame["id"].astype(str))
    label = label[~label.index.duplicated()]
    return period.assign(label=period["id"].astype(str).map(label).astype(float)), joined


def _expected(period: pd.DataFrame, features, *, task: str, classes, reference, n_bins: int = 4) -> pd.DataFrame:
    """Per segment what the page showed, computed from the rows (the bootstrap as the rows path drew it)."""
    edges = segment_edges(reference, features, n_bins=n_bins)
    segments = assign_segments(period, features, n_bins=n_bins, edges=edges)
    predicted = period["prediction"].to_numpy(dtype=float)
    classes = tuple(sorted(set(classes) | set(np.unique(predicted[np.isfinite(predicted)]).tolist()))) \
        if task == "classification" else ()
    metrics = ("mae", "rmse") if task == "regression" else ("accuracy", "f1") if len(classes) == 2 else ("accuracy",)
    rng = np.random.default_rng(0)
    rows = []
    for name in sorted(segments.unique()):
        member = period[(segments == name).to_numpy()]
        y, p = member["label"].to_numpy(dtype=float), member["prediction"].to_numpy(dtype=float)
        known = np.isfinite(y) & np.isfinite(p)
        row = {"segment": name, "n": len(member), "n_labelled": int(known.sum())}
        decided = p[np.isfinite(p)]
        if task == "regression":
            row["mean_prediction"] = decided.mean()
            row["mae"] = mean_absolute_error(y[known], p[known]) if known.any() else math.nan
            row["rmse"] = root_mean_squared_error(y[known], p[known]) if known.any() else math.nan
        else:
            row["shares"] = {c: float(np.mean(decided == c)) for c in classes}
            row["accuracy"] = accuracy_score(y[known], p[known]) if known.any() else math.nan
            low, high = wilson_interval(int((y[known] == p[known]).sum()), int(known.sum()))
            row["accuracy_low"], row["accuracy_high"] = float(low), float(high)
            if len(classes) == 2 and known.any():
                row["f1"] = f1_score(y[known], p[known], pos_label=classes[1], zero_division=np.nan)
        drawn = group_metrics(y[known], p[known], member["score"].to_numpy(dtype=float)[known], task=task,
                              classes=classes, metrics=metrics, rng=rng if known.any() else None)
        row.update({f"{m}_{b}_boot": drawn[f"{m}_{b}"] for m in metrics for b in ("low", "high")})
        rows.append(row)
    out = pd.DataFrame(rows).set_index("segment")
    out["share"] = out["n"] / len(period)
    out["reference_share"] = out.index.map(
        assign_segments(reference, features, n_bins=n_bins, edges=edges).value_counts(normalize=True)).fillna(0.0)
    return out


def _table(source, labels, features, reference, **options):
    edges = segment_edges(reference, features, n_bins=4)
    counts = segment_counts(source, labels, features, now=NOW, days=DAYS, edges=edges, **options)
    return counts, segments_from_counts(counts, reference=reference)


@pytest.mark.parametrize("features", [["channel"], ["balance"], ["tier", "email"], ["balance", "channel"]])
def test_the_engines_segments_equal_the_rows_results(logged, features):
    pushed, table = _table(logged.mirror, logged.labels, features, logged.reference)
    period, joined = _period_rows(logged.mirror, logged.labels)
    expected = _expected(period, features, task=joined.task, classes=joined.classes, reference=logged.reference)
    got = table.table.set_index("segment")
    assert sorted(got.index) == sorted(expected.index)
    assert pushed.n_rows == len(period) and got["n"].sum() == len(period)
    expected = expected.loc[got.index]
    assert got["n"].tolist() == expected["n"].tolist()
    assert got["n_labelled"].tolist() == expected["n_labelled"].tolist() and got["n_labelled"].sum() > 0
    np.testing.assert_allclose(got["share"], expected["share"], rtol=1e-12)
    np.testing.assert_allclose(got["reference_share"], expected["reference_share"], rtol=1e-12)
    if logged.kind == "regression":
        np.testing.assert_allclose(got["mean_prediction"], expected["mean_prediction"], rtol=1e-9)
    else:
        shares = pd.DataFrame(expected["shares"].tolist(), index=expected.index)
        for column, value in table.class_columns.items():
            np.testing.assert_allclose(got[column], shares[value], rtol=1e-12)
        if "prediction_rate" in got:
            np.testing.assert_allclose(got["prediction_rate"], shares[table.classes[-1]], rtol=1e-12)
        assert got["accuracy_low"].tolist() == pytest.approx(expected["accuracy_low"].tolist(), rel=1e-12)
    for metric in table.metrics:
        np.testing.assert_allclose(got[metric], expected[metric], rtol=1e-9, err_msg=metric)
        if metric != "accuracy":  # every segment within its sample: the rows' own bootstrap, the same draws
            for bound in ("low", "high"):
                np.testing.assert_allclose(got[f"{metric}_{bound}"], expected[f"{metric}_{bound}_boot"], rtol=1e-9)
    # the same aggregation over the rows in memory gives the same table
    _, direct = _table(_in_memory(logged.mirror, logged.labels), logged.labels, features, logged.reference)
    pd.testing.assert_frame_equal(direct.table, table.table, rtol=1e-12)


def test_a_sample_smaller_than_a_segment_keeps_values_exact_and_narrows_its_interval(logged):
    pushed, table = _table(logged.mirror, logged.labels, ["channel"], logged.reference, sample_rows=40)
    period, joined = _period_rows(logged.mirror, logged.labels)
    expected = _expected(period, ["channel"], task=joined.task, classes=joined.classes, reference=logged.reference)
    got = table.table.set_index("segment")
    for metric in table.metrics:  # from the counts and sums, not the sample
        np.testing.assert_allclose(got[metric], expected.loc[got.index, metric], rtol=1e-9)
    sizes = pushed.sample.groupby(pushed.sample["k0"].fillna("(none)")).size()
    assert sizes.max() == 40 and len(pushed.sample) == sum(min(40, n) for n in got["n_labelled"])
    labelled = set(period.loc[period["label"].notna(), "id"])
    assert set(pushed.sample["id"]) <= labelled
    for metric in table.metrics:
        assert (got[f"{metric}_low"] <= got[metric] + 1e-12).all()
        assert (got[metric] <= got[f"{metric}_high"] + 1e-12).all()
    _, direct = _table(_in_memory(logged.mirror, logged.labels), logged.labels, ["channel"], logged.reference,
                       sample_rows=40)
    pd.testing.assert_frame_equal(direct.table, table.table, rtol=1e-12)


def _fairlearn_groups(period: pd.DataFrame, sensitive: str, positive: float, min_rows: int):
    groups = assign_segments(period, [sensitive], n_bins=4, with_names=False).to_numpy()
    decided = (period["prediction"].to_numpy(dtype=float) == positive).astype(int)
    truth = period["label"].to_numpy(dtype=float)
    rates = MetricFrame(metrics=selection_rate, y_true=decided, y_pred=decided, sensitive_features=groups)
    sizes = pd.Series(groups).value_counts()
    large = np.isin(groups, sizes[sizes >= min_rows].index)
    judged = MetricFrame(metrics=selection_rate, y_true=decided[large], y_pred=decided[large],
                         sensitive_features=groups[large])
    known = np.isfinite(truth) & large
    actual = (truth[known] == positive).astype(int)
    odds = MetricFrame(metrics={"tpr": true_positive_rate, "fpr": false_positive_rate}, y_true=actual,
                       y_pred=decided[known], sensitive_features=groups[known])
    return rates.by_group, judged, odds


@pytest.mark.parametrize("sensitive", ["channel", "balance", "email"])
def test_the_engines_fairness_equals_fairlearn_on_the_rows(logged, sensitive):
    counts = segment_counts(logged.mirror, logged.labels, [sensitive], now=NOW, days=DAYS, sample_rows=0)
    if logged.kind == "regression":
        assert segments_fairness(counts) is None
        return
    period, joined = _period_rows(logged.mirror, logged.labels)
    positive = joined.classes[-1]
    report = segments_fairness(counts, min_rows=30, positive=positive)
    rates, judged, odds = _fairlearn_groups(period, sensitive, positive, 30)
    by_group = report.by_group.set_index("group")
    assert sorted(by_group.index) == sorted(rates.index)
    np.testing.assert_allclose(by_group.loc[rates.index, "selection_rate"], rates.to_numpy(), rtol=1e-12)
    assert report.demographic_parity_difference == pytest.approx(float(judged.difference()), rel=1e-12)
    assert report.demographic_parity_ratio == pytest.approx(float(judged.ratio()), rel=1e-12)
    assert report.equalized_odds_difference == pytest.approx(float(odds.difference().max()), rel=1e-12)
    np.testing.assert_allclose(by_group.loc[odds.by_group.index, "true_positive_rate"], odds.by_group["tpr"],
                               rtol=1e-12)
    assert by_group["n"].sum() == len(period)
    assert by_group["n_labelled"].sum() == period["label"].notna().sum()
    if logged.kind == "multiclass":
        other = segments_fairness(counts, min_rows=30, positive=0.0)
        assert other.positive_label == 0.0 and other.one_vs_rest
        _, judged0, _ = _fairlearn_groups(period, sensitive, 0.0, 30)
        assert other.demographic_parity_ratio == pytest.approx(float(judged0.ratio()), rel=1e-12)


def test_the_drift_inside_each_segment_equals_the_rows_comparison(tmp_path):
    from monitoring.drift import build_profile, compute_drift

    store, mirror, labels, _, reference = _build(tmp_path, "binary", n=4_000)
    try:
        columns = mirror.columns()
        kinds = {k: v for k, v in KINDS.items() if k != "email"}
        plan = segment_drift_plan(reference, ["channel"], kinds, columns=columns, min_rows=30)
        edges = segment_edges(reference, ["channel"])
        counts = segment_counts(mirror, labels, ["channel"], now=NOW, days=DAYS, edges=edges,
                                drift_edges=plan.edges, drift_categorical=plan.categorical)
        table = segments_report(counts, reference=reference, plan=plan).table.set_index("segment")
        period, _ = _period_rows(mirror, labels)
        period = period.assign(balance=period["balance"] * 1.3)  # not the log's: the comparison must see drift
        shifted = segment_counts(_in_memory(SimpleNamespace(read=lambda: ProductionData(
            mirror.read().frame.assign(balance=lambda f: f["balance"] * 1.3), "rows")), labels), None, ["channel"],
            now=NOW, days=DAYS, edges=edges, drift_edges=plan.edges, drift_categorical=plan.categorical)
        moved = segments_report(shifted, reference=reference, plan=plan).table.set_index("segment")
        for got, rows in ((table, _period_rows(mirror, labels)[0]), (moved, period)):
            segments = assign_segments(rows, ["channel"], edges=edges)
            ref_segments = assign_segments(reference, ["channel"], edges=edges)
            for name in got.index:
                current, training = rows[(segments == name).to_numpy()], reference[(ref_segments == name).to_numpy()]
                if len(current) < 30 or len(training) < 30:
                    assert math.isnan(got.loc[name, "n_drifted"])
                    continue
                profile = build_profile(training[list(kinds)], kinds, prediction_columns=())
                report = compute_drift(profile, current[list(kinds)], window=len(current))
                drifted = report.features[report.features["drifted"]]
                names = drifted.assign(excess=drifted["score"] / drifted["threshold"]).sort_values(
                    "excess", ascending=False)["feature"].tolist()
                assert got.loc[name, "drifted_features"] == ", ".join(names)
                assert got.loc[name, "n_drifted"] == len(names)
        assert (moved["n_drifted"].fillna(0) > 0).any() and "balance" in " ".join(moved["drifted_features"])
    finally:
        store.dispose()


def test_the_explained_sample_is_bounded_per_segment_and_the_same_from_either_source(logged):
    sample = segment_sample(logged.mirror, ["channel"], now=NOW, days=DAYS, columns=["balance", "age", "email"],
                            at_most=40, at_least=10)
    direct = segment_sample(_in_memory(logged.mirror, logged.labels), ["channel"], now=NOW, days=DAYS,
                            columns=["balance", "age", "email"], at_most=40, at_least=10)
    assert sample.n_cells == direct.n_cells == 4  # three channels and the missing one
    per_cell = sample.frame.groupby(sample.frame["k0"].astype(object).fillna("(none)")).size()
    assert (per_cell == 10).all()  # 40 // 4 each: bounded, whatever the period holds
    assert sample.frame["email"].isin(EMAILS).all()  # personal values opened, as the model gets them
    pd.testing.assert_frame_equal(sample.frame.reset_index(drop=True).astype({"k0": object, "channel": object}),
                                  direct.frame.reset_index(drop=True).astype({"k0": object, "channel": object}),
                                  check_dtype=False, check_categorical=False)


def test_steps_among_every_segments_edges_give_each_segments_own_steps():
    from explain.segments import _steps_within
    from monitoring.segment_queries import steps_of_values

    rng = np.random.default_rng(0)
    for _ in range(200):
        union = np.unique(rng.integers(0, 30, 12).astype(float))
        edges = np.unique(rng.choice(union, rng.integers(0, len(union) + 1), replace=False))
        x = rng.integers(-2, 33, 500) + rng.choice([0.0, 0.5], 500)
        assert (_steps_within(union, edges)[steps_of_values(x, union)] == steps_of_values(x, edges)).all()


def test_the_kept_label_join_gives_the_same_segments_as_the_join_made_for_them(logged):
    kept = logged.mirror.keep_labels(logged.labels, now=NOW)
    features = ["balance", "channel"]
    edges = segment_edges(logged.reference, features)
    joined = segment_counts(logged.mirror, logged.labels, features, now=NOW, days=DAYS, edges=edges)
    reused = segment_counts(logged.mirror, logged.labels, features, now=NOW, days=DAYS, edges=edges, kept=kept)
    assert (reused.task, reused.classes) == (joined.task, joined.classes)
    pd.testing.assert_frame_equal(segments_from_counts(reused, reference=logged.reference).table,
                                  segments_from_counts(joined, reference=logged.reference).table, rtol=1e-12)
    assert reused.cells["n"].sum() == joined.n_rows
    # a sample smaller than the segments: its bound filters the kept labels before the join, the same rows
    small = [segment_counts(logged.mirror, logged.labels, features, now=NOW, days=DAYS, edges=edges, sample_rows=40,
                            kept=k) for k in (None, kept)]
    assert len(small[1].sample) == len(small[0].sample) > 40
    order = ["id"]
    pd.testing.assert_frame_equal(small[1].sample.sort_values(order).reset_index(drop=True),
                                  small[0].sample.sort_values(order).reset_index(drop=True), check_dtype=False)


def test_spark_counts_the_segments_duckdb_counts(tmp_path):
    import shutil

    from monitoring.parquet_log import ParquetPredictionLog

    if shutil.which("java") is None:  # a missing Java must not pass as a skipped test
        pytest.fail("Spark local mode needs Java: run tests/install.sh (Debian's openjdk-17-jre-headless)")
    store, mirror, labels, _, reference = _build(tmp_path, "binary", n=1_500)
    spark_store = Store(f"sqlite:///{tmp_path / 'store.db'}", log=f"spark:local[2]?path={tmp_path / 'log'}")
    try:
        log = spark_store.predictions
        assert isinstance(log, ParquetPredictionLog) and log.engine.scheme == "spark"
        log.engine.connect()
        log.engine.session.conf.set("spark.sql.shuffle.partitions", "2")  # a small log: seconds, not a minute
        for features in (["channel"], ["balance", "channel"]):
            duck, _ = _table(mirror, labels, features, reference)
            theirs, _ = _table(ParquetMirror(log, "svc"), LogLabels(log, "svc"), features, reference)
            assert theirs.n_rows == duck.n_rows > 0
            order = list(duck.cells.columns)
            pd.testing.assert_frame_equal(theirs.cells.sort_values(order).reset_index(drop=True),
                                          duck.cells.sort_values(order).reset_index(drop=True), check_dtype=False,
                                          rtol=1e-9)
            keys = [c for c in duck.sample.columns if c.startswith("k") and c[1:].isdigit()]
            assert theirs.sample.groupby(keys).size().sort_index().tolist() == \
                duck.sample.groupby(keys).size().sort_index().tolist()  # its own hash, the same sizes
    finally:
        if log.engine.session is not None:
            log.engine.session.stop()
        spark_store.dispose()
        store.dispose()
