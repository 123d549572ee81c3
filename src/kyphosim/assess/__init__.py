"""Spine assessment: vertebral morphometry, Genant grading, kyphosis, bone density, posterior wall.

Entry point: :func:`kyphosim.assess.assess_spine`. Geometry shared with planning and simulation:
:func:`kyphosim.assess.geometry.vertebral_body_geometry`.
"""

from kyphosim.assess.geometry import BodyFrame, BodyGeometry, BodyHeights, EndplateSurface, vertebral_body_geometry

__all__ = ["BodyFrame", "BodyGeometry", "BodyHeights", "EndplateSurface", "vertebral_body_geometry"]
from kyphosim.assess.api import assess_spine  # noqa: E402
from kyphosim.assess.model import SCHEMA, LevelAssessment, SpineAssessment, SpineSummary  # noqa: E402

__all__ += ["assess_spine", "SCHEMA", "LevelAssessment", "SpineAssessment", "SpineSummary"]
