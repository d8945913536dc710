"""Train the models of the real-server tests that have the shapes teams serve, on scikit-learn's bundled data.

Run with the server venv's interpreter so the pickles match the scikit-learn that loads them::

    python train_public_models.py --shape wine --out DIR            # for KServe's ModelServer
    python train_public_models.py --shape breast_cancer --out DIR   # for MLServer

Shapes (the data ship inside scikit-learn; nothing is downloaded):

- ``wine``: a RandomForestClassifier on the 13 numeric features of the wine data, 3 classes
  (0, 1, 2), served with ``predict_proba``;
- ``breast_cancer``: a GradientBoostingClassifier on the 30 numeric features of the breast cancer
  data, 2 classes, served with ``predict_proba``.

It writes, into DIR: ``model.joblib``; ``reference.csv`` (the training rows, the features and the
target column ``target``: the reference a Vantage config names); ``expected.json`` (20 sample rows,
the predictions and probabilities the model gives them here, the classes and the versions).
This file imports only what the server venvs have; it is not imported by the test suite.
"""

from __future__ import annotations

import argparse
import json
import re
from importlib.metadata import version
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

SHAPES = {"wine": load_wine, "breast_cancer": load_breast_cancer}
N_SAMPLE = 20


def column_name(name: str) -> str:
    """A feature name as a column name: lower case, words joined by ``_`` (``"mean radius"`` -> ``mean_radius``)."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), required=True)
    parser.add_argument("--server", required=True, help="the server's distribution (kserve, mlserver)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    data = SHAPES[args.shape]()
    X = pd.DataFrame(data.data, columns=[column_name(n) for n in data.feature_names]).astype("float64")
    y = pd.Series(data.target, name="target").astype("int64")
    if args.shape == "wine":
        model = RandomForestClassifier(n_estimators=50, random_state=0)
    else:
        model = GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=0)
    model.fit(X, y)
    sample = X.sample(N_SAMPLE, random_state=1).reset_index(drop=True)
    joblib.dump(model, args.out / "model.joblib")
    pd.concat([X, y], axis=1).to_csv(args.out / "reference.csv", index=False)
    expected = {
        "columns": list(sample.columns),
        "dtypes": {column: str(dtype) for column, dtype in sample.dtypes.items()},
        "data": sample.to_numpy(dtype=object).tolist(),
        "predictions": model.predict(sample).tolist(),
        "probabilities": np.asarray(model.predict_proba(sample)).tolist(),
        "classes": model.classes_.tolist(),
        "versions": {"python-scikit-learn": sklearn.__version__, "pandas": pd.__version__, "numpy": np.__version__,
                     "server": version(args.server)},
    }
    (args.out / "expected.json").write_text(json.dumps(expected, indent=1))


if __name__ == "__main__":
    main()
