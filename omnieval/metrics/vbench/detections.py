"""What a VBench object detector returns per frame (GRiT produces them; the semantic dimensions read them)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Detection:
    """One GRiT detection: dense ``caption``, ``box`` ``(x0, y0, x1, y1)`` in pixels, class ``label``."""

    caption: str
    box: tuple[float, float, float, float]
    label: str
