"""A label file placed where the prediction log is, typed once, so that the log's engine joins it.

A label file named in ``[services.labels]`` is read when it changes, typed by the in-memory
join's rules (:func:`monitoring.labels.typed_labels`) and written where the log's engine reads
it: a Parquet file under ``<log>/<service>/label-files/`` beside a Parquet log
(:func:`stage_label_file`), or a table of the store, unlogged on PostgreSQL
(:func:`stage_label_table`). The engine then joins the labels to the predictions as it joins
labels kept beside the log, and the log's rows never come into the dashboard's process. A
staged copy is named by the file's path, columns, size and modification time, so every process
finds the same copy and a changed file is staged again; the :data:`STAGED_COPIES` newest stay.

Labels an older Vantage kept in the store's ``labels`` table beside a Parquet log are copied the
same way, a chunk at a time and only those written since the last copy, under
``<log>/<service>/store-labels/`` (:func:`stage_store_labels`).
"""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from monitoring.config import LabelsConfig
from monitoring.labels import TYPED_LABEL_COLUMNS, LabelDataError, read_label_file, typed_labels
from monitoring.store_schema import labels as labels_table
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


STORE_LABEL_CHUNK = 250_000
"""Labels read from the store's table, and written, at a time when they are copied."""

STORE_LABEL_PARTS = 16
"""Copies of the store's labels made one after another (each of the labels new since the last) before they are
merged into one."""

_STORE_LABEL_SCHEMA = pa.schema([("filename", pa.string()), ("file_row_number", pa.int64()),
                                 ("prediction_id", pa.string()), ("ts", pa.float64()), ("label", pa.float64())])


def _store_label_parts(folder: Path) -> list[tuple[int, int, Path]]:
    """The copies in ``folder`` as ``(after, upto, path)``: each holds the rows of ids in ``(after, upto]``."""
    parts = []
    for path in folder.glob("store-*-*-*.parquet"):
        try:
            after, upto = (int(n) for n in path.stem.split("-")[1:3])
        except ValueError:
            continue
        parts.append((after, upto, path))
    return sorted(parts)


def stage_store_labels(store, service: str, folder: str | Path) -> list[Path]:
    """The labels an older Vantage kept in the store's ``labels`` table beside a Parquet log, copied as Parquet files
    in ``folder``, so that the log's engine joins them.

    Each call copies only the labels written since the last copy: a file
    ``store-<after>-<upto>-<rows>.parquet`` holds the ``rows`` labels of ids in ``(after, upto]``,
    written :data:`STORE_LABEL_CHUNK` rows at a time (memory does not grow with the labels), in
    the order they were written (``file_row_number`` is the row's id). Every process finds the
    same files. After :data:`STORE_LABEL_PARTS` copies, or when the files no longer hold every
    stored label (some were deleted), they are made again as one.

    Parameters
    ----------
    store : Store
    service : str
        The log's name.
    folder : str or Path
        A local folder (created when missing).

    Returns
    -------
    list of Path
        The files (``filename, file_row_number, prediction_id, ts, label``); empty when the store holds no label of
        the service.
    """
    t = labels_table
    mine = t.c.service == service
    folder = Path(folder)
    with store.engine.connect() as conn:
        newest = conn.execute(sa.select(sa.func.max(t.c.id)).where(mine)).scalar()
        if newest is None:
            return []
        parts = _store_label_parts(folder) if folder.is_dir() else []
        ends = [0, *(upto for _, upto, _ in parts)]
        chained = bool(parts) and all(after == ends[i] for i, (after, _, _) in enumerate(parts))
        held = sum(pq.ParquetFile(path).metadata.num_rows for _, _, path in parts) if chained else -1
        covered = parts[-1][1] if chained else 0
        whole = chained and held == conn.execute(sa.select(sa.func.count()).where(mine & (t.c.id <= covered))
                                                 ).scalar()
    if not whole or len(parts) >= STORE_LABEL_PARTS:
        covered, keep = 0, []
    else:
        keep = [path for _, _, path in parts]
    if newest > covered:
        keep.append(_copy_store_labels(store, mine, folder, after=covered, upto=int(newest)))
    for _, _, path in parts:  # a reader of the old files reads them again (monitoring.log_engines.survives_compaction)
        if path not in keep:
            path.unlink(missing_ok=True)
    return keep


def _copy_store_labels(store, mine, folder: Path, *, after: int, upto: int) -> Path:
    """The service's labels of ids in ``(after, upto]`` as ``store-<after>-<upto>-<rows>.parquet`` in ``folder``."""
    t = labels_table
    within = mine & (t.c.id <= upto)
    with store.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).where(within & (t.c.id > after))).scalar()
    target = folder / f"store-{after}-{upto}-{count}.parquet"  # the count tells a copy made again from an older one
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f".{target.stem}-{uuid.uuid4().hex[:8]}.part"
    last = after
    with pq.ParquetWriter(part, _STORE_LABEL_SCHEMA, compression="zstd") as writer, store.engine.connect() as conn:
        while True:
            rows = conn.execute(sa.select(t.c.id, t.c.prediction_id, t.c.ts, t.c.label)
                                .where(within & (t.c.id > last)).order_by(t.c.id).limit(STORE_LABEL_CHUNK)).all()
            if not rows:
                break
            ids, prediction_ids, ts, labels = zip(*rows, strict=True)
            writer.write_table(pa.table({
                "filename": [""] * len(rows), "file_row_number": list(ids),
                "prediction_id": [None if v is None else str(v) for v in prediction_ids],
                "ts": [None if v is None else float(v) for v in ts],
                "label": [None if v is None else float(v) for v in labels]}, schema=_STORE_LABEL_SCHEMA))
            last = ids[-1]
    part.replace(target)  # a reader finds the whole file or none
    return target


def store_labels_folder(location: str, service: str) -> Path:
    """Where the Parquet log at ``location`` (a directory on disk, as the log's writers need) keeps its copies of
    ``service``'s labels from the store's table."""
    return Path(location) / service / "store-labels"


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

