"""Known answers for the demo's synthetic data set (demo/data.py) and model (demo/model.py)."""

from __future__ import annotations

import json
import logging
import shutil
import threading

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, ks_2samp
from sklearn.metrics import accuracy_score, roc_auc_score

import demo.model
from demo.data import (
    CATEGORIES,
    CONCEPT_DRIFT_START_DAY,
    DEFAULT_HISTORY_START,
    DEMO_DATA_VERSION,
    DRIFT_RAMP_DAYS,
    DRIFT_START_DAY,
    DRIFTED_FEATURES,
    FEATURES,
    HISTORY_DAYS,
    IGNORED_FEATURES,
    STRONGEST_FEATURE,
    STRONGEST_FEATURE_DIRECTION,
    TARGET,
    day_of,
    drift_strength,
    generate,
    generate_reference,
    ground_truth_logit,
    ground_truth_probability,
)
from demo.model import (
    METADATA_FILENAME,
    MODEL_FILENAME,
    REFERENCE_FILENAME,
    REFERENCE_ROWS,
    SKOPS_FILENAME,
    load_or_train,
    load_reference,
    predict_frame,
)

# -- data ------------------------------------------------------------------------------


def test_generate_is_deterministic_for_a_seed():
    first = generate(3_000, random_state=7)
    pd.testing.assert_frame_equal(first, generate(3_000, random_state=7))
    assert not first.equals(generate(3_000, random_state=8))
    pd.testing.assert_frame_equal(generate_reference(2_000, random_state=3), generate_reference(2_000, random_state=3))


def test_generate_columns_times_and_labels():
    history_start = 1_700_000_000.0
    frame = generate(5_000, start_day=3.0, end_day=10.0, history_start=history_start, random_state=1)

    assert list(frame.columns) == ["ts", *FEATURES, TARGET, "label_delay_days"]
    assert frame["ts"].is_monotonic_increasing
    days = day_of(frame["ts"], history_start)
    assert days.min() >= 3.0 and days.max() < 10.0
    assert set(frame[TARGET].unique()) <= {0, 1}
    assert frame["label_delay_days"].between(2.0, 5.0).all()
    for name, levels in CATEGORIES.items():
        assert FEATURES[name] == "categorical"
        assert set(frame[name].unique()) <= set(levels)
    # a few percent missing in income and months_employed, none elsewhere
    missing = frame[list(FEATURES)].isna().mean()
    assert 0.01 < missing["income"] < 0.06 and 0.02 < missing["months_employed"] < 0.08
    assert missing.drop(["income", "months_employed"]).eq(0).all()


def test_generate_same_start_and_end_puts_every_row_at_that_instant():
    frame = generate(4, start_day=20.5, end_day=20.5, random_state=0)
    assert (frame["ts"] == DEFAULT_HISTORY_START + 20.5 * 86_400).all()


def test_generate_traffic_is_busier_in_the_afternoon():
    frame = generate(50_000, random_state=2)
    hours = (day_of(frame["ts"], DEFAULT_HISTORY_START) % 1.0) * 24
    afternoon = ((hours >= 13) & (hours < 17)).sum()
    night = ((hours >= 1) & (hours < 5)).sum()
    assert afternoon > 2 * night


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_rows": -1}, "n_rows must be an integer >= 0"),
        ({"n_rows": 10, "start_day": 5.0, "end_day": 4.0}, "end_day must be >= start_day"),
    ],
)
def test_generate_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(**kwargs)


def test_labels_follow_the_ground_truth_probability():
    frame = generate(40_000, random_state=4)
    probability = ground_truth_probability(frame, day=day_of(frame["ts"], DEFAULT_HISTORY_START))
    for low, high in [(0.0, 0.1), (0.1, 0.3), (0.3, 0.6), (0.6, 1.0)]:
        in_bin = (probability >= low) & (probability < high)
        assert abs(frame[TARGET][in_bin].mean() - probability[in_bin].mean()) < 0.02


def test_ignored_feature_has_no_effect_on_the_ground_truth():
    reference = generate_reference(2_000, random_state=5)
    assert set(IGNORED_FEATURES) <= set(FEATURES)
    for name in IGNORED_FEATURES:
        changed = reference.copy()
        levels = list(CATEGORIES[name])
        changed[name] = pd.Categorical.from_codes((reference[name].cat.codes + 1) % len(levels), categories=levels)
        assert not changed[name].equals(reference[name])
        np.testing.assert_array_equal(ground_truth_probability(changed), ground_truth_probability(reference))
        np.testing.assert_array_equal(
            ground_truth_logit(reference.drop(columns=name), day=20.0), ground_truth_logit(reference, day=20.0)
        )


def test_strongest_feature_moves_the_probability_in_the_documented_direction():
    reference = generate_reference(2_000, random_state=6)
    low, high = reference.copy(), reference.copy()
    low[STRONGEST_FEATURE], high[STRONGEST_FEATURE] = 0.5, 0.9
    difference = ground_truth_logit(high) - ground_truth_logit(low)
    # documented: 7.5 · max(u − 0.30, 0), so 0.5 → 0.9 adds 7.5 × 0.4 = 3.0 to every logit
    np.testing.assert_allclose(difference, 3.0 * STRONGEST_FEATURE_DIRECTION)


def test_strongest_feature_has_the_largest_effect():
    reference = generate_reference(10_000, random_state=7)
    logit = ground_truth_logit(reference)
    spread = {}
    for name, kind in FEATURES.items():
        neutral = reference.copy()
        neutral[name] = reference[name].median() if kind == "numeric" else reference[name].mode()[0]
        spread[name] = np.std(logit - ground_truth_logit(neutral))
    assert max(spread, key=spread.get) == STRONGEST_FEATURE
    assert spread[STRONGEST_FEATURE] > 1.5 * sorted(spread.values())[-2]
    assert all(spread[name] == 0 for name in IGNORED_FEATURES)


def test_interaction_debt_ratio_counts_more_for_the_self_employed():
    rows = generate_reference(1, random_state=8).loc[[0, 0]].reset_index(drop=True)
    rows["debt_ratio"] = [0.2, 0.6]
    salaried = rows.assign(employment_type=pd.Categorical(["salaried"] * 2, categories=CATEGORIES["employment_type"]))
    self_employed = salaried.assign(
        employment_type=pd.Categorical(["self_employed"] * 2, categories=CATEGORIES["employment_type"])
    )
    # documented: 2.5 · (d − 0.33) for everyone plus 2.5 · d for the self-employed
    assert np.diff(ground_truth_logit(salaried))[0] == pytest.approx(2.5 * 0.4)
    assert np.diff(ground_truth_logit(self_employed))[0] == pytest.approx(5.0 * 0.4)


def test_concept_drift_changes_the_truth_from_its_start_day_only():
    rows = generate_reference(3_000, random_state=9)
    before = ground_truth_logit(rows, day=CONCEPT_DRIFT_START_DAY - 0.01)
    np.testing.assert_array_equal(before, ground_truth_logit(rows))
    after = ground_truth_logit(rows, day=CONCEPT_DRIFT_START_DAY)
    # documented: late payments 0.7 → 1.4 per payment, partner channel 0.3 → 1.1
    expected = 0.7 * rows["late_payments_12m"].to_numpy() + 0.8 * (rows["channel"] == "partner").to_numpy()
    np.testing.assert_allclose(after - before, expected)


def test_drift_strength_ramps_from_the_drift_start_day():
    ramp_end = DRIFT_START_DAY + DRIFT_RAMP_DAYS
    days = np.array([0.0, DRIFT_START_DAY, DRIFT_START_DAY + DRIFT_RAMP_DAYS / 2, ramp_end, HISTORY_DAYS])
    np.testing.assert_allclose(drift_strength(days), [0.0, 0.0, 0.5, 1.0, 1.0])


def _drift_p_value(reference: pd.Series, current: pd.Series, kind: str) -> float:
    if kind == "numeric":
        return ks_2samp(reference.dropna(), current.dropna()).pvalue
    table = pd.DataFrame({"reference": reference.value_counts(), "current": current.value_counts()}).fillna(0)
    return chi2_contingency(table.to_numpy()).pvalue


def test_only_the_drifted_features_change_distribution_after_the_drift_start():
    before = generate(20_000, start_day=0.0, end_day=DRIFT_START_DAY, random_state=10)
    after = generate(20_000, start_day=DRIFT_START_DAY + DRIFT_RAMP_DAYS, end_day=HISTORY_DAYS, random_state=11)
    p_values = {name: _drift_p_value(before[name], after[name], kind) for name, kind in FEATURES.items()}
    for name in FEATURES:
        if name in DRIFTED_FEATURES:
            assert p_values[name] < 1e-6, (name, p_values[name])
        else:
            assert p_values[name] > 0.001, (name, p_values[name])
    assert after["income"].median() == pytest.approx(0.8 * before["income"].median(), rel=0.03)
    assert after["credit_utilization"].mean() > before["credit_utilization"].mean() + 0.1
    assert (after["channel"] == "partner").mean() == pytest.approx(0.35, abs=0.02)


def test_reference_is_pre_drift():
    reference = generate_reference(20_000, random_state=12)
    early = generate(20_000, start_day=0.0, end_day=DRIFT_START_DAY, random_state=13)
    for name in DRIFTED_FEATURES:
        assert _drift_p_value(reference[name], early[name], FEATURES[name]) > 0.001


# -- model -----------------------------------------------------------------------------


def test_model_ranks_fresh_pre_drift_data_well(demo_model):
    fresh = generate(20_000, start_day=0.0, end_day=DRIFT_START_DAY, random_state=14)
    _, proba = predict_frame(demo_model, fresh)
    assert roc_auc_score(fresh[TARGET], proba[:, 1]) > 0.75
    assert demo_model.metrics["roc_auc"] > 0.75
    assert demo_model.metrics["roc_auc"] <= demo_model.metrics["ground_truth_roc_auc"] + 0.01


def test_model_accuracy_drops_after_the_concept_drift(demo_model):
    before = generate(20_000, start_day=0.0, end_day=DRIFT_START_DAY, random_state=15)
    after = generate(20_000, start_day=CONCEPT_DRIFT_START_DAY, end_day=HISTORY_DAYS, random_state=16)

    def accuracy_gap(frame: pd.DataFrame) -> tuple[float, float]:
        labels, _ = predict_frame(demo_model, frame)
        truth = ground_truth_probability(frame, day=day_of(frame["ts"], DEFAULT_HISTORY_START)) >= 0.5
        return accuracy_score(frame[TARGET], labels), accuracy_score(frame[TARGET], truth)

    model_before, truth_before = accuracy_gap(before)
    model_after, truth_after = accuracy_gap(after)
    assert model_before - model_after > 0.05
    # the drop is the model going stale, not only harder data: it falls behind the truth
    assert truth_before - model_before < 0.01
    assert truth_after - model_after > 0.03


def test_pipeline_handles_missing_values_and_unseen_categories(demo_model):
    rows = generate_reference(6, random_state=17)[list(FEATURES)]
    as_json_would_give = rows.astype({name: object for name, kind in FEATURES.items() if kind == "categorical"})
    as_json_would_give = as_json_would_give.astype({"age": float})
    as_json_would_give.loc[0, ["income", "age", "debt_ratio"]] = np.nan
    as_json_would_give.loc[1, "channel"] = "carrier_pigeon"
    as_json_would_give.loc[2, "region"] = None
    as_json_would_give.loc[3, list(FEATURES)[:8]] = np.nan

    labels, proba = predict_frame(demo_model, as_json_would_give)
    assert labels.shape == (6,) and proba.shape == (6, 2)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(labels, (proba[:, 1] >= demo_model.threshold).astype(int))
    # untouched rows: strings give the same answer as pandas categoricals
    np.testing.assert_allclose(proba[4:], predict_frame(demo_model, rows)[1][4:])


def test_predict_frame_names_missing_columns(demo_model):
    rows = generate_reference(3, random_state=18).drop(columns=["income"])
    with pytest.raises(ValueError, match="missing: \\['income'\\]"):
        predict_frame(demo_model, rows)


def test_saved_reference_is_the_training_data_with_the_models_outputs(demo_model):
    saved = load_reference(demo_model)
    training = generate_reference(REFERENCE_ROWS, random_state=0)
    pd.testing.assert_frame_equal(saved[list(training.columns)], training)
    proba = demo_model.pipeline.predict_proba(training[list(FEATURES)])[:, 1]
    np.testing.assert_allclose(saved["score"], proba)
    np.testing.assert_array_equal(saved["prediction"], (proba > 0.5).astype(float))


def test_load_or_train_reuses_the_saved_model(demo_model, caplog):
    directory = demo_model.artifact_path.parent
    modified = (directory / MODEL_FILENAME).stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="demo.model"):
        again = load_or_train(directory)
    assert again == demo_model
    assert again.version == demo_model.version and again.trained_at == demo_model.trained_at
    assert (directory / MODEL_FILENAME).stat().st_mtime_ns == modified
    assert "Loaded demo model" in caplog.text and "Training" not in caplog.text


@pytest.fixture
def small_reference(monkeypatch):
    """Train on 3,000 rows so that tests of the retrain logic stay fast."""
    monkeypatch.setattr(demo.model, "REFERENCE_ROWS", 3_000)
    monkeypatch.setattr(demo.model, "HOLDOUT_ROWS", 2_000)


def test_load_or_train_retrains_when_the_data_version_differs(demo_model, tmp_path, small_reference, caplog):
    for name in (MODEL_FILENAME, REFERENCE_FILENAME, METADATA_FILENAME):
        shutil.copy(demo_model.artifact_path.parent / name, tmp_path / name)
    metadata = json.loads((tmp_path / METADATA_FILENAME).read_text())
    metadata["demo_data_version"] = DEMO_DATA_VERSION + "-old"
    (tmp_path / METADATA_FILENAME).write_text(json.dumps(metadata))

    with caplog.at_level(logging.INFO, logger="demo.model"):
        retrained = load_or_train(tmp_path)
    assert "demo_data_version" in caplog.text and "Trained and saved" in caplog.text
    assert retrained.trained_at > demo_model.trained_at
    assert retrained.version != demo_model.version
    assert json.loads((tmp_path / METADATA_FILENAME).read_text())["demo_data_version"] == DEMO_DATA_VERSION
    assert len(pd.read_parquet(retrained.reference_path)) == 3_000
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [".model.lock", MODEL_FILENAME, SKOPS_FILENAME, REFERENCE_FILENAME, METADATA_FILENAME]
    )


def test_load_or_train_retrains_when_the_artifact_was_changed(tmp_path, small_reference):
    first = load_or_train(tmp_path)
    (tmp_path / MODEL_FILENAME).write_bytes(b"not a pickle")
    second = load_or_train(tmp_path)
    assert second.trained_at > first.trained_at
    assert second.version == first.version  # training is deterministic, and so is the file
    assert predict_frame(second, generate_reference(5, random_state=19))[1].shape == (5, 2)


def test_concurrent_first_starts_train_once(tmp_path, small_reference, caplog):
    results = []
    with caplog.at_level(logging.INFO, logger="demo.model"):
        threads = [threading.Thread(target=lambda: results.append(load_or_train(tmp_path))) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 2 and results[0] == results[1]
    assert caplog.text.count("Trained and saved") == 1
