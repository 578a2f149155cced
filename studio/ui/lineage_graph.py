"""The lineage graph as Graphviz DOT (st.graphviz_chart draws it; no new dependency): versions
as boxes joined parent -> child, each run as a note under the version it trained on.

User text (dataset, version, run names, operations) goes into quoted DOT labels, escaped, so a
name holding quotes or braces cannot break or change the graph.
"""

from __future__ import annotations


def dot_text(text: object) -> str:
    """User text inside a quoted DOT label: quotes, backslashes and newlines escaped."""
    return (str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
            .replace("\r", " "))


def _metric_line(run: dict) -> str:
    for ckpt in reversed(run["checkpoints"]):
        for e in ckpt["evals"]:
            values = ", ".join(f"{m} {v:.3f}" for m, v in e["metrics"].items()
                               if isinstance(v, (int, float)))
            if values:
                return f"{e['suite']}: {values}"
    return "not evaluated"


def graph(steps: list[dict], highlight: str | None = None) -> str:
    """Versions as boxes (operation, rows, rows removed), parent -> child edges, and each run
    as a rounded node under the version it trained on."""
    lines = ['digraph lineage {', 'rankdir=TB; bgcolor="transparent";',
             'node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, '
             'fillcolor="#eef2ff", color="#4f46e5"];', 'edge [color="#64748b"];']
    versions = {s["version"] for s in steps}
    for s in steps:
        removed = "" if not s["rows_removed"] else f" (-{s['rows_removed']})"
        fill = ', fillcolor="#c7d2fe", penwidth=2' if s["ref"] == highlight else ""
        lines.append(f'"v:{dot_text(s["version"])}" [label="{dot_text(s["ref"])}\\n'
                     f'{dot_text(s["operation"])} · {s["n_rows"]} rows{removed}"{fill}];')
        if s["parent"] in versions:
            lines.append(f'"v:{dot_text(s["parent"])}" -> "v:{dot_text(s["version"])}";')
        for run in s["runs"]:
            name = run["name"] or run["run_id"]
            lines.append(f'"r:{dot_text(run["run_id"])}" [shape=note, fillcolor="#ecfdf5", '
                         f'color="#10b981", label="{dot_text(name)} · {dot_text(run["state"])}'
                         f'\\n{dot_text(_metric_line(run))}"];')
            lines.append(f'"v:{dot_text(s["version"])}" -> "r:{dot_text(run["run_id"])}" '
                         '[style=dashed, color="#10b981"];')
    return "\n".join(lines + ["}"])
