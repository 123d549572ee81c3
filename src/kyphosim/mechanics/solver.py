"""Linear solvers for voxel finite-element models.

All voxel elements share one 24×24 matrix ``K0`` (unit modulus) scaled by the element modulus, so the
global product ``y = A x`` is computed matrix-free, node by node (race-free under numba ``prange``):
``y_n = Σ_{e ∋ n} E_e · K0[rows of n] · x_e``.

Solvers (all preconditioned conjugate gradients on the free degrees of freedom):

* ``"gmg"`` (default): matrix-free fine level, one geometric coarsening (2×2×2 voxels, trilinear
  prolongation P) whose Galerkin operator ``Pᵀ M A M P`` is formed element by element
  (``Σ_children E_c · Q_cᵀ K0 Q_c``), then a pyamg smoothed-aggregation hierarchy below it;
  Chebyshev–Jacobi smoothing on the fine level. One V-cycle preconditions each CG iteration.
* ``"amg"``: assembled fine matrix (block-sparse, 3×3 blocks) with a pyamg smoothed-aggregation
  V-cycle (rigid-body near-null space).
* ``"jacobi"``: matrix-free CG with diagonal scaling (simple, slow; for checks).

Dirichlet conditions: ``M`` masks constrained degrees of freedom; the reduced operator is
``M A M + (I − M)`` and the right-hand side ``−M A u_D``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numba as nb
import numpy as np
import scipy.sparse as sp

from kyphosim.mechanics.element import NODE_OFFSETS
from kyphosim.mechanics.mesh import VoxelMesh

__all__ = ["SolveInfo", "matvec", "diagonal", "assemble_bsr", "solve"]

_OFF = NODE_OFFSETS.astype(np.int64)
# slot t of the 27-neighbour stencil for node offset (dx, dy, dz) ∈ {-1, 0, 1}³
_PAIR_SLOT = np.empty((8, 8), dtype=np.int64)
for _a in range(8):
    for _b in range(8):
        _d = _OFF[_b] - _OFF[_a] + 1
        _PAIR_SLOT[_a, _b] = _d[0] * 9 + _d[1] * 3 + _d[2]


@dataclass
class SolveInfo:
    """Solver report."""
    name: str
    iterations: int
    relative_residual: float
    converged: bool
    seconds_setup: float
    seconds_solve: float
    history: list[float] = field(default_factory=list)
    levels: int = 1
    coarse_dofs: int = 0
    cpu_setup: float = 0.0
    cpu_solve: float = 0.0
    threads: int = 1


# ----------------------------------------------------------------------------------- kernels
@nb.njit(parallel=True, cache=True)
def _gather(x, conn, X):
    """X[e, 3a + c] = x[3·conn[e, a] + c] (element displacement vectors)."""
    for e in nb.prange(conn.shape[0]):
        for a in range(8):
            m = conn[e, a]
            X[e, 3 * a] = x[3 * m]
            X[e, 3 * a + 1] = x[3 * m + 1]
            X[e, 3 * a + 2] = x[3 * m + 2]


@nb.njit(parallel=True, fastmath=True, cache=True)
def _scatter(Y, node_elems, E, out):
    """out[3n + c] = Σ_e E_e · Y[e, 3·a(n, e) + c] over the elements around node n (race-free)."""
    for n in nb.prange(node_elems.shape[0]):
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        for s in range(8):
            e = node_elems[n, s]
            if e < 0:
                continue
            r = 3 * (7 - s)
            Ee = E[e]
            a0 += Ee * Y[e, r]
            a1 += Ee * Y[e, r + 1]
            a2 += Ee * Y[e, r + 2]
        out[3 * n] = a0
        out[3 * n + 1] = a1
        out[3 * n + 2] = a2


@nb.njit(parallel=True, cache=True)
def _diag(node_elems, E, K0, out):
    nn = node_elems.shape[0]
    for n in nb.prange(nn):
        d0 = 0.0
        d1 = 0.0
        d2 = 0.0
        for s in range(8):
            e = node_elems[n, s]
            if e < 0:
                continue
            r = 3 * (7 - s)
            d0 += E[e] * K0[r, r]
            d1 += E[e] * K0[r + 1, r + 1]
            d2 += E[e] * K0[r + 2, r + 2]
        out[3 * n] = d0
        out[3 * n + 1] = d1
        out[3 * n + 2] = d2


@nb.njit(parallel=True, cache=True)
def _assemble_scaled(node_elems, conn, E, K0, pair_slot, blocks):
    """blocks[n, t] (3×3) of the 27-point block stencil, from E_e·K0."""
    nn = node_elems.shape[0]
    for n in nb.prange(nn):
        for s in range(8):
            e = node_elems[n, s]
            if e < 0:
                continue
            la = 7 - s
            Ee = E[e]
            for b in range(8):
                t = pair_slot[la, b]
                for i in range(3):
                    for j in range(3):
                        blocks[n, t, i, j] += Ee * K0[3 * la + i, 3 * b + j]


# ----------------------------------------------------------------------------------- helpers
class Workspace:
    """Buffers for the matrix-free product: element vectors X (ne×24) and Y = X·K0 (one GEMM)."""

    def __init__(self, mesh: VoxelMesh, K0: np.ndarray):
        self.mesh = mesh
        self.K0 = np.ascontiguousarray(K0, dtype=np.float64)
        self.X = np.empty((mesh.n_elements, 24))
        self.Y = np.empty((mesh.n_elements, 24))

    def matvec(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            out = np.empty_like(x)
        _gather(x, self.mesh.conn, self.X)
        np.matmul(self.X, self.K0, out=self.Y)  # K0 is symmetric
        _scatter(self.Y, self.mesh.node_elems, self.mesh.modulus_mpa, out)
        return out


def matvec(mesh: VoxelMesh, K0: np.ndarray, x: np.ndarray, out: np.ndarray | None = None,
           work: Workspace | None = None) -> np.ndarray:
    """Matrix-free product ``A x`` of the unconstrained stiffness matrix (N for x in mm)."""
    if work is None:
        work = Workspace(mesh, K0)
    return work.matvec(x, out)


def diagonal(mesh: VoxelMesh, K0: np.ndarray) -> np.ndarray:
    """Diagonal of the unconstrained stiffness matrix."""
    out = np.empty(mesh.n_dofs)
    _diag(mesh.node_elems, mesh.modulus_mpa, K0, out)
    return out


def _neighbours(node_ijk: np.ndarray) -> np.ndarray:
    """(nn, 27) node ids of the 27-point neighbourhood (−1 where absent)."""
    nshape = tuple(int(v) + 2 for v in node_ijk.max(axis=0) + 1)
    grid = np.full(nshape, -1, dtype=np.int64)
    p, q, r = (node_ijk.astype(np.int64) + 1).T
    grid[p, q, r] = np.arange(node_ijk.shape[0])
    nbr = np.empty((node_ijk.shape[0], 27), dtype=np.int64)
    t = 0
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dz in (-1, 0, 1):
                nbr[:, t] = grid[p + dx, q + dy, r + dz]
                t += 1
    return nbr


def _blocks_to_bsr(blocks: np.ndarray, nbr: np.ndarray) -> sp.bsr_matrix:
    valid = nbr >= 0
    nn = nbr.shape[0]
    indptr = np.zeros(nn + 1, dtype=np.int64)
    np.cumsum(valid.sum(axis=1), out=indptr[1:])
    indices = nbr[valid]
    data = blocks[valid]
    if indptr[-1] < np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
        indices = indices.astype(np.int32)
    return sp.bsr_matrix((data, indices, indptr), shape=(3 * nn, 3 * nn))


def assemble_bsr(mesh: VoxelMesh, K0: np.ndarray) -> sp.bsr_matrix:
    """Assembled unconstrained stiffness matrix as a 3×3 block-sparse matrix."""
    blocks = np.zeros((mesh.n_nodes, 27, 3, 3))
    _assemble_scaled(mesh.node_elems, mesh.conn, mesh.modulus_mpa, K0, _PAIR_SLOT, blocks)
    return _blocks_to_bsr(blocks, _neighbours(mesh.node_ijk))


def constrain(A: sp.spmatrix, free: np.ndarray) -> sp.csr_matrix:
    """``M A M + (I − M)`` for a 0/1 free-dof mask (symmetric elimination of constrained dofs)."""
    m = sp.diags(free.astype(float))
    return (m @ A.tocsr() @ m + sp.diags(1.0 - free)).tocsr()


def rigid_body_modes(node_xyz: np.ndarray) -> np.ndarray:
    """(3·nn, 6) translations and infinitesimal rotations about the centroid (near-null space)."""
    c = node_xyz - node_xyz.mean(axis=0)
    nn = c.shape[0]
    B = np.zeros((nn, 3, 6))
    B[:, 0, 0] = B[:, 1, 1] = B[:, 2, 2] = 1.0
    x, y, z = c.T
    B[:, 1, 3], B[:, 2, 3] = -z, y
    B[:, 0, 4], B[:, 2, 4] = z, -x
    B[:, 0, 5], B[:, 1, 5] = -y, x
    B = B.reshape(3 * nn, 6)
    return B / np.linalg.norm(B, axis=0)


def _pyamg_hierarchy(A: sp.spmatrix, node_xyz: np.ndarray, free: np.ndarray):
    import pyamg

    B = rigid_body_modes(node_xyz) * free[:, None]
    B[free == 0] = 0.0
    # keep the block structure so aggregation works node by node
    Absr = A.tobsr(blocksize=(3, 3)) if not sp.isspmatrix_bsr(A) else A
    return pyamg.smoothed_aggregation_solver(
        Absr, B=B, strength=("symmetric", {"theta": 0.0}), smooth=("jacobi", {"omega": 4.0 / 3.0, "weighting": "local"}),
        presmoother=("block_gauss_seidel", {"sweep": "symmetric"}),
        postsmoother=("block_gauss_seidel", {"sweep": "symmetric"}),
        improve_candidates=None, max_coarse=1500, coarse_solver=os.environ.get("KYPHOSIM_COARSE_SOLVER", "splu"))


# ----------------------------------------------------------------------------------- GMG
def _child_interpolation() -> np.ndarray:
    """Q[c] (24×24): trilinear interpolation from a coarse cell's 8 nodes to the nodes of its child c."""
    Q = np.zeros((8, 24, 24))
    for c in range(8):
        for a in range(8):
            xloc = (_OFF[c] + _OFF[a]) / 2.0
            for b in range(8):
                w = np.prod(np.where(_OFF[b] == 1, xloc, 1.0 - xloc))
                for d in range(3):
                    Q[c, 3 * a + d, 3 * b + d] = w
    return Q


_Q = _child_interpolation()


@nb.njit(parallel=True, cache=True)
def _assemble_elements(node_elems, Ke, pair_slot, blocks):
    """blocks[n, t] (3×3) of the 27-point block stencil from general element matrices Ke (ne×24×24)."""
    nn = node_elems.shape[0]
    for n in nb.prange(nn):
        for s in range(8):
            e = node_elems[n, s]
            if e < 0:
                continue
            la = 7 - s
            for b in range(8):
                t = pair_slot[la, b]
                for i in range(3):
                    for j in range(3):
                        blocks[n, t, i, j] += Ke[e, 3 * la + i, 3 * b + j]


class _Coarsening:
    """2×2×2 coarsening of a voxel element set: coarse cells, children, coarse nodes, prolongation P."""

    def __init__(self, elem_ijk: np.ndarray, node_ijk: np.ndarray):
        eijk = elem_ijk.astype(np.int64)
        cijk_all = eijk // 2
        cshape = tuple(int(v) for v in cijk_all.max(axis=0) + 1)
        cflat = np.ravel_multi_index(tuple(cijk_all.T), cshape)
        ucells, inv = np.unique(cflat, return_inverse=True)
        self.cijk = np.stack(np.unravel_index(ucells, cshape), axis=1).astype(np.int64)
        nce = self.cijk.shape[0]
        cp = eijk % 2
        self.child_pos = cp[:, 0] + 2 * cp[:, 1] + 4 * cp[:, 2]
        self.parent = inv.ravel()
        self.children = np.full((nce, 8), -1, dtype=np.int64)
        self.children[self.parent, self.child_pos] = np.arange(eijk.shape[0])
        nshape = (cshape[0] + 1, cshape[1] + 1, cshape[2] + 1)
        nmask = np.zeros(nshape, dtype=bool)
        for di, dj, dk in _OFF:
            nmask[self.cijk[:, 0] + di, self.cijk[:, 1] + dj, self.cijk[:, 2] + dk] = True
        self.cnode_ijk = np.argwhere(nmask)
        cnid = np.full(nshape, -1, dtype=np.int64)
        cnid[tuple(self.cnode_ijk.T)] = np.arange(self.cnode_ijk.shape[0])
        eid = np.full((cshape[0] + 2, cshape[1] + 2, cshape[2] + 2), -1, dtype=np.int64)
        eid[self.cijk[:, 0] + 1, self.cijk[:, 1] + 1, self.cijk[:, 2] + 1] = np.arange(nce)
        p, q, r = self.cnode_ijk.T
        self.cnode_elems = np.empty((self.cnode_ijk.shape[0], 8), dtype=np.int64)
        for s_, (di, dj, dk) in enumerate(_OFF):
            self.cnode_elems[:, s_] = eid[p + di, q + dj, r + dk]
        fijk = node_ijk.astype(np.int64)
        rows, cols, vals = [], [], []
        lo = fijk // 2
        odd = (fijk % 2).astype(bool)
        for bits in _OFF:
            cc = lo + bits * odd
            w = np.prod(np.where(odd, 0.5, np.where(bits == 0, 1.0, 0.0)), axis=1)
            keep = w > 0
            ids = cnid[cc[keep, 0], cc[keep, 1], cc[keep, 2]]
            if np.any(ids < 0):
                raise RuntimeError("prolongation refers to a missing coarse node")
            rows.append(np.nonzero(keep)[0])
            cols.append(ids)
            vals.append(w[keep])
        self.P = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(fijk.shape[0], self.cnode_ijk.shape[0]))
        self.PT = self.P.T.tocsr()

    def galerkin(self, projected) -> np.ndarray:
        """Coarse element matrices Σ_c Q_cᵀ K_child Q_c; ``projected(elements, c)`` → (n, 24, 24) = Q_cᵀ K Q_c."""
        Kc = np.zeros((self.cijk.shape[0], 24, 24))
        for c in range(8):
            sel = np.nonzero(self.children[:, c] >= 0)[0]
            if sel.size == 0:
                continue
            Kc[sel] += projected(self.children[sel, c], c)
        return Kc


def _project(K: np.ndarray, c: int) -> np.ndarray:
    """Q_cᵀ K Q_c for a batch of child matrices K (n, 24, 24)."""
    return np.matmul(_Q[c].T, np.matmul(K, _Q[c]))





def _assembled(node_ijk, node_elems, Ke) -> tuple[sp.csr_matrix, np.ndarray]:
    blocks = np.zeros((node_ijk.shape[0], 27, 3, 3))
    _assemble_elements(node_elems, Ke, _PAIR_SLOT, blocks)
    A = _blocks_to_bsr(blocks, _neighbours(node_ijk)).tocsr()
    dg = A.diagonal()
    dead = dg <= 1e-12 * max(float(dg.max()), 1e-300)
    if np.any(dead):
        A = A + sp.diags(dead.astype(float))
    return A, dead


def _chebyshev(Aop, dinv, r, degree, lmin, lmax, tmp=None):
    """Chebyshev–Jacobi smoothing of A x = r from x = 0."""
    theta = 0.5 * (lmax + lmin)
    delta = 0.5 * (lmax - lmin)
    sigma = theta / delta
    rho = 1.0 / sigma
    d = dinv * r / theta
    x = d.copy()
    res = r.copy()
    for _ in range(degree - 1):
        res -= Aop(d)
        rho_new = 1.0 / (2.0 * sigma - rho)
        d *= rho_new * rho
        d += (2.0 * rho_new / delta) * (dinv * res)
        rho = rho_new
        x += d
    return x


def _power_lmax(Aop, dinv, n, iters=8, bound=np.inf) -> float:
    rng = np.random.default_rng(0)
    v = rng.standard_normal(n)
    lam = 0.0
    for _ in range(iters):
        w = dinv * Aop(v)
        lam = float(np.linalg.norm(w) / np.linalg.norm(v))
        v = w / np.linalg.norm(w)
    return min(bound, 1.1 * lam) if lam > 0 else float(bound)


class _GeometricTwoLevel:
    """Matrix-free fine level, one or two Galerkin geometric levels (2×2×2), then a pyamg hierarchy.

    A second geometric level (assembled, Chebyshev-smoothed) is used when the first coarse level still
    has more than ``second_level_dofs`` unknowns; the pyamg smoothed-aggregation V-cycle takes over below.
    """

    def __init__(self, mesh: VoxelMesh, K0: np.ndarray, free: np.ndarray, *, degree: int = 2,
                 eig_ratio: float = 20.0, second_level_dofs: int = 150_000):
        self.mesh, self.K0, self.free = mesh, K0, free
        self.work = Workspace(mesh, K0)
        self.degree = degree
        self.eig_ratio = eig_ratio
        d = diagonal(mesh, K0)
        d = np.where(free > 0, d, 1.0)
        self.dinv = 1.0 / d
        # rigorous bound: λmax(D⁻¹A) ≤ λmax(diag(K0)^-½ K0 diag(K0)^-½) (same for every element)
        dk = np.sqrt(np.diag(K0))
        bound = max(float(np.linalg.eigvalsh(K0 / dk[:, None] / dk[None, :]).max()), 1.0)
        # power steps only bound λmax from below; Chebyshev needs an upper bound: use the rigorous one
        # unless KYPHOSIM_LMAX=power
        if os.environ.get("KYPHOSIM_LMAX") == "power":
            self.lmax = _power_lmax(self.A, self.dinv, mesh.n_dofs, bound=bound)
        else:
            self.lmax = bound
        self.lmin = self.lmax / eig_ratio
        self._tmp = np.empty(mesh.n_dofs)
        self._build_coarse(second_level_dofs)

    # reduced operator M A M + (I - M)
    def A(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        xm = x * self.free
        y = self.work.matvec(xm, out)
        y *= self.free
        y += (1.0 - self.free) * x
        return y

    def _build_coarse(self, second_level_dofs: int) -> None:
        mesh = self.mesh
        c1 = _Coarsening(mesh.elem_ijk, mesh.node_ijk)
        self.c1 = c1
        # fine elements touching constrained dofs get their own masked Galerkin matrix
        fmask = self.free.reshape(-1, 3)[mesh.conn].reshape(mesh.n_elements, 24)
        masked = fmask.min(axis=1) < 1
        E = mesh.modulus_mpa
        K0 = self.K0

        G = np.stack([_project(K0[None], c)[0] for c in range(8)])  # Q_cᵀ K0 Q_c, shared by all children

        def child(elems, c):
            out = E[elems, None, None] * G[c][None]
            m = masked[elems]
            if np.any(m):
                mk = fmask[elems[m]]
                Km = E[elems[m], None, None] * K0[None] * mk[:, :, None] * mk[:, None, :]
                out[m] = _project(Km, c)
            return out

        Kc1 = c1.galerkin(child)
        A1, dead1 = _assembled(c1.cnode_ijk, c1.cnode_elems, Kc1)
        self.coarse_dofs = int(A1.shape[0])
        self.geo = []  # second geometric level: (A1, dinv1, lmax1, P2, PT2)
        Ac, dead, nodes, step = A1, dead1, c1.cnode_ijk, 2.0
        if self.coarse_dofs > second_level_dofs:
            c2 = _Coarsening(c1.cijk, c1.cnode_ijk)
            Kc2 = c2.galerkin(lambda elems, c: _project(Kc1[elems], c))
            del Kc1
            A2, dead2 = _assembled(c2.cnode_ijk, c2.cnode_elems, Kc2)
            d1 = A1.diagonal()
            dinv1 = 1.0 / d1
            A1op = lambda x: A1 @ x  # noqa: E731
            lmax1 = _power_lmax(A1op, dinv1, A1.shape[0])
            self.geo.append((A1, dinv1, lmax1, c2.P, c2.PT))
            Ac, dead, nodes, step = A2, dead2, c2.cnode_ijk, 4.0
        self.Ac = Ac
        xyz = nodes * step * mesh.spacing
        self.ml = _pyamg_hierarchy(Ac, xyz, (~dead).astype(float))
        # a W-cycle pays off once the algebraic part is large
        cycle = os.environ.get("KYPHOSIM_COARSE_CYCLE") or ("W" if Ac.shape[0] > 100_000 else "V")
        self.coarse_cycle = cycle
        self._coarse = self.ml.aspreconditioner(cycle=cycle)

    def _smooth(self, r: np.ndarray) -> np.ndarray:
        return _chebyshev(lambda v: self.A(v, self._tmp), self.dinv, r, self.degree, self.lmin, self.lmax)

    def _coarse_cycle(self, rc: np.ndarray) -> np.ndarray:
        if not self.geo:
            return self._coarse @ rc
        A1, dinv1, lmax1, P2, PT2 = self.geo[0]
        A1op = lambda v: A1 @ v  # noqa: E731
        x = _chebyshev(A1op, dinv1, rc, self.degree, lmax1 / self.eig_ratio, lmax1)
        r = rc - A1 @ x
        e2 = self._coarse @ (PT2 @ r.reshape(-1, 3)).ravel()
        x += (P2 @ e2.reshape(-1, 3)).ravel()
        r = rc - A1 @ x
        x += _chebyshev(A1op, dinv1, r, self.degree, lmax1 / self.eig_ratio, lmax1)
        return x

    def __call__(self, b: np.ndarray) -> np.ndarray:
        x = self._smooth(b)
        r = b - self.A(x)
        rc = (self.c1.PT @ (r * self.free).reshape(-1, 3)).ravel()
        ec = self._coarse_cycle(rc)
        x += (self.c1.P @ ec.reshape(-1, 3)).ravel() * self.free
        r = b - self.A(x)
        x += self._smooth(r)
        return x


# ----------------------------------------------------------------------------------- threads
def _openblas_setter():
    """``(set, get)`` for the OpenBLAS thread count of the BLAS NumPy loaded, or ``None``."""
    import ctypes

    try:
        with open("/proc/self/maps") as fh:
            paths = {ln.split()[-1] for ln in fh if "openblas" in ln.lower() and ".so" in ln}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for sfx in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads"):
            gname = sfx.replace("set_num_threads", "get_num_threads")
            if hasattr(lib, sfx) and hasattr(lib, gname):
                return getattr(lib, sfx), getattr(lib, gname)
    return None


def auto_threads() -> int:
    """Threads to use: ``$KYPHOSIM_THREADS`` if set, else 1 on a busy machine (load ≥ cores − ½), else all.

    On a shared 2-core machine under load, parallel regions wait for descheduled workers: one thread was
    3–5× faster in wall time than two (benchmarks/bench_mechanics.py).
    """
    env = os.environ.get("KYPHOSIM_THREADS")
    if env:
        return max(1, int(env))
    n = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return 1 if load >= n - 0.5 else n


class _ThreadLimit:
    """Limit numba and OpenBLAS threads inside a block (restored afterwards)."""

    def __init__(self, n: int):
        self.n = int(n)

    def __enter__(self):
        self.old_nb = nb.get_num_threads()
        nb.set_num_threads(max(1, min(self.n, nb.config.NUMBA_NUM_THREADS)))
        self.blas = _openblas_setter()
        if self.blas is not None:
            self.old_blas = int(self.blas[1]())
            self.blas[0](max(1, self.n))
        return self

    def __exit__(self, *exc):
        nb.set_num_threads(self.old_nb)
        if self.blas is not None:
            self.blas[0](self.old_blas)
        return False


# ----------------------------------------------------------------------------------- PCG
def pcg_until(Aop, b, M, stop_norm, maxiter, x0=None):
    """Preconditioned conjugate gradients until the recurrence residual ‖b − A x‖ ≤ ``stop_norm``
    (absolute) or ``maxiter`` iterations; returns (x, iterations, residual norms per iteration)."""
    x = np.zeros_like(b) if x0 is None else x0.copy()
    r = b - Aop(x) if x0 is not None else b.copy()
    norms = [float(np.linalg.norm(r))]
    it = 0
    if norms[-1] <= stop_norm:
        return x, it, norms
    z = M(r)
    p = z.copy()
    rz = float(r @ z)
    while it < maxiter:
        q = Aop(p)
        alpha = rz / float(p @ q)
        x += alpha * p
        r -= alpha * q
        it += 1
        norms.append(float(np.linalg.norm(r)))
        if norms[-1] <= stop_norm:
            break
        z = M(r)
        rz_new = float(r @ z)
        p *= rz_new / rz
        p += z
        rz = rz_new
    return x, it, norms


def _pcg(Aop, b, M, tol, maxiter, x0=None):
    """PCG to the relative tolerance ``tol``; returns x, iterations, true relative residual, history."""
    bn = float(np.linalg.norm(b))
    if bn == 0:
        return (np.zeros_like(b) if x0 is None else x0.copy()), 0, 0.0, [0.0]
    x, it, norms = pcg_until(Aop, b, M, tol * bn, maxiter, x0)
    hist = [v / bn for v in norms]
    # true residual
    res = float(np.linalg.norm(b - Aop(x))) / bn
    return x, it, res, hist


def solve(mesh: VoxelMesh, K0: np.ndarray, fixed: np.ndarray, values: np.ndarray, *, method: str = "gmg",
          tol: float = 1e-8, maxiter: int = 2000, degree: int = 2,
          threads: int | None = None) -> tuple[np.ndarray, SolveInfo]:
    """Solve with at most ``threads`` threads (default :func:`auto_threads`); see :func:`_solve`."""
    n = auto_threads() if threads is None else int(threads)
    with _ThreadLimit(n):
        u, info = _solve(mesh, K0, fixed, values, method=method, tol=tol, maxiter=maxiter, degree=degree)
    info.threads = n
    return u, info


def _solve(mesh: VoxelMesh, K0: np.ndarray, fixed: np.ndarray, values: np.ndarray, *, method: str = "gmg",
           tol: float = 1e-8, maxiter: int = 2000, degree: int = 2) -> tuple[np.ndarray, SolveInfo]:
    """Solve ``A u = 0`` on free dofs with ``u[fixed] = values`` (mm).

    Parameters
    ----------
    fixed : ndarray of int
        Constrained degree-of-freedom indices (3·node + component).
    values : ndarray of float
        Prescribed displacements at ``fixed``, mm.
    method : {'gmg', 'amg', 'jacobi'}
    tol : float
        Relative residual ``‖b − A x‖ / ‖b‖`` on the free dofs at which CG stops.

    Returns
    -------
    u : ndarray (3·nn,)
        Displacements, mm.
    info : SolveInfo
    """
    t0 = time.perf_counter()
    c0 = time.process_time()
    n = mesh.n_dofs
    free = np.ones(n)
    free[fixed] = 0.0
    uD = np.zeros(n)
    uD[fixed] = values
    b = -matvec(mesh, K0, uD) * free
    if method == "gmg":
        degree = int(os.environ.get("KYPHOSIM_SMOOTH_DEGREE", degree))
        geo2 = int(os.environ.get("KYPHOSIM_GEO2_DOFS", 150_000))
        pre = _GeometricTwoLevel(mesh, K0, free, degree=degree, second_level_dofs=geo2)
        Aop, M = pre.A, pre
        extra = {"levels": 1 + len(pre.geo) + len(pre.ml.levels), "coarse_dofs": pre.coarse_dofs}
    elif method == "amg":
        A = constrain(assemble_bsr(mesh, K0), free)
        xyz = mesh.node_ijk * mesh.spacing
        ml = _pyamg_hierarchy(A.tobsr(blocksize=(3, 3)), xyz, free)
        prec = ml.aspreconditioner(cycle="V")
        Aop = lambda x: A @ x  # noqa: E731
        M = lambda r: prec @ r  # noqa: E731
        extra = {"levels": len(ml.levels), "coarse_dofs": int(ml.levels[-1].A.shape[0])}
    elif method == "jacobi":
        d = diagonal(mesh, K0)
        dinv = np.where(free > 0, 1.0 / d, 1.0)
        work = Workspace(mesh, K0)

        def Aop(x):
            y = work.matvec(x * free)
            y *= free
            y += (1.0 - free) * x
            return y

        M = lambda r: dinv * r  # noqa: E731
        extra = {}
    else:
        raise ValueError(f"unknown solver {method!r} (gmg, amg, jacobi)")
    t1 = time.perf_counter()
    c1 = time.process_time()
    x, it, res, hist = _pcg(Aop, b, M, tol, maxiter)
    t2 = time.perf_counter()
    c2 = time.process_time()
    u = x * free + uD
    info = SolveInfo(name=f"pcg+{method}", iterations=it, relative_residual=res, converged=res <= tol * 1.01,
                     seconds_setup=t1 - t0, seconds_solve=t2 - t1, history=hist, cpu_setup=c1 - c0,
                     cpu_solve=c2 - c1, **extra)
    return u, info
