"""Shared helpers of the benchmark scripts: each owns one section of ``benchmarks/results.md``."""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().with_name("results.md")
HEADER = "# Benchmark results\n\nEach section is written by the script it names; rerun it to refresh that section.\n"


def machine() -> str:
    """One line describing this machine and the date."""
    cpu = platform.processor() or platform.machine()
    return f"{time.strftime('%Y-%m-%d')}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def markdown_table(rows: list[tuple], header: tuple) -> str:
    """Rows as a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(rows: list[tuple], header: tuple) -> None:
    """Rows as an aligned plain-text table on standard output."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


def write_section(name: str, body: str) -> None:
    """Replace (or add) the section ``name`` of ``benchmarks/results.md`` with ``body``."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    if not text.startswith("# Benchmark results"):
        text = HEADER
    start, end = f"<!-- section: {name} -->", f"<!-- end: {name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
