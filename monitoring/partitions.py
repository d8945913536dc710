"""The prediction log as append-only Parquet partitions: several writer processes, readers at any time.

Layout under the log's root directory::

    <service>/<table>/date=YYYY-MM-DD/part-<ns>-<pid>-<random>.parquet
    <service>/<table>/date=YYYY-MM-DD/compaction-<random>.json      (only while a compaction runs)

``table`` is ``predictions`` or ``labels``; the date is the UTC day of the rows' ``ts``.

* **Writers never share a file.** Each batch becomes a new file, written under a hidden
  temporary name and renamed into place, so a reader sees a whole file or none, and two
  writer processes (the collector, the template service, the capture proxy) can neither lose
  nor duplicate each other's rows.
* **Compaction** merges a partition's small files into one. It first writes a *tombstone*
  naming the files it replaces, then renames the merged file into place; the inputs and the
  tombstone are deleted by the *next* compaction (the collector's upkeep runs it every minute),
  so a reader that listed the inputs just before can still read them. A reader that sees the
  merged file and the tombstone ignores the inputs; a listing overtaken by a deletion is taken
  again (:meth:`PartitionedLog.snapshot`), and a read whose file is deleted while it runs is run
  again on a new listing (:func:`monitoring.log_engines.survives_compaction`), so no row is
  counted twice or missed.
* **Damaged files are skipped, with a message.** A truncated file or one whose column has a
  type the others do not share is left out of the snapshot, and the snapshot's ``problems``
  name the file and the column.
* **Retention** deletes whole day partitions older than the days to keep.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TABLES = ("predictions", "labels")
"""The tables a service's log holds."""
DAY_SECONDS = 86_400.0
COMPACT_MIN_FILES = 8
"""A partition is compacted once it holds this many files."""
_TOMBSTONE_PREFIX = "compaction-"


class PartitionError(ValueError):
    """A bad argument to the partitioned log; the message names it and what is accepted."""


@dataclass(frozen=True)
class Snapshot:
    """The files that make up one table of one service at one moment.

    Attributes
    ----------
    files : tuple of str
        Readable, consistent Parquet files, oldest partition first.
    problems : tuple of str
        One plain sentence per file left out (truncated, unreadable, a column of a type the
        other files do not share), naming the file and the column.
    schema : pyarrow.Schema or None
        The columns the files share (a column missing from some files is NULL there); None
        when there is no file.
    """

    files: tuple[str, ...]
    problems: tuple[str, ...]
    schema: pa.Schema | None

    @property
    def empty(self) -> bool:
        """Whether there is no readable file."""
        return not self.files


def _check_table(table: str) -> str:
    if table not in TABLES:
        raise PartitionError(f"table must be one of {list(TABLES)}; got {table!r}")
    return table


def _check_service(service: str) -> str:
    if not service or "/" in service or "\\" in service or service.startswith("."):
        raise PartitionError(f"a service name must be a non-empty name without '/' or a leading '.'; got {service!r}")
    return service


class PartitionedLog:
    """One directory of Parquet partitions, per service and table.

    Parameters
    ----------
    root : str or Path
        Created when missing.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def table_dir(self, service: str, table: str) -> Path:
        """The directory holding one service's table."""
        return self.root / _check_service(service) / _check_table(table)

    # -- writing ------------------------------------------------------------------------------------

    def append(self, service: str, table: str, frame: pd.DataFrame) -> int:
        """Add rows as new files (one per UTC day the rows fall in); returns the rows written.

        Parameters
        ----------
        service : str
        table : {"predictions", "labels"}
        frame : DataFrame
            With a ``ts`` column in Unix seconds (float). Rows without a finite ``ts`` are
            kept in the partition ``date=unknown``.

        Returns
        -------
        int

        Raises
        ------
        PartitionError
            No ``ts`` column.
        """
        if "ts" not in frame.columns:
            raise PartitionError(f"rows for {service!r}/{table} need a 'ts' column (Unix seconds); "
                                 f"they have {list(frame.columns)}")
        if frame.empty:
            return 0
        directory = self.table_dir(service, table)
        ts = pd.to_numeric(frame["ts"], errors="coerce").to_numpy(dtype=float)
        days = np.floor(ts / DAY_SECONDS)
        written = 0
        for day in pd.unique(days):
            rows = frame[np.isnan(days)] if np.isnan(day) else frame[days == day]
            name = "date=unknown" if np.isnan(day) else f"date={_day_text(day)}"
            self._write_file(directory / name, pa.Table.from_pandas(rows, preserve_index=False), "part")
            written += len(rows)
        return written

    @staticmethod
    def _write_file(partition: Path, table: pa.Table, prefix: str) -> Path:
        partition.mkdir(parents=True, exist_ok=True)
        name = f"{prefix}-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        temporary = _temporary(partition, name)
        pq.write_table(table, temporary, compression="zstd")
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.rename(temporary, partition / name)
        return partition / name

    # -- reading ------------------------------------------------------------------------------------

    def partitions(self, service: str, table: str) -> list[Path]:
        """Day partitions of a table, oldest first (``date=unknown`` last)."""
        directory = self.table_dir(service, table)
        if not directory.is_dir():
            return []
        return sorted((p for p in directory.iterdir() if p.is_dir() and p.name.startswith("date=")),
                      key=lambda p: (p.name == "date=unknown", p.name))

    def snapshot(self, service: str, table: str, *, since: float | None = None,
                 until: float | None = None, attempts: int = 5) -> Snapshot:
        """A consistent set of readable files of one table, optionally only the days overlapping a range.

        Parameters
        ----------
        service : str
        table : {"predictions", "labels"}
        since, until : float, optional
            Unix seconds: leave out day partitions wholly outside ``[since, until)``.
        attempts : int, default=5
            Listings to try when a compaction removes files while one is taken.

        Returns
        -------
        Snapshot
        """
        for _ in range(max(1, attempts)):
            files = self._live_files(service, table, since=since, until=until)
            if all(os.path.exists(path) for path in files):
                return _checked(files)
        return _checked([path for path in self._live_files(service, table, since=since, until=until)
                          if os.path.exists(path)])

    def _live_files(self, service: str, table: str, *, since: float | None, until: float | None) -> list[str]:
        live: list[str] = []
        for partition in self.partitions(service, table):
            if not _day_overlaps(partition.name, since, until):
                continue
            parquet = sorted(p.name for p in partition.iterdir() if p.suffix == ".parquet" and p.name[0] != ".")
            replaced: set[str] = set()
            for tombstone in sorted(partition.glob(f"{_TOMBSTONE_PREFIX}*.json")):  # listed after the files
                try:
                    manifest = json.loads(tombstone.read_text())
                except (OSError, ValueError):
                    continue
                if manifest.get("output") in parquet:
                    replaced.update(manifest.get("inputs", []))
                else:
                    replaced.add(manifest.get("output", ""))
            live.extend(str(partition / name) for name in parquet if name not in replaced)
        return live

    def total_bytes(self, service: str | None = None) -> int:
        """Bytes on disk of one service's log, or of the whole log."""
        base = self.root if service is None else self.root / _check_service(service)
        if not base.is_dir():
            return 0
        return sum(p.stat().st_size for p in base.rglob("*.parquet"))

    def services(self) -> list[str]:
        """Services with a log under the root."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    # -- compaction and retention -------------------------------------------------------------------

    def compact(self, service: str, table: str, *, min_files: int = COMPACT_MIN_FILES,
                batch_rows: int = 262_144) -> list[str]:
        """Merge each partition holding at least ``min_files`` files into one; returns the partitions merged.

        Rows are streamed in batches of ``batch_rows``, so memory does not grow with the
        partition. Files that cannot be read are left in place (the snapshot keeps naming
        them); the inputs of a merge are deleted by the next compaction, and one interrupted at
        any point leaves every row readable exactly once.
        """
        merged = []
        for partition in self.partitions(service, table):
            _recover(partition)
            snapshot = _checked(sorted(str(p) for p in partition.glob("*.parquet") if p.name[0] != "."))
            if len(snapshot.files) < max(2, min_files):
                continue
            self._merge(partition, snapshot, batch_rows)
            merged.append(partition.name)
        return merged

    def _merge(self, partition: Path, snapshot: Snapshot, batch_rows: int) -> None:
        token = uuid.uuid4().hex[:8]
        name = f"part-{time.time_ns():020d}-{os.getpid()}-{token}.parquet"
        temporary = _temporary(partition, name)
        schema = snapshot.schema
        with pq.ParquetWriter(temporary, schema, compression="zstd") as writer:
            for path in snapshot.files:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
                    writer.write_table(_conform(pa.Table.from_batches([batch]), schema))
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        inputs = [os.path.basename(path) for path in snapshot.files]
        tombstone = partition / f"{_TOMBSTONE_PREFIX}{token}.json"
        tombstone_temporary = _temporary(partition, tombstone.name)
        tombstone_temporary.write_text(json.dumps({"output": name, "inputs": inputs}))
        os.rename(tombstone_temporary, tombstone)
        os.rename(temporary, partition / name)
        # The inputs stay until the next compaction (_recover deletes them then): a reader that listed them
        # before the merged file appeared is still reading them now, and new listings already skip them.

    def apply_retention(self, service: str, *, keep_days: float, now: float) -> list[str]:
        """Delete the day partitions of a service that ended more than ``keep_days`` before ``now``.

        Parameters
        ----------
        service : str
        keep_days : float
            Positive.
        now : float
            Unix seconds (the caller's clock: nothing here reads one).

        Returns
        -------
        list of str
            ``table/date=…`` of each partition deleted.
        """
        if not keep_days > 0:
            raise PartitionError(f"keep_days must be a positive number of days; got {keep_days!r}")
        cutoff = now - keep_days * DAY_SECONDS
        deleted = []
        for table in TABLES:
            for partition in self.partitions(service, table):
                start = partition_start(partition.name)
                if start is not None and start + DAY_SECONDS <= cutoff:
                    shutil.rmtree(partition, ignore_errors=True)
                    deleted.append(f"{table}/{partition.name}")
        return deleted


def _day_text(day: float) -> str:
    return pd.Timestamp(day * DAY_SECONDS, unit="s", tz="UTC").strftime("%Y-%m-%d")


def partition_start(name: str) -> float | None:
    """Unix seconds of the UTC midnight a ``date=YYYY-MM-DD`` partition starts at; None for ``date=unknown``."""
    text = name.removeprefix("date=")
    if text == "unknown":
        return None
    try:
        return pd.Timestamp(text, tz="UTC").timestamp()
    except ValueError:
        return None


def _day_overlaps(name: str, since: float | None, until: float | None) -> bool:
    start = partition_start(name)
    if start is None:
        return since is None and until is None
    return (since is None or start + DAY_SECONDS > since) and (until is None or start < until)


def _recover(partition: Path) -> None:
    """Finish or undo a compaction that stopped half-way (its tombstone is still there)."""
    names = {p.name for p in partition.iterdir()}
    for tombstone in partition.glob(f"{_TOMBSTONE_PREFIX}*.json"):
        try:
            manifest = json.loads(tombstone.read_text())
        except (OSError, ValueError):
            tombstone.unlink(missing_ok=True)
            continue
        if manifest.get("output") in names:
            for input_name in manifest.get("inputs", []):
                (partition / input_name).unlink(missing_ok=True)
        tombstone.unlink(missing_ok=True)
    for leftover in partition.glob(".*.tmp"):
        if not _alive(_writer_pid(leftover)):  # a writer still at work keeps its file
            leftover.unlink(missing_ok=True)


def _temporary(partition: Path, name: str) -> Path:
    """Where ``name`` is written before it is renamed into place: hidden, and naming the writing process."""
    return partition / f".{name}.{os.getpid()}.tmp"


def _writer_pid(path: Path) -> int | None:
    try:
        return int(path.name.rsplit(".", 2)[-2])
    except (IndexError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _checked(paths: Iterable[str]) -> Snapshot:
    """Read each file's footer; leave out unreadable files and columns whose type disagrees with the others'."""
    schemas: dict[str, pa.Schema] = {}
    problems: list[str] = []
    for path in paths:
        try:
            schemas[path] = _footer(path)
        except (OSError, pa.ArrowException) as exc:
            problems.append(f"{path} was left out: it cannot be read as Parquet ({_first_line(exc)})")
    types = _majority_types(schemas.values())
    files = []
    for path, schema in schemas.items():
        wrong = [f"{field.name!r} is {field.type}, not {types[field.name]}" for field in schema
                 if not _compatible(field.type, types[field.name])]
        if wrong:
            problems.append(f"{path} was left out: column {'; '.join(wrong)} as in the other files")
        else:
            files.append(path)
    schema = pa.schema([pa.field(name, kind) for name, kind in types.items()]) if files else None
    return Snapshot(files=tuple(files), problems=tuple(problems), schema=schema)


_FOOTERS: dict[tuple[str, int, int], pa.Schema] = {}
_FOOTERS_SIZE = 65_536


def _footer(path: str) -> pa.Schema:
    """A file's schema, read once per file version: a listing on every page view reads no footer twice."""
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    schema = _FOOTERS.get(key)
    if schema is None:
        schema = pq.read_schema(path)
        if len(_FOOTERS) >= _FOOTERS_SIZE:
            _FOOTERS.pop(next(iter(_FOOTERS)))
        _FOOTERS[key] = schema
    return schema


def _majority_types(schemas: Iterable[pa.Schema]) -> dict[str, pa.DataType]:
    votes: dict[str, dict[str, tuple[pa.DataType, int]]] = {}
    for schema in schemas:
        for field in schema:
            kind = _widened(field.type)
            seen = votes.setdefault(field.name, {})
            previous = seen.get(str(kind), (kind, 0))
            seen[str(kind)] = (kind, previous[1] + 1)
    return {name: max(seen.values(), key=lambda pair: pair[1])[0] for name, seen in votes.items()}


def _widened(kind: pa.DataType) -> pa.DataType:
    """Integers and floats are one numeric type (a column all-integer in one batch is float in another)."""
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return pa.float64()
    if pa.types.is_large_string(kind) or pa.types.is_string(kind) or pa.types.is_null(kind):
        return pa.string() if not pa.types.is_null(kind) else pa.null()
    return kind


def _compatible(kind: pa.DataType, expected: pa.DataType) -> bool:
    widened = _widened(kind)
    return widened == expected or pa.types.is_null(widened) or pa.types.is_null(expected)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A batch with exactly the schema's columns and types (missing columns become NULL)."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table[field.name].cast(field.type))
        else:
            columns.append(pa.nulls(len(table), type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def log_columns(frame: pd.DataFrame, features: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Rows as the log stores them: ``ts`` a float, features numeric or text by their kind."""
    out = frame.copy()
    out["ts"] = pd.to_numeric(out["ts"], errors="coerce").astype(float)
    for name, kind in (features or {}).items():
        if name in out.columns:
            out[name] = (pd.to_numeric(out[name], errors="coerce").astype(float) if kind == "numeric"
                         else out[name].astype("string"))
    return out
