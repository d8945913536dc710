"""Secrets never leave in clear: every configured secret value is replaced by ``[redacted]`` in text.

A service that echoes its ``Authorization`` header in an error body would otherwise put the
token in the store, on the pages, in the report and in the logs. :func:`secrets_of` collects
the values a configuration can expose — each service's auth header value (read from the
environment variable the config names, with and without its prefix) and the password of the
store URL — and :class:`Redactor` removes them, and their URL-encoded and base64 forms, from
any text. :class:`RedactingFilter` does the same to every log record of a process.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import make_url

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4
"""Shorter values are not secrets worth hiding (and replacing them would mangle ordinary text)."""


@dataclass(frozen=True)
class Redactor:
    """Replaces known secret values in text.

    Attributes
    ----------
    secrets : tuple of str
        The values to hide, longest first.
    """

    secrets: tuple[str, ...] = ()
    _pattern: re.Pattern | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        forms: set[str] = set()
        for value in self.secrets:
            if value and len(value) >= MIN_SECRET_CHARS:
                forms.update({value, quote(value, safe=""), quote_plus(value),
                              base64.b64encode(value.encode()).decode().rstrip("=")})
        ordered = sorted((f for f in forms if len(f) >= MIN_SECRET_CHARS), key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(f) for f in ordered)) if ordered else None
        object.__setattr__(self, "_pattern", pattern)

    def __call__(self, text: object) -> str:
        """``text`` with every secret replaced by ``[redacted]`` (None gives "")."""
        if text is None:
            return ""
        text = str(text)
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text

    def __bool__(self) -> bool:
        return self._pattern is not None


def secrets_of(config, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The secret values a :class:`monitoring.config.VantageConfig` can expose.

    Each service's ``[services.auth]`` value (the environment variable it names, alone and
    with its prefix) and the password of ``[store] url``.
    """
    environ = os.environ if environ is None else environ
    values: list[str] = [value for service in config.services for value in service_secrets(service, environ)]
    try:
        password = make_url(config.store.url).password
    except Exception:  # a malformed URL is reported by the store; it holds no password to hide here
        password = None
    if password:
        values.append(str(password))
    return tuple(dict.fromkeys(v for v in values if v))


def service_secrets(service, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The secret values one :class:`monitoring.config.ServiceConfig` sends: its auth header value, alone and
    with its prefix."""
    environ = os.environ if environ is None else environ
    auth = service.auth
    if auth is None or not environ.get(auth.env):
        return ()
    secret = environ[auth.env]
    return (secret, f"{auth.prefix}{secret}")


def redactor_for(config, environ: Mapping[str, str] | None = None) -> Redactor:
    """A :class:`Redactor` of :func:`secrets_of` ``config``."""
    return Redactor(secrets_of(config, environ))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's message and arguments (install it on handlers)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        if self.redactor:
            record.msg = self.redactor(record.getMessage())
            record.args = ()
            if record.exc_info:
                formatted = logging.Formatter().formatException(record.exc_info)
                record.exc_info = None
                record.exc_text = self.redactor(formatted)
        return True


def install_log_redaction(redactor: Redactor, loggers: Iterable[logging.Logger] | None = None) -> RedactingFilter:
    """Add a :class:`RedactingFilter` to every handler of ``loggers`` (the root logger's by default)."""
    log_filter = RedactingFilter(redactor)
    for logger in loggers or (logging.getLogger(),):
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(log_filter)
    return log_filter
