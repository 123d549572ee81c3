"""The set cement cast: fill fraction, endplate contact and interdigitation depth."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from kyphosim.simulation.model import Tissue, VertebraModel

__all__ = ["cast_metrics"]


def cast_metrics(model: VertebraModel, cement: np.ndarray, cavity: np.ndarray | None) -> dict:
    """Fill fraction of the body, contact with each endplate, interdigitation depth (mm).

    * fill fraction = cement volume inside the body / body volume;
    * endplate contact = fraction of the endplate's inner surface (the trabecular layer just
      inside each endplate, within the body footprint) that touches cement (within 1 mm);
    * interdigitation depth = 90th percentile distance of cement outside the KP cavity from the
      cavity wall (KP) — for VP all cement is interdigitated and the depth is the 90th percentile
      distance of the cement from the cast's centre line is not defined, so ``None``.
    """
    h = model.spacing_mm
    body = model.body
    vv = model.voxel_volume_ml
    inside = cement & body
    fill = float(inside.sum() / max(body.sum(), 1))
    reach = max(1, int(round(1.0 / h)))
    near = ndi.binary_dilation(cement, iterations=reach)
    out: dict = {"fill_fraction": fill, "cement_in_body_ml": float(inside.sum() * vv)}
    names = {"superior": Tissue.ENDPLATE_SUP, "inferior": Tissue.ENDPLATE_INF}
    if model.flipped:
        names = {"superior": Tissue.ENDPLATE_INF, "inferior": Tissue.ENDPLATE_SUP}
    contact = {}
    for name, code in names.items():
        ep = (model.tissue == code) | ((model.tissue == Tissue.ENDPLATE_BREAK) &
                                       (ndi.binary_dilation(model.tissue == code, iterations=2)))
        # inner layer: body voxels just inside the endplate
        inner = ndi.binary_dilation(ep, iterations=reach) & body & ~ep
        area = inner.any(axis=2).sum()
        touched = (inner & near).any(axis=2).sum()
        contact[name] = float(touched / area) if area else 0.0
    out["endplate_contact"] = contact
    if cavity is not None and cavity.any():
        outside = cement & ~cavity
        if outside.any():
            d = ndi.distance_transform_edt(~cavity) * h
            out["interdigitation_depth_mm"] = float(np.percentile(d[outside], 90))
        else:
            out["interdigitation_depth_mm"] = 0.0
    else:
        out["interdigitation_depth_mm"] = None
    return out
