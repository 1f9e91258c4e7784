"""How the summit pack's figures look: the Figure record (key, title stating the finding, reading),
Okabe and Ito's colour-blind-safe palette, services' plain names and the common layout.

Shared by figures.py (one run's system) and comparisons.py (scenarios and appraisals).
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
"""Okabe and Ito's colour-blind-safe palette."""
SERVICE_NAMES = {
    "front_door": "front door (waiting for a bed)",
    "acute": "acute beds",
    "assessment": "discharge assessment",
    "reablement": "reablement",
    "home_care": "home care",
    "step_down": "step-down beds",
    "care_home": "care homes",
}
"""Plain names of the services, keyed as the roles are; all_figures orders panels by these keys."""


@dataclass
class Figure:
    """One figure of the pack: ``key`` names its files in ``figures/``; ``title`` states the
    finding; ``reading`` is the one-line plain-English reading for a slide."""

    key: str
    title: str
    reading: str
    figure: go.Figure


def service_name(s: str) -> str:
    """A service's plain name for titles and axes: from SERVICE_NAMES, else ``s`` in words."""
    return SERVICE_NAMES.get(s, s.replace("_", " "))


def style(fig: go.Figure, title: str, height: int = 460) -> go.Figure:
    """Give ``fig`` the pack's look: ``title`` at the top left, the palette, fonts, margins, a
    legend below, ``height`` pixels tall. Returns ``fig``."""
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 17}},
        template="plotly_white",
        colorway=list(PALETTE),
        font={"family": "Arial, Helvetica, sans-serif", "size": 13, "color": "#222"},
        height=height,
        margin={"l": 70, "r": 30, "t": 80, "b": 60},
        legend={"orientation": "h", "y": -0.18},
    )
    return fig
