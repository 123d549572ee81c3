"""Typed results of the assessment (schema ``kyphosim.assessment/1``)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field

__all__ = ["SCHEMA", "LevelAssessment", "SpineSummary", "SpineAssessment", "DensityCalibration"]

SCHEMA = "kyphosim.assessment/1"

GenantType = Literal["normal", "wedge", "biconcave", "crush"]
OsteoCategory = Literal["normal", "osteopenia", "osteoporosis"]


class LevelAssessment(BaseModel):
    """One vertebra. Heights in mm along the body's SI axis (contract convention); null = unknown."""

    label: int
    name: str
    height_anterior_mm: Optional[float] = None
    height_middle_mm: Optional[float] = None
    height_posterior_mm: Optional[float] = None
    ratio_anterior_posterior: Optional[float] = None
    ratio_middle_posterior: Optional[float] = None
    expected_height_mm: Optional[float] = Field(None, description="reference height the loss is measured against")
    expected_posterior_height_mm: Optional[float] = Field(
        None, description="posterior height predicted from adjacent normal levels")
    height_loss_pct: Optional[float] = None
    genant_grade: Optional[int] = None
    genant_type: Optional[GenantType] = None
    wedge_angle_deg: Optional[float] = Field(None, description="positive = anterior narrower (kyphotic)")
    local_kyphosis_deg: Optional[float] = Field(
        None, description="superior endplate of the level above to inferior endplate of the level below")
    trabecular_hu: Optional[float] = None
    vbmd_mg_cm3: Optional[float] = Field(None, description="K2HPO4-equivalent, internal calibration")
    posterior_wall_bulge_mm: Optional[float] = None
    body_depth_mm: Optional[float] = None
    body_width_mm: Optional[float] = None
    centroid_mm: Optional[list[float]] = None
    si_axis: Optional[list[float]] = None
    ap_axis: Optional[list[float]] = None
    lr_axis: Optional[list[float]] = None
    voxel_size_si_mm: Optional[float] = None
    height_uncertainty_mm: Optional[float] = Field(
        None, description="max(0.5 mm, half the voxel extent along SI): resolution of the heights")
    body_source: Optional[str] = None
    reference_levels: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)


class DensityCalibration(BaseModel):
    """Internal (phantomless) calibration: reference tissues measured (HU) and the fitted line."""

    method: str = "internal: linear fit of measured HU vs nominal HU of reference tissues (air, fat, muscle, blood)"
    effective_energy_kev: float = Field(..., description="tube voltage (kVp) the nominal tissue HU refer to")
    tissues_hu: dict[str, float]
    tissues_used: list[str]
    slope: float
    intercept_hu: float
    r2: Optional[float] = None
    mg_cm3_per_hu: float


class SpineSummary(BaseModel):
    sdi: Optional[int] = Field(None, description="sum of Genant grades T4–L4 (null unless all covered)")
    sdi_partial: Optional[int] = Field(None, description="sum of grades over the T4–L4 levels present")
    l1_trabecular_hu: Optional[float] = None
    l1_level: Optional[str] = Field(None, description="level used for the opportunistic HU (L1 or nearest)")
    osteoporosis: Optional[OsteoCategory] = None
    osteoporosis_thresholds_hu: dict[str, float] = Field(default_factory=dict)
    vbmd_mean_mg_cm3: Optional[float] = None
    vbmd_category: Optional[str] = None
    density_calibration: Optional[DensityCalibration] = None
    regional_kyphosis_deg: Optional[float] = Field(
        None, description="sagittal Cobb angle, superior endplate of the cranial-most to inferior endplate "
                          "of the caudal-most level; positive = kyphosis, negative = lordosis")
    regional_levels: Optional[str] = None
    fractured_levels: list[str] = Field(default_factory=list)
    missing_levels: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)


class SpineAssessment(BaseModel):
    """Result of :func:`kyphosim.assess.assess_spine`."""

    schema_: str = Field(SCHEMA, alias="schema")
    inputs: dict = Field(default_factory=dict)
    levels: list[LevelAssessment] = Field(default_factory=list)
    spine: SpineSummary = Field(default_factory=SpineSummary)

    model_config = {"populate_by_name": True}

    def level(self, name_or_label) -> LevelAssessment:
        for lv in self.levels:
            if lv.name == name_or_label or lv.label == name_or_label:
                return lv
        raise KeyError(name_or_label)

    def to_json_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)
