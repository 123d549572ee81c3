"""Spinal Instability Neoplastic Score (SINS; Fisher et al., Spine 2010; Spine Oncology Study Group).

Scored when a tumour is flagged at a level (``levels[].tumour`` in the clinical input). Location
comes from the level name and collapse from CT morphometry (``height_loss_pct``); pain, lesion
quality, alignment and posterolateral involvement come from the clinical input.

Components and points (clinical-reference.md §6, SINS table):

=====================  ==========================================================================
location               junctional (O–C2, C7–T2, T11–L1, L5–S1) 3; mobile (C3–C6, L2–L4) 2;
                       semi-rigid (T3–T10) 1; rigid (S2–S5) 0
pain                   mechanical 3; occasional non-mechanical 1; pain-free 0
bone lesion            lytic 2; mixed 1; blastic 0
alignment              subluxation/translation 4; de novo deformity 2; normal 0
body collapse          > 50 % 3; < 50 % 2; none but > 50 % of body involved 1; none 0
posterolateral         bilateral 3; unilateral 1; none 0
=====================  ==========================================================================

Total 0–18: 0–6 stable, 7–12 potentially unstable, 13–18 unstable; 7–18 warrants surgical
consultation. (One web summary scores pain 3/2/1; the standard scale 3/1/0 is used here.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

__all__ = ["SinsScore", "score_sins", "sins_location_points", "SINS_SCHEMA"]

SINS_SCHEMA = "kyphosim.sins/1"

#: collapse (height loss) below which a level counts as "no collapse", percent. Genant grade 1 starts at
#: 20 % height loss; smaller apparent loss is within measurement noise (clinical-reference.md §1).
NO_COLLAPSE_BELOW_PCT = 20.0
#: de novo kyphotic deformity when the wedge angle reaches this, degrees (assumption, see docs/clinical.md)
DE_NOVO_KYPHOSIS_DEG = 15.0

_JUNCTIONAL = {"C1", "C2", "C7", "T1", "T2", "T11", "T12", "T13", "L1", "L5", "L6", "S1"}
_MOBILE = {"C3", "C4", "C5", "C6", "L2", "L3", "L4"}
_SEMIRIGID = {f"T{i}" for i in range(3, 11)}


def sins_location_points(level: str) -> tuple[int, str]:
    """Location points and class for a level name (``'L1'`` → ``(3, 'junctional')``)."""
    name = level.upper()
    if name in _JUNCTIONAL:
        return 3, "junctional"
    if name in _MOBILE:
        return 2, "mobile"
    if name in _SEMIRIGID:
        return 1, "semi-rigid"
    if name in {"S2", "S3", "S4", "S5"}:
        return 0, "rigid"
    raise ValueError(f"SINS: unknown level {level!r}")


@dataclass(frozen=True)
class SinsScore:
    """SINS components (points), total and category for one level."""
    level: str
    location: int
    location_class: str
    pain: int
    lesion: int
    alignment: int
    collapse: int
    posterolateral: int
    total: int
    category: Literal["stable", "potentially_unstable", "unstable"]
    surgical_consultation: bool
    notes: list[str] = field(default_factory=list)
    schema: str = SINS_SCHEMA

    def to_dict(self) -> dict:
        from dataclasses import asdict
        return asdict(self)


def score_sins(level: str, *, pain: str = "mechanical", lesion: str = "lytic",
               alignment: Optional[str] = None, posterolateral: str = "none",
               height_loss_pct: Optional[float] = None, wedge_angle_deg: Optional[float] = None,
               body_involvement_gt_50pct: Optional[bool] = None) -> SinsScore:
    """Score SINS for one level.

    Parameters
    ----------
    level : vertebra name, e.g. ``'L1'``.
    pain : ``mechanical`` | ``occasional_non_mechanical`` | ``pain_free``.
    lesion : ``lytic`` | ``mixed`` | ``blastic``.
    alignment : ``subluxation_translation`` | ``de_novo_deformity`` | ``normal``; ``None`` derives it from
        ``wedge_angle_deg`` (≥ 15° → de novo deformity) when given, else scores 0 with a note.
    posterolateral : ``bilateral`` | ``unilateral`` | ``none``.
    height_loss_pct : vertebral-body height loss from CT morphometry, percent.
    wedge_angle_deg : vertebral wedge angle from CT morphometry, degrees.
    body_involvement_gt_50pct : tumour occupies > 50 % of the body (only used when there is no collapse).
    """
    notes: list[str] = []
    loc, loc_class = sins_location_points(level)
    pain_pts = {"mechanical": 3, "occasional_non_mechanical": 1, "pain_free": 0}[pain]
    lesion_pts = {"lytic": 2, "mixed": 1, "blastic": 0}[lesion]
    if alignment is None:
        if wedge_angle_deg is not None:
            alignment = "de_novo_deformity" if wedge_angle_deg >= DE_NOVO_KYPHOSIS_DEG else "normal"
            notes.append(f"alignment derived from CT wedge angle {wedge_angle_deg:.1f}° "
                         f"(de novo deformity at ≥ {DE_NOVO_KYPHOSIS_DEG:g}°)")
        else:
            alignment = "normal"
            notes.append("alignment not given and no wedge angle: scored as normal (0)")
    align_pts = {"subluxation_translation": 4, "de_novo_deformity": 2, "normal": 0}[alignment]
    if height_loss_pct is None:
        collapse_pts = 0
        notes.append("no CT height loss available: collapse scored 0")
    elif height_loss_pct > 50:
        collapse_pts = 3
    elif height_loss_pct >= NO_COLLAPSE_BELOW_PCT:
        collapse_pts = 2
    else:
        collapse_pts = 1 if body_involvement_gt_50pct else 0
    post_pts = {"bilateral": 3, "unilateral": 1, "none": 0}[posterolateral]
    total = loc + pain_pts + lesion_pts + align_pts + collapse_pts + post_pts
    category = "stable" if total <= 6 else ("potentially_unstable" if total <= 12 else "unstable")
    return SinsScore(level=level, location=loc, location_class=loc_class, pain=pain_pts, lesion=lesion_pts,
                     alignment=align_pts, collapse=collapse_pts, posterolateral=post_pts, total=total,
                     category=category, surgical_consultation=total >= 7, notes=notes)
