"""Plotly figures; one module per page's subject. Each function takes a computed result and only draws it."""
