"""The 8-node trilinear hexahedron (one per voxel), linear isotropic elasticity.

Local node ``a`` of an element sits at corner ``(a & 1, (a >> 1) & 1, (a >> 2) & 1)`` of the voxel,
i.e. ``a = di + 2·dj + 4·dk`` along the array axes (i, j, k). Degrees of freedom are ordered
``3·a + c`` with ``c`` = displacement component along array axis i, j, k.

All voxel elements share one stiffness matrix for unit Young's modulus, ``K0`` (24×24), integrated
exactly with 2×2×2 Gauss points (the integrand is polynomial of degree ≤ 2 per direction for a
rectangular box); an element of modulus ``E`` (MPa) has stiffness ``E·K0`` (N/mm for mm lengths).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["NODE_OFFSETS", "elasticity_matrix", "shape_gradients", "strain_matrix", "hex8_stiffness",
           "hex8_centroid_strain_matrix"]

#: (8, 3) corner offsets of local nodes, a = di + 2·dj + 4·dk
NODE_OFFSETS = np.array([[a & 1, (a >> 1) & 1, (a >> 2) & 1] for a in range(8)], dtype=np.int64)


def elasticity_matrix(E: float = 1.0, nu: float = 0.3) -> np.ndarray:
    """Isotropic 6×6 elasticity matrix (Voigt order xx, yy, zz, yz, xz, xy; engineering shear strains).

    Parameters
    ----------
    E : float
        Young's modulus, MPa.
    nu : float
        Poisson's ratio (−1 < ν < 0.5).
    """
    if not (-1.0 < nu < 0.5):
        raise ValueError(f"Poisson's ratio must lie in (−1, 0.5), got {nu}")
    lam = E * nu / ((1 + nu) * (1 - 2 * nu))
    mu = E / (2 * (1 + nu))
    D = np.zeros((6, 6))
    D[:3, :3] = lam
    D[np.arange(3), np.arange(3)] = lam + 2 * mu
    D[np.arange(3, 6), np.arange(3, 6)] = mu
    return D


def shape_gradients(xi: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Gradients (8, 3) of the trilinear shape functions at local point ``xi`` ∈ [0, 1]³, per mm."""
    xi = np.asarray(xi, float)
    g = np.empty((8, 3))
    for a, (di, dj, dk) in enumerate(NODE_OFFSETS):
        fx = xi[0] if di else 1 - xi[0]
        fy = xi[1] if dj else 1 - xi[1]
        fz = xi[2] if dk else 1 - xi[2]
        sx = 1.0 if di else -1.0
        sy = 1.0 if dj else -1.0
        sz = 1.0 if dk else -1.0
        g[a] = [sx * fy * fz, fx * sy * fz, fx * fy * sz]
    return g / np.asarray(spacing, float)


def strain_matrix(xi: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """The 6×24 strain-displacement matrix B at local point ``xi`` (engineering shear strains)."""
    g = shape_gradients(xi, spacing)
    B = np.zeros((6, 24))
    for a in range(8):
        gx, gy, gz = g[a]
        c = 3 * a
        B[0, c] = gx
        B[1, c + 1] = gy
        B[2, c + 2] = gz
        B[3, c + 1], B[3, c + 2] = gz, gy
        B[4, c], B[4, c + 2] = gz, gx
        B[5, c], B[5, c + 1] = gy, gx
    return B


@lru_cache(maxsize=32)
def _hex8_cached(sx: float, sy: float, sz: float, nu: float) -> np.ndarray:
    spacing = np.array([sx, sy, sz])
    D = elasticity_matrix(1.0, nu)
    gp = 0.5 + np.array([-1.0, 1.0]) / (2.0 * np.sqrt(3.0))  # Gauss points on [0, 1]
    w = 0.5 * 0.5 * 0.5  # weights on [0, 1]³
    detj = sx * sy * sz
    K = np.zeros((24, 24))
    for x in gp:
        for y in gp:
            for z in gp:
                B = strain_matrix(np.array([x, y, z]), spacing)
                K += B.T @ D @ B * (w * detj)
    K = 0.5 * (K + K.T)
    K.setflags(write=False)
    return K


def hex8_stiffness(spacing=(1.0, 1.0, 1.0), nu: float = 0.3) -> np.ndarray:
    """Stiffness matrix (24×24, N/mm per MPa of modulus) of a voxel of size ``spacing`` (mm) with E = 1 MPa."""
    sp = [float(s) for s in np.broadcast_to(np.asarray(spacing, float), (3,))]
    if min(sp) <= 0:
        raise ValueError(f"voxel spacing must be positive, got {sp}")
    return _hex8_cached(sp[0], sp[1], sp[2], float(nu)).copy()


def hex8_centroid_strain_matrix(spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """B (6×24) at the element centre: strains from nodal displacements, mm/mm."""
    return strain_matrix(np.array([0.5, 0.5, 0.5]), np.broadcast_to(np.asarray(spacing, float), (3,)))
