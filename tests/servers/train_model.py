"""Train the small model the real-server tests serve, inside a server's own virtual environment.

Run with the server venv's interpreter so the pickled scikit-learn objects match the library
that will load them::

    python train_model.py --flavor mlflow --out DIR
    python train_model.py --flavor mlserver --out DIR

It writes, into DIR:

- the model: an MLflow model directory ``DIR/model`` (flavor ``mlflow``) or ``DIR/model.joblib``
  (flavor ``mlserver``);
- ``expected.json``: the sample rows (columns, dtypes, data) and the predictions, class
  probabilities and classes the model gives them here, plus the versions of the libraries.

The data are synthetic with a known structure: a categorical ``region`` column and numeric
``age``, ``income`` and ``tenure`` columns; the target is a noisy logistic function of them.
This file imports only what the server venvs have; it is not imported by the test suite.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

CATEGORICAL = ["region"]
NUMERIC = ["age", "income", "tenure"]
REGIONS = ["north", "south", "east", "west"]
N_TRAIN = 400
N_SAMPLE = 20


def make_data(n_rows: int, *, random_state: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Return synthetic features and a binary target.

    Parameters
    ----------
    n_rows : int
        Number of rows.
    random_state : int
        Seed of the generator.

    Returns
    -------
    X : DataFrame of shape (n_rows, 4)
        ``region`` (object), ``age`` and ``income`` (float), ``tenure`` (int).
    y : ndarray of shape (n_rows,)
        0 or 1, drawn from a logistic function of the features.
    """
    rng = np.random.default_rng(random_state)
    X = pd.DataFrame(
        {
            "region": pd.Series(rng.choice(REGIONS, size=n_rows), dtype=object),
            "age": rng.uniform(18, 80, size=n_rows).round(1),
            "income": rng.lognormal(10.5, 0.5, size=n_rows).round(2),
            "tenure": rng.integers(0, 30, size=n_rows).astype("int64"),
        }
    )
    region_effect = X["region"].map({"north": -1.0, "south": 0.5, "east": 1.0, "west": 0.0})
    logit = (
        region_effect
        + 0.04 * (X["age"] - 45)
        - 0.8 * (np.log(X["income"]) - 10.5)
        - 0.05 * (X["tenure"] - 15)
    )
    y = (rng.uniform(size=n_rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return X, y


def make_pipeline() -> Pipeline:
    """Return an unfitted Pipeline: one-hot ``region``, scale the numeric columns, logistic regression.

    Returns
    -------
    Pipeline
    """
    transform = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("numeric", StandardScaler(), NUMERIC),
        ]
    )
    return Pipeline([("transform", transform), ("classifier", LogisticRegression(max_iter=1000))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavor", choices=["mlflow", "mlserver"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    X, y = make_data(N_TRAIN, random_state=0)
    model = make_pipeline().fit(X, y)
    sample, _ = make_data(N_SAMPLE, random_state=1)
    predictions = model.predict(sample)
    probabilities = model.predict_proba(sample)

    versions = {"python-scikit-learn": sklearn.__version__, "pandas": pd.__version__, "numpy": np.__version__}
    if args.flavor == "mlflow":
        import mlflow
        import mlflow.sklearn
        from mlflow.models import infer_signature

        mlflow.sklearn.save_model(
            model, str(args.out / "model"), signature=infer_signature(sample, predictions),
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        )
        versions["server"] = mlflow.__version__
    else:
        import joblib
        import mlserver

        joblib.dump(model, args.out / "model.joblib")
        versions["server"] = mlserver.__version__

    expected = {
        "columns": list(sample.columns),
        "dtypes": {column: str(dtype) for column, dtype in sample.dtypes.items()},
        "data": sample.to_numpy(dtype=object).tolist(),
        "predictions": predictions.tolist(),
        "probabilities": probabilities.tolist(),
        "classes": model.classes_.tolist(),
        "versions": versions,
    }
    (args.out / "expected.json").write_text(json.dumps(expected, indent=1))


if __name__ == "__main__":
    main()
