"""Feature and prediction drift: reference statistics once, every column and window in one call.

Usage::

    from monitoring.drift import load_or_build_profile, compute_drift, summary, feature_distribution

    profile = load_or_build_profile("data/train.parquet", {"income": "numeric", "channel": "categorical"},
                                    cache_dir="var/drift-profiles")
    report = compute_drift(profile, production_frame, window="day", methods={"channel": "chi_square"},
                           thresholds={"psi": 0.25}, drift_share=0.5, service="credit-risk")
    report.features        # one row per feature and window (see DriftReport)
    report.prediction      # the same for the prediction/score columns
    report.dataset         # one row per window: share of drifted features, verdict
    summary(report)        # "2 of 12 features drifted in the last 28 days: income, channel"
    feature_distribution(report, "income", windows=slice(-7, None))   # reference vs current bins

Methods (:data:`METHODS`, registered with :func:`register_method`)
-------------------------------------------------------------------
==============  ==========================  =========  =========  ====================================
name            columns                     score      threshold  how it is computed
==============  ==========================  =========  =========  ====================================
ks              numeric                     p-value    0.05       exact empirical CDFs when the
                                                                  reference has ≤ 1,024 distinct
                                                                  values; p-value as scipy's
                                                                  ``ks_2samp(method="auto")`` for
                                                                  up to 31 windows; beyond, the
                                                                  Kolmogorov distribution with
                                                                  Stephens' correction (scipy
                                                                  costs 0.3-5 ms per window)
chi_square      categorical                 p-value    0.05       ``chi2_contingency`` on the 2 × k
                                                                  table (reference, current), no
                                                                  continuity correction; categories
                                                                  empty in both are left out
z_test          categorical (or numeric)    p-value    0.05       two-proportion z-test, pooled; the
                with ≤ 2 reference values                         proportion of the first reference
                                                                  value
wasserstein     numeric                     distance   0.1        W1 / max(reference std, 0.001)
jensen_shannon  numeric, categorical        distance   0.1        scipy's ``jensenshannon``, base 2
psi             numeric, categorical        distance   0.2        Σ (q − p) ln(q / p), empty shares
                                                                  replaced by 0.0001
hellinger       numeric, categorical        distance   0.1        sqrt(1 − Σ sqrt(p q))
==============  ==========================  =========  =========  ====================================

Binned methods (jensen_shannon, psi, hellinger, chi_square, z_test) compare numeric columns
over the reference's quantile bins (``n_bins``, default 20, plus an open bin below the
reference minimum and one above its maximum) and categorical ones over the reference
categories plus one bin for categories the reference never had. ``auto``: p-value tests when
the reference has at most 1,000 rows (ks; z_test for two categories, else chi_square),
wasserstein / jensen_shannon above.

Accuracy against scipy (tested in ``tests/test_drift.py``): chi_square, z_test,
jensen_shannon, psi and hellinger are exact (to rounding); ks is exact (p-values to 1e-9)
when the reference has at most 1,024 distinct values — always so under ``auto``, which uses
KS only up to 1,000 reference rows — and otherwise its statistic may be low by at most the
share of one fine bin (about 1/1,024). Wasserstein is exact except inside fine bins where the
two CDFs cross: within 1e-3 of scipy's (normalised units, 1 % of the default threshold) in
the tests, typically within 3e-4.

How it is fast: the reference is summarised once (:func:`build_profile`, cached on disk by
:func:`load_or_build_profile`); each current column is binned once against the reference's
edges with a lookup table that gives exactly ``np.searchsorted``'s answer in a few passes of
arithmetic over cache-sized chunks, and every window is counted by one ``np.bincount`` of
``window * n_bins + bin``; categorical columns are counted on their own integer codes and
mapped to the reference's categories afterwards. Categorical columns are fastest as pandas
categoricals (strings are factorised first).

Sample size: a distance between two samples of the same distribution is never zero, and the
smaller the window the larger it gets (Jensen–Shannon over 22 bins reaches about 0.14 on
200 unchanged rows, above its threshold of 0.1). So a distance counts as drifted only when
it is at or above its threshold **and** above the window's noise level: the 99.9th
percentile of the method's score on windows of the same size drawn from the reference's own
shares (:func:`noise_level`, simulated once per column, method and size, memoised). At most
one feature-window in a thousand is then flagged by chance where the noise decides; where
the threshold decides (larger windows) far fewer. A window whose noise level exceeds the
threshold is "too small" unless its score clears the noise. p-value tests already account
for the window's size; :meth:`DriftReport.false_alarm_bound` says how many false alarms to
expect across features × windows at the chosen thresholds.

Severity: ``red`` when drifted; ``amber`` when a p-value is below twice its threshold or a
distance at least half of it and above the noise; ``green`` otherwise; ``grey`` when the
window is not judged: its score is NaN, it has fewer than :data:`MIN_WINDOW_ROWS` values,
the column is constant in the reference, or the window is too small (``status`` and
``reason`` say which). Windows still open at ``now`` are ``partial``: shown "so far", never
deciding :func:`summary` or :func:`drifted_features` on their own.

Missing values (NaN, None, ±inf) are left out of the scores and counted per window
(``n_missing``); values the reference never had (unseen categories, numbers outside its
range) take part in the scores in their own bins and are counted (``n_unseen``). A column
with no values in a window scores NaN; the message is issued as a :class:`DriftWarning` and
kept in ``DriftReport.warnings``.
"""

from monitoring.drift._binning import EdgeIndex, build_edge_index
from monitoring.drift._compute import (
    DATASET_COLUMNS,
    DISTRIBUTION_COLUMNS,
    JUDGED_STATUSES,
    MIN_WINDOW_ROWS,
    RESULT_COLUMNS,
    SEVERITIES,
    SEVERITY_COLORS,
    STATUSES,
    DriftReport,
    WindowedCounts,
    check_drift_settings,
    compute_drift,
    compute_drift_from_counts,
    drifted_features,
    feature_distribution,
    judge,
    partial_windows,
    summary,
)
from monitoring.drift._methods import (
    AUTO,
    AUTO_MAX_REFERENCE_ROWS,
    KINDS,
    METHODS,
    ColumnCounts,
    DriftMethod,
    choose_method,
    get_method,
    ks_p_value,
    ks_p_value_asymptotic,
    method_names,
    register_method,
)
from monitoring.drift._noise import (
    NOISE_DRAWS,
    NOISE_QUANTILE,
    clear_noise_cache,
    known_noise_levels,
    noise_level,
    noise_levels,
    remember_noise_levels,
)
from monitoring.drift._profile import (
    DEFAULT_BINS,
    DEFAULT_CACHE_DIR,
    MAX_FINE_EDGES,
    PREDICTION_COLUMNS,
    PROFILE_VERSION,
    ColumnProfile,
    DriftWarning,
    ReferenceProfile,
    build_profile,
    file_sha256,
    load_or_build_profile,
)
from monitoring.drift._tallies import (
    CategoryTally,
    NumericTally,
    WindowTallies,
    add_tallies,
    counts_from_tally,
    merge_tallies,
    tallies_from_arrays,
    tallies_to_arrays,
)
from monitoring.windows import WINDOW_SECONDS, Windows, assign_windows, parse_window

__all__ = [
    "AUTO",
    "AUTO_MAX_REFERENCE_ROWS",
    "DATASET_COLUMNS",
    "DEFAULT_BINS",
    "DEFAULT_CACHE_DIR",
    "DISTRIBUTION_COLUMNS",
    "JUDGED_STATUSES",
    "KINDS",
    "MAX_FINE_EDGES",
    "METHODS",
    "MIN_WINDOW_ROWS",
    "NOISE_DRAWS",
    "NOISE_QUANTILE",
    "PREDICTION_COLUMNS",
    "PROFILE_VERSION",
    "RESULT_COLUMNS",
    "SEVERITIES",
    "SEVERITY_COLORS",
    "STATUSES",
    "WINDOW_SECONDS",
    "CategoryTally",
    "ColumnCounts",
    "ColumnProfile",
    "DriftMethod",
    "DriftReport",
    "DriftWarning",
    "EdgeIndex",
    "NumericTally",
    "ReferenceProfile",
    "WindowTallies",
    "WindowedCounts",
    "Windows",
    "add_tallies",
    "assign_windows",
    "build_edge_index",
    "build_profile",
    "check_drift_settings",
    "choose_method",
    "clear_noise_cache",
    "compute_drift",
    "compute_drift_from_counts",
    "counts_from_tally",
    "drifted_features",
    "feature_distribution",
    "file_sha256",
    "get_method",
    "judge",
    "known_noise_levels",
    "ks_p_value",
    "ks_p_value_asymptotic",
    "load_or_build_profile",
    "merge_tallies",
    "method_names",
    "noise_level",
    "noise_levels",
    "parse_window",
    "partial_windows",
    "register_method",
    "remember_noise_levels",
    "summary",
    "tallies_from_arrays",
    "tallies_to_arrays",
]
