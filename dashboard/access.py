"""Who may see which page: the sign-in methods, password checks and the pages of each role.

Three ways in, chosen from the secrets (never from the configuration file):

* ``oidc``: an ``[auth]`` table in ``.streamlit/secrets.toml`` (Streamlit's ``st.login``,
  OpenID Connect); the identity is the e-mail the provider vouches for.
* ``password``: users with password hashes in ``[vantage.passwords]`` of the secrets
  (:func:`hash_password` makes one), or one ``admin`` user whose password is in the
  ``VANTAGE_PASSWORD`` environment variable. Checks take constant time, and every failed
  attempt for a name doubles the wait before the next answer (:func:`failure_delay`).
* ``none``: no sign-in configured. Everyone who reaches the dashboard is an admin, so it
  must listen on 127.0.0.1 only (:func:`is_loopback`); the app refuses to serve otherwise.

Roles come from ``[access]`` in the configuration (:class:`monitoring.config.AccessConfig`):
``viewer`` sees Overview and Service health; ``analyst`` every data page, those that send
traffic to the model included; ``admin`` the Services page (settings) too.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets as token_source
import threading
from collections.abc import Mapping
from dataclasses import dataclass

ROLES = ("viewer", "analyst", "admin")
"""From the least to the most trusted."""
PAGE_ROLES = {"overview": "viewer", "health": "viewer", "drift": "analyst", "performance": "analyst",
              "explain": "analyst", "segments": "analyst", "whatif": "analyst", "services": "admin"}
"""The least role that may open each page (by its URL path)."""
PASSWORD_VARIABLE = "VANTAGE_PASSWORD"
"""Environment variable holding the password of the single ``admin`` user (password sign-in without secrets)."""
HASH_SCHEME = "pbkdf2_sha256"
HASH_ITERATIONS = 600_000
MAX_FAILURE_DELAY_S = 8.0
LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Visitor:
    """Someone using the dashboard.

    Attributes
    ----------
    name : str
        The e-mail (OIDC), the user name (password), or ``"local"`` without sign-in.
    role : {"viewer", "analyst", "admin"}
    method : {"oidc", "password", "none"}
    """

    name: str
    role: str
    method: str

    def may_open(self, page: str) -> bool:
        """Whether this visitor may open the page with URL path ``page``."""
        return may_open(self.role, page)


def may_open(role: str, page: str) -> bool:
    """Whether ``role`` reaches the least role :data:`PAGE_ROLES` asks for ``page`` (unknown pages: admin)."""
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(PAGE_ROLES.get(page, "admin"))


def sign_in_method(secrets: Mapping, environ: Mapping[str, str] | None = None) -> str:
    """``"oidc"``, ``"password"`` or ``"none"``, from the secrets and the environment (see the module docstring)."""
    environ = os.environ if environ is None else environ
    if _has(secrets, "auth"):
        return "oidc"
    if password_hashes(secrets, environ):
        return "password"
    return "none"


def _has(mapping: Mapping, key: str) -> bool:
    try:
        return key in mapping
    except Exception:  # st.secrets raises when no secrets file exists at all
        return False


def password_hashes(secrets: Mapping, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """User name → password hash, from ``[vantage.passwords]`` and ``VANTAGE_PASSWORD`` (user ``admin``)."""
    environ = os.environ if environ is None else environ
    hashes: dict[str, str] = {}
    if _has(secrets, "vantage"):
        section = secrets["vantage"]
        if _has(section, "passwords"):
            hashes.update({str(user).lower(): str(value) for user, value in dict(section["passwords"]).items()})
    plain = environ.get(PASSWORD_VARIABLE)
    if plain:
        hashes.setdefault("admin", hash_password(plain, salt=b"vantage-environment"))
    return hashes


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = HASH_ITERATIONS) -> str:
    """``pbkdf2_sha256$<iterations>$<salt>$<hash>`` (base64), the form ``[vantage.passwords]`` takes.

    Run ``python -m dashboard.access`` to make one without the password entering a shell history.
    """
    if not password:
        raise ValueError("password must not be empty")
    salt = salt if salt is not None else token_source.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "$".join([HASH_SCHEME, str(iterations), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the ``stored`` hash; constant-time, False for a malformed hash."""
    try:
        scheme, iterations, salt, expected = stored.split("$")
        if scheme != HASH_SCHEME:
            return False
        digest = hashlib.pbkdf2_hmac("sha256", str(password).encode(), base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(digest, base64.b64decode(expected))
    except (ValueError, TypeError):
        return False


def failure_delay(failures: int) -> float:
    """Seconds to wait before answering after ``failures`` failed attempts: 0, 0.5, 1, 2, 4, then 8 at most."""
    return 0.0 if failures <= 0 else min(0.5 * 2 ** (failures - 1), MAX_FAILURE_DELAY_S)


class FailedAttempts:
    """Failed sign-ins per user name, shared by every session of the process (thread-safe)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, name: str) -> int:
        """Failures of ``name`` since its last success."""
        with self._lock:
            return self._counts.get(name.lower(), 0)

    def failed(self, name: str) -> None:
        """Count one failure of ``name``."""
        with self._lock:
            self._counts[name.lower()] = self._counts.get(name.lower(), 0) + 1

    def succeeded(self, name: str) -> None:
        """Forget the failures of ``name``."""
        with self._lock:
            self._counts.pop(name.lower(), None)


@functools.cache
def _decoy_hash() -> str:
    return hash_password(token_source.token_urlsafe(16), salt=b"vantage-decoy-salt")


def verify(name: str, password: str, hashes: Mapping[str, str]) -> bool:
    """Whether ``name`` and ``password`` match; an unknown name costs the same as a wrong password."""
    stored = hashes.get(name.strip().lower())
    matched = check_password(password, stored if stored is not None else _decoy_hash())
    return matched and stored is not None


def is_loopback(address: str | None) -> bool:
    """Whether the server's ``server.address`` accepts connections from this machine only."""
    return bool(address) and str(address).strip().strip("[]") in LOOPBACK_ADDRESSES


def main() -> None:
    """Print the hash of a password typed at the prompt, for ``[vantage.passwords]``."""
    import getpass

    password = getpass.getpass("Password to hash: ")
    print(hash_password(password))


if __name__ == "__main__":
    main()
