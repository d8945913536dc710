"""Benchmarks of black-box explanations: memory of the streamed masked rows, and the watched server's health.

Usage::

    python benchmarks/explain_budget.py [--quick] [--rows 10] [--background 100] [--permutations 10]

1. **Peak memory** of permutation Shapley values of a 30-feature model: the code before the
   traffic budget (``explain/_permutation.py`` at the commit before it, read with ``git show``:
   every masked row's codes built first, then all outputs at once) against the streamed one
   (one explained row's masked rows at a time, answers reduced as they arrive), both on the same
   rows with the same in-process model, measured with ``tracemalloc``.
2. **The watched server** while a remote explanation runs: a real MLServer (its venv from
   ``tests/servers.py``) serving the 30-feature breast-cancer GradientBoosting model; a remote
   permutation explanation runs in a thread while this one polls ``/v2/health/ready`` and sends
   a one-row canary every 0.2 s. Once with the default budget (2,000 model rows/s in requests of
   500 rows) and once without one (as before: requests of 50,000 rows, no pacing).

Prints a table and writes the ``explain-budget`` section of ``benchmarks/results.md``; with
``--quick`` (small sizes, seconds) the section goes to the git-ignored
``var/bench/results-quick.md`` instead (see :mod:`benchmarks`). No peers.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import Size, markdown_table, parse_args, print_table, write_section  # noqa: E402
from explain import ShapExplainer, open_model_source  # noqa: E402
from explain._permutation import permutation_shap  # noqa: E402
from monitoring.clients import make_client  # noqa: E402
from monitoring.config import ExplainConfig, ServiceConfig  # noqa: E402

BEFORE_BUDGET = "868e352^"
"""The commit before the traffic budget: its ``explain/_permutation.py`` materialised every masked row."""


def old_permutation_module(folder: Path):
    """``explain/_permutation.py`` as it was before the budget, imported from ``git show`` (None without git)."""
    try:
        source = subprocess.run(["git", "show", f"{BEFORE_BUDGET}:explain/_permutation.py"], cwd=ROOT,
                                capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    path = folder / "old_permutation.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_permutation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model(frame: pd.DataFrame) -> np.ndarray:
    values = frame.to_numpy(dtype=float)
    return (1 / (1 + np.exp(-(values[:, :5].sum(axis=1) + values[:, 0] * values[:, 1])))).reshape(-1, 1)


def peak_memory(function) -> tuple[float, float]:
    """Peak traced memory (MB) and seconds of ``function()``."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        function()
        return tracemalloc.get_traced_memory()[1] / 1e6, time.perf_counter() - started
    finally:
        tracemalloc.stop()


def memory(rows: int, background: int, permutations: int, folder: Path) -> dict:
    """Peak memory of one 30-feature permutation explanation, before and after streaming."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(background + rows, 30)), columns=[f"f{i:02d}" for i in range(30)])
    explained, sample = X.iloc[background:], X.iloc[:background]

    def as_list(frames, progress):  # how the old explainer called the model: every answer kept
        return [_model(frames[k]) for k in range(len(frames))]

    def streamed(frames, progress):
        for k in range(len(frames)):
            yield _model(frames[k])

    result = {}
    old = old_permutation_module(folder)
    if old is not None:
        result["before"] = peak_memory(lambda: old.permutation_shap(
            as_list, explained, sample, n_permutations=permutations, max_rows_per_call=50_000))
    sent = []
    result["after"] = peak_memory(lambda: sent.append(permutation_shap(
        streamed, explained, sample, n_permutations=permutations, max_rows_per_call=50_000)[3]))
    result["model_rows"] = sent[0]
    return result


def _poll(url: str, timeout: float) -> tuple[bool, float]:
    started = time.perf_counter()
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=timeout) as response:
            ok = response.status == 200
    except OSError:
        ok = False
    return ok, time.perf_counter() - started


def watched_server(url: str, model: str, reference: pd.DataFrame, explain: ExplainConfig, *, rows: int,
                   background: int, permutations: int) -> dict:
    """Health and canary latencies of the server while one remote explanation runs under ``explain``."""
    features = [c for c in reference.columns if c != "target"]
    config = ServiceConfig(name=f"bench-{explain.max_rows_per_request}", url=url, protocol="v2", model=model,
                           features=tuple(features), explain=explain)
    remote = open_model_source(config, reference[features]).model
    explainer = ShapExplainer(remote, reference[features], background_rows=background, n_permutations=permutations)
    explainer.warm_up()
    chosen = reference[features].iloc[:rows]
    outcome = {}

    def run():
        started = time.perf_counter()
        outcome["model_rows"] = explainer.explain(chosen).model_rows
        outcome["seconds"] = time.perf_counter() - started

    canary_client = make_client(config)
    canary_row = reference[features].iloc[[7]]
    health, canary = [], []
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 900
    while worker.is_alive() and time.monotonic() < deadline:
        ok, seconds = _poll(f"{url}/v2/health/ready", 30.0)
        health.append(seconds if ok else float("inf"))
        started = time.perf_counter()
        try:
            canary_client.predict(canary_row)
            canary.append(time.perf_counter() - started)
        except Exception:
            canary.append(float("inf"))
        time.sleep(0.2)
    worker.join(30)
    canary_client.close()
    remote.client.close()
    return {"health_ms": np.asarray(health) * 1000, "canary_ms": np.asarray(canary) * 1000, **outcome,
            "requests_of": explain.max_rows_per_request}


def main() -> None:
    """Run both measurements, print the table and write the ``explain-budget`` section."""
    args = parse_args(__doc__, {
        "rows": Size(10, 2, "rows explained (memory); a third of them through the server"),
        "background": Size(100, 20, "background rows"),
        "permutations": Size(10, 3, "permutations per row"),
    })
    from tests.servers import _write_mlserver_repository, ensure_public_model, ensure_venv, free_ports, server_process

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mem = memory(args.rows, args.background, args.permutations, folder)
        venv = ensure_venv("mlserver")
        model_dir = ensure_public_model("mlserver", "breast_cancer")
        reference = pd.read_csv(model_dir / "reference.csv")
        grpc_port, metrics_port = free_ports(2)

        def command(port: int) -> list:
            _write_mlserver_repository(folder, model_dir / "model.joblib", ["breast-cancer"], http_port=port,
                                       grpc_port=grpc_port, metrics_port=metrics_port)
            return [venv / "bin" / "mlserver", "start", folder]

        remote_rows = max(1, args.rows // 3)
        with server_process("MLServer (30 features)", command, health_path="/v2/models/breast-cancer/ready",
                            log_path=folder / "server.log", venv=venv, cwd=folder) as server:
            runs = {
                "default budget (2,000 rows/s, 500 per request)": ExplainConfig(source="remote"),
                "no budget (50,000 rows per request, unpaced)": ExplainConfig(
                    source="remote", max_rows_per_second=1_000_000, max_rows_per_request=50_000,
                    max_rows_per_computation=100_000_000),
            }
            watched = {name: watched_server(server.url, "breast-cancer", reference, explain, rows=remote_rows,
                                            background=args.background, permutations=args.permutations)
                       for name, explain in runs.items()}

    rows = []
    if "before" in mem:
        rows.append(("peak memory, materialised masked rows (before)", f"{mem['before'][0]:.0f} MB",
                     f"{mem['before'][1]:.1f} s"))
    rows.append(("peak memory, streamed masked rows (after)", f"{mem['after'][0]:.0f} MB", f"{mem['after'][1]:.1f} s"))
    for name, run in watched.items():
        health, canary = run["health_ms"], run["canary_ms"]
        rate = run["model_rows"] / run["seconds"]
        rows.append((f"{name}: explanation", f"{run['model_rows']:,} model rows in {run['seconds']:.1f} s",
                     f"{rate:,.0f} rows/s"))
        rows.append((f"{name}: /v2/health/ready ({len(health)} polls)",
                     f"p50 {statistics.median(health):.1f} ms, max {health.max():.0f} ms", "timeout 2,000 ms"))
        rows.append((f"{name}: one-row canary ({len(canary)})",
                     f"p50 {statistics.median(canary):.1f} ms, max {canary.max():.0f} ms", "SLO 500 ms"))
    header = ("measure", "result", "bound / time")
    print_table(rows, header)
    write_section("explain-budget", "Explanation traffic: memory and the watched server", "\n".join([
        f"Memory: permutation Shapley values of {args.rows} rows of a 30-feature model against a background of "
        f"{args.background} rows, {args.permutations} permutations forward and back ({mem['model_rows']:,} model "
        "rows), with an in-process model; peak traced memory (tracemalloc) of the code before the budget "
        f"(`git show {BEFORE_BUDGET}:explain/_permutation.py`) and of the streamed code.", "",
        f"Server: a real MLServer 1.7 (scikit-learn runtime, one process) serving a 30-feature GradientBoosting "
        f"model; {remote_rows} row(s) explained through it, background {args.background}, while this process "
        "polls its readiness and sends a one-row canary every 0.2 s.", "",
        markdown_table(rows, header),
    ]), args=args)


if __name__ == "__main__":
    main()
