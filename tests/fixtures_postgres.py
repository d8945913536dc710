"""A real PostgreSQL server for the tests: one per session, a fresh database per test.

The server is Debian's ``postgresql`` (``tests/install.sh`` installs it): ``initdb`` into a
temporary folder, started with ``pg_ctl``, listening on 127.0.0.1 on a free port and on a unix
socket in that folder only, stopped and removed at the end of the session. PostgreSQL refuses
to run as root: under root, ``initdb`` and ``pg_ctl`` run as the Debian ``postgres`` user
(``runuser -u postgres --``) and the folder belongs to it. Durability is switched off
(``fsync``, ``synchronous_commit``, ``full_page_writes``): the tests never survive a crash of the
machine, and ``CREATE DATABASE`` per test costs a few tens of milliseconds instead of a second.

Fixtures
--------
postgres
    The session's :class:`PostgresServer`.
postgres_url
    A fresh, empty database on it (``CREATE DATABASE`` per test), as a SQLAlchemy URL.
store_url
    Parametrized over ``["sqlite", "postgresql"]``: a SQLite file in the test's folder, or a
    fresh PostgreSQL database. A test that takes it runs once on each.
private_postgres
    A server of the test's own, for tests that stop and start it (the session's is never
    stopped under the other tests).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.collector_processes import free_port

SUPERUSER = "vantage"
"""The server's superuser (``initdb -U``); every local connection is trusted."""

STORE_BACKENDS = ("sqlite", "postgresql")
"""What :func:`store_url` is parametrized over."""


def postgres_bin_dir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on ``PATH``, else Debian's newest ``/usr/lib/postgresql/<v>/bin``."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda f: int(Path(f).parent.name)
                     if Path(f).parent.name.isdigit() else 0)
    for folder in reversed(folders):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


class PostgresServer:
    """One PostgreSQL server in its own folder, on 127.0.0.1 and a unix socket there.

    Parameters
    ----------
    bin_dir : Path
        Where ``initdb``, ``pg_ctl`` and ``postgres`` are.
    folder : Path
        An empty folder for the data directory, the socket and the log.
    """

    _names = itertools.count()

    def __init__(self, bin_dir: Path, folder: Path):
        self.bin_dir = bin_dir
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "server.log"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync",
                  "--no-instructions")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
                               f"\n{self.log.read_text() if self.log.exists() else ''}")
        return result

    @property
    def running(self) -> bool:
        """Whether ``pg_ctl status`` finds the server running."""
        return self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    def start(self) -> None:
        """Start the server and wait until it takes connections."""
        options = " ".join([
            "-c listen_addresses=127.0.0.1", f"-c port={self.port}", f"-c unix_socket_directories={self.folder}",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off", "-c max_connections=300",
        ])
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log), "-o", options)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``pg_ctl stop -m <mode>``), when it runs."""
        if self.running:
            self._run("pg_ctl", "stop", "-w", "-t", "60", "-D", str(self.data), "-m", mode)

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` on this server, through TCP on 127.0.0.1."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        """Run one statement outside a transaction (``CREATE DATABASE`` needs that) as the superuser."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def create_database(self) -> str:
        """Create a new empty database; return its name."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing whatever connections a test left open."""
        with contextlib.suppress(Exception):
            self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A running :class:`PostgresServer` in a new temporary folder, stopped and removed afterwards.

    Fails (it does not skip) when PostgreSQL is not installed: ``tests/install.sh`` installs it.
    """
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.fail("PostgreSQL is not installed (no initdb / pg_ctl on PATH nor in /usr/lib/postgresql/*/bin): "
                    "run tests/install.sh")
    # Not under pytest's tmp_path: its parents are private to root, and the server may run as postgres.
    folder = Path(tempfile.mkdtemp(prefix="vantage-pg-"))
    server = None
    try:
        server = PostgresServer(bin_dir, folder)
        server.start()
        yield server
    finally:
        if server is not None:
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started on first use)."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this test alone, which it may stop and start."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database on the session's server, dropped after the test."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request, tmp_path) -> str:
    """The URL of an empty store: a SQLite file in ``tmp_path``, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


def wait_until_reachable(server: PostgresServer, *, timeout: float = 30.0) -> None:
    """Wait until ``server`` takes connections on 127.0.0.1."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.execute("SELECT 1")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
