"""Ibis's SQLite backend taught the few operations the log's queries use that SQLite lacks.

A SQLite store's prediction log is counted by SQLite itself (:mod:`monitoring.store_log`), with
the same Ibis queries as DuckDB, Spark and PostgreSQL. SQLite has no NaN (a NaN written to it is
stored as NULL), no ``hash``, no median and no quantiles; this module's backend gives it:

* ``isnan(x)``: FALSE (the queries always test ``x IS NOT NULL`` beside it);
* ``hash(text)``: 64 bits of BLAKE2b, as a function of the connection;
* ``median(x)``: an aggregate of the connection holding the group's values (the queries take the
  median of the label delays only);
* quantiles, by :func:`quantiles`: one sorted pass with row numbers instead of an aggregate.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Sequence
from typing import ClassVar

import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir
import sqlglot.expressions as sge
from ibis.backends.sql.compilers.sqlite import SQLiteCompiler
from ibis.backends.sqlite import Backend as SQLiteBackend


def text_hash(value: str | None) -> int | None:
    """``hash(text)`` for SQLite: 64 bits of BLAKE2b, signed as SQLite's integers are."""
    if value is None:
        return None
    return int.from_bytes(hashlib.blake2b(str(value).encode(), digest_size=8).digest(), "big", signed=True)


class _Median:
    """``median(x)`` for SQLite (NULLs left out, as every engine's median does)."""

    def __init__(self):
        self.values: list[float] = []

    def step(self, value) -> None:
        if value is not None:
            self.values.append(float(value))

    def finalize(self) -> float | None:
        return statistics.median(self.values) if self.values else None


class _Compiler(SQLiteCompiler):
    UNSUPPORTED_OPS = tuple(op for op in SQLiteCompiler.UNSUPPORTED_OPS if op not in (ops.IsNan, ops.Median))
    SIMPLE_OPS: ClassVar[dict] = {**SQLiteCompiler.SIMPLE_OPS, ops.Median: "vantage_median"}

    def visit_IsNan(self, op, *, arg):  # noqa: N802 - the name Ibis's compilers dispatch on
        del op, arg
        return sge.false()


class VantageSQLite(SQLiteBackend):
    """Ibis's SQLite backend with :class:`_Compiler` and the connection's functions (see the module)."""

    compiler = _Compiler()

    def do_connect(self, database=None, type_map=None) -> None:
        """Connect as Ibis's SQLite backend does, usable from any thread, then add ``hash`` and ``vantage_median``.

        The dashboard asks from its sessions' threads; :class:`monitoring.store_log.StoreLogEngine`'s lock lets
        one use the connection at a time.
        """
        import sqlite3

        self.con = sqlite3.connect(":memory:" if database is None else database, check_same_thread=False)
        self._post_connect(type_map)
        self.con.create_function("hash", 1, text_hash, deterministic=True)
        self.con.create_aggregate("vantage_median", 1, _Median)


def connect(path: str, *, busy_timeout: float) -> VantageSQLite:
    """The SQLite file at ``path`` as an Ibis backend (waiting ``busy_timeout`` seconds for a writer's lock)."""
    backend = VantageSQLite()
    backend.do_connect(database=path)
    backend.con.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    return backend


def quantiles(backend, values: ir.Table, levels: Sequence[float]) -> list[float]:
    """The ``levels`` quantiles of ``values.value`` (no NULL), interpolated linearly between the two nearest values
    as the other engines' ``quantile`` and numpy's default do, in one sorted pass (SQLite has no quantile)."""
    counted = int(backend.execute(values.count()))
    if counted == 0:
        return [math.nan] * len(levels)
    positions = [level * (counted - 1) for level in levels]
    wanted = sorted({math.floor(p) for p in positions} | {math.ceil(p) for p in positions})
    ranked = values.mutate(rank=ibis.row_number().over(order_by=values.value))  # from 0, as the positions
    found = backend.execute(ranked.filter(ranked["rank"].isin(wanted)).select("rank", "value"))
    at = dict(zip(found["rank"].astype(int), found["value"].astype(float), strict=True))
    return [at[math.floor(p)] + (at[math.ceil(p)] - at[math.floor(p)]) * (p - math.floor(p)) for p in positions]
