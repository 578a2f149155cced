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
                 best: str | None = None, x_title: str | None = None,
                 y_title: str | None = None, height: int = 260) -> alt.LayerChart:
    """Point estimates as bars with their confidence interval as error bars: a colour per
    series (`color`, else per bar) with a legend, labelled axes, and the `best` x value drawn
    solid and marked "best" while the others fade."""
    series = color or x
    base = alt.Chart(frame)
    offset = {"xOffset": f"{color}:N"} if color else {}
    opacity = (alt.condition(alt.datum[x] == best, alt.value(1.0), alt.value(0.45))
               if best is not None else alt.value(0.85))
    bars = base.mark_bar().encode(
        x=alt.X(f"{x}:N", title=x_title or x, sort=None,
                axis=alt.Axis(labelAngle=0, labelLimit=220)),
        y=alt.Y(f"{y}:Q", title=y_title or y, axis=alt.Axis(format="~g")),
        color=alt.Color(f"{series}:N", sort=None, scale=alt.Scale(range=PALETTE),
                        legend=alt.Legend(orient="bottom", title=None, labelLimit=260)),
        opacity=opacity,
        tooltip=[x, *([color] if color else []), alt.Tooltip(f"{y}:Q", format=".3f"),
                 alt.Tooltip(f"{lo}:Q", format=".3f"), alt.Tooltip(f"{hi}:Q", format=".3f")],
        **offset)
    errs = base.mark_errorbar(color="#111827").encode(
        x=alt.X(f"{x}:N", sort=None), y=alt.Y(f"{lo}:Q", title=y_title or y), y2=f"{hi}:Q",
        **offset)
    layers = [bars, errs]
    if best is not None:
        layers.append(base.transform_filter(alt.datum[x] == best)
                      .mark_text(text="★ best", dy=-8, fontWeight="bold", color="#111827")
                      .encode(x=alt.X(f"{x}:N", sort=None), y=alt.Y(f"{hi}:Q")))
    return alt.layer(*layers).properties(height=height)


def metric_over_checkpoints(frame: pd.DataFrame, metric: str, best: str | None = None,
                            height: int = 260) -> alt.LayerChart:
    """Mean (with 95% CI) at each checkpoint in comparison order, a colour per run. A line joins
    only the steps of one run (a trend); the base model and checkpoints of other runs are
    separate points, never joined to them. `best` is ringed and labelled."""
    x = alt.X("checkpoint:N", sort=list(dict.fromkeys(frame["checkpoint"])),
              title="checkpoint (training step within each run)",
              axis=alt.Axis(labelAngle=0, labelLimit=220))
    color = alt.Color("run:N", sort=None, scale=alt.Scale(range=PALETTE),
                      legend=alt.Legend(orient="bottom", title="run", labelLimit=260))
    base = alt.Chart(frame)
    lines = base.mark_line(strokeWidth=2).encode(x=x, y=alt.Y("mean:Q", title=metric),
                                                 color=color, detail="run:N")
    points = base.mark_point(filled=True, size=70).encode(
        x=x, y=alt.Y("mean:Q", title=metric, scale=alt.Scale(zero=False),
                     axis=alt.Axis(format="~g")),
        color=color, tooltip=["checkpoint", "run", "step", alt.Tooltip("mean:Q", format=".3f"),
                              alt.Tooltip("low:Q", format=".3f"),
                              alt.Tooltip("high:Q", format=".3f")])
    ci = base.mark_rule(strokeWidth=1.5, opacity=0.6).encode(x=x, y="low:Q", y2="high:Q",
                                                             color=color)
    layers = [ci, lines, points]
    if best is not None:
        mark = base.transform_filter(alt.datum.checkpoint == best)
        layers += [mark.mark_point(size=260, shape="circle", filled=False, strokeWidth=2,
                                   color="#111827").encode(x=x, y="mean:Q"),
                   mark.mark_text(text="★ best", dy=-16, fontWeight="bold", color="#111827")
                   .encode(x=x, y="mean:Q")]
    return alt.layer(*layers).properties(height=height)
