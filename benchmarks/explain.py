"""Benchmarks of the explanations, each next to the bare library call in the same run.

Usage::

    python benchmarks/explain.py [--quick] [--repeat 30] [--skip-page] [--skip-peers | --with-peers]

1. Local SHAP of the demo model (a Pipeline: imputer + one-hot + gradient boosting) for one
   row and for 1,000 rows through :class:`explain.ShapExplainer` (raw features in, values per
   raw feature out), next to bare ``shap.TreeExplainer.shap_values`` on the already
   transformed matrix. Targets: ≤ 10 ms and ≤ 0.3 s.
2. One black-box explanation of one row through the demo service (v2 protocol), warm, next
   to ``shap.PermutationExplainer`` calling the same service through the same client (one
   request per model call). Targets: ≤ 1 s, ≤ 5 HTTP requests.
3. Remote one-feature partial dependence, 20 grid points over 500 rows, next to
   scikit-learn's brute method locally (50 points over 2,000 rows). Target: ≤ 0.5 s, one request.
4. The Explain page's time to its first chart in headless Chromium, from the click on its link
   in the sidebar navigation: the browser first opens the Service health page by its URL path
   (``/health``, which starts the runtime and loads the chart library), then clicks "Explain"
   (fresh server caches; the demo model as a local skops artifact, checked against the
   service; 1,000 rows explained), then the same again warm; next to explainerdashboard's
   start-up (import + ``ClassifierExplainer`` + ``ExplainerDashboard``, which precomputes) on
   the same model and 2,000 rows, in its own venv (``benchmarks.peer_python``) and in the same
   run. Target: ≥ 5× shorter.

``--quick`` times each call 3 times and skips explainerdashboard (about half a minute, the
browser measurement included; ``.ci/run`` runs it so). Prints a table and writes the
``explain`` section of ``benchmarks/results.md``; a quick run or one without the peer writes
it to the git-ignored ``var/bench/results-quick.md`` instead (see :mod:`benchmarks`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks import (  # noqa: E402
    Size,
    chromium,
    dashboard,
    markdown_table,
    parse_args,
    peer_python,
    peer_version,
    print_table,
    write_section,
)

HEALTH_PATH, EXPLAIN_PATH = "health", "explain"  # url paths Streamlit gives views/health.py and views/explain.py

PEER_SCRIPT = """
import sys, time
started = time.perf_counter()
import joblib, pandas as pd
from explainerdashboard import ClassifierExplainer, ExplainerDashboard
imported = time.perf_counter()
model = joblib.load(sys.argv[1])
data = pd.read_csv(sys.argv[2])
y = data.pop("default")
loaded = time.perf_counter()
kwargs = {} if sys.argv[3] == "default" else {"model_output": "logodds"}
explainer = ClassifierExplainer(model, data, y, **kwargs)
ExplainerDashboard(explainer)
done = time.perf_counter()
print("RESULT", imported - started, loaded - imported, done - loaded)
"""


def timed(function, repeat: int) -> float:
    """Median wall time of ``function()`` after one untimed call.

    Parameters
    ----------
    function : callable
        Called without arguments.
    repeat : int
        Calls timed.

    Returns
    -------
    float
        Seconds.
    """
    function()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def ms(seconds: float) -> str:
    """Seconds as ``"12.3 ms"`` below a second, else ``"1.23 s"``.

    Parameters
    ----------
    seconds : float
        A duration.

    Returns
    -------
    str
        The text.
    """
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def verdict(value: float, target: float) -> str:
    """``"met"`` when ``value`` is at most ``target``, else ``"MISSED"``.

    Parameters
    ----------
    value, target : float
        The measurement and its target, same unit.

    Returns
    -------
    str
        The verdict.
    """
    return "met" if value <= target else "MISSED"


def local_shap(model, X, repeat: int) -> list[tuple]:
    """Local SHAP of 1 and 1,000 rows through :class:`explain.ShapExplainer` and bare TreeExplainer.

    Parameters
    ----------
    model : demo.model.DemoModel
        The demo model.
    X : pandas.DataFrame
        The reference's feature columns.
    repeat : int
        Timed calls for one row (a fifth of it, at least 3, for 1,000 rows).

    Returns
    -------
    list of tuple
        Table rows.
    """
    import shap

    from explain import LocalModel, ShapExplainer

    local = LocalModel(model.pipeline, features=list(model.features))
    explainer = ShapExplainer(local, X)
    bare = shap.TreeExplainer(local.final_estimator)
    rows = []
    for n, target in ((1, 0.010), (1000, 0.300)):
        batch = X.iloc[:n]
        transformed = local.transform(batch)
        ours = timed(lambda b=batch: explainer.explain(b), repeat if n == 1 else max(3, repeat // 5))
        library = timed(lambda t=transformed: bare.shap_values(t), repeat if n == 1 else max(3, repeat // 5))
        rows.append((f"local SHAP, {n:,} row(s), demo Pipeline", ms(ours), f"≤ {ms(target)}",
                     f"bare TreeExplainer on transformed rows: {ms(library)}", verdict(ours, target)))
    return rows


def black_box(runtime, X, repeat: int) -> tuple[list[tuple], dict]:
    """Black-box SHAP of one row through the demo service, and shap's PermutationExplainer on it.

    Parameters
    ----------
    runtime : demo.runtime.DemoRuntime
        The running demo service.
    X : pandas.DataFrame
        The reference's feature columns.
    repeat : int
        A fifth of it (at least 3) rows are explained.

    Returns
    -------
    tuple of (list of tuple, dict)
        Table rows, and the largest difference from TreeExplainer's values (log-odds).
    """
    import shap

    from explain import LocalModel, ShapExplainer, open_model_source

    service = runtime.config.service("credit-risk")
    remote = open_model_source(service, X).model
    explainer = ShapExplainer(remote, X, background_rows=100)
    explainer.warm_up()
    times, requests, model_rows = [], [], []
    for i in range(max(3, repeat // 5)):
        before = remote.requests
        started = time.perf_counter()
        values = explainer.explain(X.iloc[[100 + i]])
        times.append(time.perf_counter() - started)
        requests.append(remote.requests - before)
        model_rows.append(values.model_rows)
    ours = statistics.median(times)

    # The bare library: shap's PermutationExplainer with the same client as the model function.
    client = remote.client
    columns = list(remote.features)
    kinds = remote.feature_kinds
    categories = {c: sorted(X[c].astype(str).unique()) for c, k in kinds.items() if k == "categorical"}

    def encode(frame):
        out = frame.copy()
        for column, levels in categories.items():
            out[column] = [levels.index(str(v)) for v in frame[column]]
        return out.astype(float).to_numpy()

    calls = [0]

    def f(array):
        frame = pd.DataFrame(array, columns=columns)
        for column, levels in categories.items():
            frame[column] = [levels[int(v)] for v in frame[column]]
        calls[0] += 1
        return client.predict(frame).probabilities[:, 1]

    background = encode(explainer.background)
    masker = shap.maskers.Independent(background, max_samples=len(background))
    bare = shap.PermutationExplainer(f, masker, seed=0)
    bare(encode(X.iloc[[99]]), silent=True)  # warm: numba compiles on the first call
    calls[0] = 0
    started = time.perf_counter()
    bare(encode(X.iloc[[100]]), silent=True)
    bare_time = time.perf_counter() - started
    bare_requests = calls[0]

    # agreement with the local TreeExplainer over the same background (log-odds), for the record
    local = LocalModel(runtime.model.pipeline, features=columns)
    log_odds = ShapExplainer(remote, X, space="log_odds", background_rows=100)
    tree = shap.TreeExplainer(local.final_estimator, data=local.transform(log_odds.background),
                              feature_perturbation="interventional", model_output="raw")
    rows = X.iloc[100:105]
    expected = tree.shap_values(local.transform(rows)) @ local.column_map.matrix(len(columns))
    difference = float(np.abs(log_odds.explain(rows).values[:, :, 0] - expected).max())
    row = ("black-box SHAP of 1 row via the demo service (warm)",
           f"{ms(ours)}, {max(requests)} request(s), {int(np.median(model_rows)):,} model rows",
           "≤ 1 s, ≤ 5 requests",
           f"shap.PermutationExplainer, same client: {ms(bare_time)}, {bare_requests} requests",
           verdict(ours, 1.0) if max(requests) <= 5 else "MISSED")
    return [row], {"max_abs_difference_vs_tree_log_odds": difference}


def remote_pd(runtime, X, repeat: int) -> list[tuple]:
    """Remote one-feature partial dependence in one request, and scikit-learn's brute method locally.

    Parameters
    ----------
    runtime : demo.runtime.DemoRuntime
        The running demo service.
    X : pandas.DataFrame
        The reference's feature columns.
    repeat : int
        A fifth of it (at least 3) calls are timed.

    Returns
    -------
    list of tuple
        Table rows.
    """
    from sklearn.inspection import partial_dependence as sklearn_partial_dependence

    from explain import open_model_source, partial_dependence

    remote = open_model_source(runtime.config.service("credit-risk"), X).model
    rows = X.iloc[:500]
    requests = []

    def ours():
        before = remote.requests
        partial_dependence(remote, rows, "credit_utilization", grid_resolution=20)
        requests.append(remote.requests - before)

    ours_time = timed(ours, max(3, repeat // 5))
    big = X.iloc[:2000]
    library = timed(lambda: sklearn_partial_dependence(runtime.model.pipeline, big, ["credit_utilization"],
                                                       grid_resolution=50, method="brute", kind="average"), 3)
    return [("remote PD, 20 points × 500 rows (one batched request)", f"{ms(ours_time)}, {max(requests)} request(s)",
             "≤ 0.5 s, 1 request", f"sklearn brute locally, 50 points × 2,000 rows: {ms(library)}",
             verdict(ours_time, 0.5) if max(requests) == 1 else "MISSED")]


def page_first_chart(runtime, workdir: Path) -> tuple[float, float]:
    """Seconds from the click on the Explain link to the page's first chart: fresh caches, then warm.

    Parameters
    ----------
    runtime : demo.runtime.DemoRuntime
        The running demo service the dashboard watches.
    workdir : Path
        Where the configuration, the dashboard's store and its log go.

    Returns
    -------
    tuple of (float, float)
        Fresh-cache and warm seconds.
    """
    from playwright.sync_api import expect

    model = runtime.model
    features = ", ".join(f'"{f}"' for f in model.features)
    config = workdir / "vantage.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{workdir / 'page.db'}"

[[services]]
name = "credit-risk"
url = "{runtime.url}"
protocol = "v2"
model = "credit-risk"
poll_interval = 5
reference = "{model.reference_path}"
target = "default"
features = [{features}]

[services.explain]
artifact = "{model.skops_path}"
""")
    with dashboard(config, workdir / "streamlit.log") as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # Open the Service health page by its own URL (whatever the landing page is): it starts the
        # runtime and loads the browser's chart library; the Explain page's server caches stay empty.
        page.goto(f"{url}/{HEALTH_PATH}", wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Service health")).to_be_visible(timeout=90_000)
        expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=90_000)
        navigation = page.get_by_test_id("stSidebarNav")
        results = []
        for _ in range(2):  # fresh caches, then warm
            started = time.perf_counter()
            navigation.get_by_role("link", name="Explain").click()
            expect(page.locator(".js-plotly-plot", has_text="Feature importance").first).to_be_visible(
                timeout=120_000)
            results.append(time.perf_counter() - started)
            if page.url.split("?")[0].rstrip("/") != f"{url}/{EXPLAIN_PATH}":
                raise RuntimeError(f"the Explain link led to {page.url}")
            if page.locator('[data-testid="stException"]').count():
                raise RuntimeError("the Explain page shows an exception")
            navigation.get_by_role("link", name="Services").click()
            expect(page.get_by_role("heading", name="Services")).to_be_visible(timeout=60_000)
    return results[0], results[1]


def peer_startup(runtime, workdir: Path, output: str) -> tuple[float, float, float]:
    """explainerdashboard's start-up on the demo model and 2,000 reference rows, in its own venv.

    Parameters
    ----------
    runtime : demo.runtime.DemoRuntime
        The demo (its model file and reference).
    workdir : Path
        Where the data and the script go.
    output : str
        ``"logodds"`` (its ``model_output="logodds"``, as our page's default) or ``"default"``.

    Returns
    -------
    tuple of (float, float, float)
        Seconds to import, to load the model and data, and to build the explainer and dashboard.
    """
    python = peer_python("explainerdashboard")
    data = pd.read_parquet(runtime.model.reference_path).iloc[:2000]
    csv = workdir / "reference-2000.csv"
    data.to_csv(csv, index=False)
    script = workdir / "peer.py"
    script.write_text(PEER_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(python), "-W", "ignore", str(script),
                           str(runtime.model.artifact_path), str(csv), output],
                          capture_output=True, text=True, timeout=1800, env=env, cwd=workdir)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT")), None)
    if line is None:
        raise RuntimeError(f"explainerdashboard failed: {done.stderr[-2000:]}")
    imported, loaded, precomputed = map(float, line.split()[1:])
    return imported, loaded, precomputed


def main() -> None:
    """Run the four measurements, print the table and write the ``explain`` section."""
    args = parse_args(__doc__, {"repeat": Size(30, 3, "timed calls of the one-row measurements")}, peers=True,
                      extra=lambda parser: parser.add_argument("--skip-page", action="store_true",
                                                               help="skip the browser measurement"))

    from demo.model import load_reference
    from demo.runtime import start_demo

    workdir = Path(tempfile.mkdtemp(prefix="vantage-bench-explain-"))
    runtime = start_demo(workdir, faults=False, replay=False)
    X = load_reference(runtime.model)[list(runtime.model.features)]
    rows: list[tuple] = []
    notes: dict = {}
    versions: list[str] = []
    try:
        rows += local_shap(runtime.model, X, args.repeat)
        black, extra = black_box(runtime, X, args.repeat)
        rows += black
        notes.update(extra)
        rows += remote_pd(runtime, X, args.repeat)
        page = peer = None
        if not args.skip_page:
            page = page_first_chart(runtime, workdir)
        if args.peers:
            versions.append(peer_version("explainerdashboard"))
            peer = {kind: peer_startup(runtime, workdir, kind) for kind in ("logodds", "default")}
        if page is not None:
            comparison, check = "", "–"
            if peer is not None:
                like = sum(peer["logodds"])
                default = sum(peer["default"])
                comparison = (f"{versions[0]} start-up, log-odds: {like:.1f} s (import {peer['logodds'][0]:.1f} s"
                              f" + precompute {peer['logodds'][2]:.1f} s); default (probability): {default:.1f} s")
                check = "met" if page[0] * 5 <= like else "MISSED"
                notes["peer_speedup_logodds"] = round(like / page[0], 1)
                notes["peer_speedup_default"] = round(default / page[0], 1)
            rows.append(("Explain page: Explain link → first chart (1,000 rows, fresh caches)",
                         f"{page[0]:.2f} s (warm: {page[1]:.2f} s)", "≥ 5× shorter than the peer", comparison, check))
    finally:
        runtime.stop()
    header = ("measurement", "Vantage", "target", "bare library / peer, same run", "verdict")
    print_table(rows, header)
    print(json.dumps(notes))
    body = ("Medians; the demo model: imputer + one-hot + 120 depth-3 trees, 12 raw features. The page is opened "
            "by its sidebar link in headless Chromium, coming from the Service health page opened by its URL "
            "path.\n\n" + markdown_table(rows, header)
            + f"\n\nBlack-box values (10 permutations, forward and back) against TreeExplainer's interventional "
              f"values over the same 100 background rows, log-odds: largest difference "
              f"{notes.get('max_abs_difference_vs_tree_log_odds', float('nan')):.3f}.")
    if "peer_speedup_logodds" in notes:
        body += (f" The page's first chart came {notes['peer_speedup_logodds']}× sooner than explainerdashboard's "
                 f"start-up in log-odds and {notes['peer_speedup_default']}× sooner than with its defaults, "
                 "measured one after the other in this run.")
    write_section("explain", "Explanations", body, args=args, peers=versions)


if __name__ == "__main__":
    main()
