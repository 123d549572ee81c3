"""Landmarks and removal of non-vertebral bone: sacrum detection and rib detection."""

from __future__ import annotations

import numpy as np

__all__ = ["detect_sacrum", "detect_ribs"]


def detect_sacrum(wk, lab_w: np.ndarray) -> int | None:
    """Index of the segment that is the sacrum, or None (placeholder: no detection yet)."""
    return None


def detect_ribs(wk, lab_w: np.ndarray) -> tuple[list[bool], float]:
    """Per segment: does a rib articulate with it; and the detector confidence (placeholder)."""
    return [False] * len(wk.segments), 0.0
