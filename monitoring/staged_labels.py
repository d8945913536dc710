"""A label file placed where the prediction log is, typed once, so that the log's engine joins it.

A label file named in ``[services.labels]`` is read when it changes, typed by the in-memory
join's rules (:func:`monitoring.labels.typed_labels`) and written where the log's engine reads
it: a Parquet file under ``<log>/<service>/label-files/`` beside a Parquet log
(:func:`stage_label_file`), or an unlogged table of a PostgreSQL store
(:func:`stage_label_table`). The engine then joins the labels to the predictions as it joins
labels kept beside the log, and the log's rows never come into the dashboard's process. A
staged copy is named by the file's path, columns, size and modification time, so every process
finds the same copy and a changed file is staged again; the :data:`STAGED_COPIES` newest stay.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from monitoring.config import LabelsConfig
from monitoring.labels import TYPED_LABEL_COLUMNS, LabelDataError, read_label_file, typed_labels
from monitoring.store_schema import service_table_prefix

STAGED_COPIES = 3
"""Staged copies of one service's label file kept (a reader may still be reading an older one)."""

STAGED_TABLE_PREFIX = "staged__"
"""Tables of staged label files start with it (the migrations leave them alone)."""

_SQL_TYPES = {"filename": "text", "file_row_number": "bigint", "prediction_id": "text", "ts": "double precision",
              "label": "double precision", "shown": "text"}


def label_file_stamp(config: LabelsConfig) -> str:
    """A name for the label file as it is now: its path, the columns read from it, its size and modification time.

    Raises
    ------
    LabelDataError
        When the file cannot be read (its message says why).
    """
    path = Path(config.path)
    try:
        stat = path.stat()
    except (OSError, ValueError):
        read_label_file(config)  # says what is wrong with the file, in the words the in-memory join uses
        raise LabelDataError(f"label file {path} cannot be read") from None
    what = "\0".join([str(path.resolve()), config.id, config.label, config.ts or "", str(stat.st_size),
                      str(stat.st_mtime_ns)])
    return hashlib.sha1(what.encode()).hexdigest()[:16]


def _typed_file(config: LabelsConfig) -> pd.DataFrame:
    return typed_labels(read_label_file(config))


def stage_label_file(config: LabelsConfig, folder: str | Path) -> Path:
    """The label file typed (:func:`monitoring.labels.typed_labels`) as a Parquet file in ``folder``.

    Made when the file changed since it was last staged (by any process); the
    :data:`STAGED_COPIES` newest copies stay.

    Parameters
    ----------
    config : LabelsConfig
    folder : str or Path
        A local folder (created when missing).

    Returns
    -------
    Path
        The staged copy (columns :data:`monitoring.labels.TYPED_LABEL_COLUMNS`).

    Raises
    ------
    LabelDataError
        When the file cannot be read, or lacks a column.
    """
    folder = Path(folder)
    target = folder / f"{label_file_stamp(config)}.parquet"
    if target.exists():
        return target
    typed = _typed_file(config)
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f".{target.stem}-{uuid.uuid4().hex[:8]}.part"
    typed.to_parquet(part, index=False, compression="zstd")
    part.replace(target)  # a reader finds the whole copy or none
    copies = sorted(folder.glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in copies[STAGED_COPIES:]:
        if old != target:
            old.unlink(missing_ok=True)
    return target


def staged_table_prefix(service: str) -> str:
    """The name every staged label file of ``service`` starts with (within PostgreSQL's 63 characters)."""
    return service_table_prefix(STAGED_TABLE_PREFIX, service)


def stage_label_table(config: LabelsConfig, engine: sa.Engine, service: str) -> str:
    """The label file typed (:func:`monitoring.labels.typed_labels`) as a table of the store (PostgreSQL or SQLite).

    Loaded (with COPY, into an unlogged table, on PostgreSQL) when the file changed since it was
    last staged, by any process: one loads it while the others wait (an advisory lock on
    PostgreSQL, the database's write lock on SQLite); the :data:`STAGED_COPIES` newest tables stay.

    Parameters
    ----------
    config : LabelsConfig
    engine : sqlalchemy Engine
        The store's.
    service : str
        The log's name.

    Returns
    -------
    str
        The table's name.

    Raises
    ------
    LabelDataError
        When the file cannot be read, or lacks a column.
    """
    prefix = staged_table_prefix(service)
    name = f"{prefix}{label_file_stamp(config)}"
    sqlite = engine.dialect.name == "sqlite"
    exists = sa.text("SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = :name" if sqlite
                     else "SELECT to_regclass(:name) IS NOT NULL")
    found = {"name": name if sqlite else f'"{name}"'}
    with engine.connect() as conn:
        if conn.execute(exists, found).scalar():
            return name
    typed = _typed_file(config)[list(TYPED_LABEL_COLUMNS)]
    columns = ", ".join(f'"{c}" {_SQL_TYPES[c]}' for c in TYPED_LABEL_COLUMNS)
    with engine.begin() as conn:
        if sqlite:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock first, as the store's writes take it
        else:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
        if conn.execute(exists, found).scalar():
            return name
        conn.exec_driver_sql(f'CREATE {"" if sqlite else "UNLOGGED "}TABLE "{name}" ({columns})')
        if sqlite:
            conn.execute(sa.table(name, *(sa.column(c) for c in TYPED_LABEL_COLUMNS)).insert(),
                         typed.astype(object).where(typed.notna(), None).to_dict("records"))
        else:
            buffer = io.StringIO()
            typed.to_csv(buffer, index=False, header=False)
            cursor = conn.connection.driver_connection.cursor()
            with cursor.copy(f'COPY "{name}" FROM STDIN WITH (FORMAT csv)') as copy:
                copy.write(buffer.getvalue())
        conn.exec_driver_sql(f'ANALYZE "{name}"')
        older = conn.execute(sa.text(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, length(:prefix)) = :prefix "
            "AND name <> :name ORDER BY rowid DESC" if sqlite else
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND starts_with(relname, :prefix) AND relname <> :name "
            "ORDER BY oid DESC"), {"prefix": prefix, "name": name}).scalars().all()
        for old in older[STAGED_COPIES - 1:]:
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{old}"')
    return name


def staged_folder(location: str, service: str) -> Path | None:
    """Where a Parquet log at ``location`` keeps ``service``'s staged label files; None on an object store (each
    process then joins the file in memory)."""
    if "://" in location:
        return None
    return Path(location.rstrip("/") or "/") / service / "label-files"

