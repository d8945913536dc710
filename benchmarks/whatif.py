"""Benchmarks of what-if analysis against the demo service (v2 protocol, the service as a black box).

Usage::

    python benchmarks/whatif.py [--quick] [--repeat 20]

1. Re-prediction after an edit: :func:`explain.whatif.compare` of a reference row and an edited
   copy (validated against the reference ranges, one request). Target: ≤ 300 ms.
2. Sensitivity of one point for all 12 features (ICE over each feature's reference range, 20
   grid points per numeric feature) in one request. Target: ≤ 2 s, one request.
3. Three counterfactuals of a demo prediction (every feature allowed, re-checked against the
   service). Target: ≤ 5 s.

Medians over ``--repeat`` runs (distinct rows), each with its HTTP request count; ``--quick``
runs 3 (seconds; ``.ci/run`` runs it so). No peers. Prints a table and writes the ``whatif``
section of ``benchmarks/results.md``; a quick run writes it to the git-ignored
``var/bench/results-quick.md`` instead (see :mod:`benchmarks`).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import Size, markdown_table, parse_args, print_table, write_section  # noqa: E402


def _verdict(seconds: float, target: float) -> str:
    return "met" if seconds <= target else "MISSED"


def main() -> None:
    """Run the three measurements against the demo service, print the table and write the section."""
    args = parse_args(__doc__, {"repeat": Size(20, 3, "distinct rows measured")})

    import pandas as pd

    from demo.model import load_reference
    from demo.runtime import start_demo
    from explain import RemoteModel
    from explain.ranges import feature_ranges
    from explain.whatif import compare, counterfactuals, sensitivity

    workdir = Path(tempfile.mkdtemp(prefix="vantage-bench-whatif-"))
    runtime = start_demo(workdir, faults=False, replay=False)
    try:
        features = list(runtime.model.features)
        X = load_reference(runtime.model)[features]
        kinds = {f: ("numeric" if pd.api.types.is_numeric_dtype(X[f]) else "categorical") for f in features}
        model = RemoteModel(runtime.config.service("credit-risk"), features=features, feature_kinds=kinds,
                            X_sample=X.head(5))
        ranges = feature_ranges(X, features=features, feature_kinds=kinds)
        points = X.dropna().sample(args.repeat, random_state=0)
        edits, sens, cfs = [], [], []
        for i in range(args.repeat):
            row = points.iloc[[i]]
            edit = {"credit_utilization": float(ranges.high["credit_utilization"]) * 0.9, "channel": "partner"}
            result = compare(model, row, edit, ranges=ranges)
            edits.append((result.seconds, result.requests))
            result = sensitivity(model, row, ranges)
            sens.append((result.seconds, result.requests, result.model_rows))
            if i < max(3, args.repeat // 4):
                found = counterfactuals(model, row, X, ranges=ranges, n_counterfactuals=3, random_state=i)
                cfs.append((found.seconds, found.requests, len(found.counterfactuals), found.candidates))
    finally:
        runtime.stop()

    def median(values, k=0):
        return statistics.median(v[k] for v in values)

    edit_s, sens_s, cf_s = median(edits), median(sens), median(cfs)
    rows = [
        ("re-prediction after an edit (validate + 2 rows)", f"{edit_s * 1000:.0f} ms", f"{max(r for _, r in edits)}",
         "≤ 300 ms", _verdict(edit_s, 0.3)),
        (f"sensitivity, all {len(features)} features ({int(median(sens, 2))} rows)", f"{sens_s:.2f} s",
         f"{max(r for _, r, _ in sens)}", "≤ 2 s, 1 request", _verdict(sens_s, 2.0)),
        (f"three counterfactuals (~{int(median(cfs, 3)):,} candidates; found {min(c[2] for c in cfs)}-"
         f"{max(c[2] for c in cfs)})", f"{cf_s:.2f} s", f"{max(c[1] for c in cfs)}", "≤ 5 s", _verdict(cf_s, 5.0)),
    ]
    header = ("measurement", "median", "requests", "target", "verdict")
    print_table(rows, header)
    body = (f"Against the demo service over HTTP (v2 protocol; the service as a black box; medians over "
            f"{args.repeat} distinct reference rows; counterfactuals over {len(cfs)} rows).\n\n"
            + markdown_table(rows, header))
    write_section("whatif", "What-if", body, args=args)


if __name__ == "__main__":
    main()
