"""Cone-beam C-arm geometry: source, flat detector, views (AP, lateral, oblique bull's-eye).

All points are world RAS+ millimetres (+x patient's right, +y anterior, +z superior). The patient
lies prone for kyphoplasty, so in the AP view the tube is anterior (under the table) and the flat
detector posterior, the beam running A→P (−y). Every image is displayed **as seen from the detector
side looking towards the source** with the patient's superior end up: the AP view is the surgeon's
view of the prone patient from behind (patient's right on the image right), the lateral view is
seen from the patient's left (anterior on the image left).

Detector pixel (row, col) has its centre at ``detector_origin + col·pixel_mm·u + row·pixel_mm·v``
where ``u`` points along increasing columns (image right) and ``v`` along increasing rows (image
down).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kyphosim.errors import InputError

__all__ = ["CArmGeometry", "carm_geometry", "VIEWS", "DEFAULT_SDD_MM", "DEFAULT_SID_MM",
           "DEFAULT_DETECTOR_MM", "DEFAULT_PIXELS", "DEFAULT_OBLIQUE_DEG"]

#: Source-to-detector distance of a mobile C-arm, mm (typical 1000 mm).
DEFAULT_SDD_MM = 1000.0
#: Source-to-isocentre distance, mm (mobile C-arms 600–800 mm); magnification SDD/SID = 1.43.
DEFAULT_SID_MM = 700.0
#: Side of the square flat detector, mm (a 30 cm × 30 cm panel).
DEFAULT_DETECTOR_MM = 300.0
#: Detector matrix (rows = cols); pixel pitch = DEFAULT_DETECTOR_MM / DEFAULT_PIXELS = 0.586 mm.
DEFAULT_PIXELS = 512
#: C-arm rotation from AP used for the oblique views when no pedicle axis is known, degrees
#: (the pedicle convergence of the mid-lumbar spine is about 15–25°).
DEFAULT_OBLIQUE_DEG = 20.0

VIEWS = ("ap", "lateral", "oblique-left", "oblique-right")


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n < 1e-12:
        raise InputError(f"direction {v.tolist()} has zero length")
    return v / n


@dataclass(frozen=True, eq=False)
class CArmGeometry:
    """A cone-beam projection geometry (world RAS+ mm).

    Attributes
    ----------
    source_mm : (3,) ndarray
        X-ray focal spot.
    isocenter_mm : (3,) ndarray
        Centre of rotation; the central ray passes through it.
    direction : (3,) ndarray
        Unit vector of the central ray, source → detector.
    u, v : (3,) ndarray
        Unit vectors of increasing detector columns (image right) and rows (image down).
    rows, cols : int
        Detector matrix.
    pixel_mm : float
        Detector pixel pitch (mm, at the detector plane).
    source_to_detector_mm : float
    view : str
        Name of the view ('ap', 'lateral', 'oblique-left', 'oblique-right' or 'custom').
    """

    source_mm: np.ndarray
    isocenter_mm: np.ndarray
    direction: np.ndarray
    u: np.ndarray
    v: np.ndarray
    rows: int
    cols: int
    pixel_mm: float
    source_to_detector_mm: float
    view: str = "custom"

    @property
    def source_to_isocenter_mm(self) -> float:
        return float(np.linalg.norm(self.isocenter_mm - self.source_mm))

    @property
    def magnification(self) -> float:
        """Magnification of an object at the isocentre (SDD / SID)."""
        return self.source_to_detector_mm / self.source_to_isocenter_mm

    @property
    def detector_center_mm(self) -> np.ndarray:
        return self.source_mm + self.source_to_detector_mm * self.direction

    @property
    def detector_origin_mm(self) -> np.ndarray:
        """Centre of pixel (row 0, col 0)."""
        return (self.detector_center_mm - 0.5 * (self.cols - 1) * self.pixel_mm * self.u
                - 0.5 * (self.rows - 1) * self.pixel_mm * self.v)

    @property
    def pixel_mm_at_isocenter(self) -> float:
        return self.pixel_mm / self.magnification

    def pixel_centers_mm(self) -> np.ndarray:
        """World positions of all pixel centres, shape (rows, cols, 3)."""
        r = np.arange(self.rows, dtype=float)[:, None, None]
        c = np.arange(self.cols, dtype=float)[None, :, None]
        return self.detector_origin_mm + c * self.pixel_mm * self.u + r * self.pixel_mm * self.v

    def project(self, points_mm) -> np.ndarray:
        """Project world points (..., 3) onto the detector: continuous (row, col) pixel coordinates (..., 2).

        Points behind the source give NaN.
        """
        p = np.asarray(points_mm, float)
        rel = p - self.source_mm
        depth = rel @ self.direction
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(depth > 1e-9, self.source_to_detector_mm / depth, np.nan)
        hit = self.source_mm + rel * scale[..., None]
        d = hit - self.detector_origin_mm
        col = (d @ self.u) / self.pixel_mm
        row = (d @ self.v) / self.pixel_mm
        return np.stack([row, col], axis=-1)

    def to_dict(self) -> dict:
        return {"view": self.view, "source_mm": self.source_mm.tolist(),
                "isocenter_mm": self.isocenter_mm.tolist(), "direction": self.direction.tolist(),
                "u": self.u.tolist(), "v": self.v.tolist(), "rows": self.rows, "cols": self.cols,
                "pixel_mm": self.pixel_mm, "source_to_detector_mm": self.source_to_detector_mm,
                "source_to_isocenter_mm": self.source_to_isocenter_mm}


def _view_direction(view: str, oblique_deg: float) -> np.ndarray:
    if view == "ap":
        return np.array([0.0, -1.0, 0.0])               # tube anterior (prone patient), detector posterior
    if view == "lateral":
        return np.array([-1.0, 0.0, 0.0])               # tube on the patient's right, detector on the left
    if view in ("oblique-left", "oblique-right"):
        # bull's-eye of a pedicle: the beam runs along the pedicle axis from anterior-medial to
        # posterior-lateral; the left pedicle (−x side) needs a beam with a −x component.
        a = np.deg2rad(oblique_deg)
        sx = -1.0 if view == "oblique-left" else 1.0
        return np.array([sx * np.sin(a), -np.cos(a), 0.0])
    raise InputError(f"unknown view {view!r} (expected one of {', '.join(VIEWS)})")


def carm_geometry(view: str = "ap", isocenter_mm=(0.0, 0.0, 0.0), *, direction=None,
                  oblique_deg: float = DEFAULT_OBLIQUE_DEG, sdd_mm: float = DEFAULT_SDD_MM,
                  sid_mm: float = DEFAULT_SID_MM, rows: int = DEFAULT_PIXELS, cols: int | None = None,
                  pixel_mm: float | None = None, detector_mm: float = DEFAULT_DETECTOR_MM,
                  up=(0.0, 0.0, 1.0)) -> CArmGeometry:
    """Build a C-arm geometry.

    Parameters
    ----------
    view : {'ap', 'lateral', 'oblique-left', 'oblique-right', 'custom'}
        Standard view. Oblique views rotate the C-arm about the superior–inferior axis by
        ``oblique_deg`` from AP towards the named pedicle (a bull's-eye view when ``oblique_deg``
        equals the pedicle convergence). Give ``direction`` to align the beam exactly with a
        planned trajectory (it then overrides the view's default direction).
    isocenter_mm : (3,) array_like
        Centre of rotation, world mm (e.g. the centroid of the treated level).
    direction : (3,) array_like, optional
        Central-ray direction, source → detector (any length).
    sdd_mm, sid_mm : float
        Source-to-detector and source-to-isocentre distances, mm.
    rows, cols : int
        Detector matrix (``cols`` defaults to ``rows``).
    pixel_mm : float, optional
        Pixel pitch; default ``detector_mm / rows``.
    up : (3,) array_like
        World direction shown upwards on the image (superior by default).
    """
    if not (0 < sid_mm < sdd_mm):
        raise InputError(f"source–isocentre distance {sid_mm} mm must be positive and below SDD {sdd_mm} mm")
    rows = int(rows)
    cols = rows if cols is None else int(cols)
    if rows < 2 or cols < 2 or rows > 8192 or cols > 8192:
        raise InputError(f"detector matrix {rows}×{cols} must be between 2 and 8192 pixels")
    pix = float(detector_mm) / rows if pixel_mm is None else float(pixel_mm)
    if not (pix > 0):
        raise InputError(f"pixel pitch {pix} mm must be positive")
    d = _unit(direction) if direction is not None else _view_direction(view, oblique_deg)
    up_w = _unit(up)
    up_perp = up_w - (up_w @ d) * d
    if np.linalg.norm(up_perp) < 1e-6:   # beam along "up": fall back to anterior as up
        alt = np.array([0.0, 1.0, 0.0]) if abs(d[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
        up_perp = alt - (alt @ d) * d
    up_perp = _unit(up_perp)
    u = _unit(np.cross(up_perp, d))       # observer at the detector looking at the source: right-hand side
    v = -up_perp
    iso = np.asarray(isocenter_mm, float).reshape(3)
    src = iso - sid_mm * d
    return CArmGeometry(source_mm=src, isocenter_mm=iso, direction=d, u=u, v=v, rows=rows, cols=cols,
                        pixel_mm=pix, source_to_detector_mm=float(sdd_mm),
                        view=str(view))
