"""Altair charts shared by the pages (one look: the studio's indigo, tooltips, no chart junk)."""

from __future__ import annotations

import altair as alt
import pandas as pd

ACCENT = "#4f46e5"
PALETTE = [ACCENT, "#0ea5e9", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#64748b"]


def metric_lines(frame: pd.DataFrame, metric: str) -> alt.Chart:
    """One metric over steps, one coloured line per run (runs overlaid to compare)."""
    data = frame[frame["metric"] == metric]
    several = data["run"].nunique() > 1
    legend = alt.Legend(orient="bottom", title=None, labelLimit=260) if several else None
    return (alt.Chart(data, title=metric).mark_line(point=len(data) < 60, strokeWidth=2)
            .encode(x=alt.X("step:Q", title="step", axis=alt.Axis(tickMinStep=1, format="d")),
                    y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False),
                            axis=alt.Axis(format="~g")),
                    color=alt.Color("run:N", legend=legend,
                                    scale=alt.Scale(range=PALETTE)),
                    tooltip=["run", "step", alt.Tooltip("value:Q", format=".4g")]))


def bars_with_ci(frame: pd.DataFrame, x: str, y: str, lo: str, hi: str, color: str | None = None,
                 height: int = 260) -> alt.LayerChart:
    """Point estimates as bars with their confidence interval as error bars."""
    base = alt.Chart(frame)
    enc: dict = {"color": alt.value(ACCENT)}
    offset: dict = {}
    if color:  # several bars per x: side by side, one colour each
        enc = {"color": alt.Color(f"{color}:N", legend=alt.Legend(orient="bottom", title=None))}
        offset = {"xOffset": f"{color}:N"}
    bars = base.mark_bar(opacity=0.85).encode(
        x=alt.X(f"{x}:N", title=None, sort=None, axis=alt.Axis(labelAngle=0, labelLimit=220)),
        y=alt.Y(f"{y}:Q", axis=alt.Axis(format="~g")),
        tooltip=[x, alt.Tooltip(f"{y}:Q", format=".3f"), alt.Tooltip(f"{lo}:Q", format=".3f"),
                 alt.Tooltip(f"{hi}:Q", format=".3f")], **enc, **offset)
    errs = base.mark_errorbar(color="#111827").encode(x=alt.X(f"{x}:N", sort=None),
                                                      y=alt.Y(f"{lo}:Q", title=y), y2=f"{hi}:Q",
                                                      **offset)
    return (bars + errs).properties(height=height)


def line_over(frame: pd.DataFrame, x: str, y: str, color: str, height: int = 260) -> alt.Chart:
    """A value across checkpoints (in the given order), one line per `color` group."""
    legend = alt.Legend(orient="bottom", title=None) if frame[color].nunique() > 1 else None
    return (alt.Chart(frame).mark_line(point=True, strokeWidth=2)
            .encode(x=alt.X(f"{x}:O", sort=None, axis=alt.Axis(labelAngle=0, labelLimit=220)),
                    y=alt.Y(f"{y}:Q", scale=alt.Scale(zero=False), axis=alt.Axis(format="~g")),
                    color=alt.Color(f"{color}:N", legend=legend),
                    tooltip=[x, color, alt.Tooltip(f"{y}:Q", format=".3f")])
            .properties(height=height))
