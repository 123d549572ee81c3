"""Voxel hexahedral meshes: one 8-node element per solid voxel, nodes shared on the voxel grid.

Only the largest face-connected solid is meshed (voxels touching it through an edge or a corner
only would add hinge mechanisms; other islands carry no load). Automatic end caps fill the space
between the endplates and two flat planes normal to the loading axis (array axis k).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from kyphosim.errors import InputError
from kyphosim.mechanics.element import NODE_OFFSETS

__all__ = ["VoxelMesh", "build_mesh", "largest_component", "auto_caps", "body_footprint"]


@dataclass
class VoxelMesh:
    """A voxel mesh on a regular grid.

    Attributes
    ----------
    grid_shape : (I, J, K)
        Voxel grid of the model box; nodes live on the (I+1, J+1, K+1) grid.
    spacing : ndarray (3,)
        Voxel size along i, j, k, mm.
    elem_ijk : ndarray (ne, 3) int32
        Voxel index of each element.
    modulus_mpa : ndarray (ne,) float64
        Young's modulus of each element, MPa.
    material : ndarray (ne,) uint8
        Material code of each element (see :data:`kyphosim.mechanics.materials.MATERIAL_CODES`).
    conn : ndarray (ne, 8) int32
        Node ids of the element corners (local node a = di + 2·dj + 4·dk).
    node_ijk : ndarray (nn, 3) int32
        Grid position of each node.
    node_elems : ndarray (nn, 8) int32
        Elements around each node (−1 when absent); slot s = di + 2·dj + 4·dk holds the element at
        voxel ``node − 1 + (di, dj, dk)``, in which the node is local node ``7 − s``.
    """

    grid_shape: tuple[int, int, int]
    spacing: np.ndarray
    elem_ijk: np.ndarray
    modulus_mpa: np.ndarray
    material: np.ndarray
    conn: np.ndarray
    node_ijk: np.ndarray
    node_elems: np.ndarray

    @property
    def n_elements(self) -> int:
        return int(self.elem_ijk.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.node_ijk.shape[0])

    @property
    def n_dofs(self) -> int:
        return 3 * self.n_nodes

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    def element_grid(self, values: np.ndarray, fill: float = 0.0, dtype=np.float32) -> np.ndarray:
        """Scatter per-element values onto the voxel grid (``fill`` elsewhere)."""
        out = np.full(self.grid_shape, fill, dtype=dtype)
        i, j, k = self.elem_ijk.T
        out[i, j, k] = values
        return out

    def memory_bytes(self) -> int:
        return int(sum(a.nbytes for a in (self.elem_ijk, self.modulus_mpa, self.material, self.conn,
                                          self.node_ijk, self.node_elems)))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest face-connected (6-neighbour) component of a boolean mask."""
    lab, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    if n == 1:
        return lab == 1
    counts = np.bincount(lab.ravel())
    counts[0] = 0
    return lab == int(np.argmax(counts))


def build_mesh(modulus_mpa: np.ndarray, material: np.ndarray, spacing, *, keep_largest: bool = True) -> VoxelMesh:
    """Mesh every voxel with ``material > 0`` (optionally only the largest connected solid).

    Parameters
    ----------
    modulus_mpa : ndarray (I, J, K)
        Young's modulus per voxel, MPa (must be > 0 on solid voxels).
    material : ndarray (I, J, K) of uint8
        Material code per voxel; 0 = empty.
    spacing : sequence of 3 floats
        Voxel size, mm.
    """
    solid = np.asarray(material) > 0
    if keep_largest:
        solid = largest_component(solid)
    if not solid.any():
        raise InputError("the finite-element model is empty (no solid voxels)")
    shape = tuple(int(s) for s in solid.shape)
    elem_ijk = np.argwhere(solid).astype(np.int32)
    i, j, k = elem_ijk.T
    E = np.asarray(modulus_mpa, dtype=np.float64)[i, j, k]
    if np.any(~np.isfinite(E)) or np.any(E <= 0):
        raise InputError("every solid voxel needs a finite, positive Young's modulus")
    mat = np.asarray(material)[i, j, k].astype(np.uint8)

    nshape = (shape[0] + 1, shape[1] + 1, shape[2] + 1)
    node_mask = np.zeros(nshape, dtype=bool)
    for di, dj, dk in NODE_OFFSETS:
        node_mask[di:di + shape[0], dj:dj + shape[1], dk:dk + shape[2]] |= solid
    node_ijk = np.argwhere(node_mask).astype(np.int32)
    node_id = np.full(nshape, -1, dtype=np.int32)
    node_id[tuple(node_ijk.T)] = np.arange(node_ijk.shape[0], dtype=np.int32)
    conn = np.empty((elem_ijk.shape[0], 8), dtype=np.int32)
    for a, (di, dj, dk) in enumerate(NODE_OFFSETS):
        conn[:, a] = node_id[i + di, j + dj, k + dk]

    # element id grid padded by one voxel on every side, to look up the 8 elements around a node
    eid = np.full((shape[0] + 2, shape[1] + 2, shape[2] + 2), -1, dtype=np.int32)
    eid[i + 1, j + 1, k + 1] = np.arange(elem_ijk.shape[0], dtype=np.int32)
    p, q, r = node_ijk.T
    node_elems = np.empty((node_ijk.shape[0], 8), dtype=np.int32)
    for s, (di, dj, dk) in enumerate(NODE_OFFSETS):
        node_elems[:, s] = eid[p + di, q + dj, r + dk]  # voxel (p-1+di) in padded coords is p+di
    return VoxelMesh(shape, np.asarray(spacing, float).reshape(3), elem_ijk, E, mat, conn, node_ijk, node_elems)


def body_footprint(bone: np.ndarray, spacing=(1.0, 1.0, 1.0), *, min_height_fraction: float = 0.3,
                   opening_fraction: float = 0.6) -> np.ndarray:
    """2-D footprint (I, J) of the vertebral body seen along the loading axis k.

    Without a body label the body is found as the largest round part of the axial projection: among
    the columns holding at least ``min_height_fraction`` of the tallest column's bone, the deepest point
    (largest inscribed circle, radius R) lies in the body; a morphological opening with a disc of radius
    ``opening_fraction``·R removes the pedicles, arch and processes (all much narrower than the body),
    and the component holding that point is the footprint.
    """
    sp = np.asarray(spacing, float)[:2]
    height = bone.sum(axis=2)
    if height.max() == 0:
        raise InputError("no bone voxels to place end caps on")
    tall = height >= max(1, min_height_fraction * height.max())
    # no hole filling here: the spinal canal must keep the arch apart from the body
    dist = ndimage.distance_transform_edt(np.pad(tall, 1), sampling=sp)[1:-1, 1:-1]
    centre = np.unravel_index(int(np.argmax(dist)), dist.shape)
    r = opening_fraction * float(dist.max())
    eroded = dist >= r
    opened = ndimage.distance_transform_edt(~eroded, sampling=sp) <= r
    opened &= tall
    lab, n = ndimage.label(opened)
    if n == 0 or lab[centre] == 0:
        return tall
    body = ndimage.binary_fill_holes(lab == lab[centre])
    # the opening rounds the rim off: give back a 2 mm band of the projection around it
    grow = ndimage.distance_transform_edt(~body, sampling=sp) <= 2.0
    return body | (grow & tall)


def auto_caps(bone: np.ndarray, *, thickness_vox: int = 3, body: np.ndarray | None = None,
              spacing=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Flat PMMA end caps on the inferior and superior endplates (loading axis = array axis k, +k superior).

    Over the body footprint each column is filled from the endplate up (down) to a flat plane
    ``thickness_vox`` voxels beyond the most superior (inferior) endplate voxel, as in CT-FE
    compression set-ups (the cap embeds the endplate and presents one flat loading face).

    Parameters
    ----------
    bone : ndarray (I, J, K) bool
        Bone voxels of the analysed vertebra.
    body : ndarray (I, J, K) bool, optional
        Vertebral body voxels (sub-region label); estimated with :func:`body_footprint` when absent.

    Returns
    -------
    inferior, superior : ndarray bool
        Cap voxels (on the same grid, which must have room: pad it first).
    planes : (k_bottom, k_top)
        Voxel index of the lowest inferior-cap slice and of the highest superior-cap slice.
    """
    bone = np.asarray(bone, bool)
    if body is not None and np.any(body):
        foot = np.asarray(body, bool).any(axis=2)
        body_vox = np.asarray(body, bool) & bone
    else:
        foot = body_footprint(bone, spacing)
        body_vox = bone & foot[:, :, None]
    if not body_vox.any():
        raise InputError("the vertebral body footprint holds no bone")
    K = bone.shape[2]
    kk = np.arange(K)[None, None, :]
    has = body_vox.any(axis=2)
    top = np.where(body_vox, kk, -1).max(axis=2)
    bot = np.where(body_vox, kk, K).min(axis=2)
    cols = foot & has
    k_top = int(top[cols].max()) + int(thickness_vox)
    k_bot = int(bot[cols].min()) - int(thickness_vox)
    if k_bot < 0 or k_top >= K:
        raise InputError("no room for the end caps on the grid (pad the image along the loading axis)")
    superior = np.zeros_like(bone)
    inferior = np.zeros_like(bone)
    # fill from above the endplate (top surface of the body column) to the flat plane
    top_c = np.where(cols, top, k_top - int(thickness_vox))
    bot_c = np.where(cols, bot, k_bot + int(thickness_vox))
    superior |= (kk > top_c[:, :, None]) & (kk <= k_top) & foot[:, :, None]
    inferior |= (kk < bot_c[:, :, None]) & (kk >= k_bot) & foot[:, :, None]
    superior &= ~bone
    inferior &= ~bone
    return inferior, superior, (k_bot, k_top)
