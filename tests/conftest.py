"""Shared fixtures: a demo model trained once per session, the demo service on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.servers"]

os.environ.setdefault("VANTAGE_DEMO_FAULTS", "0")


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory) -> Path:
    """A private ``var/`` for the whole session (store, demo model, written config)."""
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def demo_model(var_dir):
    """The demo model, trained once per session."""
    from demo.model import load_or_train

    return load_or_train(var_dir / "demo")


@pytest.fixture(scope="session")
def demo_runtime(var_dir, demo_model):
    """The reference service serving the demo model on a free port (no faults, no replay)."""
    from demo.runtime import start_demo

    runtime = start_demo(var_dir, faults=False, replay=False, poll_interval=1.0)
    yield runtime
    runtime.stop()


@pytest.fixture
def demo_var(tmp_path, demo_model) -> Path:
    """A fresh ``var/`` holding a copy of the trained demo model (so no retraining), no store."""
    import shutil

    target = tmp_path / "var" / "demo"
    target.mkdir(parents=True)
    for name in ("model.joblib", "model.json", "reference.parquet"):
        shutil.copy2(demo_model.artifact_path.parent / name, target / name)
    return target.parent


@pytest.fixture
def store(tmp_path):
    """An empty SQLite store in a temporary folder."""
    from monitoring.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.dispose()
