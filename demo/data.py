"""Synthetic credit-risk data with a documented ground truth and a scripted drift.

The embedded demo serves a model trained on this data set, and the traffic replayer sends
it rows drawn from the same generator, so every chart in Vantage has a known right answer:
which features drifted, when, which feature matters most, and when the model went stale.

Each row is a loan application. Twelve features, in model order (:data:`FEATURES`):

============================ =========== ====================================================
feature                      kind        distribution before the drift
============================ =========== ====================================================
``age``                      numeric     18 + Gamma(4, 6) years, capped at 85, integer
``income``                   numeric     yearly, log-normal, median 42 000, σ(log) 0.55;
                                         3 % missing
``debt_ratio``               numeric     Beta(2, 4) (monthly debt / monthly income)
``credit_utilization``       numeric     Beta(1.6, 2.6) (revolving balance / limit)
``months_employed``          numeric     Gamma(1.5, 30) capped by working age, integer;
                                         5 % missing
``num_open_accounts``        numeric     1 + Poisson(3)
``late_payments_12m``        numeric     Poisson with a Gamma(0.5, 1) rate (over-dispersed)
``loan_amount``              numeric     log-normal around 0.3 × pre-drift income, rounded to 100
``channel``                  categorical web 45 %, branch 25 %, partner 15 %, phone 15 %
``region``                   categorical north, south, east, west, central
``employment_type``          categorical salaried, self_employed, contract, retired
                                         (mostly retired from 63 on)
``signup_weekday``           categorical mon … sun, uniform; **ignored by the ground truth**
============================ =========== ====================================================

The target ``default`` is 1 when the loan defaults. It is drawn as Bernoulli(p) with p the
ground-truth probability below, so even a perfect model has an ROC AUC well under 1.

Ground truth
------------
In words: risk rises steeply once the credit line is more than 30 % used (the strongest
effect), rises with the debt ratio (twice as fast for the self-employed — the interaction),
with late payments, with the loan size, and for very young and very old applicants
(a U-shape in age); it falls with income (logarithmically) and with job tenure up to five
years. Channel, region and employment type shift the baseline a little. The weekday of
sign-up plays no part at all.

In math, with u = credit_utilization, d = debt_ratio, L = late_payments_12m,
m = months_employed, I = income, A = loan_amount, and [·] an indicator::

    logit p = -3.5
              + 7.5 · max(u - 0.30, 0)                      hinge (non-linear)
              - 1.2 · ln(I / 42 000)
              + 2.5 · (d - 0.33)
              + 2.5 · d · [employment_type = self_employed]  interaction
              + β_L · L                                     β_L = 0.7
              + 0.0012 · (age - 42)²                        U-shape (non-linear)
              - 0.8 · min(m, 60) / 60                       saturating tenure
              + 0.4 · ln(A / 12 000)
              + 0.06 · (num_open_accounts - 4)
              + channel effect    (web 0, branch -0.25, partner β_P, phone +0.10), β_P = 0.3
              + region effect     (north 0, south +0.15, east +0.05, west -0.10, central 0)
              + employment effect (salaried 0, self_employed 0, contract +0.30, retired -0.10)

A missing income counts as 42 000 and a missing months_employed as 35 (the medians of the
reference), so a missing value is neutral; rows are generated, then values are removed,
then the probability is computed from what remains, so :func:`ground_truth_probability`
of a generated frame is exactly the probability its labels were drawn from.

Before the drift about 17 % of loans default and the ground truth itself, used as a
score, has an ROC AUC of about 0.86 (the ceiling for any model). Measured on the reference,
the spread (standard deviation) each feature adds to the logit is largest for
credit_utilization (≈ 1.2), then late_payments_12m, income and debt_ratio (≈ 0.5–0.7
each), and exactly 0 for signup_weekday.

Drift schedule (days since the start of the history)
----------------------------------------------------
* Data drift from :data:`DRIFT_START_DAY` (14), growing linearly to full strength over
  :data:`DRIFT_RAMP_DAYS` (2): ``income`` falls by 20 %, ``credit_utilization`` moves up
  (u → u + 0.25 · (1 - u), mean 0.38 → 0.54) and the ``channel`` mix moves to
  web 35 %, branch 20 %, partner 35 %, phone 10 %. Those three are
  :data:`DRIFTED_FEATURES`; every other feature keeps its distribution exactly.
* Concept drift from :data:`CONCEPT_DRIFT_START_DAY` (18), a step: the late-payment
  coefficient β_L doubles from 0.7 to 1.4 and the partner channel's effect β_P goes from
  0.3 to 1.1 (a partner's underwriting lapsed). The same applicant is now riskier than
  the model believes. Measured with the demo model (:mod:`demo.model`) on 200 000 rows:

  ===========  ============  ===========  ===============  ========================
  days         default rate  mean score   model accuracy   ground truth's accuracy
  ===========  ============  ===========  ===============  ========================
  0–14         17 %          17 %         0.87             0.87
  14–16 ramp   24 %          23 %         0.83             0.83
  16–18        31 %          30 %         0.79             0.79
  18–28        40 %          30 %         0.75             0.79
  ===========  ============  ===========  ===============  ========================

  The data drift alone raises the default rate, and the model follows it; after the
  concept drift it under-predicts and falls four to five points behind the truth. Its
  ROC AUC moves much less (0.86 → 0.83): the ranking survives, the calibration does not.

Every random draw takes ``random_state`` (``None``, an int or a ``numpy.random.Generator``)
and the same seed gives the same frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORIES",
    "CONCEPT_DRIFT_START_DAY",
    "DEFAULT_HISTORY_START",
    "DEMO_DATA_VERSION",
    "DRIFTED_FEATURES",
    "DRIFT_RAMP_DAYS",
    "DRIFT_START_DAY",
    "FEATURES",
    "HISTORY_DAYS",
    "IGNORED_FEATURES",
    "LABEL_DELAY_COLUMN",
    "SECONDS_PER_DAY",
    "STRONGEST_FEATURE",
    "STRONGEST_FEATURE_DIRECTION",
    "TARGET",
    "TIMESTAMP_COLUMN",
    "concept_drift_active",
    "day_of",
    "drift_strength",
    "generate",
    "generate_reference",
    "ground_truth_logit",
    "ground_truth_probability",
]

#: Bump whenever the generator or the model recipe changes: saved artifacts made by another
#: version are retrained by :func:`demo.model.load_or_train`.
DEMO_DATA_VERSION = "2"

SECONDS_PER_DAY = 86_400.0
#: 2025-01-01T00:00:00Z, used when :func:`generate` is not told where the history starts.
DEFAULT_HISTORY_START = 1_735_689_600.0
HISTORY_DAYS = 28.0
DRIFT_START_DAY = 14.0
DRIFT_RAMP_DAYS = 2.0
CONCEPT_DRIFT_START_DAY = 18.0

TARGET = "default"
TIMESTAMP_COLUMN = "ts"
LABEL_DELAY_COLUMN = "label_delay_days"

FEATURES: dict[str, str] = {
    "age": "numeric",
    "income": "numeric",
    "debt_ratio": "numeric",
    "credit_utilization": "numeric",
    "months_employed": "numeric",
    "num_open_accounts": "numeric",
    "late_payments_12m": "numeric",
    "loan_amount": "numeric",
    "channel": "categorical",
    "region": "categorical",
    "employment_type": "categorical",
    "signup_weekday": "categorical",
}

#: The levels of each categorical feature, in the order of the pandas categories.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "channel": ("web", "branch", "partner", "phone"),
    "region": ("north", "south", "east", "west", "central"),
    "employment_type": ("salaried", "self_employed", "contract", "retired"),
    "signup_weekday": ("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
}

#: Features the ground truth does not use at all.
IGNORED_FEATURES: tuple[str, ...] = ("signup_weekday",)
#: The feature with the largest effect on the ground truth ...
STRONGEST_FEATURE = "credit_utilization"
#: ... and its direction: +1 means increasing it raises the risk of default.
STRONGEST_FEATURE_DIRECTION = 1
#: Features whose distribution changes from DRIFT_START_DAY on; all others keep theirs.
DRIFTED_FEATURES: tuple[str, ...] = ("income", "credit_utilization", "channel")

# --- ground-truth coefficients (the module docstring states the same numbers) ----------
_INTERCEPT = -3.5
_UTILIZATION_KNEE = 0.30
_UTILIZATION_SLOPE = 7.5
_INCOME_SCALE = 42_000.0
_INCOME_SLOPE = -1.2
_DEBT_CENTER = 0.33
_DEBT_SLOPE = 2.5
_DEBT_SELF_EMPLOYED_SLOPE = 2.5
_LATE_PAYMENT_SLOPE = 0.7
_LATE_PAYMENT_SLOPE_AFTER_CONCEPT_DRIFT = 1.4
_AGE_CENTER = 42.0
_AGE_CURVATURE = 0.0012
_TENURE_CAP_MONTHS = 60.0
_TENURE_SLOPE = -0.8
_LOAN_SCALE = 12_000.0
_LOAN_SLOPE = 0.4
_ACCOUNTS_CENTER = 4.0
_ACCOUNTS_SLOPE = 0.06
_PARTNER_EFFECT = 0.30
_PARTNER_EFFECT_AFTER_CONCEPT_DRIFT = 1.1
_LEVEL_EFFECTS: dict[str, dict[str, float]] = {
    "channel": {"branch": -0.25, "phone": 0.10},  # partner: see _PARTNER_EFFECT
    "region": {"south": 0.15, "east": 0.05, "west": -0.10},
    "employment_type": {"contract": 0.30, "retired": -0.10},
}
_MISSING_INCOME_VALUE = 42_000.0
_MISSING_MONTHS_EMPLOYED_VALUE = 35.0

# --- marginals and drift ----------------------------------------------------------------
_CHANNEL_MIX_BEFORE = np.array([0.45, 0.25, 0.15, 0.15])
_CHANNEL_MIX_AFTER = np.array([0.35, 0.20, 0.35, 0.10])
_REGION_MIX = np.array([0.22, 0.20, 0.18, 0.25, 0.15])
_EMPLOYMENT_MIX_WORKING_AGE = np.array([0.68, 0.15, 0.15, 0.02])
_EMPLOYMENT_MIX_FROM_63 = np.array([0.12, 0.06, 0.02, 0.80])
_INCOME_MISSING_RATE = 0.03
_MONTHS_EMPLOYED_MISSING_RATE = 0.05
_INCOME_DRIFT_FACTOR = 0.80
_UTILIZATION_DRIFT_SHIFT = 0.25
_LABEL_DELAY_RANGE_DAYS = (2.0, 5.0)
# Traffic follows the clock: busiest at 15:00 UTC, half as busy at 03:00.
_DAILY_PEAK_HOUR = 15.0
_DAILY_AMPLITUDE = 0.5


def day_of(ts: float | np.ndarray | pd.Series, history_start: float) -> np.ndarray:
    """Days elapsed since the start of the history.

    Parameters
    ----------
    ts : float or array-like of float
        Unix timestamps in seconds.
    history_start : float
        Unix timestamp of day 0.

    Returns
    -------
    day : ndarray of float
        ``(ts - history_start) / 86400``, same shape as ``ts`` (0-d for a scalar).
    """
    return (np.asarray(ts, dtype=float) - float(history_start)) / SECONDS_PER_DAY


def drift_strength(day: float | np.ndarray) -> np.ndarray:
    """Strength of the data drift on a given day, from 0 (none) to 1 (full).

    Parameters
    ----------
    day : float or array-like of float
        Days since the start of the history.

    Returns
    -------
    strength : ndarray of float
        0 before :data:`DRIFT_START_DAY`, rising linearly to 1 over :data:`DRIFT_RAMP_DAYS`.
    """
    day = np.asarray(day, dtype=float)
    return np.clip((day - DRIFT_START_DAY) / DRIFT_RAMP_DAYS, 0.0, 1.0)


def concept_drift_active(day: float | np.ndarray) -> np.ndarray:
    """Whether the changed ground truth is in force on a given day.

    Parameters
    ----------
    day : float or array-like of float
        Days since the start of the history.

    Returns
    -------
    active : ndarray of bool
        True from :data:`CONCEPT_DRIFT_START_DAY` on.
    """
    return np.asarray(day, dtype=float) >= CONCEPT_DRIFT_START_DAY


def ground_truth_logit(X: pd.DataFrame, *, day: float | np.ndarray | None = None) -> np.ndarray:
    """Log-odds of default under the documented ground truth.

    Parameters
    ----------
    X : DataFrame
        Must hold every feature the ground truth uses (all of :data:`FEATURES` except
        :data:`IGNORED_FEATURES`); other columns are ignored. Categorical columns may be
        strings or pandas categoricals; unknown levels get no level effect. Missing income
        and months_employed count as the reference medians.
    day : float, array-like of shape (n_rows,) or None, default=None
        Days since the start of the history, to apply the concept drift from
        :data:`CONCEPT_DRIFT_START_DAY` on. None means the original relationship.

    Returns
    -------
    logit : ndarray of shape (n_rows,)
    """
    used = [name for name in FEATURES if name not in IGNORED_FEATURES]
    missing = [name for name in used if name not in X.columns]
    if missing:
        raise ValueError(f"X must have the columns {used}; missing: {missing}")

    utilization = X["credit_utilization"].to_numpy(dtype=float)
    income = np.nan_to_num(X["income"].to_numpy(dtype=float), nan=_MISSING_INCOME_VALUE)
    debt_ratio = X["debt_ratio"].to_numpy(dtype=float)
    late_payments = X["late_payments_12m"].to_numpy(dtype=float)
    age = X["age"].to_numpy(dtype=float)
    months_employed = np.nan_to_num(
        X["months_employed"].to_numpy(dtype=float), nan=_MISSING_MONTHS_EMPLOYED_VALUE
    )
    loan_amount = X["loan_amount"].to_numpy(dtype=float)
    open_accounts = X["num_open_accounts"].to_numpy(dtype=float)
    is_self_employed = _is_level(X["employment_type"], "self_employed")
    is_partner = _is_level(X["channel"], "partner")

    if day is None:
        late_payment_slope = np.full(len(X), _LATE_PAYMENT_SLOPE)
        partner_effect = np.full(len(X), _PARTNER_EFFECT)
    else:
        drifted = np.broadcast_to(concept_drift_active(day), (len(X),))
        late_payment_slope = np.where(drifted, _LATE_PAYMENT_SLOPE_AFTER_CONCEPT_DRIFT, _LATE_PAYMENT_SLOPE)
        partner_effect = np.where(drifted, _PARTNER_EFFECT_AFTER_CONCEPT_DRIFT, _PARTNER_EFFECT)

    logit = (
        _INTERCEPT
        + _UTILIZATION_SLOPE * np.maximum(utilization - _UTILIZATION_KNEE, 0.0)
        + _INCOME_SLOPE * np.log(income / _INCOME_SCALE)
        + _DEBT_SLOPE * (debt_ratio - _DEBT_CENTER)
        + _DEBT_SELF_EMPLOYED_SLOPE * debt_ratio * is_self_employed
        + late_payment_slope * late_payments
        + _AGE_CURVATURE * (age - _AGE_CENTER) ** 2
        + _TENURE_SLOPE * np.minimum(months_employed, _TENURE_CAP_MONTHS) / _TENURE_CAP_MONTHS
        + _LOAN_SLOPE * np.log(loan_amount / _LOAN_SCALE)
        + _ACCOUNTS_SLOPE * (open_accounts - _ACCOUNTS_CENTER)
        + partner_effect * is_partner
    )
    for column, effects in _LEVEL_EFFECTS.items():
        for level, effect in effects.items():
            logit += effect * _is_level(X[column], level)
    return logit


def ground_truth_probability(X: pd.DataFrame, *, day: float | np.ndarray | None = None) -> np.ndarray:
    """Probability of default under the documented ground truth.

    Parameters
    ----------
    X : DataFrame
        As for :func:`ground_truth_logit`.
    day : float, array-like of shape (n_rows,) or None, default=None
        As for :func:`ground_truth_logit`.

    Returns
    -------
    probability : ndarray of shape (n_rows,)
        ``1 / (1 + exp(-ground_truth_logit(X, day=day)))``.
    """
    return _sigmoid(ground_truth_logit(X, day=day))


def generate(
    n_rows: int,
    *,
    start_day: float = 0.0,
    end_day: float = HISTORY_DAYS,
    history_start: float = DEFAULT_HISTORY_START,
    random_state: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Applications with timestamps, drift applied, and labels drawn from the ground truth.

    Parameters
    ----------
    n_rows : int
        Number of rows, >= 0.
    start_day, end_day : float, default=0.0 and 28.0
        The time span [start_day, end_day), in days since ``history_start``; the drift
        schedule is in the same days. ``end_day`` must be >= ``start_day``; when they are
        equal every row is at that instant (for live traffic).
    history_start : float, default=DEFAULT_HISTORY_START
        Unix timestamp (seconds) of day 0.
    random_state : int, numpy Generator or None, default=None
        Seed; the same seed gives the same frame.

    Returns
    -------
    frame : DataFrame of shape (n_rows, 15)
        ``ts`` (unix seconds, float, sorted ascending, denser in the afternoon UTC), the
        features of :data:`FEATURES` in order (categoricals as pandas categoricals with the
        levels of :data:`CATEGORIES`), ``default`` (int 0/1) drawn from the ground truth in
        force at ``ts``, and ``label_delay_days`` (float, uniform in [2, 5)): how long after
        ``ts`` the label becomes known.
    """
    n_rows = _check_n_rows(n_rows)
    if not end_day >= start_day:
        raise ValueError(f"end_day must be >= start_day; got start_day={start_day!r}, end_day={end_day!r}")
    rng = np.random.default_rng(random_state)
    day = _seasonal_days(n_rows, start_day, end_day, rng)
    frame = _sample_features(n_rows, rng, drift=drift_strength(day))
    probability = ground_truth_probability(frame, day=day)
    labels = (rng.random(n_rows) < probability).astype(np.int64)
    label_delay = rng.uniform(*_LABEL_DELAY_RANGE_DAYS, size=n_rows)
    frame.insert(0, TIMESTAMP_COLUMN, float(history_start) + day * SECONDS_PER_DAY)
    frame[TARGET] = labels
    frame[LABEL_DELAY_COLUMN] = label_delay
    return frame


def generate_reference(
    n_rows: int = 20_000, *, random_state: int | np.random.Generator | None = 0
) -> pd.DataFrame:
    """Pre-drift training data: the features and the target, no timestamps.

    Parameters
    ----------
    n_rows : int, default=20_000
        Number of rows, >= 0.
    random_state : int, numpy Generator or None, default=0
        Seed; the same seed gives the same frame.

    Returns
    -------
    frame : DataFrame of shape (n_rows, 13)
        The features of :data:`FEATURES` in order, then ``default`` (int 0/1) drawn from the
        original ground truth.
    """
    n_rows = _check_n_rows(n_rows)
    rng = np.random.default_rng(random_state)
    frame = _sample_features(n_rows, rng, drift=np.zeros(n_rows))
    probability = ground_truth_probability(frame)
    frame[TARGET] = (rng.random(n_rows) < probability).astype(np.int64)
    return frame


def _sample_features(n_rows: int, rng: np.random.Generator, *, drift: np.ndarray) -> pd.DataFrame:
    """Draw the features; ``drift`` (0–1 per row) moves only DRIFTED_FEATURES."""
    age = np.minimum(18.0 + np.floor(rng.gamma(4.0, 6.0, n_rows)), 85.0)
    income = np.round(np.exp(rng.normal(np.log(42_000.0), 0.55, n_rows)), -1)
    debt_ratio = np.round(rng.beta(2.0, 4.0, n_rows), 3)
    utilization = rng.beta(1.6, 2.6, n_rows)
    working_months = (age - 18.0) * 12.0
    months_employed = np.minimum(np.floor(rng.gamma(1.5, 30.0, n_rows)), working_months)
    open_accounts = 1 + rng.poisson(3.0, n_rows)
    late_payments = rng.poisson(rng.gamma(0.5, 1.0, n_rows))
    # Loan size follows the pre-drift income, so that only income itself drifts.
    loan_amount = np.maximum(np.round(0.3 * income * np.exp(rng.normal(0.0, 0.5, n_rows)), -2), 500.0)

    cumulative_before, cumulative_after = np.cumsum(_CHANNEL_MIX_BEFORE), np.cumsum(_CHANNEL_MIX_AFTER)
    channel = _draw_codes(cumulative_before + drift[:, None] * (cumulative_after - cumulative_before), rng)
    region = rng.choice(len(_REGION_MIX), size=n_rows, p=_REGION_MIX)
    employment = np.where(
        age >= 63,
        _draw_codes(np.cumsum(_EMPLOYMENT_MIX_FROM_63), rng, n_rows),
        _draw_codes(np.cumsum(_EMPLOYMENT_MIX_WORKING_AGE), rng, n_rows),
    )
    weekday = rng.integers(0, len(CATEGORIES["signup_weekday"]), n_rows)

    income_missing = rng.random(n_rows) < _INCOME_MISSING_RATE
    months_missing = rng.random(n_rows) < _MONTHS_EMPLOYED_MISSING_RATE

    # The scripted data drift: only these three columns depend on ``drift``.
    income = np.round(income * (1.0 - (1.0 - _INCOME_DRIFT_FACTOR) * drift), -1)
    utilization = np.round(utilization + _UTILIZATION_DRIFT_SHIFT * drift * (1.0 - utilization), 3)
    income[income_missing] = np.nan
    months_employed[months_missing] = np.nan

    columns = {
        "age": age.astype(np.int64),
        "income": income,
        "debt_ratio": debt_ratio,
        "credit_utilization": utilization,
        "months_employed": months_employed,
        "num_open_accounts": open_accounts.astype(np.int64),
        "late_payments_12m": late_payments.astype(np.int64),
        "loan_amount": loan_amount,
        "channel": _categorical("channel", channel),
        "region": _categorical("region", region),
        "employment_type": _categorical("employment_type", employment),
        "signup_weekday": _categorical("signup_weekday", weekday),
    }
    return pd.DataFrame(columns)


def _seasonal_days(n_rows: int, start_day: float, end_day: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted days in [start_day, end_day) with a daily traffic cycle (inverse-CDF sampling)."""
    if end_day == start_day:
        return np.full(n_rows, float(start_day))
    grid_step = 1.0 / (24 * 12)  # five minutes
    n_steps = max(int(np.ceil((end_day - start_day) / grid_step)), 1)
    grid = np.linspace(start_day, end_day, n_steps + 1)
    hour = (grid % 1.0) * 24.0
    intensity = 1.0 + _DAILY_AMPLITUDE * np.sin(2.0 * np.pi * (hour - _DAILY_PEAK_HOUR + 6.0) / 24.0)
    cumulative = np.concatenate([[0.0], np.cumsum((intensity[1:] + intensity[:-1]) / 2.0)])
    cumulative /= cumulative[-1]
    uniform = np.sort(rng.random(n_rows))
    day = np.interp(uniform, cumulative, grid)
    return np.minimum(day, np.nextafter(end_day, start_day))


def _draw_codes(cumulative: np.ndarray, rng: np.random.Generator, n_rows: int | None = None) -> np.ndarray:
    """Category codes from cumulative probabilities: one row of them, or one per row."""
    n_rows = len(cumulative) if cumulative.ndim == 2 else n_rows
    draws = rng.random(n_rows)
    if cumulative.ndim == 1:
        codes = np.searchsorted(cumulative, draws, side="right")
    else:
        codes = (draws[:, None] >= cumulative).sum(axis=1)
    return np.minimum(codes, cumulative.shape[-1] - 1)


def _categorical(name: str, codes: np.ndarray) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=list(CATEGORIES[name]))


def _is_level(column: pd.Series, level: str) -> np.ndarray:
    """1.0 where ``column`` equals ``level``, else 0.0 (missing and unknown values too)."""
    return (column == level).to_numpy(dtype=float, na_value=0.0)


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logit))


def _check_n_rows(n_rows: int) -> int:
    if isinstance(n_rows, bool) or not isinstance(n_rows, int | np.integer) or n_rows < 0:
        raise ValueError(f"n_rows must be an integer >= 0; got {n_rows!r}")
    return int(n_rows)
