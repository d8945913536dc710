"""Personal columns sealed at rest (monitoring.sealing): what the store holds, and what a reader with the key gets.

The store tests run on SQLite and on a real PostgreSQL (``store_url``); on SQLite the database and
WAL files themselves are searched too.
"""

import logging

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from monitoring.sealing import SEAL_PREFIX, Sealer, SealError
from monitoring.store import Store

KEY = b"a-shared-secret-for-the-tests"
EMAIL = "zorblax.quimby@example.org"


def test_a_value_is_sealed_deterministically_and_only_the_key_opens_it():
    sealer = Sealer({"svc": ("email",)}, KEY)
    sealed = sealer.seal("email", EMAIL)
    assert sealed.startswith(SEAL_PREFIX) and EMAIL not in sealed and "quimby" not in sealed
    assert sealer.seal("email", EMAIL) == sealed  # equal values stay equal: categories can be counted
    assert sealer.seal("zip", EMAIL) != sealed  # bound to its column
    assert sealer.open("email", sealed) == EMAIL and sealer.open("email", 12.5) == 12.5  # not sealed: as it is
    assert sealer.open("balance", sealer.seal("balance", 9876.54321)) == 9876.54321
    with pytest.raises(SealError, match="another key"):
        Sealer({"svc": ("email",)}, b"another key").open("email", sealed)
    with pytest.raises(SealError, match="VANTAGE_PERSONAL_KEY is not set"):
        Sealer({"svc": ("email",)}, None).open("email", sealed)
    assert "a-shared-secret" not in repr(sealer)


def test_the_store_holds_sealed_text_and_gives_a_keyed_reader_the_values(tmp_path, store_url):
    store = Store(store_url, sealer=Sealer({"svc": ("email", "balance")}, KEY))
    store.prediction_table("svc", {"email": "categorical", "balance": "numeric", "age": "numeric"})
    frame = pd.DataFrame({"id": ["a", "b", "c"], "ts": [1.0, 2.0, 3.0], "prediction": [0.0, 1.0, 0.0],
                          "email": [EMAIL, "x@example.org", None], "balance": [9876.54321, 10.0, np.nan],
                          "age": [30.0, 40.0, 50.0]})
    store.log_predictions("svc", frame)
    with store.engine.connect() as conn:  # what the database holds, read without the store
        stored = conn.execute(sa.text('SELECT * FROM "predictions__svc"')).all()
    assert len(stored) == 3 and EMAIL not in repr(stored) and "9876.54321" not in repr(stored)
    store.dispose()
    assert not [f for f in tmp_path.glob("store.db*") if EMAIL.encode() in f.read_bytes()]  # SQLite's files

    reader = Store(store_url, sealer=Sealer({"svc": ("email", "balance")}, KEY))
    logged = reader.read_prediction_log("svc")
    assert logged["email"].tolist()[:2] == [EMAIL, "x@example.org"] and pd.isna(logged["email"].iloc[2])
    assert logged["balance"].dtype == float and logged["balance"].iloc[0] == 9876.54321
    assert set(reader.prediction_features("svc")) == {"age"}  # a sealed column's kind is the reference's
    found = reader.find_predictions("svc", filters={"email": ("==", EMAIL)})
    assert found["id"].tolist() == ["a"] and found["email"].iloc[0] == EMAIL
    with pytest.raises(ValueError, match="only ==, != and in"):
        reader.find_predictions("svc", filters={"balance": (">", 100.0)})

    unkeyed_store = Store(store_url)
    unkeyed = unkeyed_store.read_prediction_log("svc")  # no sealer: the sealed text, never the value
    assert unkeyed["email"].astype(str).str.startswith(SEAL_PREFIX).sum() == 2
    unkeyed_store.dispose()
    reader.dispose()


def test_a_writer_without_the_key_stores_nothing_rather_than_the_value(store_url, caplog):
    sealer = Sealer({"svc": ("email",)}, None)
    store = Store(store_url, sealer=sealer)
    store.prediction_table("svc", {"email": "categorical"})
    with caplog.at_level(logging.WARNING):
        store.log_predictions("svc", pd.DataFrame({"id": ["a"], "ts": [1.0], "prediction": [0.0], "email": [EMAIL]}))
    assert store.read_prediction_log("svc")["email"].isna().all()
    assert sealer.withheld == 1 and "never stored in clear" in caplog.text and EMAIL not in caplog.text
    store.dispose()


def test_the_config_decides_the_sealed_columns_and_the_environment_the_key(tmp_path):
    from monitoring.config import parse_config

    config = parse_config(f"""
[store]
url = "sqlite:///{tmp_path / 'store.db'}"

[[services]]
name = "private"
url = "http://127.0.0.1:9"
protocol = "rest"
features = ["email", "age"]
personal = ["email"]
""")
    sealer = Sealer.from_config(config, environ={"VANTAGE_PERSONAL_KEY": "k"})
    assert sealer.columns("private") == ("email",) and sealer.has_key
    assert not Sealer.from_config(config, environ={}).has_key
    assert Store.from_config(config).sealer.columns("private") == ("email",)
