"""Benchmark of the drift engine against NannyML and Evidently, side by side on the same data.

Usage::

    python benchmarks/drift.py [--quick] [--repeat 5] [--rows 1000000] [--skip-peers | --with-peers]

Data (seeded, written once to Parquet): a reference of 100,000 rows and 1,000,000 current
rows, 16 numeric columns (normal, log-normal, exponential, uniform, gamma, beta, counts,
heavy-tailed, bimodal, some with missing values) and 4 categorical ones (3 to 12 levels, as
pandas categoricals). In the current data, from row 500,000 on, three numeric columns shift
and one categorical mix changes.

Each tool runs in its own process (ours with this interpreter, each peer with the
interpreter of its own venv from ``tests.servers.ensure_venv``, pinned in
``benchmarks/peers/requirements-<name>.txt``), imports its library, reads the two Parquet
files, and then times only the computation, reference statistics included:

* **Vantage**: ``build_profile(reference)`` + ``compute_drift(profile, current, window=100_000)``
  (10 windows of 100,000 rows, every feature and window in one call; ``auto`` picks
  Wasserstein for numeric and Jensen–Shannon for categorical columns); and the same with
  the 1,000,000 rows as one window;
* **NannyML**: ``UnivariateDriftCalculator(chunk_size=100_000, continuous_methods=["wasserstein"],
  categorical_methods=["jensen_shannon"])``: ``fit(reference)`` + ``calculate(current)``;
* **Evidently**: ``Report([DataDriftPreset()]).run(current, reference)`` on the 1,000,000
  rows as one window (its own ``auto``: Wasserstein and Jensen–Shannon for samples this size).

Peak memory is each process's ``ru_maxrss``; "added by the computation" is that peak minus
the peak after the import and the data were loaded. Targets (issue 3): ≥ 5× faster than
NannyML, ≥ 50× faster than Evidently, lowest peak memory.

``--rows`` sets the current rows (the reference is a tenth of it, the windows a tenth of it,
the drift starts half-way). ``--quick`` runs 100,000 current rows, one timed run each and no
peers (a few seconds; ``.ci/run`` runs it so); ``--with-peers`` adds the peers at that size.

Prints a table and writes the "drift" section of ``benchmarks/results.md``; a quick run or one
without the peers writes it to the git-ignored ``var/bench/results-quick.md`` instead (see
:mod:`benchmarks`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    Size,
    markdown_table,
    parse_args,
    peer_python,
    peer_version,
    print_table,
    write_section,
)

DRIFTED = ("num_00", "num_04", "num_09", "cat_01")
RUN_TIMEOUT_S = 1800

# -- data -------------------------------------------------------------------------------------------


def _numeric_columns(n: int, rng: np.random.Generator, *, drift: np.ndarray) -> dict[str, np.ndarray]:
    """16 numeric columns; ``drift`` (0 or 1 per row) moves num_00, num_04 and num_09."""
    columns = {
        "num_00": rng.normal(50.0, 10.0, n) + 5.0 * drift,  # half a standard deviation
        "num_01": np.round(np.exp(rng.normal(10.5, 0.55, n)), -1),
        "num_02": rng.exponential(3.0, n),
        "num_03": rng.uniform(0.0, 1.0, n),
        "num_04": rng.gamma(2.0, 2.0, n) * (1.0 + 0.3 * drift),
        "num_05": rng.beta(2.0, 5.0, n),
        "num_06": rng.poisson(3.0, n).astype(float),
        "num_07": rng.standard_t(3.0, n),
        "num_08": np.where(rng.random(n) < 0.4, rng.normal(-2.0, 0.5, n), rng.normal(3.0, 1.0, n)),
        "num_09": rng.normal(0.0, 1.0, n) * (1.0 + 0.5 * drift),  # spread grows
        "num_10": np.floor(18 + rng.gamma(4.0, 6.0, n)),
        "num_11": rng.lognormal(0.0, 1.0, n),
        "num_12": rng.normal(100.0, 15.0, n),
        "num_13": rng.weibull(1.5, n),
        "num_14": rng.normal(0.0, 1.0, n),
        "num_15": rng.uniform(-5.0, 5.0, n),
    }
    for name, rate in (("num_02", 0.02), ("num_12", 0.05)):
        values = columns[name]
        values[rng.random(n) < rate] = np.nan
    return columns


def _categorical_columns(n: int, rng: np.random.Generator, *, drift: np.ndarray) -> dict[str, pd.Categorical]:
    """4 categorical columns; ``drift`` changes the mix of cat_01."""
    def draw(levels: list[str], before: list[float], after: list[float] | None = None) -> pd.Categorical:
        codes = rng.choice(len(levels), size=n, p=before)
        if after is not None:
            moved = drift > 0
            codes[moved] = rng.choice(len(levels), size=int(moved.sum()), p=after)
        return pd.Categorical.from_codes(codes, categories=levels)

    return {
        "cat_00": draw(["a", "b", "c"], [0.5, 0.3, 0.2]),
        "cat_01": draw(["web", "branch", "partner", "phone", "kiosk"], [0.45, 0.25, 0.15, 0.1, 0.05],
                       [0.30, 0.20, 0.35, 0.1, 0.05]),
        "cat_02": draw([f"r{i}" for i in range(8)], list(np.full(8, 1 / 8))),
        "cat_03": draw([f"s{i}" for i in range(12)], list(np.linspace(1, 2, 12) / np.linspace(1, 2, 12).sum())),
    }


def write_data(directory: Path, *, n_reference: int, n_current: int, drift_from: int, seed: int = 0) -> dict[str, str]:
    """Write reference.parquet and current.parquet; return the column kinds.

    Parameters
    ----------
    directory : Path
        Where the two files go.
    n_reference : int
        Reference rows.
    n_current : int
        Current rows.
    drift_from : int
        First current row of the scripted drift.
    seed : int, default=0
        Seed of the data.

    Returns
    -------
    dict of str to str
        Column → ``"numeric"`` or ``"categorical"``.
    """
    rng = np.random.default_rng(seed)
    no_drift = np.zeros(n_reference)
    drift = (np.arange(n_current) >= drift_from).astype(float)
    reference = pd.DataFrame({**_numeric_columns(n_reference, rng, drift=no_drift),
                              **_categorical_columns(n_reference, rng, drift=no_drift)})
    current = pd.DataFrame({**_numeric_columns(n_current, rng, drift=drift),
                            **_categorical_columns(n_current, rng, drift=drift)})
    reference.to_parquet(directory / "reference.parquet")
    current.to_parquet(directory / "current.parquet")
    return {name: "categorical" if isinstance(reference[name].dtype, pd.CategoricalDtype) else "numeric"
            for name in reference.columns}


# -- runners (each a separate process) ---------------------------------------------------------------

_PROLOGUE = """
import json, resource, sys, time
from pathlib import Path
data, repeat, kinds = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
numeric = [c for c, k in kinds.items() if k == "numeric"]
categorical = [c for c, k in kinds.items() if k == "categorical"]
def peak_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
"""

_LOAD = """
imported = time.perf_counter()
import pandas as pd
reference = pd.read_parquet(data / "reference.parquet")
current = pd.read_parquet(data / "current.parquet")
loaded = time.perf_counter()
peak_after_load = peak_kb()
times = []
for _ in range(repeat):
    begin = time.perf_counter()
    result = compute()
    times.append(time.perf_counter() - begin)
"""

_EPILOGUE = """
print("RESULT " + json.dumps({"import_s": imported - started, "load_s": loaded - imported, "times_s": times,
                              "peak_after_load_kb": peak_after_load, "peak_kb": peak_kb(), "check": check(result)}))
"""

OURS = _PROLOGUE + """
from monitoring.drift import build_profile, clear_noise_cache, compute_drift
WINDOW, NOISE = int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else "cached"
def compute():
    if NOISE == "fresh":  # every run simulates the noise levels again, as a fresh dashboard process does
        clear_noise_cache()
    profile = build_profile(reference, kinds)
    return compute_drift(profile, current, window=WINDOW, noise=NOISE != "off")
def check(report):
    rows = report.features[report.features["drifted"]]
    return {"drifted": sorted(set(rows["feature"])), "windows": sorted(set(int(w) for w in rows["window"])),
            "methods": sorted(set(report.features["method"]))}
""" + _LOAD + _EPILOGUE

NANNYML = _PROLOGUE + """
import nannyml as nml
CHUNK = int(sys.argv[4])
def compute():
    calculator = nml.UnivariateDriftCalculator(
        column_names=numeric + categorical, treat_as_categorical=categorical, chunk_size=CHUNK,
        continuous_methods=["wasserstein"], categorical_methods=["jensen_shannon"])
    calculator.fit(reference)
    return calculator.calculate(current)
def check(result):
    frame = result.filter(period="analysis").to_df()
    alerts = [c for c in frame.columns if c[-1] == "alert"]
    drifted = sorted({c[0] for c in alerts if frame[c].any()})
    return {"drifted": drifted, "windows": len(frame)}
""" + _LOAD + _EPILOGUE

EVIDENTLY = _PROLOGUE + """
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
def compute():
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    report = Report([DataDriftPreset()])
    return report.run(Dataset.from_pandas(current, data_definition=definition),
                      Dataset.from_pandas(reference, data_definition=definition))
def check(snapshot):
    metrics = snapshot.dict()["metrics"]
    counted = [m for m in metrics if m["metric_name"].startswith("DriftedColumnsCount")]
    methods = sorted({m["config"]["method"] for m in metrics if "method" in m.get("config", {})})
    return {"drifted_columns": counted[0]["value"]["count"] if counted else None, "methods": methods}
""" + _LOAD + _EPILOGUE


def run_tool(python: str | Path, code: str, data: Path, repeat: int, kinds: dict[str, str], *extra: str,
             env: dict[str, str] | None = None) -> dict:
    """Run one tool in its own process and return its RESULT dictionary.

    Parameters
    ----------
    python : str or Path
        The interpreter (ours, or a peer venv's).
    code : str
        The runner (:data:`OURS`, :data:`NANNYML`, :data:`EVIDENTLY`).
    data : Path
        The folder with the two Parquet files.
    repeat : int
        Timed runs.
    kinds : dict of str to str
        Column kinds.
    *extra : str
        Further arguments of the runner.
    env : dict, optional
        Extra environment variables.

    Returns
    -------
    dict
        Import and read times, the timed runs, peak memory and the tool's own check.

    Raises
    ------
    RuntimeError
        When the runner printed no result; the message holds the end of its output.
    """
    command = [str(python), "-c", code, str(data), str(repeat), json.dumps(kinds), *extra]
    process = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=ROOT,
                             env={**os.environ, **(env or {})})
    for line in process.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line.removeprefix("RESULT "))
    tail = "\n".join((process.stderr or process.stdout).strip().splitlines()[-5:])
    raise RuntimeError(f"exit code {process.returncode}: {tail}")


# -- report -----------------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def _megabytes(kilobytes: float) -> str:
    return f"{kilobytes / 1024:,.0f} MB"


def main() -> None:
    """Run ours and the peers side by side, print the table and write the ``drift`` section."""
    args = parse_args(__doc__, {
        "rows": Size(1_000_000, 100_000, "current rows (the reference and each window are a tenth of it)"),
        "repeat": Size(5, 1, "timed runs of ours (best is reported)"),
        "peer_repeat": Size(3, 1, "timed runs of NannyML"),
        "evidently_repeat": Size(1, 1, "timed runs of Evidently (tens of s each at full size)"),
    }, peers=True)
    n_current = args.rows
    n_reference = window_rows = n_current // 10
    drift_from = n_current // 2

    runs: dict[str, dict | str] = {}
    versions: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="vantage-drift-bench-") as tmp:
        data = Path(tmp)
        kinds = write_data(data, n_reference=n_reference, n_current=n_current, drift_from=drift_from)
        ours_env = {"PYTHONPATH": str(ROOT)}
        runs["ours"] = run_tool(sys.executable, OURS, data, args.repeat, kinds, str(window_rows), env=ours_env)
        runs["ours_one"] = run_tool(sys.executable, OURS, data, args.repeat, kinds, str(n_current), env=ours_env)
        for mode in ("fresh", "off"):  # the cost of the noise levels: simulated afresh, and not used at all
            runs[f"ours_{mode}"] = run_tool(sys.executable, OURS, data, args.repeat, kinds, str(window_rows), mode,
                                            env=ours_env)
        if args.peers:
            for name, code, repeat, extra, env in (
                ("nannyml", NANNYML, args.peer_repeat, [str(window_rows)], {"NML_DISABLE_USAGE_LOGGING": "1"}),
                ("evidently", EVIDENTLY, args.evidently_repeat, [], {"DO_NOT_TRACK": "1"}),
            ):
                try:
                    versions[name] = peer_version(name)
                    runs[name] = run_tool(peer_python(name), code, data, repeat, kinds, *extra, env=env)
                except Exception as exc:  # a peer that cannot be installed or run is reported, not faked
                    runs[name] = f"not run: {type(exc).__name__}: {exc}"

    ours = runs["ours"]
    best = {name: min(run["times_s"]) for name, run in runs.items() if isinstance(run, dict)}
    labels = {
        "ours": ("Vantage `compute_drift`", f"10 windows of {window_rows:,} rows", args.repeat),
        "ours_one": ("Vantage `compute_drift`", f"1 window of {n_current:,} rows", args.repeat),
        "ours_fresh": ("Vantage, noise levels simulated afresh (first view)", f"10 windows of {window_rows:,} rows",
                       args.repeat),
        "ours_off": ("Vantage, without noise levels (`noise=False`)", f"10 windows of {window_rows:,} rows",
                     args.repeat),
        "nannyml": (f"{versions.get('nannyml', 'NannyML')} `UnivariateDriftCalculator`",
                    f"chunk_size={window_rows:_} (10 chunks)", args.peer_repeat),
        "evidently": (f"{versions.get('evidently', 'Evidently')} `DataDriftPreset`", f"1 window of {n_current:,} rows",
                      args.evidently_repeat),
    }
    same_windows = {"ours": "ours", "ours_one": "ours_one", "ours_fresh": "ours", "ours_off": "ours", "nannyml": "ours",
                    "evidently": "ours_one"}
    rows = []
    for name, (tool, setting, repeat) in labels.items():
        run = runs.get(name)
        if run is None:
            continue
        if isinstance(run, str):
            rows.append((tool, setting, run, "", "", "", "", "", ""))
            continue
        peer = name not in ("ours", "ours_one")  # the noise rows are compared with ours too
        rows.append((tool, setting, f"{_seconds(best[name])} (best of {repeat})",
                     f"{best[name] / best['ours']:.1f}×" if peer else "",
                     f"{best[name] / best[same_windows[name]]:.1f}×" if peer else "",
                     _megabytes(run["peak_kb"]), _megabytes(run["peak_kb"] - run["peak_after_load_kb"]),
                     _seconds(run["import_s"]), _seconds(run["load_s"])))
    header = ("tool", "windows", "computation, reference statistics included", "÷ ours (10 windows)",
              "÷ ours (same windows)", "peak memory", "added by the computation", "import", "read Parquet")
    print_table(rows, header)
    checks = {name: run["check"] for name, run in runs.items() if isinstance(run, dict)}
    print(json.dumps(checks, indent=1))

    verdicts = [f"ours: {_seconds(best['ours'])} (target < 0.5 s): {'met' if best['ours'] < 0.5 else 'MISSED'}"]
    for name, target in (("nannyml", 5), ("evidently", 50)):
        if name in best:
            ratio = best[name] / best["ours"]
            verdicts.append(f"{name}: {ratio:.1f}× (target ≥ {target}×): {'met' if ratio >= target else 'MISSED'}")
    peaks = {name: run["peak_kb"] for name, run in runs.items()
             if isinstance(run, dict) and name in ("ours", "nannyml", "evidently")}
    if len(peaks) > 1:
        lowest = min(peaks, key=peaks.get)
        verdicts.append(f"lowest peak memory: {lowest} ({'met' if lowest == 'ours' else 'MISSED'})")
    for line in verdicts:
        print(line)
    found = ", ".join(ours["check"]["drifted"]) or "none"
    write_section("drift", "Drift: every feature and window in one call, against NannyML and Evidently", "\n".join([
        f"Reference {n_reference:,} rows, current {n_current:,} rows; 16 numeric and 4 categorical columns "
        f"(seeded synthetic data; from row {drift_from:,} on {', '.join(DRIFTED[:3])} shift and the mix of "
        f"{DRIFTED[3]} changes), written once to Parquet. Each tool runs in its own process (each peer from its "
        "own venv with the versions pinned in `benchmarks/peers/`), imports its library and reads the files, "
        "then only the computation is timed, reference statistics included. Methods: Wasserstein (numeric) and "
        "Jensen–Shannon (categorical) for all three. Peak memory is the process's `ru_maxrss`; 'added by the "
        "computation' subtracts the peak after import and reading. Our first row memoises the noise levels "
        "(a distance counts as drift only above the noise of its window's size) after the first of its runs, as "
        "a running dashboard does; 'simulated afresh' pays them in every run, as a fresh process's first view "
        "does; 'without noise levels' is the engine before they existed.", "",
        markdown_table(rows, header), "",
        "Verdict: " + "; ".join(verdicts) + ".", "",
        f"Vantage flagged {found} (in windows {', '.join(map(str, ours['check']['windows']))}); "
        f"the scripted drift is in {', '.join(DRIFTED)} from window 5. The peers are timed, not judged: "
        "NannyML's default alert thresholds (from the spread of the reference's chunks) and Evidently's "
        "whole-period verdict answer other questions. Timings vary with the machine's load; the ratios are "
        "from one run with all three side by side.",
    ]), args=args, peers=list(versions.values()))


if __name__ == "__main__":
    main()
