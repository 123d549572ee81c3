"""Typed plan results (pydantic), schema ``kyphosim.plan/1``. Points are world RAS+ mm."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field

__all__ = ["Trajectory", "Alternative", "CementVolume", "LevelPlan", "Plan", "PLAN_SCHEMA"]

PLAN_SCHEMA = "kyphosim.plan/1"

Vec3 = tuple[float, float, float]


class Trajectory(BaseModel):
    """One working-cannula trajectory (entry on the posterior cortex → tip in the body)."""

    side: Literal["left", "right"]
    kind: Literal["pedicle_axis", "unipedicular_oblique"]
    entry_mm: Vec3
    target_mm: Vec3
    isthmus_mm: Vec3
    length_mm: float
    length_in_body_mm: float
    gauge: int
    cannula_outer_diameter_mm: float
    pedicle_min_width_mm: float = Field(description="transverse width of the pedicle isthmus")
    pedicle_height_mm: float
    pedicle_inscribed_diameter_mm: float
    clearance_canal_mm: float
    clearance_cortex_mm: float
    tip_to_anterior_cortex_mm: Optional[float]
    tip_to_superior_endplate_mm: Optional[float]
    tip_to_inferior_endplate_mm: Optional[float]
    convergence_deg: float = Field(description="from the sagittal plane in the axial plane, medial positive")
    sagittal_deg: float = Field(description="from the axial plane in the sagittal plane, + = tip caudal")
    feasible: bool
    reasons: list[str] = []
    warnings: list[str] = []


class Alternative(BaseModel):
    """A proposed alternative for an infeasible pedicle or level (evaluated where possible)."""

    kind: Literal["other_side", "unipedicular", "smaller_gauge", "extrapedicular"]
    description: str
    feasible: Optional[bool] = None


class CementVolume(BaseModel):
    low: float
    expected: float
    high: float


class LevelPlan(BaseModel):
    label: int
    name: str
    approach: Literal["bipedicular", "unipedicular", "none"]
    feasible: bool
    reasons: list[str] = []
    warnings: list[str] = []
    trajectories: list[Trajectory] = []
    rejected_trajectories: list[Trajectory] = []
    alternatives: list[Alternative] = []
    balloon_length_mm: Optional[int] = None
    balloon_inflation_ml_per_side: Optional[float] = None
    cement_volume_ml: Optional[CementVolume] = None
    body_volume_ml: float
    body_depth_mm: float
    body_width_mm: float
    centroid_mm: Vec3
    frame_lr: Vec3
    frame_ap: Vec3
    frame_si: Vec3
    canal_source: str
    pedicle_source: str
    procedure_minutes: Optional[float] = None
    flags: list[str] = []


class Plan(BaseModel):
    schema_: str = Field(PLAN_SCHEMA, alias="schema")
    approach_requested: str
    gauge: int
    levels: list[LevelPlan]
    n_levels_planned: int
    total_procedure_minutes: float
    parameters: dict = {}
    inputs: dict = {}
    kyphosim_version: str = ""

    model_config = {"populate_by_name": True}

    def to_json_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)
