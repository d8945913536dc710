"""Which engine holds the prediction log, chosen by URL, as an Ibis backend and a table per service.

=====================================  =========================================================
URL                                    engine
=====================================  =========================================================
``duckdb:///abs/dir`` or               DuckDB, embedded, over the Parquet partitions of
``duckdb:relative/dir``                :class:`monitoring.partitions.PartitionedLog` under the
                                       directory (the default: ``duckdb:var/log``)
``spark://host:7077?path=/mnt/log``    Apache Spark: the same partitions under ``path`` (a
``spark:local[2]?path=/data/log``      directory on disk the cluster sees too; the configuration
                                       refuses an object-store path, :func:`monitoring.config.check_log_url`)
=====================================  =========================================================

The queries themselves are in :mod:`monitoring.log_queries`; nothing here knows a page.
"""

from __future__ import annotations

import copy
import functools
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from monitoring.partitions import PartitionedLog, Snapshot

if TYPE_CHECKING:
    import ibis.expr.types as ir

DEFAULT_LOG_URL = "duckdb:var/log"
SCHEMES = ("duckdb", "spark")
VANISHED_FILE_ATTEMPTS = 3
"""How often a read is tried on a new listing when a compaction deleted one of its files under it."""
DUCKDB_MEMORY_LIMIT = "384MB"
"""What the embedded engine may hold at once; sorts, joins and aggregates beyond it spill to a temporary file."""
_GONE = ("No such file", "No files found")
"""What DuckDB says when a file it was given is gone (when it opens it, or when it lists it)."""


def survives_compaction(read: Callable) -> Callable:
    """Run ``read`` again, on a new listing of the files, when one of them was deleted while it ran.

    A snapshot names the files of the moment; a compaction may merge and delete some of them before
    the engine opens them (most likely in a read of several queries, such as the label join). The
    merged file holds the same rows, so the read is only taken again, at most
    :data:`VANISHED_FILE_ATTEMPTS` times.
    """

    @functools.wraps(read)
    def again(*args, **kwargs):
        import duckdb  # on the first read, not when a writer imports the log

        for _ in range(VANISHED_FILE_ATTEMPTS - 1):
            try:
                return read(*args, **kwargs)
            except duckdb.IOException as exc:
                if not any(gone in str(exc) for gone in _GONE):
                    raise
        return read(*args, **kwargs)

    return again


class LogEngineError(ValueError):
    """A log URL that names no engine, or an engine that cannot be reached; the message says which."""


@dataclass(frozen=True)
class LogTable:
    """One service's table as the engine sees it now.

    Attributes
    ----------
    table : ibis Table or None
        None when the service has no readable file yet.
    problems : tuple of str
        Files left out, each named (see :class:`monitoring.partitions.Snapshot`).
    """

    table: ir.Table | None
    problems: tuple[str, ...]


class LogEngine:
    """An Ibis backend over a partitioned prediction log.

    Parameters
    ----------
    url : str
        See the module's table.
    base : Path, optional
        What relative directories are relative to (default: the working directory).
    """

    def __init__(self, url: str = DEFAULT_LOG_URL, *, base: Path | None = None):
        self.url = url
        parts = urlsplit(url)
        self.scheme = parts.scheme
        if self.scheme not in SCHEMES:
            raise LogEngineError(f"the prediction log URL {url!r} names no engine Vantage knows; use one of "
                                 "'duckdb:<directory>' or 'spark://<master>?path=<directory or object-store path>'")
        if self.scheme == "duckdb":
            path = Path(parts.path if parts.netloc == "" else parts.netloc + parts.path)
            self.location = str(path if path.is_absolute() or base is None else base / path)
            self.log = PartitionedLog(self.location)
        else:
            query = parse_qs(parts.query)
            if "path" not in query:
                raise LogEngineError(f"the Spark log URL {url!r} needs ?path=<where the partitions are>")
            self.location = query["path"][0]
            self.log = PartitionedLog(self.location) if "://" not in self.location else None
            self.master = (parts.netloc and f"spark://{parts.netloc}") or parts.path or "local[2]"
        self.backend = None
        self.session = None
        self.lock = threading.RLock()
        """Held around every use of the backend (a DuckDB connection serves one thread at a time)."""
        self._view_numbers = itertools.count(1)
        """Spark's temporary views are numbered by it (shared with the engines :meth:`over` makes)."""

    def connect(self):
        """The Ibis backend, started on first use: a Spark session takes seconds, and Ibis and DuckDB
        take longer to import than a writer (the collector, the capture proxy) needs to start.

        Raises
        ------
        LogEngineError
            Spark could not start or reach its master.
        """
        with self.lock:
            if self.backend is None and self.scheme == "duckdb":
                import ibis

                # bounded: a query that needs more spills to disk instead of growing the dashboard's process
                self.backend = ibis.duckdb.connect(memory_limit=DUCKDB_MEMORY_LIMIT, preserve_insertion_order=False,
                                                   temp_directory=str(Path(self.location) / ".spill"))
            elif self.backend is None:
                import ibis

                try:
                    from pyspark.sql import SparkSession
                    builder = (SparkSession.builder.master(self.master).appName("vantage")
                               .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC"))
                    if self.master.startswith("local"):  # a local session listens on the loopback only
                        builder = (builder.config("spark.driver.host", "127.0.0.1")
                                   .config("spark.driver.bindAddress", "127.0.0.1"))
                    self.session = builder.getOrCreate()
                except Exception as exc:  # a JVM that cannot start is a state to show, whatever it raised
                    raise LogEngineError(f"Spark at {self.master} could not be reached: {exc}") from exc
                self.backend = ibis.pyspark.connect(self.session)
            return self.backend

    def over(self, location: str | Path) -> LogEngine:
        """This engine over the partitions of another local directory (a staged prediction-log file,
        :mod:`monitoring.staged_log`), on the same connection and lock, so that tables of both join.

        Raises
        ------
        LogEngineError
            Spark could not start or reach its master.
        """
        self.connect()  # before the copy, so that both hold the one connection
        other = copy.copy(self)
        other.location = str(location)
        other.log = PartitionedLog(other.location)
        return other

    def table(self, service: str, table: str = "predictions", *, since: float | None = None,
              until: float | None = None, in_order: bool = False) -> LogTable:
        """One service's table, reading only the day partitions that overlap ``[since, until)``.

        ``in_order`` adds ``filename`` and ``file_row_number`` (DuckDB): the order rows were written
        in, which breaks ties between predictions made at the same time.
        """
        backend = self.connect()
        if self.log is not None:
            snapshot = self.log.snapshot(service, table, since=since, until=until)
        else:  # an object store: Spark lists it itself
            snapshot = Snapshot(files=(f"{self.location.rstrip('/')}/{service}/{table}",), problems=(), schema=None)
        if snapshot.empty:
            return LogTable(table=None, problems=snapshot.problems)
        with self.lock:
            if self.scheme == "duckdb":
                expression = backend.read_parquet(list(snapshot.files), union_by_name=True,
                                                  hive_partitioning=False, filename=in_order,
                                                  file_row_number=in_order)
            else:
                expression = self._spark_view(snapshot.files)
        return LogTable(table=expression, problems=snapshot.problems)

    def _spark_view(self, files: Sequence[str]) -> ir.Table:
        name = f"vantage_log_{next(self._view_numbers)}"
        self.session.read.option("mergeSchema", "true").parquet(*files).createOrReplaceTempView(name)
        return self.backend.table(name)

    def file_table(self, *paths: str | Path) -> ir.Table:
        """Parquet files of the engine's (staged labels, :mod:`monitoring.staged_labels`) as one table."""
        backend = self.connect()
        files = [str(path) for path in paths]
        with self.lock:
            if self.scheme == "duckdb":
                return backend.read_parquet(files[0] if len(files) == 1 else files)
            return self._spark_view(files)

    def table_of(self, files: list[str], *, with_file: bool = False) -> ir.Table:
        """A table over exactly these Parquet files (a DuckDB log's own); ``with_file`` adds a ``filename`` column."""
        backend = self.connect()
        with self.lock:
            return backend.read_parquet(list(files), union_by_name=True, hive_partitioning=False,
                                        filename=with_file)

    def execute(self, expression):
        """Run an Ibis expression on the backend (one at a time) and return its pandas result."""
        backend = self.connect()
        with self.lock:
            return backend.execute(expression)
