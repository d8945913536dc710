"""While the embedded demo writes its history, data pages show its progress instead of provisional verdicts."""

import threading
from types import SimpleNamespace

from streamlit.testing.v1 import AppTest


def page(runtime):
    import streamlit as st

    from dashboard.components import demo_backfill

    if demo_backfill(runtime):
        st.stop()
    st.success("No action needed.")


def runtime(done: bool, sent: int = 12_000, total: int = 42_000):
    event = threading.Event()
    if done:
        event.set()
    replayer = SimpleNamespace(backfill_done=event, backfilled_rows=sent, backfill_total=total)
    return SimpleNamespace(demo=SimpleNamespace(replayer=replayer))


def test_a_backfilling_demo_shows_what_is_done_and_left_and_no_verdict():
    at = AppTest.from_function(page, args=(runtime(done=False),)).run()
    assert not at.exception
    bars = at.get("progress")
    assert len(bars) == 1
    assert bars[0].proto.value == 28  # percent done
    assert bars[0].proto.text == ("The demo is writing its four weeks of history: 12,000 of 42,000 predictions "
                                  "sent, 30,000 left. Verdicts appear here once it is done.")
    assert not at.success  # no provisional verdict


def test_the_page_shows_its_verdicts_once_the_backfill_is_done_or_without_a_demo():
    for rt in (runtime(done=True), SimpleNamespace(demo=None)):
        at = AppTest.from_function(page, args=(rt,)).run()
        assert not at.exception
        assert not at.get("progress")
        assert at.success[0].value == "No action needed."
