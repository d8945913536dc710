"""Plotly figures; one module per page's subject. Each function takes a computed result and only draws it."""

from __future__ import annotations

import plotly.graph_objects as go

MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
"""Margins shared by every figure."""

LEGEND_UNDER = {"orientation": "h", "yref": "container", "y": 0.0, "yanchor": "bottom", "xanchor": "left", "x": 0.0}
"""A legend along the figure's bottom edge, under the dates: beside the title, a long one ran into it."""

MARGIN_UNDER = {**MARGIN, "b": 75}
"""Margins of a figure with :data:`LEGEND_UNDER`: room for the date ticks (two lines, or slanted) and the legend."""


def empty_figure(title: str, message: str, *, height: int = 260) -> go.Figure:
    """A figure that says why there is nothing to draw, instead of an empty frame.

    Parameters
    ----------
    title : str
        The title the figure would have had.
    message : str
        Plain-language reason, shown in the middle.
    height : int, default=260
    """
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, font={"size": 14, "color": "#6b7280"},
                          xref="paper", yref="paper", x=0.5, y=0.5)
    figure.update_layout(title=title, height=height, xaxis={"visible": False}, yaxis={"visible": False},
                         margin=MARGIN)
    return figure
