"""Shared parts of the benchmark scripts: sizes and flags, results sections, peers, the browser.

Every script in this folder is run two ways:

* **full size** (no flag): the sizes the figures in ``benchmarks/results.md`` are quoted at,
  with the peer libraries (NannyML, Evidently, explainerdashboard) side by side in the same
  run, each from its own venv built from ``benchmarks/peers/requirements-<name>.txt``. Such a
  run replaces the script's section of ``benchmarks/results.md``;
* **quick** (``--quick``): small sizes, seconds rather than minutes, peers skipped unless
  ``--with-peers`` is given. ``.ci/run`` runs every script this way after the tests, so a
  benchmark that no longer runs fails CI. A quick run never touches ``benchmarks/results.md``:
  it writes its section to the git-ignored ``var/bench/results-quick.md`` instead. So does any
  other partial run: ``--skip-peers`` (the section would lack the comparison) or a size option
  set to something else than its full value.

Each section starts with the line :func:`provenance` writes: the commit measured (with
``dirty`` when tracked or new files other than ``results.md`` differ from it), the date, the
machine and the peers' versions as installed in their venvs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.md"
QUICK_RESULTS = ROOT / "var" / "bench" / "results-quick.md"
HEADER = ("# Benchmark results\n\nEach section is written by the script it names at full size; rerun it to refresh "
          "that section. Quick runs (`--quick`, as in CI) write to `var/bench/results-quick.md` instead. The machine "
          "is shared (2 cores, other work running): where a section names a baseline (a bare library call or a peer), "
          "the ratio to it, measured side by side in the same run, is the figure to compare, not absolute times "
          "across sections or runs.\n")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync")

PEER_PACKAGES = {"nannyml": "NannyML", "evidently": "Evidently", "explainerdashboard": "explainerdashboard"}
"""Peer venv name → the distribution it is measured with (its display name is the same text)."""


# -- arguments --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    """One size option of a benchmark: its full-size and quick values.

    Parameters
    ----------
    full : int or float
        The value of a full-size run (what ``benchmarks/results.md`` quotes).
    quick : int or float
        The value under ``--quick``.
    help : str
        The option's help text.
    """

    full: int | float
    quick: int | float
    help: str = ""


def parse_args(doc: str, sizes: Mapping[str, Size], *, peers: bool = False,
               extra: Callable[[argparse.ArgumentParser], None] | None = None,
               argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a benchmark's command line: its sizes, ``--quick`` and the peer flags.

    Parameters
    ----------
    doc : str
        The script's docstring; its first line is the description.
    sizes : mapping of str to Size
        Size options by name (``"repeat"`` becomes ``--repeat``, typed like its full value);
        an option left out takes its quick value under ``--quick``, else its full value.
    peers : bool, default=False
        Whether the script compares with peer libraries (adds ``--skip-peers`` and ``--with-peers``).
    extra : callable, optional
        Called with the parser to add the script's own flags.
    argv : list of str, optional
        Arguments to parse instead of ``sys.argv[1:]``.

    Returns
    -------
    argparse.Namespace
        The sizes resolved, plus ``quick``, ``peers`` (whether to run the peers),
        ``has_peers`` and ``command`` (the command line, for the results section).
    """
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (seconds), peers skipped; writes var/bench/results-quick.md, "
                             "never benchmarks/results.md")
    if peers:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--skip-peers", action="store_true",
                           help="do not run the peer libraries (their venvs take minutes to build)")
        group.add_argument("--with-peers", action="store_true", help="run the peers under --quick too")
    for name, size in sizes.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=type(size.full), default=None,
                            help=f"{size.help} (full size {size.full:,}, quick {size.quick:,})".lstrip())
    if extra is not None:
        extra(parser)
    raw = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(raw)
    for name, size in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, size.quick if args.quick else size.full)
    args.has_peers = peers
    args.full_sizes = all(getattr(args, name) == size.full for name, size in sizes.items())
    args.peers = peers and not args.skip_peers and (args.with_peers or not args.quick)
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    args.command = " ".join(["python", str(shown), *map(shlex.quote, raw)])
    return args


def full_run(args: argparse.Namespace) -> bool:
    """Whether this run may replace its section of ``benchmarks/results.md``.

    Parameters
    ----------
    args : argparse.Namespace
        As returned by :func:`parse_args`.

    Returns
    -------
    bool
        True for a run without ``--quick``, every size at its full value, whose peers (if the
        script has any) ran.
    """
    return not args.quick and args.full_sizes and (args.peers or not args.has_peers)


# -- provenance -------------------------------------------------------------------------------------


def _git(*command: str) -> str:
    try:
        done = subprocess.run(["git", *command], capture_output=True, text=True, cwd=ROOT, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def commit() -> str:
    """The commit measured: ``git rev-parse --short HEAD``, with ``dirty`` when the tree differs.

    Returns
    -------
    str
        E.g. ``"85f7065"`` or ``"85f7065 (dirty: 2 files)"``; ``"unknown"`` outside a git checkout.
        ``benchmarks/results.md`` itself does not count, since the scripts write it.
    """
    head = _git("rev-parse", "--short", "HEAD").strip()
    if not head:
        return "unknown"
    changed = [line[3:] for line in _git("status", "--porcelain").splitlines()
               if line[3:] and line[3:].strip('"') != "benchmarks/results.md"]
    if not changed:
        return head
    print(f"note: measuring {head} with uncommitted changes in {', '.join(changed)}", file=sys.stderr)
    return f"{head} (dirty: {len(changed)} file{'s' if len(changed) > 1 else ''})"


def machine() -> str:
    """The date and this machine, in one phrase.

    Returns
    -------
    str
        E.g. ``"2026-11-27, x86_64, 2 cores, Python 3.11.7"``.
    """
    cpu = platform.processor() or platform.machine()
    return f"{time.strftime('%Y-%m-%d')}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def peer_python(name: str) -> Path:
    """The interpreter of a peer's venv, built on first use (minutes).

    Parameters
    ----------
    name : str
        The peer: the ``<name>`` of ``benchmarks/peers/requirements-<name>.txt``.

    Returns
    -------
    Path
        ``<venv>/bin/python`` (see ``tests.servers.ensure_venv``).
    """
    from tests.servers import ensure_venv

    return ensure_venv(name) / "bin" / "python"


def peer_version(name: str) -> str:
    """The version of peer ``name`` as installed in its venv.

    Parameters
    ----------
    name : str
        The peer: a key of :data:`PEER_PACKAGES`.

    Returns
    -------
    str
        E.g. ``"NannyML 0.13.1"``.
    """
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    done = subprocess.run([str(peer_python(name)), "-c", code], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"cannot read the {name} version from its venv: {done.stderr[-500:]}")
    return f"{PEER_PACKAGES[name]} {done.stdout.strip()}"


def provenance(args: argparse.Namespace, peers: list[str] | tuple[str, ...] = ()) -> str:
    """The line each results section starts with: command, commit, date, machine, peers.

    Parameters
    ----------
    args : argparse.Namespace
        As returned by :func:`parse_args`.
    peers : sequence of str
        Peer versions used in this run (from :func:`peer_version`); empty when none ran.

    Returns
    -------
    str
        One Markdown paragraph.
    """
    if peers:
        used = "; peers, each from its own venv (`benchmarks/peers/`): " + ", ".join(peers)
    elif args.has_peers:
        used = "; peers not run"
    else:
        used = "; no peer libraries"
    smoke = args.quick or not args.full_sizes
    size = " Not the full size: a smoke run, not comparable with the full-size figures." if smoke else ""
    return f"`{args.command}` on commit `{commit()}`, {machine()}{used}.{size}"


# -- results ----------------------------------------------------------------------------------------


def markdown_table(rows: list[tuple], header: tuple) -> str:
    """Rows as a Markdown table.

    Parameters
    ----------
    rows : list of tuple
        The cells, one tuple per row.
    header : tuple
        Column titles.

    Returns
    -------
    str
        The table, without a trailing newline.
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(rows: list[tuple], header: tuple) -> None:
    """Print rows as an aligned plain-text table on standard output.

    Parameters
    ----------
    rows : list of tuple
        The cells, one tuple per row.
    header : tuple
        Column titles.
    """
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)), flush=True)


def write_section(name: str, title: str, body: str, *, args: argparse.Namespace,
                  peers: list[str] | tuple[str, ...] = ()) -> Path:
    """Replace (or add) section ``name`` of the results file this run may write.

    Parameters
    ----------
    name : str
        The section's key (``<!-- section: name -->``).
    title : str
        Its Markdown heading, without ``##``.
    body : str
        Its text after the provenance line.
    args : argparse.Namespace
        As returned by :func:`parse_args`: :func:`full_run` picks ``benchmarks/results.md``,
        anything else ``var/bench/results-quick.md``.
    peers : sequence of str
        Peer versions used in this run, for the provenance line.

    Returns
    -------
    Path
        The file written.
    """
    import fcntl

    path = RESULTS if full_run(args) else QUICK_RESULTS
    path.parent.mkdir(parents=True, exist_ok=True)
    start, end = f"<!-- section: {name} -->", f"<!-- end: {name} -->"
    block = f"{start}\n## {title}\n\n{provenance(args, peers)}\n\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    # Two benchmarks finishing at once must not drop each other's section: read, replace and
    # write under one lock, and write through a temporary file so a reader never sees half a file.
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = path.read_text() if path.exists() else HEADER
        if not text.startswith("# Benchmark results"):
            text = HEADER
        text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text)
        temporary.replace(path)
    print(f"wrote the {name} section of {path.relative_to(ROOT)}", flush=True)
    return path


# -- servers and the browser ------------------------------------------------------------------------


RATIO_HEADER = ("seconds", "× baseline time", "peak memory", "× baseline memory")
"""The columns of :func:`ratio_rows`, after the first (what was measured)."""


def child_results(script: str | Path, modes: Mapping[str, str], *args: str,
                  before: Callable[[str], None] | None = None, timeout: float = 1_800) -> dict[str, dict]:
    """Run ``python script --child <mode> *args`` for each mode, each in a fresh interpreter (its own peak memory,
    nothing warm from another mode); return what each printed as JSON on its last line, by mode.

    ``before(mode)`` runs first for each mode (e.g. to delete what an earlier mode left to be found).
    """
    results = {}
    for mode in modes:
        if before is not None:
            before(mode)
        done = subprocess.run([sys.executable, str(script), "--child", mode, *args], check=True,
                              capture_output=True, text=True, timeout=timeout)
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def ratio_rows(modes: Mapping[str, str], results: Mapping[str, dict], *, baseline: str) -> list[tuple[str, ...]]:
    """One row per mode (its title from ``modes``): the ``seconds`` and ``peak_mb`` of ``results``, each with its
    ratio to the ``baseline`` mode's (columns :data:`RATIO_HEADER`)."""
    base = results[baseline]
    return [(modes[mode], f"{found['seconds']:.2f}", f"{found['seconds'] / base['seconds']:.2f}",
             f"{found['peak_mb']:,.0f} MB", f"{found['peak_mb'] / base['peak_mb']:.2f}")
            for mode, found in results.items()]


def wait_http(url: str, seconds: float) -> None:
    """Wait until ``url`` answers 200.

    Parameters
    ----------
    url : str
        The address to poll (on 127.0.0.1).
    seconds : float
        How long to wait.

    Raises
    ------
    RuntimeError
        When it has not answered in time.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {seconds:g} s")
        time.sleep(0.3)


@contextlib.contextmanager
def dashboard(config: Path, log: Path, *, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Run ``streamlit run dashboard/app.py`` on 127.0.0.1 with ``config``; stop it on exit.

    Parameters
    ----------
    config : Path
        The Vantage configuration (``VANTAGE_CONFIG``).
    log : Path
        Where the server's output goes.
    env : mapping, optional
        Extra environment variables.

    Yields
    ------
    str
        The dashboard's base URL, e.g. ``http://127.0.0.1:40123``.
    """
    from demo.runtime import free_port

    port = free_port()
    environment = {**os.environ, **(env or {}), "VANTAGE_CONFIG": str(config)}
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            stdout=output, stderr=subprocess.STDOUT, env=environment, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            try:
                wait_http(f"{url}/_stcore/health", 90)
            except RuntimeError:
                raise RuntimeError(f"the dashboard did not start: {log.read_text()[-2000:]}") from None
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(timeout=20)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (``playwright install`` is not used).

    Yields
    ------
    playwright.sync_api.Browser
        The browser; closed, with its Playwright driver, on exit.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()
