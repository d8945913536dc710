"""Plain helpers shared by several test modules (no fixtures: those live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
"""The dashboard's entry point, for ``AppTest.from_file``."""


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[str]:
    """Make ``folder`` and its files refuse every write, root's included; yield how.

    Root ignores permission bits, so as root the immutable flag (``chattr +i``) is set on the
    folder and the file: the kernel refuses to open the file for writing (EPERM) and to create the
    ``-wal`` and ``-shm`` files next to it, to root as to anyone. Without root, ``chmod`` does it.
    The test is skipped, with the reason, only where root has no immutable flag to set.
    """
    files = [folder, *folder.iterdir()]
    if os.geteuid() != 0:
        modes = {f: f.stat().st_mode for f in files}
        for f in files:
            f.chmod(0o555 if f.is_dir() else 0o444)
        try:
            yield "chmod a-w"
        finally:
            for f, mode in modes.items():
                f.chmod(mode)
        return
    if shutil.which("chattr") is None:
        pytest.skip("root ignores permissions and chattr is not installed")
    done = subprocess.run(["chattr", "+i", *map(str, files)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"root ignores permissions and the immutable flag is not available here: {done.stderr.strip()}")
    try:
        yield "chattr +i"
    finally:
        subprocess.run(["chattr", "-i", *map(str, files)], check=True)


def page_text(at) -> str:
    """What an AppTest page says: markdown, captions, alerts, subheaders and titles, one per line."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [str(e.value) for e in at.error]
    parts += [str(w.value) for w in at.warning] + [str(i.value) for i in at.info] + [str(s.value) for s in at.success]
    return "\n".join(parts + [s.value for s in at.subheader] + [t.value for t in at.title])


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, every: float = 0.1,
             details: Callable[[], str] | None = None):
    """Return the first truthy value (a non-empty frame) of ``condition()``, failing after ``timeout`` seconds.

    ``details`` gives text for the failure message (a collector's last log lines).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if (not value.empty) if isinstance(value, pd.DataFrame) else value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}" + (f"\n{details()}" if details else ""))
        time.sleep(every)
