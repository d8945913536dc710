"""Personal data never leaves in clear: the columns a service marks ``personal`` are masked wherever data is shown.

A prediction log holds production inputs, and some of them are about people: an e-mail, a
postcode, a balance. A service lists those columns in ``personal = ["email", "zip"]``, and
every table, chart label, download, report and log line shows them masked, while the model
still receives the real values inside the process (re-predictions, what-if, explanations):

* text and categories become a stable keyed pseudonym, ``email#3f2a9c1d`` — the first eight
  hex digits of HMAC-SHA256 of the column and the value — so an analyst still sees that one
  category grew or that two rows share a value, without the value. The key comes from
  ``VANTAGE_PERSONAL_KEY`` or, without it, from a random key made once and kept in the
  runtime's folder (``personal.key``, mode 0600); the same key gives the same pseudonyms
  across restarts and processes;
* numbers of a single row are shown as ``masked``; aggregates over reference quantiles stay
  (a numeric distribution is drawn on the reference's quantile scale instead of its values,
  so neither its minimum nor its maximum shows);
* free text that may quote a value (log lines, error messages, labels built from values) is
  searched for every personal value this process has seen (:meth:`PersonalData.learn`, at
  most :data:`MAX_KNOWN_VALUES`), which is replaced by its pseudonym, or ``masked`` for a
  number.

:class:`PersonalData` is the process-wide policy built from the configuration;
:meth:`PersonalData.for_service` gives the :class:`PersonalMask` of one service, which the
pages call. Nothing here imports Streamlit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

PERSONAL_KEY_ENV = "VANTAGE_PERSONAL_KEY"
"""Environment variable holding the pseudonym key; without it a key file is made in the runtime's folder."""
KEY_FILENAME = "personal.key"
MASKED = "masked"
"""What a personal number of a single row is shown as."""
PSEUDONYM_HEX_DIGITS = 8
"""Hex digits of a pseudonym: 32 bits, so 20,000 distinct values collide with a chance of about 5 %."""
MAX_KNOWN_VALUES = 200_000
"""At most this many distinct personal values are remembered for masking free text (memory stays bounded)."""
MIN_TEXT_CHARS = 2
"""Shorter text values are not searched for in free text (one letter would mangle every sentence)."""
MIN_NUMBER_CHARS = 6
"""Numbers written with fewer characters (``35``, ``2026``, ``1,200``) are not searched for in free text: they would
mask counts and years that merely equal someone's value. A row's number is always masked in tables; this is about
sentences and log lines, which quote values at full precision (``9876.54321``, ``52000.0``)."""
RESERVED_COLUMNS = ("id", "ts", "seq", "model_version", "prediction", "score", "label")
"""Log columns that cannot be personal: every page needs them (they hold no input of a person)."""
_SPECIAL_LABELS = ("(missing)", "(unseen)", "missing", "(all)")

_SEPARATORS = "\\s<>\"'`()\\[\\]{},;|=&"
_TOKEN = re.compile(f"[^{_SEPARATORS}]+")
_NUMBER = re.compile(r"(?<![\w.#])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w#])")
_HAS_SEPARATOR = re.compile(f"[{_SEPARATORS}]")
_TRAILING = ".:!?"
_MAX_SPACED_VALUES = 5_000


class PersonalKeyError(ValueError):
    """The pseudonym key cannot be read or made (the message names the file or variable)."""


def personal_key(folder: str | os.PathLike | None, environ: Mapping[str, str] | None = None) -> bytes:
    """The key of the pseudonyms: ``VANTAGE_PERSONAL_KEY``, else ``folder/personal.key`` (made once, mode 0600).

    Parameters
    ----------
    folder : path or None
        The runtime's folder (``var/``); None with no variable set gives a key for this process only.
    environ : mapping, optional
        Defaults to ``os.environ``.

    Returns
    -------
    bytes

    Raises
    ------
    PersonalKeyError
        When the key file cannot be read or written.
    """
    environ = os.environ if environ is None else environ
    if environ.get(PERSONAL_KEY_ENV):
        return environ[PERSONAL_KEY_ENV].encode()
    if folder is None:
        return secrets.token_bytes(32)
    path = Path(folder) / KEY_FILENAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # created at most once, readable by its owner only, even when two processes start together
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_hex(32))
        key = path.read_text(encoding="ascii").strip()
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except (OSError, UnicodeDecodeError) as exc:
        raise PersonalKeyError(f"the pseudonym key file {path} cannot be used ({exc}); set {PERSONAL_KEY_ENV} "
                               "or make the folder writable") from None
    if not key:
        raise PersonalKeyError(f"the pseudonym key file {path} is empty; delete it to have a new one made, or set "
                               f"{PERSONAL_KEY_ENV}")
    return key.encode()


def _missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def _canonical(value: object) -> str:
    """One text per value, so ``3``, ``3.0`` and ``np.int64(3)`` share a pseudonym."""
    if _is_number(value):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


def _number_forms(number: float) -> set[str]:
    forms = {repr(number), f"{number:g}", f"{number:,}"}
    if number.is_integer():
        forms |= {str(int(number)), f"{int(number):,}"}
    return {f for f in forms if len(f) >= MIN_NUMBER_CHARS}


class PersonalData:
    """The masking policy of one process: which columns of which service are personal, and the pseudonym key.

    Parameters
    ----------
    columns : mapping of str to iterable of str
        Service name → its personal columns (``[[services]] personal``).
    key : bytes
        The HMAC key of the pseudonyms (:func:`personal_key`).

    Attributes
    ----------
    key_problem : str or None
        Why the key could be neither read nor made (the pseudonyms then last one process).

    Notes
    -----
    It remembers the personal values it has seen (at most :data:`MAX_KNOWN_VALUES`) so that
    :meth:`text` can find them in free text; it is safe to share between threads.
    """

    def __init__(self, columns: Mapping[str, Iterable[str]], key: bytes) -> None:
        self.columns = {service: frozenset(names) for service, names in columns.items()}
        self._key = key
        self._lock = threading.Lock()
        self._pseudonyms: dict[tuple[str, str], str] = {}
        self._known_text: dict[str, str] = {}
        self._known_spaced: dict[str, str] = {}
        self._spaced_order: tuple[str, ...] = ()
        self._known_numbers: set[float] = set()
        self._learned: dict[tuple[str, str, str], int] = {}
        self.key_problem: str | None = None

    @classmethod
    def from_config(cls, config, folder: str | os.PathLike | None,
                    environ: Mapping[str, str] | None = None) -> PersonalData:
        """The policy of a :class:`monitoring.config.VantageConfig`; the key is read only when a column is personal."""
        columns = {service.name: tuple(service.personal) for service in config.services}
        if not any(columns.values()):
            return cls(columns, b"")
        try:
            return cls(columns, personal_key(folder, environ))
        except PersonalKeyError as exc:  # still masked, with pseudonyms of this process only; the page says why
            policy = cls(columns, personal_key(None, {}))
            policy.key_problem = f"{exc}; until then pseudonyms change whenever the dashboard restarts"
            return policy

    def __bool__(self) -> bool:
        return any(self.columns.values())

    def __repr__(self) -> str:  # never the key
        return f"PersonalData({ {s: sorted(c) for s, c in self.columns.items() if c} })"

    def for_service(self, service: str) -> PersonalMask:
        """The mask of ``service`` (one that masks nothing when it has no personal column)."""
        return PersonalMask(self, self.columns.get(service, frozenset()))

    def pseudonym(self, column: str, value: object) -> str:
        """The stable pseudonym of ``value`` in ``column``, e.g. ``email#3f2a9c1d``."""
        canonical = _canonical(value)
        found = self._pseudonyms.get((column, canonical))
        if found is None:
            digest = hmac.new(self._key, f"{column}\x00{canonical}".encode(), hashlib.sha256).hexdigest()
            found = f"{column}#{digest[:PSEUDONYM_HEX_DIGITS]}"
            if len(self._pseudonyms) < MAX_KNOWN_VALUES:
                self._pseudonyms[(column, canonical)] = found
        return found

    def shown(self, column: str, value: object) -> object:
        """A personal ``value`` of ``column`` as shown: its pseudonym, ``masked`` for a number, None when missing."""
        if _missing(value):
            return None
        if _is_number(value):
            self._remember_number(float(value))
            return MASKED
        pseudonym = self.pseudonym(column, value)
        self._remember_text(str(value), pseudonym)
        return pseudonym

    def learn(self, service: str, frame: pd.DataFrame | None, *, source: str = "log") -> None:
        """Remember the personal values of ``frame`` so free text can be searched for them.

        Parameters
        ----------
        service : str
        frame : DataFrame or None
            Rows of the service: its prediction log, or its reference.
        source : str, default="log"
            What ``frame`` is. A source's frame only grows (the log's mirror appends), so a
            later call reads only the rows added since the last one: cheap on every page run.
        """
        if frame is None:
            return
        for column in self.columns.get(service, ()):
            if column not in frame.columns:
                continue
            seen = self._learned.get((service, source, column), 0)
            if seen == len(frame):
                continue
            values = frame[column].iloc[seen:] if seen < len(frame) else frame[column]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                for number in pd.unique(values.dropna().to_numpy(dtype=float)):
                    self._remember_number(float(number))
            else:
                for value in pd.unique(values.dropna().astype(object)):
                    self.shown(column, value)
            self._learned[(service, source, column)] = len(frame)

    def _remember_text(self, value: str, pseudonym: str) -> None:
        if len(value) < MIN_TEXT_CHARS or value in self._known_text or value in self._known_spaced:
            return
        with self._lock:
            if len(self._known_text) + len(self._known_spaced) >= MAX_KNOWN_VALUES:
                return
            if _HAS_SEPARATOR.search(value) or value[-1] in _TRAILING:
                if len(self._known_spaced) < _MAX_SPACED_VALUES:
                    self._known_spaced[value] = pseudonym
                    self._spaced_order = tuple(sorted(self._known_spaced, key=len, reverse=True))
            else:
                self._known_text[value] = pseudonym

    def _remember_number(self, number: float) -> None:
        if not math.isfinite(number) or number in self._known_numbers:
            return
        if not _number_forms(number):
            return
        with self._lock:
            if len(self._known_numbers) < MAX_KNOWN_VALUES:
                self._known_numbers.add(number)

    def text(self, text: object) -> str:
        """``text`` with every personal value seen so far replaced: text by its pseudonym, numbers by ``masked``.

        Values are found as whole words (an e-mail in a sentence, a category in a label such as
        ``email = x & channel = web``); values holding spaces or punctuation anywhere. None gives "".
        """
        if text is None:
            return ""
        text = str(text)
        if not (self._known_text or self._known_spaced or self._known_numbers):
            return text
        for value in self._spaced_order:  # longest first, so a value inside a longer one does not split it
            if value in text:
                text = text.replace(value, self._known_spaced[value])
        if self._known_numbers:
            text = _NUMBER.sub(self._number_match, text)
        if self._known_text:
            text = _TOKEN.sub(self._token_match, text)
        return text

    def _number_match(self, match: re.Match) -> str:
        written = match.group()
        if len(written) < MIN_NUMBER_CHARS:
            return written
        try:
            number = float(written.replace(",", ""))
        except ValueError:
            return written
        return MASKED if number in self._known_numbers else written

    def _token_match(self, match: re.Match) -> str:
        token = match.group()
        found = self._known_text.get(token)
        if found is not None:
            return found
        stripped = token.rstrip(_TRAILING)
        if stripped != token and stripped in self._known_text:
            return self._known_text[stripped] + token[len(stripped):]
        return token

    def log_filter(self) -> PersonalDataFilter:
        """A logging filter masking every record with :meth:`text` (see :func:`install_log_masking`)."""
        return PersonalDataFilter(self)


@dataclasses.dataclass(frozen=True)
class PersonalMask:
    """One service's personal columns, and what the pages call to show its data.

    Every method returns a new object; the model's data is never changed. A mask of a service
    without personal columns returns what it is given.

    Attributes
    ----------
    policy : PersonalData
    columns : frozenset of str
    """

    policy: PersonalData
    columns: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.columns)

    def is_personal(self, column: object) -> bool:
        """Whether ``column`` is one of the service's personal columns."""
        return column in self.columns

    def not_personal(self, columns: Iterable[str]) -> list[str]:
        """``columns`` without the personal ones, in order (for pickers that would chart a column's values)."""
        return [c for c in columns if c not in self.columns]

    def value(self, column: str, value: object) -> object:
        """One value as shown: masked when ``column`` is personal, as it is otherwise."""
        return self.policy.shown(column, value) if column in self.columns else value

    def text(self, text: object) -> str:
        """Free text with every personal value seen so far masked (:meth:`PersonalData.text`)."""
        return self.policy.text(text) if self.columns else ("" if text is None else str(text))

    def frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``frame`` whose personal columns are masked: pseudonyms for text, ``masked`` for numbers.

        Index, column order and the other columns are kept.
        """
        present = [c for c in frame.columns if c in self.columns]
        if not present:
            return frame
        out = frame.copy()
        for column in present:
            out[column] = pd.Series([self.policy.shown(column, v) for v in frame[column].astype(object)],
                                    index=frame.index, dtype=object)
        return out

    def record(self, record: Mapping[str, object]) -> dict:
        """A copy of one row (feature → value) with its personal values masked."""
        return {k: self.value(k, v) for k, v in record.items()}

    def series(self, row: pd.Series) -> pd.Series:
        """A copy of one row as a Series (index: column names) with its personal values masked."""
        if not self.columns & set(row.index):
            return row
        return pd.Series([self.value(k, v) for k, v in row.items()], index=row.index, dtype=object, name=row.name)

    def labels(self, column: str, labels: Sequence[object]) -> list:
        """Category labels of a chart or table of ``column``: pseudonyms when it is personal, ``(missing)`` and
        ``(unseen)`` as they are."""
        if column not in self.columns:
            return list(labels)
        return [label if label in _SPECIAL_LABELS else self.policy.shown(column, label) for label in labels]

    def segment_labels(self, labels: Iterable[object], features: Sequence[str]) -> list:
        """Segment labels (``explain.segments.assign_segments``: ``"email = x & channel = web"``) whose
        personal ``email = x`` parts show the pseudonym of ``x``; bins of a personal number
        (``balance < 1,234``, the reference's inner quantiles) stay as they are."""
        personal = [f for f in features if f in self.columns]
        if not personal:
            return list(labels)
        parts = re.compile("|".join(rf"(?:(?<=^)|(?<= & )){re.escape(f)} = (?P<v{i}>.*?)(?= & |$)"
                                    for i, f in enumerate(personal)))

        def one(match: re.Match) -> str:
            for i, feature in enumerate(personal):
                value = match.group(f"v{i}")
                if value is not None:
                    shown = value if value in _SPECIAL_LABELS else self.policy.shown(feature, value)
                    return f"{feature} = {shown}"
            return match.group()

        return [parts.sub(one, label) if isinstance(label, str) else label for label in labels]

    def groups(self, feature: str, groups: Iterable[object]) -> list:
        """Fairness groups of ``feature`` (its values, or bins such as ``balance < 1,234``): a personal value shows
        its pseudonym, a bin of the reference's quantiles stays."""
        if feature not in self.columns:
            return list(groups)
        return [g if not isinstance(g, str) or g in _SPECIAL_LABELS or g.startswith(f"{feature} ")
                else self.policy.shown(feature, g) for g in groups]

    def long(self, frame: pd.DataFrame, *, feature: str = "feature",
             values: Sequence[str] = ("value",)) -> pd.DataFrame:
        """A table with one row per feature (explanations, differences, rankings): the ``values`` cells of the
        rows whose ``feature`` is personal are masked."""
        if not self.columns or frame.empty or feature not in frame.columns:
            return frame
        personal = frame[feature].isin(self.columns).to_numpy()
        if not personal.any():
            return frame
        out = frame.copy()
        for name in values:
            if name in out.columns:
                column = out[name].astype(object).to_numpy(copy=True)
                for i in np.flatnonzero(personal):
                    column[i] = self.policy.shown(str(frame[feature].iloc[i]), column[i])
                out[name] = column
        return out

    def text_cells(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``frame`` whose text cells (and text index) are masked with :meth:`text`: tables whose labels
        were built from values, such as segments (``email = x``) or fairness groups."""
        if not self.columns:
            return frame
        out = frame.copy()
        for column in out.columns:
            if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
                out[column] = [self.policy.text(v) if isinstance(v, str) else v for v in out[column]]
        if out.index.dtype == object:
            out.index = [self.policy.text(v) if isinstance(v, str) else v for v in out.index]
        return out

    def distribution(self, column: str, distribution: pd.DataFrame) -> pd.DataFrame:
        """A drift distribution (``monitoring.drift.feature_distribution``) of ``column`` as shown.

        A personal categorical column gets pseudonyms for its categories; a personal numeric
        column is put on the reference's quantile scale: each bin's edges become the share of
        reference rows below them (0 to 1), so the shape and any shift stay visible while no
        value, minimum or maximum does.
        """
        if column not in self.columns or distribution.empty:
            return distribution
        out = distribution.copy()
        inner = (out["bin_kind"] == "bin").to_numpy()
        if not inner.any():
            out["bin"] = self.labels(column, list(out["bin"]))
            return out
        shares = out.loc[inner, "reference_count"].to_numpy(dtype=float)
        total = shares.sum()
        below = out.loc[out["bin_kind"] == "below", "reference_count"].sum()
        everything = out.loc[out["bin_kind"].isin(["below", "bin", "above"]), "reference_count"].sum()
        if total <= 0 or everything <= 0:
            right = np.linspace(0, 1, inner.sum() + 1)[1:]
        else:
            right = (below + np.cumsum(shares)) / everything
        left = np.concatenate([[below / everything if everything > 0 else 0.0], right[:-1]])
        out.loc[inner, "left"], out.loc[inner, "right"] = left, right
        out.loc[inner, "bin"] = [f"reference quantile {a:.2f}–{b:.2f}" for a, b in zip(left, right, strict=True)]
        below_rows, above_rows = out["bin_kind"] == "below", out["bin_kind"] == "above"
        out.loc[below_rows, ["bin", "left", "right"]] = ["below the reference's range", -np.inf, 0.0]
        out.loc[above_rows, ["bin", "left", "right"]] = ["above the reference's range", 1.0, np.inf]
        return out

    def shap_values(self, values):
        """Shapley values (``explain.ShapValues``) whose rows' data are masked, for the beeswarm and tables."""
        if not self.columns & set(getattr(values, "data", pd.DataFrame()).columns):
            return values
        return dataclasses.replace(values, data=self.frame(values.data))

    def explanation(self, explanation):
        """One prediction's explanation (``explain.LocalExplanation``) whose values are masked, for the waterfall
        (``email = email#3f2a9c1d``) and its table."""
        if not self.columns & set(explanation.data.index):
            return explanation
        return dataclasses.replace(explanation, data=self.series(explanation.data))

    def figure(self, figure):
        """A copy of a plotly figure whose every text (labels, hover text, titles) is masked with :meth:`text`."""
        if not self.columns:
            return figure
        import plotly.graph_objects as go

        return go.Figure(_mask_strings(figure.to_dict(), self.policy.text))

    def export(self, data):
        """Text or bytes of a download (CSV, HTML) with :meth:`text` applied; a callable is wrapped to do so."""
        if not self.columns:
            return data
        if callable(data):
            return lambda: self.export(data())
        if isinstance(data, bytes):
            return self.policy.text(data.decode("utf-8", errors="replace")).encode()
        return self.policy.text(data)


def _mask_strings(node, mask):
    if isinstance(node, str):
        return mask(node)
    if isinstance(node, dict):
        return {k: _mask_strings(v, mask) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return type(node)(_mask_strings(v, mask) for v in node)
    if isinstance(node, np.ndarray) and node.dtype.kind in "OUS":
        return np.array([_mask_strings(v, mask) for v in node.ravel()], dtype=object).reshape(node.shape)
    return node


def unknown_columns(personal: Iterable[str], columns: Iterable[str]) -> list[str]:
    """The ``personal`` names that are none of ``columns`` (features, reference and log columns): likely misspelt."""
    known = set(columns)
    return [name for name in personal if name not in known]


class PersonalDataFilter(logging.Filter):
    """A logging filter that masks every record's message and traceback with :meth:`PersonalData.text`."""

    def __init__(self, policy: PersonalData) -> None:
        super().__init__()
        self.policy = policy

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        if self.policy:
            with contextlib.suppress(Exception):  # a record that cannot be formatted is left to logging's own report
                record.msg = self.policy.text(record.getMessage())
                record.args = ()
            if record.exc_info:
                formatted = logging.Formatter().formatException(record.exc_info)
                record.exc_info = None
                record.exc_text = self.policy.text(formatted)
            elif record.exc_text:
                record.exc_text = self.policy.text(record.exc_text)
        return True


def install_log_masking(policy: PersonalData, loggers: Iterable[logging.Logger] | None = None) -> PersonalDataFilter:
    """Add a :class:`PersonalDataFilter` to every handler of ``loggers`` (the root logger's by default).

    A handler that already has one gets the new policy instead, so a restarted runtime masks
    with its own configuration.
    """
    log_filter = policy.log_filter()
    for logger in loggers or (logging.getLogger(),):
        for handler in logger.handlers:
            for old in [f for f in handler.filters if isinstance(f, PersonalDataFilter)]:
                handler.removeFilter(old)
            handler.addFilter(log_filter)
    return log_filter
