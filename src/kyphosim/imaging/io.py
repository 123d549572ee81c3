"""Readers and writers: NIfTI, DICOM series, VerSe masks and centroids, TotalSegmentator outputs.

Every reader returns a :class:`~kyphosim.imaging.volume.Volume` in the file's own voxel order with
``source_axcodes`` set; call ``.as_canonical()`` for RAS voxel order. Writers restore the source
orientation and write atomically.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import logging

import nibabel as nib
import numpy as np

from kyphosim.errors import GridMismatchError, InputError, LabelError, NotCTError
from kyphosim.fileio import atomic_path
from kyphosim.imaging.labels import (SACRUM_ID, TS_V1_IDS, TS_V2_IDS, VERTEBRA_NAMES, is_vertebra_id,
                                     ts_name_to_verse, vertebra_name)
from kyphosim.imaging.volume import Volume

__all__ = [
    "load_image", "load_ct", "load_labels", "save_volume", "check_ct", "read_dicom_series",
    "read_verse_centroids", "centroids_to_world", "label_centroids_world", "vertebra_ids_present",
    "check_spine_spacing", "MAX_SPINE_SPACING_MM", "ct_padding_value", "PADDING_BELOW_HU",
]

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
# nibabel logs header fixes on stderr; kyphosim reports problems itself, one line each
logging.getLogger("nibabel").setLevel(logging.ERROR)


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(_NIFTI_SUFFIXES)


def _require_exists(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"file not found: {p}")
    return p


def load_image(path: str | os.PathLike) -> Volume:
    """Read a NIfTI file or a DICOM series directory as a :class:`Volume` (no CT check)."""
    p = _require_exists(path)
    if p.is_dir():
        if any(_is_nifti(c) for c in p.iterdir()) and not any(_looks_like_dicom(c) for c in p.iterdir()):
            raise InputError(f"{p} is a folder of NIfTI files, not an image (pass one file, or it as --labels)")
        return read_dicom_series(p)
    if _is_nifti(p):
        return _read_nifti(p)
    if _looks_like_dicom(p):
        return read_dicom_series(p.parent)
    raise InputError(f"{p} is not a NIfTI file (.nii/.nii.gz) or a DICOM series directory")


def _read_nifti(p: Path) -> Volume:
    try:
        img = nib.load(str(p))
        raw_zooms = _raw_pixdim(p, img)
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(f"cannot read {p.name} as NIfTI: {str(exc).splitlines()[0][:120]}") from None
    if data.dtype.names:
        raise InputError(f"{p.name} holds RGB colour data, not a CT or label image")
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{p.name} has {data.ndim}-D data of shape {data.shape}; a 3-D volume is needed")
    affine = img.affine
    if affine is None or not np.all(np.isfinite(affine)):
        raise InputError(f"{p.name} has a non-finite affine (NaN/inf in the header geometry)")
    zooms = np.asarray(img.header.get_zooms()[:3], float)
    if raw_zooms is not None and (np.any(raw_zooms <= 0) or np.any(~np.isfinite(raw_zooms))):
        raise InputError(f"{p.name} has zero or invalid voxel spacing {raw_zooms.tolist()} in its header")
    if np.any(zooms <= 0) or np.any(~np.isfinite(zooms)):
        raise InputError(f"{p.name} has zero or invalid voxel spacing {zooms.tolist()}")
    try:
        return Volume(data, affine, meta={"path": str(p), "format": "nifti"})
    except InputError as exc:  # name the file
        raise InputError(f"{p.name}: {exc}") from None


def _raw_pixdim(p: Path, img) -> np.ndarray | None:
    """pixdim[1:4] as stored in the file (nibabel silently replaces zeros by 1 on load)."""
    hdr_cls = type(img.header)
    if not hasattr(hdr_cls, "from_fileobj") or not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        return None
    with nib.openers.ImageOpener(str(p)) as fobj:
        raw = hdr_cls.from_fileobj(fobj, check=False)
    return np.asarray(raw["pixdim"][1:4], float)


# ---------------------------------------------------------------------------------- DICOM
def _looks_like_dicom(p: Path) -> bool:
    if not p.is_file():
        return False
    if p.suffix.lower() in (".dcm", ".ima"):
        return True
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
        return len(head) == 132 and head[128:132] == b"DICM"
    except OSError:
        return False


def read_dicom_series(directory: str | os.PathLike) -> Volume:
    """Read a DICOM series directory (any transfer syntax pydicom can decode, incl. JPEG 2000).

    Slices are sorted along the slice normal by ImagePositionPatient; RescaleSlope/Intercept are
    applied per slice; the LPS patient geometry is converted to a RAS+ affine. When several series
    are present, the one with the most slices is used (a warning names the others).
    """
    import pydicom

    d = _require_exists(directory)
    files = [f for f in sorted(d.iterdir()) if f.is_file()]
    datasets = []
    for f in files:
        try:
            ds = pydicom.dcmread(str(f), stop_before_pixels=False, force=False)
        except Exception:
            continue
        if "PixelData" in ds and "ImagePositionPatient" in ds:
            datasets.append(ds)
    if not datasets:
        raise InputError(f"{d} holds no readable DICOM images")
    by_series: dict[str, list] = {}
    for ds in datasets:
        by_series.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append(ds)
    uid, series = max(by_series.items(), key=lambda kv: len(kv[1]))
    if len(by_series) > 1:
        warnings.warn(f"{d} holds {len(by_series)} series; reading {uid} ({len(series)} slices)")
    if len(series) < 2:
        raise InputError(f"{d}: a single DICOM slice is 2-D data; a 3-D series is needed")
    iop = np.asarray(series[0].ImageOrientationPatient, float)
    row_cos, col_cos = iop[:3], iop[3:]
    normal = np.cross(row_cos, col_cos)
    series.sort(key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)))
    positions = np.array([np.asarray(ds.ImagePositionPatient, float) for ds in series])
    steps = np.diff(positions @ normal)
    if np.any(steps < 1e-3):
        raise InputError(f"{d}: duplicate slice positions in the DICOM series")
    if np.ptp(steps) > 0.01 * steps.mean() + 1e-3:
        raise InputError(f"{d}: irregular slice spacing ({steps.min():.2f}–{steps.max():.2f} mm); resample it first")
    ps = np.asarray(series[0].PixelSpacing, float)  # [row spacing, column spacing]
    slices = []
    try:
        for ds in series:
            arr = ds.pixel_array.astype(np.float32)
            slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
            icpt = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
            slices.append(arr * slope + icpt)
    except Exception as exc:
        raise InputError(f"cannot decode DICOM pixel data in {d}: {str(exc).splitlines()[0][:120]} "
                         f"(JPEG 2000 needs pylibjpeg-openjpeg)") from None
    # array axes: i = column, j = row, k = slice
    data = np.stack([s.T for s in slices], axis=-1)
    slice_vec = (positions[-1] - positions[0]) / (len(series) - 1)
    lps = np.eye(4)
    lps[:3, 0] = row_cos * ps[1]
    lps[:3, 1] = col_cos * ps[0]
    lps[:3, 2] = slice_vec
    lps[:3, 3] = positions[0]
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    modality = str(getattr(series[0], "Modality", "") or "")
    if np.allclose(data, np.round(data)) and data.min() >= -32768 and data.max() <= 32767:
        data = data.astype(np.int16)
    return Volume(data, ras, meta={"path": str(d), "format": "dicom", "modality": modality,
                                   "series_uid": uid, "slices": len(series)})


# ---------------------------------------------------------------------------------- CT checks
#: values below this are no tissue: air is −1000 HU and its noise stays within a few hundred HU;
#: scanners and converters mark voxels outside the reconstruction circle with one constant far below
#: it (−2000, −2048, −3024, −32768)
PADDING_BELOW_HU = -1500.0


def ct_padding_value(data: np.ndarray) -> float | None:
    """The constant that marks voxels outside the reconstruction field of view, or None.

    Padding is recognised only when every value below :data:`PADDING_BELOW_HU` is the same number.
    """
    if not np.issubdtype(data.dtype, np.number) or float(np.min(data)) >= PADDING_BELOW_HU:
        return None
    low = data[data < PADDING_BELOW_HU]
    lo, hi = float(low.min()), float(low.max())
    return lo if lo == hi else None


def check_ct(vol: Volume) -> Volume:
    """Raise :class:`NotCTError` unless the values can be Hounsfield units of a CT.

    A CT holds air or fat (< −50 HU) somewhere and values within −3024…+30000; an 8-bit
    0–255 picture, a mask, or raw unrescaled detector values fail.
    """
    modality = vol.meta.get("modality")
    if modality and modality.upper() not in ("CT", "OT", ""):
        raise NotCTError(f"DICOM modality is {modality}, not CT")
    data = vol.data
    if not np.issubdtype(data.dtype, np.number):
        raise NotCTError("image values are not numeric")
    lo, hi = float(np.min(data)), float(np.max(data))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise NotCTError("image contains NaN or infinite values")
    pad = ct_padding_value(data)
    if pad is not None:  # judge the values inside the reconstruction field of view
        inside = data[data != pad]
        if inside.size == 0:
            raise NotCTError(f"every voxel holds the padding value {pad:g}")
        lo = float(inside.min())
    if lo >= -50.0:
        if hi <= 255.0:
            raise NotCTError(f"values {lo:g}…{hi:g} look like an 8-bit picture or a mask, not CT Hounsfield units")
        raise NotCTError(f"values {lo:g}…{hi:g} have no air or fat (< −50 HU): not CT Hounsfield units "
                         f"(raw values without rescale slope/intercept?)")
    if lo < -3100 or hi > 40000 or hi - lo < 300:
        raise NotCTError(f"values {lo:g}…{hi:g} are outside the range of CT Hounsfield units")
    return vol


#: coarsest voxel spacing (mm, any axis) a spine CT or label map may have: the smallest vertebral bodies
#: measured on the shared data are ~17 mm tall (thoracic), so > 10 mm leaves fewer than two samples across
#: one and every height, edge and centroid would be nonsense (docs/robustness.md)
MAX_SPINE_SPACING_MM = 10.0


def check_spine_spacing(vol: Volume, what: str = "image") -> Volume:
    """Raise :class:`InputError` when ``vol``'s voxels are too coarse to resolve a vertebra."""
    sp = vol.spacing
    if np.any(sp > MAX_SPINE_SPACING_MM):
        name = Path(str(vol.meta.get("path", what))).name
        raise InputError(f"{name}: voxel spacing {np.round(sp, 2).tolist()} mm is too coarse for vertebrae "
                         f"(> {MAX_SPINE_SPACING_MM:g} mm along an axis; a vertebral body is 17–35 mm tall)")
    return vol


def load_ct(path: str | os.PathLike) -> Volume:
    """Read a CT (NIfTI or DICOM series) and check its values are Hounsfield units."""
    vol = load_image(path)
    check_ct(vol)
    check_spine_spacing(vol, "CT")
    data, meta = vol.data, {**vol.meta, "units": "HU"}
    pad = ct_padding_value(data)
    if pad is not None:
        # outside the reconstruction circle is air for every stage (left at e.g. −3024 it was taken as
        # air by the density calibration: vBMD 87 → 30 mg/cm³, docs/robustness.md)
        sel = data == pad
        data = np.where(sel, np.asarray(-1024, data.dtype), data)
        meta.update(padding_hu=pad, padding_voxels=int(sel.sum()))
    return Volume(data, vol.affine, source_axcodes=vol.source_axcodes, meta=meta)


# ---------------------------------------------------------------------------------- labels
def load_labels(path: str | os.PathLike, *, reference: Volume | None = None, resample: bool = False,
                fmt: str = "auto") -> Volume:
    """Read vertebra labels as one label map with VerSe ids.

    Parameters
    ----------
    path : path
        A VerSe-style mask (``*_seg-vert_msk.nii.gz``), a TotalSegmentator v1 or v2 multilabel map,
        or a TotalSegmentator output folder of ``vertebrae_XX.nii.gz`` masks.
    reference : Volume, optional
        The CT the labels belong to; the grids must agree unless ``resample`` is true.
    resample : bool
        Resample labels (nearest neighbour) onto ``reference``'s grid when they differ.
    fmt : {'auto', 'verse', 'ts1', 'ts2'}
        Id convention of a multilabel file. 'auto' uses VerSe ids unless the ids can only be
        TotalSegmentator ones (organ ids present, or vertebra ids outside the VerSe set).
    """
    p = _require_exists(path)
    if p.is_dir():
        vol = _read_ts_folder(p)
    else:
        raw = load_image(p)
        vol = _relabel_multilabel(raw, fmt)
    check_spine_spacing(vol, "labels")
    ids = vertebra_ids_present(vol)
    if not ids:
        raise LabelError(f"{p.name}: the label map holds no vertebra ids (VerSe 1–25, 28)")
    if reference is not None and not vol.same_grid(reference):
        same_world = vol.reorient(reference.axcodes)
        if same_world.same_grid(reference):  # the CT's grid in another voxel order: reorder, no resampling
            vol = Volume(same_world.data, reference.affine, is_label=True,
                         source_axcodes=reference.source_axcodes, meta=vol.meta)
    if reference is not None and not vol.same_grid(reference):
        if not resample:
            raise GridMismatchError(
                f"labels {p.name} ({vol.shape}, {''.join(vol.axcodes)}) are not on the CT grid "
                f"({reference.shape}, {''.join(reference.axcodes)}); pass --resample-labels to resample them")
        vol = vol.resample(like=reference)
        vol = Volume(vol.data, vol.affine, is_label=True, source_axcodes=reference.source_axcodes, meta=vol.meta)
        if not vertebra_ids_present(vol):
            raise LabelError(f"{p.name}: no vertebra remains inside the CT's field of view after resampling")
    return vol


def _relabel_multilabel(raw: Volume, fmt: str) -> Volume:
    data = raw.data
    if np.issubdtype(data.dtype, np.floating):
        if not np.allclose(data, np.round(data)):
            raise LabelError(f"{Path(raw.meta.get('path', '?')).name}: label values are not integers "
                             f"(is this an image rather than a mask?)")
    data = np.round(data).astype(np.int32) if data.dtype != np.int32 else data
    present = set(np.unique(data).tolist()) - {0}
    if fmt == "auto" and present and present <= set(range(41, 51)):
        # a VerSe/TPTBox sub-region mask (seg-subreg, ids 41–50) given as vertebra labels was read as
        # TotalSegmentator v2 ids, i.e. ten vertebrae C1–T3 (docs/robustness.md)
        raise LabelError(f"{Path(raw.meta.get('path', '?')).name}: ids {sorted(present)} are VerSe/TPTBox "
                         f"sub-region ids (41–50), not vertebrae: pass this file as --subregions and the "
                         f"vertebra mask (seg-vert) as --labels")
    if fmt == "auto":
        # VerSe ids are a subset of 1–28; TotalSegmentator v2 puts vertebrae at 26–50 (25 sacrum),
        # v1 at 18–41 with organs at 1–17.
        if all(is_vertebra_id(v) or v in (SACRUM_ID, 27) for v in present):
            fmt = "verse"
        elif present & {25, 26} or any(v > 41 for v in present):
            fmt = "ts2"
        else:
            fmt = "ts1"
    if fmt == "verse":
        mapping = {v: v for v in present if is_vertebra_id(v) or v == SACRUM_ID}
    elif fmt == "ts1":
        mapping = {k: v for k, v in TS_V1_IDS.items() if k in present}
    elif fmt == "ts2":
        mapping = {k: v for k, v in TS_V2_IDS.items() if k in present}
    else:
        raise InputError(f"unknown label format {fmt!r} (auto, verse, ts1, ts2)")
    lut = np.zeros(max(present | {0}) + 1, dtype=np.uint8)
    for k, v in mapping.items():
        lut[k] = v
    out = lut[np.clip(data, 0, None)]
    names = {int(v): vertebra_name(v) for v in set(mapping.values())}
    return Volume(out, raw.affine, is_label=True, source_axcodes=raw.source_axcodes,
                  meta={**raw.meta, "label_format": fmt, "label_names": names})


def _read_ts_folder(d: Path) -> Volume:
    files = sorted(f for f in d.iterdir() if _is_nifti(f))
    masks = [(f, ts_name_to_verse(f.name.split(".")[0])) for f in files]
    masks = [(f, v) for f, v in masks if v is not None]
    if not masks:
        raise LabelError(f"{d}: no vertebrae_XX.nii.gz masks in this folder")
    first = load_image(masks[0][0])
    out = np.zeros(first.shape, dtype=np.uint8)
    for f, vid in masks:
        m = load_image(f)
        if not m.same_grid(first):
            raise GridMismatchError(f"{f.name} is on a different grid than {masks[0][0].name}")
        sel = m.data > 0.5
        if vid == SACRUM_ID:
            sel &= out == 0
        out[sel] = vid
    names = {int(v): vertebra_name(v) for _, v in masks}
    return Volume(out, first.affine, is_label=True, source_axcodes=first.source_axcodes,
                  meta={"path": str(d), "format": "totalsegmentator-folder", "label_names": names})


def vertebra_ids_present(labels: Volume) -> list[int]:
    """VerSe vertebra ids present in a label map (sacrum excluded), cranial to caudal."""
    from kyphosim.imaging.labels import craniocaudal_order

    vals = np.unique(labels.data)
    return craniocaudal_order(int(v) for v in vals if v != 0 and is_vertebra_id(int(v)))


def label_centroids_world(labels: Volume) -> dict[int, np.ndarray]:
    """World (RAS mm) centroid of each vertebra label."""
    from scipy import ndimage

    ids = vertebra_ids_present(labels)
    if not ids:
        return {}
    coms = ndimage.center_of_mass(np.ones(labels.shape, np.uint8), labels.data, ids)
    return {i: labels.voxel_to_world(np.asarray(c)) for i, c in zip(ids, coms)}


# ---------------------------------------------------------------------------------- VerSe centroids
def read_verse_centroids(path: str | os.PathLike) -> tuple[tuple[str, str, str], dict[int, np.ndarray]]:
    """Read a VerSe ``*_ctd.json``: (axis codes, {label: voxel coordinates (X, Y, Z)})."""
    p = _require_exists(path)
    try:
        entries = json.loads(p.read_text())
        codes = tuple(entries[0]["direction"])
        pts = {int(e["label"]): np.array([e["X"], e["Y"], e["Z"]], float) for e in entries[1:] if "label" in e}
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise InputError(f"{p.name} is not a VerSe centroid file: {exc}") from None
    if len(codes) != 3:
        raise InputError(f"{p.name}: direction must have 3 axis codes, got {codes}")
    return codes, pts  # type: ignore[return-value]


def centroids_to_world(codes, points: dict[int, np.ndarray], like: Volume) -> dict[int, np.ndarray]:
    """Convert VerSe voxel centroids (in the ``codes`` orientation of ``like``'s grid) to world mm."""
    ref = like.reorient(tuple(codes))
    return {k: ref.voxel_to_world(v) for k, v in points.items()}


# ---------------------------------------------------------------------------------- writing
def save_volume(vol: Volume, path: str | os.PathLike, *, dtype=None) -> Path:
    """Write a volume as NIfTI in its source orientation, atomically."""
    out = vol.to_source_orientation()
    data = out.data
    if dtype is not None:
        data = data.astype(dtype)
    elif data.dtype == bool:
        data = data.astype(np.uint8)
    elif data.dtype == np.float64:
        data = data.astype(np.float32)
    img = nib.Nifti1Image(data, out.affine)
    img.set_qform(out.affine, code=1)
    img.set_sform(out.affine, code=1)
    if vol.is_label:
        img.header.set_intent("label")
    p = Path(path)
    with atomic_path(p) as tmp:
        nib.save(img, str(tmp))
    return p
