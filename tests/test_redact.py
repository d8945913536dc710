"""Secrets are redacted from text and logs, in every form a service may echo them."""

import base64
import logging
from urllib.parse import quote

from monitoring.config import parse_config
from monitoring.redact import REDACTED, Redactor, install_log_redaction, redactor_for, secrets_of

CONFIG = """
[store]
url = "postgresql+psycopg://vantage:st0re-pa55@db.internal/vantage"

[[services]]
name = "credit"
url = "http://127.0.0.1:8080"
protocol = "rest"

[services.auth]
env = "CREDIT_TOKEN"
prefix = "Bearer "
"""


def test_the_configured_secrets_are_found_and_hidden_in_every_form(tmp_path):
    config = parse_config(CONFIG, source="test.toml", base_dir=tmp_path)
    environ = {"CREDIT_TOKEN": "tok-3f9a/+secret"}
    assert secrets_of(config, environ) == ("tok-3f9a/+secret", "Bearer tok-3f9a/+secret", "st0re-pa55")
    redact = redactor_for(config, environ)
    token = environ["CREDIT_TOKEN"]
    echoed = (f"401: invalid header Authorization: Bearer {token}; as sent {quote(token, safe='')}; "
              f"basic {base64.b64encode(token.encode()).decode()}; store st0re-pa55")
    cleaned = redact(echoed)
    assert token not in cleaned and quote(token, safe="") not in cleaned and "st0re-pa55" not in cleaned
    assert base64.b64encode(token.encode()).decode().rstrip("=") not in cleaned
    assert cleaned.count(REDACTED) == 4
    assert redact(None) == "" and redact("nothing secret here") == "nothing secret here"
    assert not Redactor(()) and Redactor(("abc",))("abc") == "abc"  # too short to be a secret worth hiding


def test_log_records_are_redacted_with_their_arguments_and_tracebacks(caplog):
    redact = Redactor(("hunter2-token",))
    logger = logging.getLogger("vantage-test-redact")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    install_log_redaction(redact, loggers=[logger])
    captured = []
    handler.emit = lambda record: captured.append((record.getMessage(), record.exc_text))
    try:
        raise RuntimeError("server said hunter2-token")
    except RuntimeError:
        logger.exception("call failed with %s", "hunter2-token")
    logger.removeHandler(handler)
    message, traceback_text = captured[0]
    assert "hunter2-token" not in message and "hunter2-token" not in traceback_text
    assert REDACTED in message and REDACTED in traceback_text
