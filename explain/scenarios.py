"""What-if scenarios: a named set of edits to one prediction or reference row, encoded to and decoded from a link.

:func:`decode_scenario` reads any text a URL may carry (a link can be typed by anyone) and answers
with a :class:`Scenario` or a :class:`~explain.whatif.WhatIfInputError` that says what is wrong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class Scenario:
    """An edited point with a name, as kept on the page and shared in a URL.

    Attributes
    ----------
    name : str
    source : {"prediction", "reference"}
        Where the original row comes from.
    source_id : str
        The prediction id, or the reference row number.
    changes : dict
        Feature -> edited value (only the features that differ from the original).
    """

    name: str
    source: str
    source_id: str
    changes: dict = field(default_factory=dict)


SCENARIO_SOURCES = ("prediction", "reference")


def encode_scenario(scenario: Scenario) -> str:
    """The scenario as compact JSON text for a URL query parameter (see :func:`decode_scenario`)."""
    changes = {k: _plain(v) for k, v in scenario.changes.items()}
    return json.dumps({"n": scenario.name, "s": scenario.source, "i": scenario.source_id, "c": changes},
                      separators=(",", ":"), sort_keys=True)


SCENARIO_MAX_CHARS = 20_000
"""Longest scenario text :func:`decode_scenario` reads (a link's query parameter)."""
_SCENARIO_KEYS = ("n", "s", "i", "c")
_SCENARIO_ID = re.compile(r"[!-~]{1,64}")
_SCENARIO_TEXT = 1000


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + " … " + text[-15:]


def _scenario_value(name: str, value):
    """One changed value: text, a finite number, true/false or null (NaN reads as null)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > _SCENARIO_TEXT:
            raise ValueError(f"scenario change of {name!r} must be text of at most {_SCENARIO_TEXT:,} characters; "
                             f"got {len(value):,}")
        return value
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isnan(number):
            return None
        if not math.isfinite(number):
            raise ValueError(f"scenario change of {name!r} must be a finite number; got {_short(value)}")
        return value
    raise ValueError(f"scenario change of {name!r} must be a number, text, true/false or null; "
                     f"got {type(value).__name__}")


def decode_scenario(text: str, *, features: Sequence[str] | None = None) -> Scenario:
    """Read a scenario written by :func:`encode_scenario`, whatever the text (a link anyone can edit).

    Parameters
    ----------
    text : str
        JSON ``{"n": name, "s": "prediction" | "reference", "i": id, "c": {feature: value}}``:
        at most :data:`SCENARIO_MAX_CHARS` characters; a prediction id is 1-64 printable ASCII
        characters, a reference row a whole number >= 0; a changed value is text (at most
        1,000 characters), a finite number, true/false or null.
    features : sequence of str, optional
        When given, changes of other features are an error.

    Returns
    -------
    Scenario

    Raises
    ------
    ValueError
        For any other input, naming what is wrong with it; never another exception.
    """
    if not isinstance(text, str):
        raise ValueError(f"scenario must be JSON text written by encode_scenario; got {type(text).__name__}")
    if len(text) > SCENARIO_MAX_CHARS:
        raise ValueError(f"scenario text must have at most {SCENARIO_MAX_CHARS:,} characters; got {len(text):,}")
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError("scenario must be JSON text written by encode_scenario; this one is nested too deeply "
                         "to be read") from None
    except ValueError as exc:  # JSONDecodeError, and integers of more than 4,300 digits
        raise ValueError(f"scenario must be JSON text written by encode_scenario; got {_short(text)} ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"scenario must be an object with keys n, s, i, c; got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in _SCENARIO_KEYS)
    if unknown:
        raise ValueError(f"scenario has unknown keys {_short(unknown)}; accepted: n, s, i, c")
    name = data.get("n", "")
    if not isinstance(name, str) or len(name) > 200:
        raise ValueError(f"scenario name must be text of at most 200 characters (key n); got {_short(name)}")
    source = data.get("s")
    if source not in SCENARIO_SOURCES:
        raise ValueError(f"scenario source must be one of {list(SCENARIO_SOURCES)} (key s); got {_short(source)}")
    identifier = data.get("i")
    if isinstance(identifier, int) and not isinstance(identifier, bool) and 0 <= identifier < 10**18:
        identifier = str(identifier)
    if source == "reference" and not (isinstance(identifier, str) and identifier.isascii()
                                      and identifier.isdigit() and len(identifier) <= 18):
        raise ValueError(f"scenario reference row must be a whole number >= 0 (key i); got {_short(identifier)}")
    if source == "prediction" and not (isinstance(identifier, str) and _SCENARIO_ID.fullmatch(identifier)):
        raise ValueError("scenario prediction id must be 1 to 64 printable ASCII characters without spaces "
                         f"(key i); got {_short(identifier)}")
    changes = data.get("c", {})
    if not isinstance(changes, dict) or len(changes) > 1000:
        raise ValueError(f"scenario changes must be an object {{feature: value}} of at most 1,000 features (key c); "
                         f"got {type(changes).__name__ if not isinstance(changes, dict) else len(changes)}")
    changes = {str(k): _scenario_value(str(k), v) for k, v in changes.items()}
    if features is not None:
        unknown = [k for k in changes if k not in features]
        if unknown:
            raise ValueError(f"scenario changes features {_short(unknown)} the model does not have; "
                             f"it has {list(features)}")
    return Scenario(name, source, identifier, changes)


@dataclass(frozen=True)
class LinkedScenario:
    """What a page does with a scenario link: the edits to apply, or why the link cannot be used.

    Attributes
    ----------
    scenario : Scenario or None
        The usable part of the link (personal features removed); None when it cannot be used.
    problem : str or None
        Why the link cannot be used (the decoder's message, to show as plain text).
    ignored_personal : tuple of str
        Personal features the link tried to set: a link never sets or carries a personal value.
    value_problems : tuple of str
        One message per edited value outside the reference ranges; those edits are not applied.
    edits : dict
        Feature -> value to put in the editor: the scenario's changes without the rejected ones,
        numbers as floats.
    """

    scenario: Scenario | None
    problem: str | None = None
    ignored_personal: tuple[str, ...] = ()
    value_problems: tuple[str, ...] = ()
    edits: dict = field(default_factory=dict)


def linked_scenario(text: str, *, features: Sequence[str], is_personal, reference_rows: int,
                    ranges) -> LinkedScenario:
    """Decode a scenario link and decide which of its edits a page applies.

    Parameters
    ----------
    text : str
        The link's ``scenario`` query parameter (anyone's to write: see :func:`decode_scenario`).
    features : sequence of str
        The model's features, in order.
    is_personal : callable of str -> bool
        Whether a feature is personal data (its value is never taken from a link).
    reference_rows : int
        Rows of the reference data (a reference scenario must name one of them).
    ranges : explain.ranges.FeatureRanges
        The reference ranges the edited values are checked against.

    Returns
    -------
    LinkedScenario
        Never raises for the text: what is wrong with it is ``problem``.
    """
    try:
        shared = decode_scenario(text, features=features)
    except ValueError as exc:
        return LinkedScenario(None, problem=str(exc))
    ignored = tuple(name for name in shared.changes if is_personal(name))
    if ignored:
        shared = Scenario(shared.name, shared.source, shared.source_id,
                          {k: v for k, v in shared.changes.items() if not is_personal(k)})
    if shared.source == "reference" and int(shared.source_id) >= reference_rows:
        return LinkedScenario(None, problem=f"scenario reference row {shared.source_id} does not exist; the "
                                            f"reference data has {reference_rows:,} rows",
                              ignored_personal=ignored)
    defaults = {f: ranges.median.get(f, (ranges.categories.get(f) or (None,))[0]) for f in features}
    problems = tuple(ranges.problems({**defaults, **shared.changes}))
    edits = {}
    for name, value in shared.changes.items():
        if any(p.startswith(f"{name} ") for p in problems):
            continue
        edits[name] = float(value) if ranges.kinds[name] == "numeric" and value is not None else value
    return LinkedScenario(shared, ignored_personal=ignored, value_problems=problems, edits=edits)
