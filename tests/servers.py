"""Real prediction servers for the integration tests: MLflow's scoring server, Seldon MLServer and KServe.

A pytest plugin (``pytest_plugins = ["tests.servers"]``, or ``-p tests.servers``). Each server runs
from its own virtual environment, built once from the exact pins in
``tests/servers/requirements-<name>.txt`` and reused by later runs:

- venvs live under ``${VANTAGE_VENV_CACHE:-~/.cache/vantage/venvs}/<name>-<12 hex digits of the
  sha256 of the requirements file>``; a build goes into a temporary directory that is renamed into
  place only when it has succeeded, so a failed build is never reused; a file lock keeps two
  pytest processes from building the same venv at once;
- the model each server serves is trained by ``tests/servers/train_model.py`` with the server
  venv's own interpreter (so the pickles match its scikit-learn) and cached next to the venv,
  keyed by the same hash and by the training script's hash, together with the predictions and
  probabilities it gives the sample rows there (``expected.json``): the tests compare the
  clients' answers with these known ones.

Session-scoped fixtures ``mlflow_server`` and ``mlserver_server`` start the servers on free
127.0.0.1 ports and yield a :class:`ModelServer`. Two more serve the shapes teams run, trained on
scikit-learn's bundled data by ``tests/servers/train_public_models.py`` (with a reference file):
``kserve_server``, KServe's Python ``ModelServer`` (``tests/servers/kserve_model.py``, KServe's
sklearn runtime with ``predict_proba``) serving a RandomForest on the wine data (13 features,
3 classes), and ``mlserver_wide_server``, MLServer serving a GradientBoosting model of the breast
cancer data (30 numeric features, binary). To build the venvs and models ahead of a test run (in
CI, to show the slow step on its own)::

    python -m tests.servers mlflow mlserver kserve
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

VENV_CACHE_ENV = "VANTAGE_VENV_CACHE"
SERVERS_DIR = Path(__file__).with_name("servers")
PEERS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "peers"
"""Pinned requirements of the peer libraries the benchmarks compare against (each in its own venv)."""
REQUIREMENTS_DIRS = (SERVERS_DIR, PEERS_DIR)
TRAIN_SCRIPT = SERVERS_DIR / "train_model.py"
PUBLIC_MODELS_SCRIPT = SERVERS_DIR / "train_public_models.py"
KSERVE_SCRIPT = SERVERS_DIR / "kserve_model.py"
SERVER_NAMES = ("mlflow", "mlserver", "kserve")
PUBLIC_MODELS = {"mlserver": ("breast_cancer",), "kserve": ("wine",)}
"""Models of scikit-learn's bundled data each server venv trains besides ``train_model.py``'s."""

BUILD_TIMEOUT_S = 1800.0
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0
LOCK_TIMEOUT_S = 2400.0
_PROGRESS_EVERY_S = 30.0
_COMPLETE_MARKER = ".vantage-venv-complete"

# What MLServer 1.7 exposes on its metrics port (``/metrics``), as seen in its real output.
# The v2 health endpoints are excluded from the REST series.
MLSERVER_METRICS = {
    "requests": "rest_server_requests",  # counter; labels app_name, method, path (route template), status_code
    "latency": "rest_server_request_duration_seconds",  # histogram; same labels
    "in_progress": "rest_server_requests_in_progress",  # gauge; labels app_name, method
    "infer_success": "model_infer_request_success",  # counter; labels model, version
    "infer_failure": "model_infer_request_failure",  # counter; labels model, version
    "infer_duration": "model_infer_request_duration",  # summary (count and sum only)
    "status_label": "status_code",
    "path_label": "path",
}

_config: pytest.Config | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Remember the pytest config so progress can be printed past output capturing."""
    global _config
    _config = config


def _report(message: str) -> None:
    """Print a progress line on the terminal, even while pytest captures output."""
    line = f"[vantage servers] {message}"
    capture = _config.pluginmanager.getplugin("capturemanager") if _config is not None else None
    context = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
    with context:
        print(line, file=sys.stderr, flush=True)


# -- virtual environments --------------------------------------------------------------------


def venv_cache_dir() -> Path:
    """Return the directory that holds the server venvs and trained models.

    Returns
    -------
    Path
        ``$VANTAGE_VENV_CACHE`` when set, else ``~/.cache/vantage/venvs``.
    """
    configured = os.environ.get(VENV_CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "vantage" / "venvs"


def requirements_file(name: str) -> Path:
    """Return the pinned requirements of server (or benchmark peer) ``name``.

    Parameters
    ----------
    name : str
        Server name, e.g. ``"mlflow"``, or a benchmark peer, e.g. ``"nannyml"``.

    Returns
    -------
    Path
        ``tests/servers/requirements-<name>.txt`` or ``benchmarks/peers/requirements-<name>.txt``.

    Raises
    ------
    ValueError
        When there is no such file; the message lists the known names.
    """
    for folder in REQUIREMENTS_DIRS:
        path = folder / f"requirements-{name}.txt"
        if path.is_file():
            return path
    known = sorted(p.stem.removeprefix("requirements-") for folder in REQUIREMENTS_DIRS
                   for p in folder.glob("requirements-*.txt"))
    raise ValueError(f"no requirements file for {name!r}; known: {', '.join(known)}")


def _digest(*paths: Path, length: int = 12) -> str:
    sha = hashlib.sha256()
    for path in paths:
        sha.update(path.read_bytes())
    return sha.hexdigest()[:length]


def venv_path(name: str) -> Path:
    """Return where the venv of server ``name`` lives (whether built yet or not).

    Parameters
    ----------
    name : str
        Server name: the ``<name>`` in ``tests/servers/requirements-<name>.txt``.

    Returns
    -------
    Path
        ``<cache>/<name>-<first 12 hex digits of the requirements file's sha256>``.
    """
    return venv_cache_dir() / f"{name}-{_digest(requirements_file(name))}"


@contextlib.contextmanager
def _file_lock(path: Path, *, what: str, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; wait (and say so) while another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout
        waiting_said = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting_said:
                    _report(f"waiting for another process building {what} (lock {path})")
                    waiting_said = True
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gave up waiting {timeout:g} s for the lock {path} ({what})") from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(log {path} unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _run_logged(command: Sequence[str | os.PathLike], *, log_path: Path, what: str,
                timeout: float = BUILD_TIMEOUT_S, env: dict[str, str] | None = None) -> None:
    """Run ``command`` with output appended to ``log_path``; report progress; raise with the log tail."""
    started = time.monotonic()
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(map(str, command))}\n".encode())
        log.flush()
        process = subprocess.Popen([str(c) for c in command], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env)
        next_report = started + _PROGRESS_EVERY_S
        while process.poll() is None:
            now = time.monotonic()
            if now - started > timeout:
                process.kill()
                process.wait()
                raise RuntimeError(f"{what} took more than {timeout:g} s; last lines of {log_path}:\n"
                                   f"{_tail(log_path)}")
            if now >= next_report:
                last = _tail(log_path, 1).strip()
                _report(f"  still {what} ({now - started:.0f} s): {last[:150]}")
                next_report = now + _PROGRESS_EVERY_S
            time.sleep(0.5)
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed (exit code {process.returncode}); last lines of {log_path}:\n"
                           f"{_tail(log_path)}")


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _venv_usable(venv: Path) -> bool:
    if not (venv / _COMPLETE_MARKER).is_file():
        return False
    try:
        check = subprocess.run([str(_venv_python(venv)), "-c", "import sys"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return check.returncode == 0


def _relocate_scripts(venv: Path, old: Path, new: Path) -> None:
    """Point the venv's scripts (shebangs, activate files) at ``new`` before it is renamed there."""
    replacements = [(str(old).encode(), str(new).encode()), (old.name.encode(), new.name.encode())]
    candidates = [venv / "pyvenv.cfg", *(venv / "bin").iterdir()]
    for path in candidates:
        if path.is_symlink() or not path.is_file():
            continue
        content = original = path.read_bytes()
        for before, after in replacements:  # full paths first, then the name (activate's prompt)
            content = content.replace(before, after)
        if content != original:
            path.write_bytes(content)


def _remove_leftovers(final: Path) -> None:
    """Delete half-built directories of ``final`` left by a killed process (call with the lock held)."""
    for leftover in final.parent.glob(f".{final.name}.building-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def ensure_venv(name: str) -> Path:
    """Build the venv of server ``name`` unless a complete one is cached; return its path.

    Parameters
    ----------
    name : str
        Server name: the ``<name>`` in ``tests/servers/requirements-<name>.txt``.

    Returns
    -------
    Path
        The venv directory (see :func:`venv_path`).

    Raises
    ------
    RuntimeError
        When ``python -m venv`` or ``pip install`` fails; the message holds the end of the log.
    """
    requirements = requirements_file(name)
    final = venv_path(name)
    if _venv_usable(final):
        return final
    cache = final.parent
    with _file_lock(cache / f"{final.name}.lock", what=f"the {name} venv"):
        if _venv_usable(final):  # another process built it while we waited
            return final
        if final.exists():
            _report(f"removing the unusable venv {final}")
            shutil.rmtree(final)
        _remove_leftovers(final)
        log_path = cache / f"{final.name}.log"
        log_path.write_text("")
        building = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=cache))
        building.chmod(0o755)
        started = time.monotonic()
        _report(f"building the {name} venv from {requirements.name} into {final} (takes minutes; log {log_path})")
        try:
            _run_logged([sys.executable, "-m", "venv", building], log_path=log_path, what=f"creating the {name} venv")
            _run_logged(
                [_venv_python(building), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
                 "--progress-bar", "off", "-r", requirements],
                log_path=log_path, what=f"installing the {name} requirements",
            )
            _relocate_scripts(building, building, final)
            (building / _COMPLETE_MARKER).write_text(requirements.read_text())
            os.rename(building, final)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        _report(f"built the {name} venv in {time.monotonic() - started:.0f} s")
    return final


def ensure_model(name: str) -> Path:
    """Train the test model in server ``name``'s venv unless it is cached; return its directory.

    Parameters
    ----------
    name : {"mlflow", "mlserver"}
        Which server the model is for; also the ``--flavor`` given to ``train_model.py``.

    Returns
    -------
    Path
        A directory with the model (``model/`` for MLflow, ``model.joblib`` for MLServer) and
        ``expected.json``.
    """
    venv = ensure_venv(name)
    final = venv.with_name(f"{venv.name}-model-{_digest(TRAIN_SCRIPT, length=8)}")
    if (final / "expected.json").is_file():
        return final
    with _file_lock(final.with_name(f"{final.name}.lock"), what=f"the {name} model"):
        if (final / "expected.json").is_file():
            return final
        if final.exists():
            shutil.rmtree(final)
        _remove_leftovers(final)
        building = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=final.parent))
        building.chmod(0o755)
        log_path = final.with_name(f"{final.name}.log")
        log_path.write_text("")
        _report(f"training the {name} test model into {final}")
        try:
            _run_logged([_venv_python(venv), "-W", "ignore", TRAIN_SCRIPT, "--flavor", name, "--out", building],
                        log_path=log_path, what=f"training the {name} model", timeout=600, env=_server_env(venv))
            os.rename(building, final)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    return final


def ensure_public_model(name: str, shape: str) -> Path:
    """Train a model of scikit-learn's bundled ``shape`` data in server ``name``'s venv unless cached.

    Parameters
    ----------
    name : {"mlserver", "kserve"}
        The server whose venv trains (and later loads) the model.
    shape : {"wine", "breast_cancer"}
        See ``tests/servers/train_public_models.py``.

    Returns
    -------
    Path
        A directory with ``model.joblib``, ``reference.csv`` (features and ``target``) and ``expected.json``.
    """
    venv = ensure_venv(name)
    final = venv.with_name(f"{venv.name}-{shape}-{_digest(PUBLIC_MODELS_SCRIPT, length=8)}")
    if (final / "expected.json").is_file():
        return final
    with _file_lock(final.with_name(f"{final.name}.lock"), what=f"the {name} {shape} model"):
        if (final / "expected.json").is_file():
            return final
        if final.exists():
            shutil.rmtree(final)
        _remove_leftovers(final)
        building = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=final.parent))
        building.chmod(0o755)
        log_path = final.with_name(f"{final.name}.log")
        log_path.write_text("")
        _report(f"training the {name} {shape} model into {final}")
        try:
            _run_logged([_venv_python(venv), "-W", "ignore", PUBLIC_MODELS_SCRIPT, "--shape", shape, "--server", name,
                         "--out", building], log_path=log_path, what=f"training the {name} {shape} model",
                        timeout=600, env=_server_env(venv))
            os.rename(building, final)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    return final


def prepare(name: str) -> list[Path]:
    """Build server ``name``'s venv and train every model it serves in the tests; return the model folders."""
    models = [] if name == "kserve" else [ensure_model(name)]
    return models + [ensure_public_model(name, shape) for shape in PUBLIC_MODELS.get(name, ())]


# -- server processes ------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now.

    Returns
    -------
    int
    """
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Return distinct TCP ports on 127.0.0.1 that nothing listens on right now.

    Parameters
    ----------
    count : int
        How many ports.

    Returns
    -------
    list of int
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _server_env(venv: Path | None) -> dict[str, str]:
    """The test process's environment, cleaned of what would leak into a server's interpreter."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith(("MLSERVER_", "MLFLOW_"))}
    env["PYTHONUNBUFFERED"] = "1"
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass
class ServerProcess:
    """A server started by :func:`server_process`.

    Attributes
    ----------
    name : str
        What the server is, for messages.
    url : str
        ``http://127.0.0.1:<port>``.
    port : int
        The port it listens on.
    process : subprocess.Popen
        The process (leader of its own process group).
    log_path : Path
        Where its stdout and stderr go.
    """

    name: str
    url: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the server's log."""
        return _tail(self.log_path, lines)


def _wait_healthy(server: ServerProcess, health_url: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    last_problem = "no answer yet"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 never goes via a proxy
    while True:
        code = server.process.poll()
        if code is not None:
            raise RuntimeError(f"{server.name} exited with code {code} before {health_url} answered; "
                               f"last lines of {server.log_path}:\n{server.log_tail()}")
        try:
            with opener.open(health_url, timeout=2) as response:
                if 200 <= response.status < 300:
                    return
                last_problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last_problem = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last_problem = str(getattr(exc, "reason", exc))
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not answer {health_url} within {deadline_s:g} s "
                               f"(last: {last_problem}); last lines of {server.log_path}:\n{server.log_tail()}")
        time.sleep(0.25)


def _stop(process: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    """Terminate the process group of ``process``; kill it after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    # Children may outlive a leader that exited on SIGTERM: kill whatever is left of the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)


@contextlib.contextmanager
def server_process(name: str, command: Callable[[int], Sequence[str | os.PathLike]], *, health_path: str,
                   log_path: Path, venv: Path | None = None, cwd: Path | None = None,
                   port: int | None = None, startup_timeout: float = START_TIMEOUT_S) -> Iterator[ServerProcess]:
    """Start a server in its own process group, wait until it is healthy, always stop it.

    Parameters
    ----------
    name : str
        What the server is, for messages.
    command : callable
        Called with the port to listen on; returns the command line.
    health_path : str
        Path that answers 2xx once the server is up, e.g. ``"/ping"``.
    log_path : Path
        File that receives the server's stdout and stderr.
    venv : Path, optional
        Virtual environment whose ``bin`` goes first on ``PATH``.
    cwd : Path, optional
        Working directory of the server.
    port : int, optional
        Port to use; a free one on 127.0.0.1 when omitted.
    startup_timeout : float, default=120
        Seconds to wait for ``health_path`` to answer.

    Yields
    ------
    ServerProcess

    Raises
    ------
    RuntimeError
        When the server exits or does not answer in time; the message holds the end of its log.
    """
    port = port or free_port()
    args = [str(part) for part in command(port)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(args)}\n".encode())
        log.flush()
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=cwd, env=_server_env(venv), start_new_session=True)
    server = ServerProcess(name=name, url=f"http://127.0.0.1:{port}", port=port, process=process, log_path=log_path)
    try:
        started = time.monotonic()
        _wait_healthy(server, server.url + health_path, startup_timeout)
        _report(f"{name} is up on {server.url} after {time.monotonic() - started:.1f} s")
        yield server
    finally:
        _stop(process)


# -- the servers the tests use ---------------------------------------------------------------


@dataclass(frozen=True)
class ModelServer:
    """A real prediction server serving the test model, with the answers it should give.

    Attributes
    ----------
    url : str
        Base URL, ``http://127.0.0.1:<port>``.
    model : str
        Model name on the server (for MLflow, a name for the config only).
    X : DataFrame of shape (20, 4)
        Sample rows: ``region`` (object, categorical), ``age``, ``income`` (float), ``tenure`` (int).
    predictions : ndarray of shape (20,)
        What the model predicts for ``X``, computed inside the server's venv.
    probabilities : ndarray of shape (20, 2)
        ``predict_proba`` for ``X``, computed there too.
    classes : tuple
        The model's classes, in the order of the probability columns.
    server_version : str
        Version of mlflow or mlserver in the venv.
    metrics_url : str or None
        Prometheus endpoint (MLServer: its own metrics port); names in :data:`MLSERVER_METRICS`.
    spare_model : str or None
        MLServer: a second copy of the model that tests may unload and load again.
    reference : Path or None
        The training rows with their ``target`` column (models of bundled data only).
    process : ServerProcess
        The running server, its log and whether it is alive.
    """

    url: str
    model: str
    X: pd.DataFrame
    predictions: np.ndarray
    probabilities: np.ndarray
    classes: tuple
    server_version: str
    process: ServerProcess = field(repr=False)
    metrics_url: str | None = None
    spare_model: str | None = None
    reference: Path | None = None

    def alive(self) -> bool:
        """Return whether the server process is still running."""
        return self.process.alive()


def _known_answers(model_dir: Path) -> dict:
    expected = json.loads((model_dir / "expected.json").read_text())
    X = pd.DataFrame(expected["data"], columns=expected["columns"]).astype(expected["dtypes"])
    return {
        "X": X,
        "predictions": np.asarray(expected["predictions"]),
        "probabilities": np.asarray(expected["probabilities"], dtype=float),
        "classes": tuple(expected["classes"]),
        "server_version": expected["versions"]["server"],
    }


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """MLflow's scoring server (``mlflow models serve --env-manager local``) with the test model."""
    venv = ensure_venv("mlflow")
    model_dir = ensure_model("mlflow")
    run_dir = tmp_path_factory.mktemp("mlflow-server")

    def command(port: int) -> list:
        return [venv / "bin" / "mlflow", "models", "serve", "-m", model_dir / "model", "--env-manager", "local",
                "-h", "127.0.0.1", "-p", port]

    with server_process("mlflow scoring server", command, health_path="/ping", log_path=run_dir / "server.log",
                        venv=venv, cwd=run_dir) as server:
        yield ModelServer(url=server.url, model="vantage-credit", process=server, **_known_answers(model_dir))


@pytest.fixture(scope="session")
def kserve_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """KServe's Python ModelServer (one worker, REST only) serving the wine RandomForest as ``wine``:
    13 numeric features, classes 0, 1 and 2, ``predict_proba`` as the one output ``output-0``, metrics
    on the same port (``/metrics``), no inputs in its metadata."""
    venv = ensure_venv("kserve")
    model_dir = ensure_public_model("kserve", "wine")
    run_dir = tmp_path_factory.mktemp("kserve-server")
    model = "wine"

    def command(port: int) -> list:
        return [_venv_python(venv), KSERVE_SCRIPT, "--model_name", model, "--model_dir", model_dir,
                "--http_port", port, "--enable_grpc", "false"]

    with server_process("KServe ModelServer", command, health_path=f"/v2/models/{model}/ready",
                        log_path=run_dir / "server.log", venv=venv, cwd=run_dir) as server:
        yield ModelServer(url=server.url, model=model, process=server, metrics_url=f"{server.url}/metrics",
                          reference=model_dir / "reference.csv", **_known_answers(model_dir))


def _write_mlserver_repository(run_dir: Path, model_file: Path, models: Sequence[str], *, http_port: int,
                               grpc_port: int, metrics_port: int) -> None:
    settings = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": 0,  # worker processes do not come up on this machine
        "metrics_dir": str(run_dir / ".metrics"),
        "environments_dir": str(run_dir / ".envs"),
    }
    (run_dir / "settings.json").write_text(json.dumps(settings, indent=1))
    for model in models:
        (run_dir / model).mkdir(exist_ok=True)
        model_settings = {
            "name": model,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(model_file), "version": "v1"},
        }
        (run_dir / model / "model-settings.json").write_text(json.dumps(model_settings, indent=1))


@pytest.fixture(scope="session")
def mlserver_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """Seldon MLServer with the scikit-learn runtime, serving the test model (and a spare copy)."""
    venv = ensure_venv("mlserver")
    model_dir = ensure_model("mlserver")
    run_dir = tmp_path_factory.mktemp("mlserver-server")
    model, spare = "vantage-credit", "vantage-credit-spare"
    http_port, grpc_port, metrics_port = free_ports(3)

    def command(port: int) -> list:
        _write_mlserver_repository(run_dir, model_dir / "model.joblib", [model, spare], http_port=port,
                                   grpc_port=grpc_port, metrics_port=metrics_port)
        return [venv / "bin" / "mlserver", "start", run_dir]

    with server_process("MLServer", command, health_path=f"/v2/models/{model}/ready", port=http_port,
                        log_path=run_dir.parent / f"{run_dir.name}.log", venv=venv, cwd=run_dir) as server:
        yield ModelServer(url=server.url, model=model, process=server, spare_model=spare,
                          metrics_url=f"http://127.0.0.1:{metrics_port}/metrics", **_known_answers(model_dir))


@pytest.fixture(scope="session")
def mlserver_wide_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """Seldon MLServer with the scikit-learn runtime serving the breast cancer GradientBoosting model as
    ``breast-cancer``: 30 numeric features, classes 0 and 1 (labels by default, ``predict_proba`` on request)."""
    venv = ensure_venv("mlserver")
    model_dir = ensure_public_model("mlserver", "breast_cancer")
    run_dir = tmp_path_factory.mktemp("mlserver-wide-server")
    model = "breast-cancer"
    grpc_port, metrics_port = free_ports(2)

    def command(port: int) -> list:
        _write_mlserver_repository(run_dir, model_dir / "model.joblib", [model], http_port=port,
                                   grpc_port=grpc_port, metrics_port=metrics_port)
        return [venv / "bin" / "mlserver", "start", run_dir]

    with server_process("MLServer (30 features)", command, health_path=f"/v2/models/{model}/ready",
                        log_path=run_dir.parent / f"{run_dir.name}.log", venv=venv, cwd=run_dir) as server:
        yield ModelServer(url=server.url, model=model, process=server, reference=model_dir / "reference.csv",
                          metrics_url=f"http://127.0.0.1:{metrics_port}/metrics", **_known_answers(model_dir))


def main(argv: Sequence[str] | None = None) -> int:
    """Build the venvs and train the models of the named servers (all when none is named).

    Parameters
    ----------
    argv : sequence of str, optional
        Server names; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        Exit status, 0 on success.
    """
    parser = argparse.ArgumentParser(prog="python -m tests.servers", description=main.__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"servers to prepare: {', '.join(SERVER_NAMES)}")
    args = parser.parse_args(argv)
    for name in args.names or SERVER_NAMES:
        try:
            requirements_file(name)  # fail early on a wrong name
        except ValueError as exc:
            parser.error(str(exc))
    for name in args.names or SERVER_NAMES:
        started = time.monotonic()
        models = ", ".join(str(m) for m in prepare(name))
        _report(f"{name}: venv {venv_path(name)}, models {models} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
