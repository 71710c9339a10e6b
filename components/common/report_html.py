"""Self-contained HTML for the reports: one page with inline CSS, no scripts, no fonts, nothing fetched.

Standard library only. :func:`page` wraps a report's body; :func:`summary_strip` is the row of counts at its top
(anomalies, drifted features, decisions); :func:`figure` puts a chart from :mod:`charts` under a caption.
Every text passed in is escaped; ``body_html`` and chart SVGs are trusted markup built by this package.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kfp_tabular.components.common.chart_svg import count, esc

#: The page's only style sheet (inline). System fonts only (generic families), no web fonts.
CSS = """
body { font-family: sans-serif; margin: 1.5em 2em; color: #222; background: #fff; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 1.5em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: middle; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
svg.chart { display: block; overflow: visible; }
figure.chart { display: inline-block; margin: 0.4em 1.2em 0.8em 0; vertical-align: top; }
figure.chart figcaption { font-size: 0.85em; color: #444; margin-top: 0.2em; max-width: 360px; }
.summary { display: flex; flex-wrap: wrap; gap: 0.6em; margin: 0.8em 0 1.2em; }
.summary .item { border: 1px solid #ccc; border-radius: 4px; padding: 0.4em 0.8em; min-width: 6em; }
.summary .item b { display: block; font-size: 1.4em; }
.summary .ok { border-color: #009E73; background: #eef8f4; }
.summary .warn { border-color: #E69F00; background: #fdf5e6; }
.summary .bad { border-color: #D55E00; background: #fbece4; }
""".strip()

TONES = ("ok", "warn", "bad", "info")


def page(title: str, body_html: str, *, subtitle: str = "", css: str = "") -> str:
    """Return a complete self-contained HTML document.

    Args:
        title: The page title (``<title>`` and ``<h1>``), escaped.
        body_html: Markup placed after the heading (charts, tables), not escaped.
        subtitle: A line under the heading, escaped.
        css: Extra inline CSS appended to :data:`CSS`.
    """
    sub = f'<p class="subtitle">{esc(subtitle)}</p>' if subtitle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}\n{css}</style></head>"
        f"<body><h1>{esc(title)}</h1>{sub}{body_html}</body></html>\n"
    )


def summary_strip(items: Iterable[Sequence]) -> str:
    """Return the counts at a report's top as HTML: ``items`` are (label, count) or (label, count, tone).

    The tone is one of "ok", "warn", "bad", "info"; without one a zero count is "ok" and any other "warn".
    """
    parts = ['<div class="summary">']
    for item in items:
        label, value = item[0], item[1]
        tone = item[2] if len(item) > 2 else None
        if tone is None:
            tone = "ok" if value == 0 else "warn"
        if tone not in TONES:
            tone = "info"
        shown = count(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
        parts.append(
            f'<div class="item {tone}" data-label="{esc(label)}" data-count="{esc(value)}">'
            f"<b>{esc(shown)}</b>{esc(label)}</div>"
        )
    parts.append("</div>")
    return "".join(parts)


def figure(chart_svg: str, caption: str = "") -> str:
    """Return a chart in a ``<figure class="chart">`` with an escaped caption."""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure class="chart">{chart_svg}{cap}</figure>'
