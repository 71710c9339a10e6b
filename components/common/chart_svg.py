"""SVG primitives the charts in :mod:`charts` share: escaping, numbers, scales, ticks, axes, legend, the wrapper.

Standard library only. Every number written into an SVG goes through :func:`num` (finite, rounded) and every
text through :func:`esc`, so a column named ``<script>`` or holding quotes and unicode is drawn as text and
never as markup, and no ``NaN``/``inf`` ever reaches a coordinate.
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
from collections.abc import Callable, Iterable, Sequence

#: Okabe-Ito (colour-blind safe), in drawing order; its yellow is left out (unreadable on white).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000")
#: Dash patterns paired with the palette, so series differ by more than colour ("" is a solid line).
DASHES = ("", "5 3", "2 2", "8 3 2 3", "1 3", "10 4", "4 1 1 1")
#: Sizes (width, height) in CSS pixels: a per-feature row and a curve.
SMALL = (240, 90)
LARGE = (360, 240)
#: Values beyond this magnitude are clamped, so differences of two values never overflow to inf.
LIMIT = 1e300
SVG_NS = "http://www.w3.org/2000/svg"


# Characters XML 1.0 forbids (C0 controls but tab/newline/return, lone surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def esc(text: object) -> str:
    """Return ``text`` escaped for SVG/HTML text and double-quoted attribute values.

    Characters XML cannot hold (control characters, lone surrogates) become U+FFFD, so the SVG always parses.
    """
    return html.escape(_NOT_XML.sub("\ufffd", str(text)), quote=True)


def finite(value: object) -> float | None:
    """Return ``value`` as a float clamped to +-:data:`LIMIT`, or None when it is missing, NaN or infinite."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(v):
        return None
    return max(-LIMIT, min(LIMIT, v))


def num(v: float) -> str:
    """Return a coordinate as short text (2 decimals); a non-finite value (never expected) becomes 0."""
    if not math.isfinite(v):
        return "0"
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _trim(text: str) -> str:
    if "e" in text:
        mant, exp = text.split("e")
        return _trim(mant) + "e" + str(int(exp))
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt(v: float) -> str:
    """Return a readable number: 0.25, 3.14, 1.2k, 4.5M, 1e+20 -> 1e20, 2e-05 -> 2e-5."""
    if not math.isfinite(v):
        return "-"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e15 or a < 1e-3:
        return _trim(f"{v:.2g}")
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return _trim(f"{v / div:.3g}") + suffix
    return _trim(f"{v:.3g}")


def pct(v: float) -> str:
    """Return a share as a percentage: 0.25 -> 25%, 0.0004 -> 0.04%."""
    return fmt(v * 100) + "%"


def count(v: float) -> str:
    """Return a count with thousands separators when it is whole, else :func:`fmt`."""
    if math.isfinite(v) and v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    return fmt(v)


def span(values: Iterable[float], include_zero: bool = False) -> tuple[float, float]:
    """Return (lo, hi) of the finite ``values``: (0, 1) when empty, widened around them when (nearly) all equal."""
    vals = [v for v in (finite(x) for x in values) if v is not None]
    if include_zero:
        vals.append(0.0)
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if hi - lo > max(abs(lo), abs(hi)) * 1e-9 and hi - lo > 1e-200:
        return lo, hi
    mid = lo / 2 + hi / 2
    pad = max(abs(mid) * 0.1, 0.5)
    return mid - pad, mid + pad


def ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Return about ``count`` round tick values (1, 2, 2.5, 5 x 10^k steps) inside [lo, hi]."""
    if not hi > lo or not math.isfinite(hi - lo):
        return [lo]
    raw = (hi - lo) / max(1, count)
    if not raw > 0:
        return [lo, hi]
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if not step > 0 or not math.isfinite(step):
        return [lo, hi]
    first = math.ceil(lo / step) * step
    out = []
    for i in range(count * 3 + 2):
        v = first + i * step
        if v > hi + step * 1e-6:
            break
        out.append(0.0 if abs(v) < step * 1e-9 else v)
    return out or [lo, hi]


@dataclasses.dataclass(frozen=True)
class Scale:
    """A linear map from data [lo, hi] to pixels [a, b]; values outside the range are clamped to its ends."""

    lo: float
    hi: float
    a: float
    b: float

    def __call__(self, value: float) -> float:
        """Return the pixel position of ``value``."""
        t = (value - self.lo) / (self.hi - self.lo) if self.hi > self.lo else 0.5
        t = min(1.0, max(0.0, t)) if math.isfinite(t) else 0.5
        return self.a + t * (self.b - self.a)


@dataclasses.dataclass(frozen=True)
class Frame:
    """A chart's canvas: its size and the plot rectangle inside the margins, with the two scales."""

    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float
    x: Scale
    y: Scale

    @classmethod
    def make(
        cls,
        size: tuple[int, int],
        margins: tuple[float, float, float, float],
        x_range: tuple[float, float],
        y_range: tuple[float, float],
    ) -> Frame:
        """Build a frame; ``margins`` are (left, top, right, bottom) in pixels."""
        width, height = size
        ml, mt, mr, mb = margins
        left, top, right, bottom = ml, mt, max(ml + 10, width - mr), max(mt + 10, height - mb)
        return cls(
            width,
            height,
            left,
            top,
            right,
            bottom,
            Scale(x_range[0], x_range[1], left, right),
            Scale(y_range[0], y_range[1], bottom, top),
        )


def text(x: float, y: float, content: object, size: int = 9, anchor: str = "start", extra: str = "") -> str:
    """Return an escaped ``<text>`` element."""
    return f'<text x="{num(x)}" y="{num(y)}" font-size="{size}" text-anchor="{anchor}"{extra}>{esc(content)}</text>'


def shorten(label: object, limit: int) -> str:
    """Return ``label`` cut to ``limit`` characters with an ellipsis (escape the result when drawing it)."""
    s = str(label)
    return s if len(s) <= limit else s[: max(1, limit - 1)] + "\u2026"


def axes(
    frame: Frame,
    *,
    x_label: str = "",
    y_label: str = "",
    x_count: int = 4,
    y_count: int = 4,
    x_fmt: Callable[[float], str] = fmt,
    y_fmt: Callable[[float], str] = fmt,
    font: int = 9,
) -> str:
    """Return the axis lines, light grid, tick labels and axis titles of ``frame`` (y_count 0: no y ticks)."""
    f = frame
    parts = ['<g class="axes" stroke="#999" stroke-width="1">']
    parts.append(f'<line x1="{num(f.left)}" y1="{num(f.bottom)}" x2="{num(f.right)}" y2="{num(f.bottom)}"/>')
    parts.append(f'<line x1="{num(f.left)}" y1="{num(f.top)}" x2="{num(f.left)}" y2="{num(f.bottom)}"/>')
    parts.append("</g>")
    parts.append(f'<g class="ticks" fill="#444" font-size="{font}">')
    for v in ticks(f.x.lo, f.x.hi, x_count) if x_count else []:
        px = f.x(v)
        parts.append(
            f'<line x1="{num(px)}" y1="{num(f.bottom)}" x2="{num(px)}" y2="{num(f.bottom + 3)}" stroke="#999"/>'
        )
        parts.append(text(px, f.bottom + 3 + font, x_fmt(v), font, "middle"))
    for v in ticks(f.y.lo, f.y.hi, y_count) if y_count else []:
        py = f.y(v)
        parts.append(f'<line x1="{num(f.left)}" y1="{num(py)}" x2="{num(f.right)}" y2="{num(py)}" stroke="#eee"/>')
        parts.append(text(f.left - 3, py + font / 3, y_fmt(v), font, "end"))
    if x_label:
        parts.append(text((f.left + f.right) / 2, f.height - 3, x_label, font, "middle", ' class="x-label"'))
    if y_label:
        cx, cy = font + 1, (f.top + f.bottom) / 2
        rot = f' class="y-label" transform="rotate(-90 {num(cx)} {num(cy)})"'
        parts.append(text(cx, cy, y_label, font, "middle", rot))
    parts.append("</g>")
    return "".join(parts)


def legend(names: Sequence[str], x: float, y: float, width: float, font: int = 9, kinds: str = "line") -> str:
    """Return a legend (colour and dash sample, escaped name) laid out left to right, wrapping at ``width``."""
    parts = ['<g class="legend">']
    cx, cy = x, y
    for i, name in enumerate(names):
        label = shorten(name, 24)
        item = 18 + 4 + len(label) * font * 0.6 + 8
        if cx > x and cx + item > x + width:
            cx, cy = x, cy + font + 3
        colour, dash = style(i)
        if kinds == "box":
            parts.append(
                f'<rect x="{num(cx)}" y="{num(cy - font * 0.7)}" width="14" height="{num(font * 0.7)}" '
                f'fill="{colour}"/>'
            )
        else:
            d = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(
                f'<line x1="{num(cx)}" y1="{num(cy - font / 3)}" x2="{num(cx + 16)}" y2="{num(cy - font / 3)}" '
                f'stroke="{colour}" stroke-width="2"{d}/>'
            )
        parts.append(text(cx + 20, cy, label, font, extra=f' data-series="{esc(name)}"'))
        cx += item
    parts.append("</g>")
    return "".join(parts)


def style(index: int) -> tuple[str, str]:
    """Return (colour, dash pattern) of the ``index``-th series."""
    return PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)]


def stroke(index: int, width: float = 1.5) -> str:
    """Return the stroke attributes of the ``index``-th series."""
    colour, dash = style(index)
    d = f' stroke-dasharray="{dash}"' if dash else ""
    return f'fill="none" stroke="{colour}" stroke-width="{num(width)}"{d}'


def svg(kind: str, size: tuple[int, int], title: str, body: str, data: dict[str, object] | None = None) -> str:
    """Return the ``<svg class="chart KIND">`` element: viewBox, width/height, a ``<title>`` and ``data-*``."""
    width, height = size
    attrs = "".join(f' data-{k}="{esc(v)}"' for k, v in (data or {}).items())
    return (
        f'<svg xmlns="{SVG_NS}" class="chart {esc(kind)}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{esc(title)}" font-family="sans-serif"{attrs}>'
        f"<title>{esc(title)}</title>{body}</svg>"
    )


def no_data(frame: Frame, font: int = 9) -> str:
    """Return the "no data" note drawn in an empty plot area."""
    return text(
        (frame.left + frame.right) / 2,
        (frame.top + frame.bottom) / 2,
        "no data",
        font,
        "middle",
        ' class="no-data" fill="#888"',
    )
