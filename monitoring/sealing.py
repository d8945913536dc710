"""Personal columns sealed at rest: the prediction log holds them encrypted; only a process with the key reads them.

Display masking (``monitoring.privacy``) keeps personal values off pages, exports and log lines;
this module keeps them out of the store. A writer (the template service, the capture proxy, the
KServe logger endpoint) built with a :class:`Sealer` stores each value of a personal column as
``sealed:v1:<base64>``: AES-SIV (``cryptography``) of the value's JSON, with the column's name as
associated data, under a key derived from ``VANTAGE_PERSONAL_KEY``. AES-SIV is deterministic, so
equal values stay equal when sealed (counts per category still work) while nothing about a value
can be read without the key. Reading processes with the same key (the dashboard) open the
values into memory; the model gets them, the pages show them masked.

A writer without the key cannot seal, and never writes a personal value in clear: it stores
nothing (NULL) in that column and counts the values it left out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Mapping

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SEAL_PREFIX = "sealed:v1:"
KEY_ENV = "VANTAGE_PERSONAL_KEY"


class SealError(ValueError):
    """A sealed value that cannot be opened (another key, or a damaged value)."""


def _derived_key(key: bytes) -> bytes:
    """The 64-byte AES-SIV key for ``key`` (apart from the pseudonym key made from the same secret)."""
    return hashlib.sha512(b"vantage seal v1\x00" + key).digest()


class Sealer:
    """Seals and opens the personal columns of each service's prediction log.

    Parameters
    ----------
    columns : mapping of str to sequence of str
        Personal columns per prediction-log name (a service's ``log_name``).
    key : bytes or None
        The shared secret (``VANTAGE_PERSONAL_KEY``); None = this process cannot seal or open.
    """

    def __init__(self, columns: Mapping[str, tuple[str, ...] | list[str]], key: bytes | None):
        self._columns = {log_name: tuple(names) for log_name, names in columns.items() if names}
        self._cipher = None
        if key:
            from cryptography.hazmat.primitives.ciphers.aead import AESSIV

            self._cipher = AESSIV(_derived_key(key))
        self._lock = threading.Lock()
        self.withheld = 0
        """Personal values left out (stored as NULL) because this process has no key."""

    @classmethod
    def from_config(cls, config, environ: Mapping[str, str] | None = None) -> Sealer:
        """The sealer of a :class:`~monitoring.config.VantageConfig`: each service's ``personal``, the key from
        ``VANTAGE_PERSONAL_KEY``."""
        return cls.from_environment({service.log_name: tuple(service.personal) for service in config.services},
                                    environ)

    @classmethod
    def from_environment(cls, columns: Mapping[str, tuple[str, ...] | list[str]],
                         environ: Mapping[str, str] | None = None) -> Sealer:
        """A sealer of ``columns`` (per prediction-log name) with the key from ``VANTAGE_PERSONAL_KEY``."""
        environ = os.environ if environ is None else environ
        return cls(columns, environ.get(KEY_ENV, "").encode() or None)

    def __bool__(self) -> bool:
        return bool(self._columns)

    def __repr__(self) -> str:  # never the key
        return f"Sealer({self._columns!r}, key={'set' if self._cipher else 'none'})"

    @property
    def has_key(self) -> bool:
        """Whether this process can seal and open values."""
        return self._cipher is not None

    def columns(self, log_name: str) -> tuple[str, ...]:
        """The personal columns of one prediction log."""
        return self._columns.get(log_name, ())

    def seal(self, column: str, value: object) -> str | None:
        """``value`` sealed for ``column``; None for a missing value, or when this process has no key."""
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            return None
        if self._cipher is None:
            return None
        plain = json.dumps(value.item() if isinstance(value, np.generic) else value).encode()
        return SEAL_PREFIX + base64.urlsafe_b64encode(self._cipher.encrypt(plain, [column.encode()])).decode()

    def open(self, column: str, text: object) -> object:
        """The value ``text`` was sealed from; text that is not sealed is returned as it is.

        Raises
        ------
        SealError
            When this process has no key or another key sealed it.
        """
        if not isinstance(text, str) or not text.startswith(SEAL_PREFIX):
            return text
        if self._cipher is None:
            raise SealError(f"column {column!r} is sealed and {KEY_ENV} is not set in this process")
        try:
            token = base64.urlsafe_b64decode(text[len(SEAL_PREFIX):])
            return json.loads(self._cipher.decrypt(token, [column.encode()]))
        except Exception:  # InvalidTag, bad base64 or JSON: not ours to read
            raise SealError(f"a value of column {column!r} was sealed with another key than {KEY_ENV}") from None

    def seal_frame(self, log_name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``frame`` with the log's personal columns sealed (NULL without a key, counted)."""
        names = [c for c in self.columns(log_name) if c in frame.columns]
        if not names:
            return frame
        sealed = frame.copy()
        for name in names:
            values = [self.seal(name, v) for v in sealed[name].tolist()]
            if self._cipher is None:
                withheld = int(sealed[name].notna().sum())
                if withheld:
                    with self._lock:
                        self.withheld += withheld
                    log.warning("%d value(s) of personal column %r of %s not stored: %s is not set in this "
                                "process, and personal values are never stored in clear", withheld, name, log_name,
                                KEY_ENV)
            sealed[name] = pd.Series(values, index=sealed.index, dtype=object)
        return sealed

    def open_frame(self, log_name: str, frame: pd.DataFrame, *, kinds: Mapping[str, str] | None = None
                   ) -> pd.DataFrame:
        """``frame`` with the log's sealed columns opened: numbers as floats, text as categoricals.

        ``kinds`` may say which (JSON keeps numbers and text apart, so without it the values
        decide). Values this process cannot open become missing, with one warning per call.
        """
        names = [c for c in self.columns(log_name) if c in frame.columns]
        if not names or frame.empty:
            return frame
        opened = frame.copy()
        problems: set[str] = set()
        for name in names:
            values = []
            for text in opened[name].tolist():
                try:
                    values.append(self.open(name, text))
                except SealError as exc:
                    problems.add(str(exc))
                    values.append(None)
            numbers = all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values)
            kind = (kinds or {}).get(name) or ("numeric" if values and numbers else "categorical")
            column = pd.Series(values, index=opened.index, dtype=object)
            opened[name] = (pd.to_numeric(column, errors="coerce").astype(float) if kind == "numeric"
                            else column.astype("category"))
        for problem in sorted(problems):
            log.warning("personal values left out: %s", problem)
        return opened
