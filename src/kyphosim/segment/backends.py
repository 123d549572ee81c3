"""Backends: the classical pipeline, or TotalSegmentator when installed *with its weights already on disk*.

TotalSegmentator (Wasserthal et al., Radiology: AI 2023) is optional and never installed or downloaded by
kyphosim. It is *available* when (1) the ``totalsegmentator`` Python package is importable and (2) its
weights are present locally: a folder of the ``total`` task's vertebra model (name containing
``vertebrae``, e.g. ``Dataset292_TotalSegmentator_part2_vertebrae_1532subj``; or the 3 mm ``fast``
model, name containing ``3mm``) holding at least one ``*.pth`` checkpoint, under its weights folder:
``$TOTALSEG_WEIGHTS_PATH``, else ``$TOTALSEG_HOME_DIR/nnunet/results``, else
``~/.totalsegmentator/nnunet/results``. Only then is its Python API called (TotalSegmentator downloads
missing weights itself, so this check is what keeps kyphosim offline). Its multilabel output is mapped
to VerSe ids through the installed package's own id → name table
(``totalsegmentator.map_to_binary.class_map['total']``) and
:func:`kyphosim.imaging.labels.ts_name_to_verse`, so v1 and v2 numbering both work.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np

from kyphosim.errors import InputError

__all__ = ["resolve_backend", "totalsegmentator_available", "totalsegmentator_weights",
           "run_totalsegmentator", "ts_labels_to_verse"]


def _weights_root() -> Path:
    if os.environ.get("TOTALSEG_WEIGHTS_PATH"):
        return Path(os.environ["TOTALSEG_WEIGHTS_PATH"])
    home = Path(os.environ.get("TOTALSEG_HOME_DIR") or (Path.home() / ".totalsegmentator"))
    return home / "nnunet" / "results"


def totalsegmentator_weights() -> tuple[Path | None, bool]:
    """(folder of a local vertebra-capable model, fast?) or (None, False) when no weights are on disk."""
    root = _weights_root()
    if not root.is_dir():
        return None, False
    found_fast = None
    for d in sorted(p for p in root.rglob("*") if p.is_dir() and "totalsegmentator" in p.name.lower()):
        name = d.name.lower()
        if not any(d.rglob("*.pth")):
            continue
        if "vertebrae" in name:
            return d, False
        if "3mm" in name and found_fast is None:
            found_fast = d
    return (found_fast, True) if found_fast is not None else (None, False)


def totalsegmentator_available() -> bool:
    """True when the ``totalsegmentator`` package is importable and its weights are on disk."""
    if importlib.util.find_spec("totalsegmentator") is None:
        return False
    return totalsegmentator_weights()[0] is not None


def resolve_backend(backend: str) -> str:
    b = (backend or "auto").lower()
    if b not in ("auto", "classic", "totalsegmentator"):
        raise InputError(f"unknown backend {backend!r} (auto, classic, totalsegmentator)")
    if b == "auto":
        return "totalsegmentator" if totalsegmentator_available() else "classic"
    if b == "totalsegmentator" and not totalsegmentator_available():
        raise InputError("TotalSegmentator is not installed with its weights on disk (kyphosim never "
                         "downloads them); install it and its weights yourself, or use --backend classic")
    return b


def ts_labels_to_verse(data: np.ndarray, class_map: dict[int, str]) -> np.ndarray:
    """TotalSegmentator multilabel ids → VerSe ids (0 for every non-vertebral structure)."""
    from kyphosim.imaging.labels import ts_name_to_verse

    lut = np.zeros(max(int(data.max()), max(class_map, default=0)) + 1, np.uint8)
    for tid, name in class_map.items():
        v = ts_name_to_verse(str(name))
        if v is not None:
            lut[int(tid)] = v
    return lut[data.astype(np.int64)]


def run_totalsegmentator(ct):
    """Run the locally installed TotalSegmentator on ``ct``; a :class:`SegmentationResult` in VerSe ids."""
    from kyphosim.imaging.io import load_image, save_volume
    from kyphosim.imaging.volume import Volume
    from kyphosim.imaging.labels import SACRUM_ID, craniocaudal_order, vertebra_name
    from kyphosim.segment.api import SegmentationResult

    if not totalsegmentator_available():
        raise InputError("TotalSegmentator backend not available (package or local weights missing)")
    api = importlib.import_module("totalsegmentator.python_api")
    class_map = importlib.import_module("totalsegmentator.map_to_binary").class_map["total"]
    _, fast = totalsegmentator_weights()
    roi = [n for n in class_map.values() if str(n).startswith("vertebrae_") or str(n) == "sacrum"]
    with tempfile.TemporaryDirectory(prefix="kyphosim_ts_") as tmp:
        src = Path(tmp) / "ct.nii.gz"
        dst = Path(tmp) / "seg.nii.gz"
        save_volume(ct, src)
        api.totalsegmentator(str(src), str(dst), ml=True, task="total", roi_subset=roi, fast=fast,
                             quiet=True)
        if not dst.exists():
            raise InputError("TotalSegmentator produced no output")
        raw = load_image(dst)
        raw = Volume(np.rint(raw.data).astype(np.int32), raw.affine, is_label=True)
        if not raw.same_grid(ct):
            raw = raw.resample(like=ct)
        data = ts_labels_to_verse(raw.data, class_map)
    lab = ct.with_data(data.astype(np.uint8), is_label=True)
    present = [int(v) for v in np.unique(data) if v and v != SACRUM_ID]
    levels = []
    for v in craniocaudal_order(present):
        m = np.argwhere(data == v)
        c = ct.voxel_to_world(m.mean(axis=0))
        levels.append({"label": v, "name": vertebra_name(v), "confidence": None,
                       "flags": ["confidence_not_reported_by_totalsegmentator"],
                       "centroid_mm": [round(float(x), 2) for x in c], "height_mm": None,
                       "fully_in_view": None})
    # TotalSegmentator's 'total' task has no vertebral sub-regions: the map is left empty
    sub = np.zeros(data.shape, np.uint8)
    return SegmentationResult(labels=lab, subregions=ct.with_data(sub, is_label=True), levels=levels,
                              ambiguous=False, method="totalsegmentator", backend="totalsegmentator",
                              sacrum_found=bool((data == SACRUM_ID).any()), ribs_found=False)
