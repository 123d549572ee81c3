"""The :class:`Volume` type: a 3-D voxel array that never loses its affine.

World coordinates are RAS+ millimetres, as in NIfTI scanner space: +x towards the patient's
Right, +y Anterior, +z Superior (see ``docs/conventions.md``).

A ``Volume`` is immutable: every operation (reorient, crop, resample) returns a new one with its
affine updated, so a crop can never silently drop the offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from nibabel import orientations as nio

from kyphosim.errors import InputError

__all__ = ["Volume", "apply_affine", "voxel_sizes", "voxel_count"]


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4×4 affine to points.

    Parameters
    ----------
    affine : ndarray of shape (4, 4)
    points : array_like of shape (..., 3)
        The last axis holds the coordinates.

    Returns
    -------
    ndarray of shape (..., 3)
    """
    pts = np.asarray(points, dtype=float)
    return pts @ affine[:3, :3].T + affine[:3, 3]


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel spacing (mm) along each array axis, from the affine's column norms."""
    return np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))


def voxel_count(length_mm, spacing_mm, *, minimum: int = 1):
    """How many voxels of ``spacing_mm`` make ``length_mm``, rounded half up (int, or an int array for
    array inputs), at least ``minimum``.

    A 1e-3 slack makes header noise harmless: 1.5 mm at 1.0000001 mm spacing is 2 voxels, as at exactly
    1.0 mm (``np.round`` flipped it to 1 and back on float32 header round-off, docs/robustness.md).
    """
    n = np.floor(np.asarray(length_mm, float) / np.asarray(spacing_mm, float) + 0.5 + 1e-3).astype(int)
    n = np.maximum(n, minimum)
    return int(n) if n.ndim == 0 else n


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D image or label map with its voxel→world affine.

    Parameters
    ----------
    data : ndarray of shape (I, J, K)
        Voxel values. Images are in Hounsfield units unless ``meta['units']`` says otherwise.
    affine : ndarray of shape (4, 4)
        Maps voxel indices (i, j, k) to world RAS+ coordinates in mm.
    is_label : bool
        Label maps are resampled with nearest neighbour and keep an integer dtype.
    source_axcodes : tuple of str, optional
        Orientation codes of the file this volume was read from; writers restore it.
    meta : dict
        Free-form provenance (path, modality, units, label names).
    """

    data: np.ndarray
    affine: np.ndarray
    is_label: bool = False
    source_axcodes: tuple[str, str, str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim != 3:
            raise InputError(f"expected a 3-D volume, got {data.ndim}-D data of shape {data.shape}")
        aff = np.asarray(self.affine, dtype=float)
        if aff.shape != (4, 4):
            raise InputError(f"affine must be 4×4, got shape {aff.shape}")
        if not np.all(np.isfinite(aff)):
            raise InputError("affine contains non-finite values (NaN or inf)")
        sp = voxel_sizes(aff)
        if np.any(sp < 1e-3):
            raise InputError(f"voxel spacing {np.round(sp, 4).tolist()} mm is zero or degenerate")
        if abs(np.linalg.det(aff[:3, :3])) < 1e-6 * float(np.prod(sp)):
            raise InputError("the affine is singular: two array axes point along the same world direction "
                             f"(voxel spacing {np.round(sp, 4).tolist()} mm)")
        if np.any(sp > 50):
            raise InputError(f"voxel spacing {np.round(sp, 3).tolist()} mm is absurd (> 50 mm)")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "affine", aff)
        if self.source_axcodes is None:
            object.__setattr__(self, "source_axcodes", self.axcodes)

    # ------------------------------------------------------------------ geometry
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size along each array axis, mm."""
        return voxel_sizes(self.affine)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @property
    def axcodes(self) -> tuple[str, str, str]:
        """Orientation codes of the array axes, e.g. ``('P', 'I', 'R')``."""
        return tuple(nio.aff2axcodes(self.affine))  # type: ignore[return-value]

    def voxel_to_world(self, ijk: np.ndarray | Sequence[float]) -> np.ndarray:
        """Voxel indices (..., 3) → world RAS+ mm (..., 3)."""
        return apply_affine(self.affine, ijk)

    def world_to_voxel(self, xyz: np.ndarray | Sequence[float]) -> np.ndarray:
        """World RAS+ mm (..., 3) → continuous voxel indices (..., 3)."""
        return apply_affine(np.linalg.inv(self.affine), xyz)

    def axis_direction(self, axis: int) -> np.ndarray:
        """Unit world vector of array axis ``axis``."""
        col = self.affine[:3, axis]
        return col / np.linalg.norm(col)

    def world_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned world bounding box (min, max) of the voxel centres, mm."""
        corners = np.array(np.meshgrid(*[[0, s - 1] for s in self.shape], indexing="ij")).reshape(3, -1).T
        w = self.voxel_to_world(corners)
        return w.min(axis=0), w.max(axis=0)

    # ------------------------------------------------------------------ derived volumes
    def with_data(self, data: np.ndarray, *, is_label: bool | None = None, **meta: Any) -> "Volume":
        """A new volume on the same grid with other voxel values."""
        data = np.asarray(data)
        if data.shape != self.shape:
            raise InputError(f"data shape {data.shape} does not match the grid {self.shape}")
        return Volume(
            data,
            self.affine.copy(),
            is_label=self.is_label if is_label is None else is_label,
            source_axcodes=self.source_axcodes,
            meta={**self.meta, **meta},
        )

    def same_grid(self, other: "Volume", *, atol_mm: float = 1e-3) -> bool:
        """True when ``other`` has the same shape and the same affine (within ``atol_mm``)."""
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, atol=atol_mm))

    def reorient(self, axcodes: Sequence[str] = ("R", "A", "S")) -> "Volume":
        """Reorder/flip the array so its axes point along ``axcodes``; the world is unchanged."""
        current = nio.io_orientation(self.affine)
        target = nio.axcodes2ornt(tuple(axcodes))
        transform = nio.ornt_transform(current, target)
        if np.array_equal(transform, [[0, 1], [1, 1], [2, 1]]):
            return self
        data = nio.apply_orientation(self.data, transform)
        affine = self.affine @ nio.inv_ornt_aff(transform, self.shape)
        return Volume(np.ascontiguousarray(data), affine, is_label=self.is_label,
                      source_axcodes=self.source_axcodes, meta=dict(self.meta))

    def as_canonical(self) -> "Volume":
        """The closest RAS+ voxel order (array axis 0 → R, 1 → A, 2 → S)."""
        return self.reorient(("R", "A", "S"))

    def to_source_orientation(self) -> "Volume":
        """Back to the orientation of the file this volume came from."""
        return self.reorient(self.source_axcodes or self.axcodes)

    def crop(self, lo: Sequence[int], hi: Sequence[int]) -> "Volume":
        """Crop to voxel index ranges ``[lo, hi)`` per axis (clipped to the grid); affine updated."""
        lo_c = [max(0, int(v)) for v in lo]
        hi_c = [min(s, int(v)) for v, s in zip(hi, self.shape)]
        if any(h <= l for l, h in zip(lo_c, hi_c)):
            raise InputError(f"empty crop {lo_c}–{hi_c} of a grid of shape {self.shape}")
        sl = tuple(slice(l, h) for l, h in zip(lo_c, hi_c))
        affine = self.affine.copy()
        affine[:3, 3] = self.voxel_to_world(lo_c)
        return Volume(self.data[sl].copy(), affine, is_label=self.is_label,
                      source_axcodes=self.source_axcodes, meta=dict(self.meta))

    def crop_to_mask(self, mask: np.ndarray, margin_mm: float = 0.0) -> "Volume":
        """Crop to the bounding box of a boolean ``mask`` on this grid, plus ``margin_mm``."""
        idx = np.argwhere(mask)
        if idx.size == 0:
            raise InputError("cannot crop to an empty mask")
        pad = np.ceil(margin_mm / self.spacing).astype(int)
        return self.crop(idx.min(axis=0) - pad, idx.max(axis=0) + 1 + pad)

    def resample(self, *, spacing: float | Sequence[float] | None = None, like: "Volume | None" = None,
                 order: int | None = None, cval: float | None = None) -> "Volume":
        """Resample onto another grid.

        Give either ``like`` (another volume's grid) or ``spacing`` (mm; the same orientation and
        field of view). Images use linear interpolation (``order=1``), label maps nearest neighbour.
        Outside the field of view images get ``cval`` (default −1024 HU for images, 0 for labels).
        """
        from scipy import ndimage

        if (spacing is None) == (like is None):
            raise ValueError("give exactly one of spacing= or like=")
        if order is None:
            order = 0 if self.is_label else 1
        if cval is None:
            cval = 0.0 if self.is_label or self.meta.get("units") not in (None, "HU") else -1024.0
        if like is not None:
            target_affine, target_shape = like.affine, like.shape
        else:
            sp_new = np.broadcast_to(np.asarray(spacing, float), (3,))
            if np.any(~np.isfinite(sp_new)) or np.any(sp_new <= 0):
                raise InputError(f"resample spacing must be positive, got {sp_new.tolist()}")
            sp_old = self.spacing
            extent = np.asarray(self.shape) * sp_old
            target_shape = tuple(int(max(1, round(e / s))) for e, s in zip(extent, sp_new))
            target_affine = self.affine.copy()
            target_affine[:3, :3] = self.affine[:3, :3] / sp_old * sp_new
            # keep the outer corner of the field of view fixed
            shift_vox = (sp_new / sp_old - 1.0) / 2.0
            target_affine[:3, 3] = self.voxel_to_world(shift_vox)
        m = np.linalg.inv(self.affine) @ target_affine
        src = self.data
        work_dtype = np.float32 if not self.is_label else src.dtype
        out = ndimage.affine_transform(src.astype(work_dtype, copy=False), m[:3, :3], m[:3, 3],
                                       output_shape=target_shape, order=order, mode="constant",
                                       cval=cval, prefilter=False)
        if self.is_label:
            out = out.astype(self.data.dtype)
        return Volume(out, target_affine, is_label=self.is_label, source_axcodes=self.source_axcodes,
                      meta=dict(self.meta))

    def sample(self, xyz: np.ndarray, *, order: int = 1, cval: float = 0.0) -> np.ndarray:
        """Values at world points (..., 3) mm (trilinear by default)."""
        from scipy import ndimage

        pts = np.asarray(xyz, float)
        ijk = self.world_to_voxel(pts.reshape(-1, 3)).T
        vals = ndimage.map_coordinates(self.data.astype(np.float32, copy=False), ijk, order=order,
                                       mode="constant", cval=cval, prefilter=False)
        return vals.reshape(pts.shape[:-1])

    def __getitem__(self, item: Any) -> None:  # pragma: no cover - guidance only
        raise TypeError("Volume cannot be indexed directly (the affine would be lost): "
                        "use volume.data[...] for values or volume.crop(lo, hi) for a sub-volume")

    def __repr__(self) -> str:
        sp = ", ".join(f"{s:.3g}" for s in self.spacing)
        kind = "labels" if self.is_label else "image"
        return f"Volume({kind}, shape={self.shape}, spacing=({sp}) mm, axcodes={''.join(self.axcodes)})"
