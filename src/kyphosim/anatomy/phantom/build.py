"""``make_phantom(spec)``: shapes → voxels → CT blur/noise → :class:`Phantom` (ct, labels, subregions, truth)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kyphosim.anatomy.phantom.chain import build_shapes
from kyphosim.anatomy.phantom.render import calibration_rois, finish_ct, make_grid, render
from kyphosim.anatomy.phantom.spec import PhantomSpec
from kyphosim.anatomy.phantom.truth import build_truth
from kyphosim.fileio import to_jsonable, write_json
from kyphosim.imaging.io import save_volume
from kyphosim.imaging.labels import SUBREGION_NAMES, vertebra_name
from kyphosim.imaging.volume import Volume

__all__ = ["Phantom", "make_phantom"]


@dataclass
class Phantom:
    """A synthetic spine: CT (HU), vertebra labels (VerSe ids), sub-regions (SUBREGION_IDS), truth."""

    ct: Volume
    labels: Volume
    subregions: Volume
    truth: dict[str, Any]
    spec: PhantomSpec
    shapes: list = field(default_factory=list, repr=False)

    def save(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``ct.nii.gz`` (int16 HU), ``labels.nii.gz``, ``subregions.nii.gz`` (uint8) and
        ``truth.json`` into ``out_dir`` (created), each atomically, in the spec's orientation."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        ct16 = np.clip(np.rint(self.ct.data), -32768, 32767).astype(np.int16)
        paths = {
            "ct": save_volume(self.ct.with_data(ct16), out / "ct.nii.gz"),
            "labels": save_volume(self.labels, out / "labels.nii.gz", dtype=np.uint8),
            "subregions": save_volume(self.subregions, out / "subregions.nii.gz", dtype=np.uint8),
            "truth": write_json(out / "truth.json", self.truth),
        }
        return paths

    def level(self, name: str) -> dict[str, Any]:
        """Truth entry of one level by name (``"L1"``)."""
        for lv in self.truth["levels"]:
            if lv["name"] == name:
                return lv
        raise KeyError(name)


def make_phantom(spec: PhantomSpec, *, progress: Callable[[str], None] | None = None) -> Phantom:
    """Build the phantom of ``spec`` (deterministic for a given spec)."""
    if not isinstance(spec, PhantomSpec):
        raise TypeError("make_phantom expects a PhantomSpec")
    shapes, draws = build_shapes(spec)
    grid = make_grid(spec, shapes)
    res = render(spec, shapes, grid, progress=progress)
    ct = finish_ct(res.ct, grid, spec)
    axc = tuple(spec.orientation)
    names = {int(v): vertebra_name(int(v)) for v in np.unique(res.labels) if v}
    meta = {"source": "kyphosim phantom", "seed": spec.seed}
    ct_v = Volume(ct, grid.affine, source_axcodes=axc, meta={**meta, "units": "HU", "modality": "CT"}).reorient(axc)
    lab_v = Volume(res.labels, grid.affine, is_label=True, source_axcodes=axc,
                   meta={**meta, "label_names": names}).reorient(axc)
    sub_v = Volume(res.sub, grid.affine, is_label=True, source_axcodes=axc,
                   meta={**meta, "label_names": dict(SUBREGION_NAMES)}).reorient(axc)
    grid_info = {"shape": list(ct_v.shape), "spacing_mm": [float(v) for v in ct_v.spacing],
                 "orientation": "".join(ct_v.axcodes), "affine": ct_v.affine}
    truth = build_truth(spec, shapes, res.trab_stats, draws, grid_info)
    truth["calibration_rois"] = to_jsonable(calibration_rois(grid, shapes, spec))
    return Phantom(ct=ct_v, labels=lab_v, subregions=sub_v, truth=truth, spec=spec, shapes=shapes)
