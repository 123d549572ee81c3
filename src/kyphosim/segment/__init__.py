"""Automatic vertebra segmentation and labelling from a bare CT (classical, CPU, no downloaded weights).

Entry point: :func:`segment_spine` (see ``docs/segmentation.md``).
"""

from kyphosim.segment.api import SCHEMA, SegmentationResult, parse_anchor, segment_spine

__all__ = ["segment_spine", "SegmentationResult", "SCHEMA", "parse_anchor"]
