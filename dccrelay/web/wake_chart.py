"""
A bot's wake economy as a small inline SVG histogram: how many dispatches
that arrived while the bot slept reached it within each wake time bucket.
Drawn from the cumulative ``buckets`` of the bot's status (Prometheus'
shape), as twisted.web.template tags, so every label is escaped and the page
needs no script.
"""

from __future__ import annotations

from typing import Mapping

from twisted.web.template import Flattenable, Tag

WIDTH = 640
HEIGHT = 180
_TOP = 18
_BOTTOM = 40
_LEFT = 8


def bucket_counts(cumulative: Mapping[str, int]) -> list[tuple[str, int]]:
    """
    ``(label, dispatches in this bucket)`` from cumulative counts keyed by
    upper bound (``"0.25"`` … ``"+Inf"``), in the order given.
    """
    counts = []
    below = 0
    for bound, total in cumulative.items():
        label = "more" if bound == "+Inf" else f"≤{_seconds(bound)}"
        counts.append((label, max(total - below, 0)))
        below = total
    return counts


def _seconds(bound: str) -> str:
    value = float(bound)
    return f"{value:g} s" if value < 60 else f"{value / 60:g} min"


def _svg(name: str, **attributes: str) -> Tag:
    # twisted.web.template's ``tags`` knows HTML names only.
    given: dict[bytes | str, Flattenable] = {k: v for k, v in attributes.items()}
    return Tag(name, attributes=given)


def wake_histogram(cumulative: Mapping[str, int]) -> Tag:
    """
    The histogram, one bar per bucket, each labelled with its bound and
    titled with its count (shown on hover).
    """
    counts = bucket_counts(cumulative)
    tallest = max((count for _, count in counts), default=0) or 1
    slot = (WIDTH - 2 * _LEFT) / max(len(counts), 1)
    usable = HEIGHT - _TOP - _BOTTOM
    shapes: list[Tag] = []
    for index, (label, count) in enumerate(counts):
        height = usable * count / tallest
        x = _LEFT + index * slot
        bar = _svg(
            "rect", x=f"{x + 2:.1f}", y=f"{_TOP + usable - height:.1f}",
            width=f"{slot - 4:.1f}", height=f"{height:.1f}", fill="#5b8def",
        )
        bar(_svg("title")(f"{label}: {count} dispatches"))
        shapes.append(bar)
        if count:
            shapes.append(_svg(
                "text", x=f"{x + slot / 2:.1f}", y=f"{_TOP + usable - height - 4:.1f}",
                **{"text-anchor": "middle", "font-size": "10"},
            )(str(count)))
        shapes.append(_svg(
            "text", x=f"{x + slot / 2:.1f}", y=f"{HEIGHT - _BOTTOM + 14:.1f}",
            **{"text-anchor": "middle", "font-size": "9"},
        )(label))
    shapes.append(_svg(
        "line", x1=str(_LEFT), x2=str(WIDTH - _LEFT),
        y1=str(_TOP + usable), y2=str(_TOP + usable), stroke="#888",
    ))
    shapes.append(_svg(
        "text", x=str(WIDTH // 2), y=str(HEIGHT - 6),
        **{"text-anchor": "middle", "font-size": "11"},
    )("time from arriving at the relay to reaching the sleeping bot"))
    return _svg(
        "svg", width=str(WIDTH), height=str(HEIGHT), viewBox=f"0 0 {WIDTH} {HEIGHT}",
        role="img", **{"aria-label": "wake time histogram"},
    )(*shapes)
