"""KServe's Python ModelServer serving a scikit-learn model the way KServe's sklearn runtime does.

Run with the kserve venv's interpreter (``tests/servers.py`` does)::

    python kserve_model.py --model_name wine --model_dir DIR --http_port 8080 --enable_grpc false

It is the ``SKLearnModel`` of KServe's own sklearn server (``kserve/python/sklearnserver``, which
is not published as a package) with ``PREDICT_PROBA=true``: the v2 request is decoded with
``kserve.utils.utils.get_predict_input`` (a DataFrame when the request says ``content_type: pd``),
the answer is ``predict_proba`` as one 2-D output ``output-0`` built by ``get_predict_response``,
and the metadata lists no inputs or outputs, as KServe's does. This file is not imported by the
test suite.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import joblib
from kserve import Model, ModelServer, model_server
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnModel(Model):
    """A joblib-saved scikit-learn classifier answering with its class probabilities."""

    def __init__(self, name: str, model_dir: Path):
        super().__init__(name)
        self.model_dir = model_dir
        self._model = None
        self.ready = False

    def load(self) -> bool:
        self._model = joblib.load(self.model_dir / "model.joblib")
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None, response_headers=None):
        instances = get_predict_input(payload)
        return get_predict_response(payload, self._model.predict_proba(instances), self.name)


def main() -> None:
    # KServe's own parser has --model_name and --http_port (and the other ModelServer options)
    parser = argparse.ArgumentParser(parents=[model_server.parser], description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", type=Path, required=True)
    args, _ = parser.parse_known_args()
    model = SKLearnModel(args.model_name, args.model_dir)
    model.load()
    ModelServer(http_port=args.http_port, enable_grpc=False, workers=1).start([model])


if __name__ == "__main__":
    main()
