"""Level-dependent vertebral dimensions (mm, degrees) of an adult spine, T1–L5.

Rounded mean values after the morphometry literature (see ``docs/phantom.md``):
- vertebral bodies, pedicles, canal, thoracic: Panjabi et al., Spine 1991;16(8):888–901;
- vertebral bodies, pedicles, canal, lumbar: Panjabi et al., Spine 1992;17(3):299–306;
- pedicle isthmus width/height and transverse/sagittal angles: Zindrick et al., Spine
  1987;12(2):160–166 (lumbar) and Panjabi 1991 (thoracic);
- disc heights and segmental angles: typical adult values (thoracic kyphosis T1–T12 ≈ 40–45°,
  lumbar lordosis L1–S1 ≈ 40–60°).
The numbers are transcribed as rounded means (not from full-text tables at hand); each is within
the published between-subject spread (typically ±1.5–3 mm, ±3–5°).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LevelDims", "LEVEL_DIMS", "level_dims"]


@dataclass(frozen=True)
class LevelDims:
    """Intact dimensions of one level.

    Attributes (mm unless stated)
    ----------
    hp : posterior body height (endplate to endplate at the posterior wall).
    ha_ratio : anterior / posterior body height (< 1: naturally wedged thoracic bodies).
    depth : mid-sagittal body depth at the endplates (EPD).
    width : body width at the endplates (EPW).
    ped_w, ped_h : pedicle isthmus width (transverse) and height.
    ped_conv_deg : pedicle transverse (convergence) angle from the sagittal plane, medial positive.
    ped_sag_deg : pedicle sagittal angle from the axial plane, positive = anterior end caudal.
    canal_w, canal_d : spinal canal width (interpedicular) and depth (mid-sagittal).
    disc_h : mid-height of the disc below this level.
    disc_wedge_deg : sagittal wedge angle of the disc below, positive kyphotic.
    sp_len, sp_incl_deg, sp_h : spinous process length (from the lamina), caudal inclination, height.
    tp_len, tp_back_deg : transverse process length (from the pedicle) and backward sweep from coronal.
    facet_deg : facet joint plane angle from the sagittal plane (0 sagittal … 90 coronal).
    """

    hp: float
    ha_ratio: float
    depth: float
    width: float
    ped_w: float
    ped_h: float
    ped_conv_deg: float
    ped_sag_deg: float
    canal_w: float
    canal_d: float
    disc_h: float
    disc_wedge_deg: float
    sp_len: float
    sp_incl_deg: float
    sp_h: float
    tp_len: float
    tp_back_deg: float
    facet_deg: float


#             hp   ha/hp depth width ped_w ped_h conv  sag  canW canD disc dwedge spL incl spH  tpL  tpB facet
_TABLE = {
    "T1":  (14.5, 0.97, 16.5, 26.0, 7.5, 9.5, 27.0, 15.0, 17.5, 14.0, 4.5, 1.5, 35, 30, 8, 22, 25, 75),
    "T2":  (16.0, 0.96, 18.0, 26.5, 6.2, 11.5, 22.0, 15.0, 16.0, 14.5, 4.5, 1.5, 36, 40, 8, 22, 30, 75),
    "T3":  (16.5, 0.95, 19.5, 26.5, 4.8, 12.0, 17.0, 15.0, 15.0, 14.5, 4.5, 1.5, 37, 45, 8, 21, 30, 75),
    "T4":  (17.0, 0.94, 21.0, 27.5, 4.5, 11.8, 13.0, 15.0, 14.5, 14.5, 4.5, 1.5, 38, 50, 8, 20, 30, 75),
    "T5":  (17.5, 0.94, 23.0, 29.0, 4.8, 11.5, 10.0, 15.0, 14.5, 14.5, 5.0, 1.5, 38, 55, 8, 20, 30, 75),
    "T6":  (18.0, 0.93, 24.5, 30.0, 5.0, 11.8, 9.0, 15.0, 14.5, 14.5, 5.0, 1.5, 38, 55, 8, 19, 30, 75),
    "T7":  (18.5, 0.93, 26.0, 31.5, 5.4, 12.0, 8.0, 14.0, 14.5, 14.5, 5.0, 1.5, 38, 55, 9, 19, 30, 75),
    "T8":  (19.0, 0.93, 27.0, 32.5, 6.0, 12.5, 7.0, 14.0, 15.0, 14.5, 5.0, 1.5, 37, 50, 9, 18, 30, 75),
    "T9":  (20.0, 0.93, 28.0, 34.0, 6.2, 13.5, 6.0, 13.0, 15.5, 15.0, 5.5, 1.5, 36, 45, 10, 17, 30, 75),
    "T10": (21.0, 0.94, 29.5, 37.0, 6.8, 15.0, 5.0, 12.0, 16.5, 15.0, 6.0, 1.0, 34, 35, 11, 15, 30, 75),
    "T11": (22.5, 0.95, 31.0, 40.5, 7.8, 17.0, 3.0, 10.0, 18.0, 16.0, 6.5, 0.5, 32, 25, 13, 10, 20, 70),
    "T12": (24.0, 0.95, 32.5, 41.0, 8.0, 16.0, 2.0, 8.0, 20.0, 17.0, 8.0, -1.0, 30, 15, 15, 7, 10, 45),
    "L1":  (25.5, 0.95, 34.0, 42.5, 8.7, 15.4, 11.0, 3.0, 21.5, 17.5, 9.0, -3.0, 28, 10, 17, 14, 5, 30),
    "L2":  (26.5, 0.97, 35.0, 44.0, 8.9, 15.0, 12.0, 2.0, 22.0, 17.0, 10.0, -4.0, 29, 8, 18, 20, 5, 35),
    "L3":  (27.0, 0.99, 36.0, 46.0, 10.3, 14.9, 14.0, 1.0, 23.0, 16.5, 11.0, -6.0, 29, 5, 18, 25, 5, 40),
    "L4":  (26.5, 1.01, 36.0, 48.0, 12.9, 14.8, 18.0, 0.0, 24.0, 16.5, 11.5, -9.0, 27, 3, 17, 21, 5, 45),
    "L5":  (25.0, 1.07, 35.0, 50.0, 18.0, 14.0, 30.0, -1.0, 26.0, 17.0, 11.0, -12.0, 24, 0, 15, 18, 10, 50),
}

LEVEL_DIMS: dict[str, LevelDims] = {k: LevelDims(*map(float, v)) for k, v in _TABLE.items()}


def level_dims(name: str) -> LevelDims:
    """Intact dimensions of level ``name`` (T1–L5)."""
    try:
        return LEVEL_DIMS[name]
    except KeyError:
        raise KeyError(f"no morphometry for level {name!r} (T1–L5 only)") from None
