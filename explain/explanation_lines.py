"""The Explain page's choices (rows to explain, colour, day) and captions, from the model and its explanations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

DAY_SECONDS = 86400.0

PARTIAL_DEPENDENCE_ROWS = {1: 500, 2: 200}
"""Rows of the data window a partial dependence averages over, by how many features it varies."""

SCALE_NAMES = {"log_odds": "log-odds"}
"""How the page writes an explanation's scale where its key is not already a word."""


def _requests_part(requests: int, model_rows: int) -> str:
    return f"{requests} request(s), {model_rows:,} model rows" if requests else ""


def model_source_line(model) -> str:
    """The Markdown line naming the model source: its kind and description, version, task and classes.

    Parameters
    ----------
    model : ModelSource
        The model the page explains.

    Returns
    -------
    str
    """
    kind = "Local artifact" if model.kind == "local" else "The service as a black box"
    return (f"**Model source:** {kind} · {model.description}  \n"
            f"**Version:** `{model.version or 'not reported'}` · **task:** {model.task_text()}"
            + (f" · **classes:** {', '.join(map(str, model.classes))}" if model.classes else ""))


def artifact_check_caption(model, settings) -> str:
    """What the page says, before the consistency check answers, of how the explanations relate to the service.

    Parameters
    ----------
    model : ModelSource
        The model the page explains.
    settings : ExplainConfig
        The service's ``[services.explain]``.

    Returns
    -------
    str
        The black box's budget, that a local artifact is not checked (``source = 'local'``), or that the check
        is running.
    """
    if model.kind == "remote":
        return ("Every explanation here is computed from the service's own answers, in requests of at most "
                f"{settings.max_rows_per_request:,} rows paced at {settings.max_rows_per_second:,.0f} model "
                "rows/s, a budget every user of this dashboard shares ([services.explain]).")
    if settings.source == "local":
        return "The artifact is not checked against the service (source = 'local')."
    return "Checking the artifact against the service…"


@dataclass(frozen=True)
class RowChoices:
    """The choice of rows to explain for the importance, beeswarm and dependence tabs.

    Attributes
    ----------
    default : int
        Rows explained unless the user picks another number.
    most : int
        The largest number that may be picked.
    fewest : int
        The smallest number, and the step.
    per_row : int
        Model rows one explained row costs the service (0 for a local model, or when it cannot be told).
    """

    default: int
    most: int
    fewest: int
    per_row: int = 0

    @property
    def help(self) -> str:
        """The rows input's help: why the model-agnostic explainer explains fewer, and the service's cost."""
        return ("Rows of the data window explained for the importance, beeswarm and dependence tabs. The "
                "model-agnostic explainer asks the model about ~15,000 rows per explained row, so it explains fewer"
                + (f"; through this service about {self.per_row:,} model rows per row, within its budget "
                   "([services.explain])." if self.per_row else "."))


def row_choices(*, method: str, remote: bool, per_row: int = 0, max_rows_per_computation: int = 0) -> RowChoices:
    """How many rows the importance tabs explain: many for a tree or linear explainer, fewer for the
    model-agnostic one, and through a service by default as many as one explanation may send it, at most 20.

    Parameters
    ----------
    method : str
        The explainer's method (``"tree"``, ``"linear"``, ``"kernel"``, …).
    remote : bool
        Whether the model is the service as a black box.
    per_row : int, default=0
        Model rows one explained row costs the service (0 when it cannot be told); used when ``remote``.
    max_rows_per_computation : int, default=0
        The service's ``[services.explain] max_rows_per_computation``; used when ``remote``.

    Returns
    -------
    RowChoices
    """
    fast = method in ("tree", "linear")
    default, most = (1000, 5000) if fast else ((20, 200) if remote else (100, 1000))
    if not remote:
        return RowChoices(default, most, 10)
    if per_row:
        default = int(min(20, max(1, 0.8 * max_rows_per_computation // per_row)))
    return RowChoices(default, most, 1, per_row)


def global_footer(values, *, window_name: str) -> str:
    """The caption under the importance, beeswarm and dependence charts: rows, data window, time and cost.

    Parameters
    ----------
    values : ShapValues
        The explanation.
    window_name : str
        The data window as the page names it (``"Reference (training) data"``).

    Returns
    -------
    str
    """
    cost = _requests_part(values.requests, values.model_rows)
    return f"{values.n_rows:,} rows of the {window_name.lower()} · {values.seconds:.2f} s" + (f" · {cost}" * bool(cost))


def dependence_colour(choice: str, ranked: Sequence[str], feature: str | None) -> str | None:
    """The feature a dependence plot is coloured by: ``"auto"`` is the most important other one, ``"none"`` none.

    Parameters
    ----------
    choice : str
        The picked option: ``"auto"``, ``"none"`` or a feature.
    ranked : sequence of str
        The features that may be shown, most important first.
    feature : str or None
        The plotted feature.

    Returns
    -------
    str or None
        None for no colour.
    """
    if choice == "auto":
        choice = next((f for f in ranked if f != feature), "none")
    return None if choice == "none" else choice


def day_span(day: date, start: time) -> tuple[float, float]:
    """The period a search "by time" covers: from ``start`` on ``day`` (UTC) to the end of that day.

    Parameters
    ----------
    day : date
        The day, in UTC.
    start : time
        When on that day the period starts.

    Returns
    -------
    (float, float)
        ``(since, until)`` in Unix seconds.
    """
    since = datetime.combine(day, start, tzinfo=UTC).timestamp()
    return since, since + DAY_SECONDS - (start.hour * 3600 + start.minute * 60)


def picked_caption(row_id: str, *, made: str, listed: int) -> str:
    """The caption under the list of predictions: which one is explained and how many are listed.

    Parameters
    ----------
    row_id : str
        The selected prediction's id.
    made : str
        When it was made, as the page writes it.
    listed : int
        How many matches are listed.

    Returns
    -------
    str
    """
    shown = "the only match is listed" if listed == 1 else f"the {listed} newest matches are listed"
    return f"Selected prediction `{row_id}` made {made}; click a row to pick another ({shown})."


def scale_name(space: str) -> str:
    """An explanation's scale as the page writes it: ``"log-odds"``, ``"probability"``, ``"auto"``."""
    return SCALE_NAMES.get(space, space)


def row_explanation_caption(single) -> str:
    """The caption under one prediction's waterfall: the method's note, the cost through a service, the time.

    Parameters
    ----------
    single : ShapValues
        The row's explanation.

    Returns
    -------
    str
    """
    cost = _requests_part(single.requests, single.model_rows)
    return f"{single.note}. " + (f"{cost}, " if cost else "") + f"{single.seconds:.2f} s."


def dependence_caption(result) -> str:
    """The caption under a partial dependence: method, rows × grid points, time and requests.

    Parameters
    ----------
    result : PartialDependence

    Returns
    -------
    str
    """
    points = len(result.grid[0]) * (len(result.grid[1]) if len(result.grid) > 1 else 1)
    requests = f", {result.requests} request(s)" if result.requests else ""
    return f"{result.method}: {result.n_rows} rows × {points} grid points, {result.seconds:.2f} s{requests}"


def consistency_alert(check) -> tuple[str, str]:
    """The alert of the artifact's consistency check: its level and Markdown text.

    Parameters
    ----------
    check : explain.ConsistencyCheck
        ``agrees`` True (the artifact predicts what the service does), None (the check could
        not run) or False.

    Returns
    -------
    tuple of (str, str)
        ``("success" | "info" | "warning", text)``.
    """
    if check.agrees:
        return "success", f"Consistency check: {check.message}."
    if check.agrees is None:
        return "info", f"Consistency check: {check.message}."
    return "warning", f"**The artifact is not the model being served.** {check.message}."
