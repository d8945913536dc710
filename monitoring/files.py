"""Reading the data files a configuration names (reference, prediction log, labels), once and again when they change.

:func:`read_table_file` is the one preamble of every reader: the path checked, the reader chosen
by the file's suffix, the file found and read, each failure a message naming the file.
:class:`ChangedFile` keeps what was read from a file until the file's modification time or size
changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Generic, TypeVar

import pandas as pd

from monitoring.config import check_path

T = TypeVar("T")


def read_table_file(path: str | Path, *, what: str, readers: Mapping[str, Callable[[Path], pd.DataFrame]],
                    error: type[ValueError] = ValueError) -> pd.DataFrame:
    """Read a CSV, Parquet or JSON Lines file with the reader its suffix names.

    Parameters
    ----------
    path : str or Path
    what : str
        The file's role in messages, e.g. ``"reference file"``.
    readers : mapping of str to callable
        Reader per lower-case suffix (``".csv"``, ``".parquet"``, ...).
    error : type of ValueError, default=ValueError
        The exception raised (each data source has its own).

    Returns
    -------
    DataFrame
        As the reader returns it.

    Raises
    ------
    error
        For a path that cannot be a file's (empty, NUL bytes), an unsupported suffix, a missing
        file or one the reader cannot read; the message names the file.
    """
    if not isinstance(path, str | Path):
        raise error(f"{what} must be a path; got {type(path).__name__}")
    try:
        check_path(str(path))
    except ValueError as exc:
        raise error(f"{what} {str(path)!r} {exc}") from None
    file = Path(path)
    reader = readers.get(file.suffix.lower())
    if reader is None:
        raise error(f"{what} {file}: unsupported type {file.suffix!r}; accepted: {', '.join(readers)}")
    try:
        found = file.exists()
    except OSError as exc:  # a name too long for the file system, a loop of links...
        raise error(f"{what} {file} cannot be read: {exc}") from None
    if not found:
        raise error(f"{what} {file} does not exist")
    try:
        return reader(file)
    except Exception as exc:  # each reader raises its own family of errors
        raise error(f"{what} {file} cannot be read: {exc}") from None


class ChangedFile(Generic[T]):
    """What ``load()`` made of a file, made again only when the file's modification time or size changes.

    Parameters
    ----------
    path : str or Path
    load : callable
        Reads the file; its exceptions pass through (and nothing is kept).
    """

    def __init__(self, path: str | Path, load: Callable[[], T]):
        self.path = Path(path)
        self._load = load
        self._stamp: tuple[float, int] | None = None
        self._value: T | None = None
        self._loaded = False
        self._lock = threading.Lock()

    def get(self) -> T:
        """The loaded value, loading the file again if it changed (or cannot be stat'ed) since."""
        with self._lock:
            try:
                stat = self.path.stat()
                stamp: tuple[float, int] | None = (stat.st_mtime, stat.st_size)
            except (OSError, ValueError):
                stamp = None
            if not self._loaded or stamp is None or stamp != self._stamp:
                self._value = self._load()
                self._loaded, self._stamp = True, stamp
            return self._value
