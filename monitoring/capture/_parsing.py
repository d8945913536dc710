"""Captured request / response pairs → prediction-log rows, per protocol.

One exchange (the body a client sent and the body the server answered) becomes one row per
predicted record, with the columns :meth:`monitoring.store.Store.log_predictions` takes:
``id, ts, model_version, prediction, score, probabilities`` and one column per feature.

=========  =====================================================================================
protocol   what is read
=========  =====================================================================================
``v2``     Open Inference Protocol: request ``inputs`` as one input per feature column (shape
           ``[n]`` or ``[n, 1]``) or one 2-D tensor ``[n, features]`` in feature order, flat
           (row-major) or nested ``data``; response ``outputs``: a ``[n]`` output is the
           prediction, a ``[n, classes]`` one the class probabilities. The request's ``id`` is
           the prediction id.
``mlflow`` MLflow's scoring server: ``dataframe_split`` (``columns``, ``data``),
           ``dataframe_records``, ``instances`` or ``inputs``; answer ``predictions`` (values,
           lists of probabilities, or records with a prediction and probabilities).
``rest``   a plain JSON service: ``rest.records_key`` (records as objects or lists in feature
           order), answer ``rest.predictions_key`` and ``rest.probabilities_key``.
``v1``     KServe's V1 protocol (``instances`` in, ``predictions`` out), as its payload logger
           posts it; read like ``mlflow``.
=========  =====================================================================================

Anything else is a :class:`CaptureParseError` whose ``reason`` is one of :data:`PARSE_REASONS`,
counted by the caller.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PARSE_REASONS = ("not_json", "unparsed")
"""Why an exchange gave no rows: a body that is not JSON, or JSON of a shape the protocol does not have."""

PROTOCOLS = ("v2", "mlflow", "rest", "v1")

MAX_ID_LENGTH = 64
"""Longest prediction id the store keeps (the column is ``String(64)``)."""

PROBABILITY_OUTPUTS = ("predict_proba", "probabilities", "probability", "proba", "scores")
PREDICTION_OUTPUTS = ("predict", "prediction", "predictions", "label", "labels", "output-0", "output_0")


class CaptureParseError(ValueError):
    """An exchange that cannot become prediction-log rows.

    Parameters
    ----------
    reason : {"not_json", "unparsed"}
        The counter it goes to.
    message : str
        What was wrong, naming the field and what is accepted.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ParseContext:
    """What parsing needs to know about the service the traffic belongs to.

    Attributes
    ----------
    protocol : {"v2", "mlflow", "rest", "v1"}
    features : tuple of str
        Feature names in model order; empty = the names the request carries.
    categorical : frozenset of str
        Features kept as text; every other feature is stored as a number.
    records_key, predictions_key, probabilities_key : str
        Body keys of a ``rest`` service.
    model_version : str or None
        Version to log when the answer names none.
    """

    protocol: str
    features: tuple[str, ...] = ()
    categorical: frozenset[str] = frozenset()
    records_key: str = "instances"
    predictions_key: str = "predictions"
    probabilities_key: str = "probabilities"
    model_version: str | None = None


def decode_json(body: bytes, *, encoding: str | None = None, what: str = "body") -> Any:
    """Parse a (possibly gzip- or deflate-encoded) JSON body; :class:`CaptureParseError` when it is not JSON."""
    try:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise CaptureParseError("not_json", f"the {what} says Content-Encoding {encoding} but is not: {exc}") from None
    if not body.strip():
        raise CaptureParseError("not_json", f"the {what} is empty; JSON was expected")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        start = body[:40].decode("utf-8", "replace")
        raise CaptureParseError("not_json", f"the {what} is not JSON ({exc}); it starts with {start!r}") from None


def row_ids(base: str, n_rows: int) -> list[str]:
    """Prediction ids of the ``n_rows`` rows of one exchange whose id is ``base``.

    One row: ``base`` itself. More: ``base-0``, ``base-1``, ... An id that would not fit the
    store's 64 characters is replaced by the first 32 hex digits of its SHA-256 (still stable,
    so labels sent with the same id join).
    """
    longest = len(base) + (len(f"-{n_rows - 1}") if n_rows > 1 else 0)
    if longest > MAX_ID_LENGTH:
        base = hashlib.sha256(base.encode()).hexdigest()[:32]
    return [base] if n_rows == 1 else [f"{base}-{i}" for i in range(n_rows)]


def parse_exchange(context: ParseContext, request: Any, response: Any, *, exchange_id: str,
                   ts: float) -> list[dict]:
    """Rows for the prediction log from one parsed request and its parsed response.

    Parameters
    ----------
    context : ParseContext
    request, response : object
        The JSON bodies, parsed.
    exchange_id : str
        Id of the exchange, chosen by the caller (see :func:`request_id_of`); the rows' ids
        come from it (:func:`row_ids`).
    ts : float
        When the request arrived (Unix seconds).

    Returns
    -------
    list of dict
        One mapping per record: ``id, ts, model_version, prediction, score, probabilities``
        and the features.

    Raises
    ------
    CaptureParseError
        With reason ``unparsed`` when a body has no shape the protocol knows, or the number of
        predictions differs from the number of records.
    """
    if context.protocol == "v2":
        records = _v2_records(request, context)
        predictions, probabilities, version, ids = _v2_outputs(response)
    elif context.protocol == "rest":
        records = _records(_member(request, context.records_key, "request"), context)
        predictions, probabilities, version, ids = _rest_outputs(response, context)
    elif context.protocol in ("mlflow", "v1"):
        records = _mlflow_records(request, context)
        predictions, probabilities, version, ids = _mlflow_outputs(response)
    else:
        raise ValueError(f"protocol must be one of {PROTOCOLS}; got {context.protocol!r}")
    n_rows = len(records)
    if n_rows == 0:
        raise CaptureParseError("unparsed", "the request holds no records")
    if predictions is None and probabilities is not None:
        predictions = [float(max(range(len(p)), key=p.__getitem__)) for p in probabilities]
    if predictions is None:
        raise CaptureParseError("unparsed", "the response holds no predictions")
    if len(predictions) != n_rows or (probabilities is not None and len(probabilities) != n_rows):
        raise CaptureParseError("unparsed", f"the request has {n_rows} records but the response "
                                            f"{len(predictions)} predictions")
    if ids is None or len(ids) != n_rows:
        ids = row_ids(str(exchange_id), n_rows)
    version = version or context.model_version
    rows = []
    for i, record in enumerate(records):
        proba = probabilities[i] if probabilities is not None else None
        rows.append({"id": ids[i], "ts": ts, "model_version": version, "prediction": predictions[i],
                     "score": proba[1] if proba is not None and len(proba) == 2 else None,
                     "probabilities": proba, **record})
    return rows


def request_id_of(protocol: str, request: Any) -> str | None:
    """The id a request names for itself: a v2 request's ``id`` (1-64 characters), else None."""
    if protocol == "v2" and isinstance(request, dict):
        value = request.get("id")
        if isinstance(value, str | int) and not isinstance(value, bool) and 0 < len(str(value)) <= 256:
            return str(value)
    return None


# -- requests ------------------------------------------------------------------------------------


def _member(body: Any, key: str, what: str) -> Any:
    if not isinstance(body, dict):
        raise CaptureParseError("unparsed", f"the {what} must be a JSON object; got {_kind(body)}")
    if key not in body:
        raise CaptureParseError("unparsed", f"the {what} has no {key!r}; it has {sorted(body)[:10]}")
    return body[key]


def _cell(value: Any, name: str, context: ParseContext) -> Any:
    if name in context.categorical:
        return None if value is None else str(value)
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CaptureParseError("unparsed", f"feature {name!r} must be a number; got {_short(value)}") from None
    return number if math.isfinite(number) else None


def _names(context: ParseContext, width: int) -> Sequence[str]:
    if not context.features:
        return [f"x{i}" for i in range(width)]
    if width != len(context.features):
        raise CaptureParseError("unparsed", f"a record has {width} values but the service has "
                                            f"{len(context.features)} features {list(context.features)}")
    return context.features


def _records(value: Any, context: ParseContext) -> list[dict]:
    """Records as objects (feature → value) or lists in feature order."""
    if not isinstance(value, list):
        raise CaptureParseError("unparsed", f"records must be a list; got {_kind(value)}")
    records = []
    for record in value:
        if isinstance(record, dict):
            names = context.features or tuple(record)
            missing = [n for n in names if n not in record]
            if missing:
                raise CaptureParseError("unparsed", f"a record lacks features {missing[:10]}")
            records.append({n: _cell(record[n], n, context) for n in names})
        elif isinstance(record, list):
            names = _names(context, len(record))
            records.append({n: _cell(v, n, context) for n, v in zip(names, record, strict=True)})
        else:
            raise CaptureParseError("unparsed", f"a record must be an object or a list; got {_kind(record)}")
    return records


def _columns(columns: Mapping[str, Sequence], context: ParseContext) -> list[dict]:
    """Columnar input (feature → values) as records."""
    names = context.features or tuple(columns)
    missing = [n for n in names if n not in columns]
    if missing:
        raise CaptureParseError("unparsed", f"the request lacks feature columns {missing[:10]}; "
                                            f"it has {sorted(columns)[:10]}")
    lengths = {len(columns[n]) for n in names}
    if len(lengths) != 1:
        raise CaptureParseError("unparsed", "the feature columns have different lengths")
    return [{n: _cell(columns[n][i], n, context) for n in names} for i in range(lengths.pop())]


def _flat(data: Any) -> list:
    if not isinstance(data, list):
        raise CaptureParseError("unparsed", f"a tensor's data must be a list; got {_kind(data)}")
    if data and isinstance(data[0], list):
        out: list = []
        stack = [data]
        while stack:  # row-major flattening of any depth
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            else:
                out.append(item)
        return out
    return data


def _v2_records(request: Any, context: ParseContext) -> list[dict]:
    inputs = _member(request, "inputs", "request")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, dict) for t in inputs):
        raise CaptureParseError("unparsed", "'inputs' must be a non-empty list of tensors {name, shape, data}")
    tensors = []
    for tensor in inputs:
        shape = tensor.get("shape")
        if not isinstance(shape, list) or not shape or not all(isinstance(s, int) for s in shape):
            raise CaptureParseError("unparsed", f"input {_short(tensor.get('name'))}: 'shape' must be a list of "
                                                "whole numbers")
        tensors.append((str(tensor.get("name", "")), shape, _flat(tensor.get("data"))))
    if len(tensors) == 1 and len(tensors[0][1]) == 2 and (tensors[0][1][1] != 1 or len(context.features) == 1):
        name, (n_rows, width), data = tensors[0]
        if len(data) != n_rows * width:
            raise CaptureParseError("unparsed", f"input {name!r}: {len(data)} values do not fill shape "
                                                f"[{n_rows}, {width}]")
        names = _names(context, width)
        return [{n: _cell(data[r * width + c], n, context) for c, n in enumerate(names)} for r in range(n_rows)]
    columns = {}
    for name, shape, data in tensors:
        if math.prod(shape) != len(data) or (len(shape) == 2 and shape[1] != 1) or len(shape) > 2:
            raise CaptureParseError("unparsed", f"input {name!r}: shape {shape} is neither one column ([rows] or "
                                                "[rows, 1]) nor the whole table ([rows, features])")
        columns[name] = data
    return _columns(columns, context)


def _mlflow_records(request: Any, context: ParseContext) -> list[dict]:
    if not isinstance(request, dict):
        raise CaptureParseError("unparsed", f"the request must be a JSON object; got {_kind(request)}")
    if "dataframe_split" in request:
        split = request["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise CaptureParseError("unparsed", "'dataframe_split' must be {\"columns\": [...], \"data\": [[...]]}")
        columns = split.get("columns")
        if columns is None:
            return _records(split["data"], context)
        if not isinstance(columns, list):
            raise CaptureParseError("unparsed", "'dataframe_split.columns' must be a list of names")
        rows = split["data"]
        if not all(isinstance(r, list) and len(r) == len(columns) for r in rows):
            raise CaptureParseError("unparsed", f"every row of 'dataframe_split.data' must have {len(columns)} values")
        return _records([dict(zip(map(str, columns), r, strict=True)) for r in rows], context)
    if "dataframe_records" in request:
        return _records(request["dataframe_records"], context)
    if "instances" in request:
        return _records(request["instances"], context)
    if "inputs" in request:
        inputs = request["inputs"]
        if isinstance(inputs, dict):
            if not all(isinstance(v, list) for v in inputs.values()):
                raise CaptureParseError("unparsed", "'inputs' as an object must map each column to a list")
            return _columns(inputs, context)
        return _records(inputs, context)
    raise CaptureParseError("unparsed", "the request has none of 'dataframe_split', 'dataframe_records', "
                                        f"'instances', 'inputs'; it has {sorted(request)[:10]}")


# -- responses -----------------------------------------------------------------------------------


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, list) and len(value) == 1:
        return _number(value[0], what)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CaptureParseError("unparsed", f"{what} must be numbers; got {_short(value)}") from None
    if not math.isfinite(number):
        raise CaptureParseError("unparsed", f"{what} must be finite numbers; got {_short(value)}")
    return number


def _probability_rows(rows: Sequence, what: str) -> list[list[float]]:
    return [[_number(v, what) for v in row] for row in rows]


def _looks_like_probabilities(rows: Sequence) -> bool:
    if not rows or not all(isinstance(r, list) and len(r) >= 2 for r in rows):
        return False
    try:
        return all(abs(sum(float(v) for v in r) - 1.0) < 1e-3 and min(float(v) for v in r) >= 0 for r in rows[:50])
    except (TypeError, ValueError):
        return False


def _v2_outputs(response: Any) -> tuple[list | None, list | None, str | None, None]:
    outputs = _member(response, "outputs", "response")
    if not isinstance(outputs, list) or not all(isinstance(t, dict) for t in outputs):
        raise CaptureParseError("unparsed", "'outputs' must be a list of tensors {name, shape, data}")
    predictions = probabilities = None
    for tensor in outputs:
        name = str(tensor.get("name", "")).lower()
        shape, data = tensor.get("shape"), _flat(tensor.get("data"))
        if not isinstance(shape, list) or not shape or not all(isinstance(s, int) for s in shape) \
                or math.prod(shape) != len(data):
            raise CaptureParseError("unparsed", f"output {name!r}: 'shape' {_short(shape)} does not fit its data")
        if len(shape) == 2 and shape[1] > 1:
            if probabilities is None or name in PROBABILITY_OUTPUTS:
                width = shape[1]
                probabilities = _probability_rows([data[r * width:(r + 1) * width] for r in range(shape[0])],
                                                  f"output {name!r}")
        elif predictions is None or name in PREDICTION_OUTPUTS:
            predictions = [_number(v, f"output {name!r}") for v in data]
    version = response.get("model_version")
    return predictions, probabilities, str(version) if version not in (None, "") else None, None


def _prediction_list(values: Any, what: str) -> tuple[list | None, list | None]:
    """Predictions as values, as probability rows, or as records holding both."""
    if not isinstance(values, list):
        raise CaptureParseError("unparsed", f"{what} must be a list; got {_kind(values)}")
    if values and all(isinstance(v, dict) for v in values):
        keys = values[0].keys()
        pred_key = next((k for k in keys if str(k).lower() in PREDICTION_OUTPUTS), None)
        proba_key = next((k for k in keys if str(k).lower() in PROBABILITY_OUTPUTS), None)
        if pred_key is None and proba_key is None and len(keys) == 1:
            pred_key = next(iter(keys))
        predictions = [_number(v.get(pred_key), what) for v in values] if pred_key is not None else None
        probabilities = _probability_rows([v.get(proba_key) or [] for v in values], what) if proba_key else None
        return predictions, probabilities
    if _looks_like_probabilities(values):
        return None, _probability_rows(values, what)
    return [_number(v, what) for v in values], None


def _mlflow_outputs(response: Any) -> tuple[list | None, list | None, str | None, None]:
    if isinstance(response, list):
        predictions, probabilities = _prediction_list(response, "the response")
        return predictions, probabilities, None, None
    values = _member(response, "predictions", "response")
    if isinstance(values, dict):  # a DataFrame answered column-wise
        values = [dict(zip(values, row, strict=True)) for row in zip(*values.values(), strict=True)]
    predictions, probabilities = _prediction_list(values, "'predictions'")
    version = response.get("model_version")
    return predictions, probabilities, str(version) if version not in (None, "") else None, None


def _rest_outputs(response: Any, context: ParseContext) -> tuple[list | None, list | None, str | None, list | None]:
    values = _member(response, context.predictions_key, "response")
    predictions, probabilities = _prediction_list(values, repr(context.predictions_key))
    given = response.get(context.probabilities_key)
    if isinstance(given, list) and given and all(isinstance(r, list) for r in given):
        probabilities = _probability_rows(given, repr(context.probabilities_key))
    version = response.get("model_version")
    return predictions, probabilities, str(version) if version not in (None, "") else None, None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
