"""Implicit shape model of one vertebra in its local frame.

Local (construction) frame, mm: x = left→right (+x towards the patient's right), y = posterior→
anterior, z = inferior→superior; origin on the mid-sagittal plane at mid-depth and mid-height of the
body. Every part is an approximate signed distance function (negative inside, mm) so a shell of
thickness t is ``−t ≤ sdf ≤ 0`` and voxel occupancies can be anti-aliased.

Body: a superellipse cross-section (width W, depth D at the endplates) with a concave posterior
wall, a concave waist (lateral and anterior walls narrower at mid-height), a height that varies
linearly from Hp (posterior) to Ha (anterior) and concave endplates; fractures deform the endplate
surfaces (wedge: anterior depression; biconcave: central depressions of both endplates; crush: the
whole superior endplate) and bulge the posterior wall (retropulsion).

Posterior elements: pedicles (elliptic tubes on their true axes, narrowest at the isthmus),
laminae, spinous process, transverse processes and the articular processes of the facet joints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from kyphosim.anatomy.phantom.morphometry import LevelDims
from kyphosim.anatomy.phantom.spec import FractureSpec

__all__ = ["VertebraShape", "Joint", "seg_dist"]

SHELL_MM = 0.6        # cortical shell of the body (lateral, anterior, posterior walls), mm
ENDPLATE_MM = 0.8     # bony endplate thickness, mm
PE_CORTEX_MM = 1.2     # cortex of the posterior elements (pedicle walls, laminae), mm
# smallest bone-to-bone distance between an articular process and the other vertebra of its joint
# (pedicles, laminae, spinous/transverse processes, body), mm: the facet joint space width, 1.5–1.9 mm
# (CT, Simon et al., Spine 2012;37(12):1058–64; medial zone 1.48 ± 0.44 mm), also used as the joint gap
FACET_CLEARANCE_MM = 1.5
#: joint space kept between a rib and every bone of its vertebra (mm): the costovertebral (head) and
#: costotransverse (tubercle) joints are synovial joints with cartilage-covered surfaces and a joint
#: cavity, like the facet joints; their width is taken equal to the facet joint space above [U]
RIB_CLEARANCE_MM = 1.5
WAIST = 0.07          # mid-height narrowing of the lateral/anterior walls (fraction)
SUPERELLIPSE_P = 2.4  # cross-section exponent (2 = ellipse)


def seg_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points ``p`` (N, k) to the segment a→b and the segment parameter τ ∈ [0, 1]."""
    ab = b - a
    tau = np.clip(((p - a) @ ab) / float(ab @ ab), 0.0, 1.0)
    d = np.linalg.norm(p - (a + tau[:, None] * ab), axis=1)
    return d, tau


def _rot_x(deg: float) -> np.ndarray:
    """Axes tilted about x (LR) by ``deg`` in the sagittal plane, as rows [lr, ap, si]:
    positive tilts the SI axis towards +y (anterior). Its transpose has the axes as columns."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


@dataclass
class Joint:
    """One facet-joint pair (left and right) between a lower and an upper vertebra.

    Defined in the lower vertebra's local frame. The superior articular process (SAP) belongs to
    the lower vertebra, the inferior articular process (IAP) to the upper one; a gap separates them.
    """

    x_f: float            # |x| of the joint centre, mm
    y_f: float            # y of the joint centre, mm
    beta_deg: float       # joint-plane angle from the sagittal plane (0 sagittal, 90 coronal)
    z_sap: tuple[float, float]   # z range of the SAP (lower frame)
    z_iap: tuple[float, float]   # z range of the IAP (lower frame)
    gap: float = FACET_CLEARANCE_MM
    thick: float = 4.5
    half_len: float = 6.5

    def sdf(self, p: np.ndarray, side: int, part: str) -> np.ndarray:
        """Signed distance (mm) of points ``p`` (N, 3), in the lower frame, to one process."""
        b = math.radians(self.beta_deg)
        n = np.array([-side * math.cos(b), -math.sin(b)])    # from SAP towards IAP
        t = np.array([side * math.sin(b), -math.cos(b)])
        rel = p[:, :2] - np.array([side * self.x_f, self.y_f])
        w = rel @ n
        u = rel @ t
        if part == "sap":
            lo, hi = -self.gap / 2 - self.thick, -self.gap / 2
            zlo, zhi = self.z_sap
        else:
            lo, hi = self.gap / 2, self.gap / 2 + self.thick
            zlo, zhi = self.z_iap
        return np.maximum.reduce([lo - w, w - hi, np.abs(u) - self.half_len, zlo - p[:, 2], p[:, 2] - zhi])


@dataclass
class VertebraShape:
    """Geometry of one vertebra (intact dimensions + optional fracture deformation)."""

    name: str
    label: int
    dims: LevelDims
    disc_above: float
    disc_below: float
    fracture: FractureSpec | None = None
    amp: float = 0.0                  # fracture deformation amplitude, mm (solved for the height loss)
    retro_scale: float = 1.0          # retropulsion amplitude / requested bulge (solved by the builder)
    # filled in by the builder
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))   # world position of the local origin
    rot: np.ndarray = field(default_factory=lambda: np.eye(3))       # columns: local x, y, z in world
    joint_up: Joint | None = None     # joint with the vertebra above (own frame)
    joint_down: Joint | None = None   # joint with the vertebra below (in the lower frame)
    down_tf: tuple[np.ndarray, np.ndarray] | None = None  # own local → lower local (R, t)
    # partners of the joints, for the articular-process clearance (None = no clearance): the vertebra
    # above and the own-local → upper-local transform, the vertebra below (at the ends of the chain a
    # virtual copy of the vertebra itself, shifted by one level)
    nb_up: "VertebraShape | None" = field(default=None, repr=False, compare=False)
    up_tf: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)
    nb_down: "VertebraShape | None" = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        d = self.dims
        self.hp = d.hp
        self.ha = d.hp * d.ha_ratio
        self.D = d.depth
        self.W = d.width
        self.delta = 0.06 * self.D                 # posterior-wall concavity (axial plane), mm
        self.a = self.W / 2.0
        self.b = (self.D + self.delta) / 2.0
        self.yc = -self.delta / 2.0
        self.kappa = 0.045 * self.hp               # endplate concavity depth, mm
        self.thoracic = self.name.startswith("T")
        # ---- posterior elements
        self.cw, self.cd = d.canal_w, d.canal_d
        self.pw, self.ph = d.ped_w, d.ped_h
        self.conv = math.radians(d.ped_conv_deg)
        self.sag = math.radians(d.ped_sag_deg)
        self.z_ped = max(0.0, self.hp / 2 - 1.5 - self.ph / 2)
        self.Lp = max(8.0, 0.6 * self.cd)
        self.t_lam = 5.0 if self.thoracic else 6.0

    # ------------------------------------------------------------------ frames
    def to_local(self, pw: np.ndarray) -> np.ndarray:
        return (np.asarray(pw, float) - self.origin) @ self.rot

    def to_world(self, pl: np.ndarray) -> np.ndarray:
        return np.asarray(pl, float) @ self.rot.T + self.origin

    # ------------------------------------------------------------------ body
    def _u(self, y):
        """Fractional AP position, 0 at the posterior wall, 1 at the anterior wall."""
        return np.clip((y + self.D / 2) / self.D, 0.0, 1.0)

    def rho_ep(self, x, y):
        """Normalised radius of the endplate cross-section (1 on the rim)."""
        p = SUPERELLIPSE_P
        return ((np.abs(x) / self.a) ** p + (np.abs(y - self.yc) / self.b) ** p) ** (1.0 / p)

    def deform_sup(self, x, y, rho=None):
        """Depression of the superior endplate by the fracture, mm (≥ 0)."""
        if self.fracture is None or self.amp <= 0:
            return np.zeros(np.broadcast(x, y).shape)
        t = self.fracture.type
        if t == "wedge":
            return self.amp * self._u(y) ** 1.15
        rho = np.clip(self.rho_ep(x, y) if rho is None else rho, 0, 1)
        if t == "biconcave":
            return self.amp * (1 - rho ** 2) ** 2
        return self.amp * (0.85 + 0.15 * self._u(y)) + 0.1 * self.amp * (1 - rho ** 2)   # crush

    def deform_inf(self, x, y, rho=None):
        """Elevation of the inferior endplate by the fracture, mm (≥ 0)."""
        if self.fracture is None or self.amp <= 0 or self.fracture.type != "biconcave":
            return np.zeros(np.broadcast(x, y).shape)
        rho = np.clip(self.rho_ep(x, y) if rho is None else rho, 0, 1)
        return 0.6 * self.amp * (1 - rho ** 2) ** 2

    def surfaces(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Superior and inferior bony endplate surfaces z(x, y), mm."""
        rho = self.rho_ep(x, y)
        h = self.hp + (self.ha - self.hp) * self._u(y)
        bowl = self.kappa * np.clip(1 - rho ** 2, 0, 1)
        return (h / 2 - bowl - self.deform_sup(x, y, rho), -h / 2 + bowl + self.deform_inf(x, y, rho))

    def z_sup(self, x, y):
        """Superior bony endplate surface z(x, y), mm."""
        return self.surfaces(x, y)[0]

    def z_inf(self, x, y):
        """Inferior bony endplate surface z(x, y), mm."""
        return self.surfaces(x, y)[1]

    @property
    def retro_mm(self) -> float:
        """Effective retropulsion amplitude, mm (scaled by the builder so the measured bulge equals
        the requested ``retropulsion_mm``)."""
        if self.fracture is None:
            return 0.0
        return self.fracture.retropulsion_mm * self.retro_scale

    def retro_shift(self, x, z):
        """Backward displacement of the posterior wall by retropulsion, mm (≥ 0): a bulge of the
        upper half of the wall (posterosuperior fragment), clear of mid-height so the depth D and
        the Hp position of the height convention stay on the intact wall."""
        if self.retro_mm <= 0:
            return np.zeros(np.broadcast(x, z).shape)
        top, bot = (float(v) for v in self.surfaces(0.0, -self.D / 2))   # current (deformed) wall ends
        h = top - bot
        zb = 0.5 * (top + bot) + 0.22 * h
        g = np.exp(-(x / (0.22 * self.W)) ** 2 - ((z - zb) / (0.13 * h)) ** 2)
        return self.retro_mm * g

    def y_post(self, x, z):
        """Posterior wall y(x, z), mm (retropulsion bulges it backwards)."""
        return -self.D / 2 - self.delta * np.clip(x / self.a, -1, 1) ** 2 - self.retro_shift(x, z)

    def waist(self, z):
        zeta = np.clip(z / (0.25 * (self.hp + self.ha)), -1.0, 1.0)
        return 1.0 - WAIST * (1.0 - zeta ** 2)

    def body_sdf(self, p: np.ndarray, shell: float = 0.0, endplate: float = 0.0) -> np.ndarray:
        """Approximate signed distance to the body (mm); ``shell``/``endplate`` offset inwards."""
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        s = self.waist(z)
        xs = x / s
        yy = y - self.yc
        ys = np.where(yy > 0, yy / s, yy + self.retro_shift(x, z))
        pe = SUPERELLIPSE_P
        r = ((np.abs(xs) / self.a) ** pe + (np.abs(ys) / self.b) ** pe) ** (1.0 / pe)
        rho = np.hypot(xs, ys)
        rb = np.where(r > 1e-6, rho / np.maximum(r, 1e-6), min(self.a, self.b))
        d_lat = (r - 1.0) * rb * s
        zs, zi = self.surfaces(x, y)
        d_sup = z - zs
        d_inf = zi - z
        d_post = self.y_post(x, z) - y
        return np.maximum.reduce([d_lat + shell, d_sup + endplate, d_inf + endplate, d_post + shell])

    # ------------------------------------------------------------------ inner body features
    def bvf_sdf(self, p: np.ndarray) -> np.ndarray:
        """Basivertebral foramen (posterior-wall opening) and the basivertebral vein, mm."""
        y0 = -self.D / 2 - 1.0
        a = np.array([0.0, y0, 0.0])
        b = np.array([0.0, y0 + 0.22 * self.D, 0.0])
        d0, _ = seg_dist(p, a, b)
        s0 = d0 - 2.2
        branches = []
        for side in (-1, 1):
            c = np.array([side * 0.18 * self.W, y0 + 0.38 * self.D, 0.0])
            d1, _ = seg_dist(p, b, c)
            branches.append(d1 - 1.0)
        return np.minimum.reduce([s0, *branches])

    def cleft_sdf(self, p: np.ndarray) -> np.ndarray | None:
        """Intravertebral cleft under the depressed superior endplate (ellipsoid), mm."""
        f = self.fracture
        if f is None or not f.cleft:
            return None
        yc = 0.12 * self.D if f.type == "wedge" else 0.0
        zc = float(self.z_sup(0.0, yc)) - ENDPLATE_MM - 3.0
        ax = np.array([0.24 * self.W, 0.26 * self.D, 1.8])
        q = (p - np.array([0.0, yc, zc])) / ax
        r = np.linalg.norm(q, axis=1)
        return (r - 1.0) * ax.min()

    def cortical_breaks(self, p: np.ndarray) -> np.ndarray:
        """Points where an acute fracture interrupts the cortex (fracture lines), boolean.

        A 1.6 mm wide line across the depressed superior endplate (wedge: at the hinge, 45 % of the
        depth from the posterior wall; crush: mid-depth; biconcave: a ring at 60 % of the endplate
        radius), within 3 mm of the surface; wedge and crush also break the anterior wall 2–3.6 mm
        below the superior endplate (buckled anterior cortex). Chronic fractures are healed: none."""
        out = np.zeros(len(p), bool)
        f = self.fracture
        if f is None or f.age != "acute" or self.amp <= 0:
            return out
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        zs = self.z_sup(x, y)
        near_top = (zs - z >= -0.5) & (zs - z <= 3.0)
        if f.type == "biconcave":
            line = np.abs(self.rho_ep(x, y) - 0.6) < 0.8 / min(self.a, self.b)
        else:
            u0 = 0.45 if f.type == "wedge" else 0.5
            line = np.abs(y - (-self.D / 2 + u0 * self.D)) < 0.8
            depth = zs - z
            out |= (y > self.D / 2 - 4.0) & (depth > 2.0) & (depth < 3.6) & (np.abs(x) < 0.3 * self.W)
        return out | (near_top & line)

    def fracture_band(self, p: np.ndarray) -> np.ndarray:
        """Weight 0…1 of the compaction / sclerosis band under the deformed endplate(s)."""
        out = np.zeros(len(p))
        if self.fracture is None or self.amp <= 0:
            return out
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        thick = 4.0 if self.fracture.age == "acute" else 5.0
        ds = self.deform_sup(x, y)
        depth = self.z_sup(x, y) - z - ENDPLATE_MM
        w = np.clip(ds / 1.0, 0, 1) * np.clip(1 - np.abs(depth - thick / 2) / (thick / 2), 0, 1)
        out = np.maximum(out, w)
        di = self.deform_inf(x, y)
        if np.any(di > 0):
            depth_i = z - self.z_inf(x, y) - ENDPLATE_MM
            wi = np.clip(di / 1.0, 0, 1) * np.clip(1 - np.abs(depth_i - thick / 2) / (thick / 2), 0, 1)
            out = np.maximum(out, wi)
        return out

    # ------------------------------------------------------------------ pedicles
    def pedicle_frame(self, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Isthmus centre and unit vectors (axis d pointing anterior, e1 transverse, e2 vertical)."""
        iso = np.array([side * (self.cw / 2 + self.pw / 2), -self.D / 2 - self.Lp / 2, self.z_ped])
        c, s = self.conv, self.sag
        d = np.array([-side * math.sin(c) * math.cos(s), math.cos(c) * math.cos(s), -math.sin(s)])
        e2 = np.array([0.0, 0.0, 1.0]) - d[2] * d
        e2 /= np.linalg.norm(e2)
        e1 = np.cross(d, e2)
        return iso, d, e1, e2

    def pedicle_t_range(self, side: int) -> tuple[float, float, float]:
        """Axis parameters (mm from the isthmus): anterior end, posterior end of the pedicle
        sub-region, posterior end of the tube."""
        iso, d, _, _ = self.pedicle_frame(side)
        t_a = (-self.D / 2 + 5.0 - iso[1]) / d[1]
        t_sub = (-self.D / 2 - self.Lp - iso[1]) / d[1]
        t_p = (-self.D / 2 - self.Lp - 2.5 - iso[1]) / d[1]
        return t_a, t_sub, t_p

    def pedicle_sdf(self, p: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
        """Signed distance to one pedicle tube and the axis parameter t of each point."""
        iso, d, e1, e2 = self.pedicle_frame(side)
        t_a, _, t_p = self.pedicle_t_range(side)
        rel = p - iso
        t = rel @ d
        u = rel @ e1
        v = rel @ e2
        half = self.Lp / 2
        q = np.clip(t / half, -2.5, 2.5) ** 2
        aw = self.pw / 2 * (1 + 0.30 * q)
        ah = self.ph / 2 * (1 + 0.08 * q)
        r = np.hypot(u / aw, v / ah)
        rho = np.hypot(u, v)
        rb = np.where(r > 1e-6, rho / np.maximum(r, 1e-6), np.minimum(aw, ah))
        d_rad = (r - 1.0) * rb
        return np.maximum.reduce([d_rad, t - t_a, t_p - t]), t

    def pedicle_axis_point(self, side: int, t: float) -> np.ndarray:
        iso, d, _, _ = self.pedicle_frame(side)
        return iso + t * d

    # ------------------------------------------------------------------ posterior elements
    def _arch_points(self):
        side_pts = {}
        for side in (-1, 1):
            _, _, t_p = self.pedicle_t_range(side)
            pe = self.pedicle_axis_point(side, t_p + 1.5)
            side_pts[side] = pe
        y_m = -self.D / 2 - self.cd - self.t_lam / 2
        z_hi = self.z_ped + self.ph / 2 - 1.0
        z_lo = -self.hp / 2 - 0.3 * self.disc_below
        return side_pts, y_m, z_hi, z_lo

    def lamina_sdf(self, p: np.ndarray) -> np.ndarray:
        side_pts, y_m, z_hi, z_lo = self._arch_points()
        out = np.full(len(p), np.inf)
        for side in (-1, 1):
            pe = side_pts[side]
            a2 = np.array([side * (self.cw / 2 + 0.5), pe[1]])
            b2 = np.array([0.0, y_m])
            d, _ = seg_dist(p[:, :2], a2, b2)
            # the lamina slopes: its z range shifts down posteriorly (shingling)
            zs = p[:, 2] + 0.25 * (pe[1] - p[:, 1])
            s = np.maximum.reduce([d - self.t_lam / 2, z_lo - zs, zs - z_hi])
            out = np.minimum(out, s)
        return out

    def spinous_sdf(self, p: np.ndarray) -> np.ndarray:
        _, y_m, z_hi, z_lo = self._arch_points()
        incl = math.radians(self.dims.sp_incl_deg)
        base = np.array([y_m - 1.0, 0.5 * (z_hi + z_lo) + 1.0])
        tip = base + self.dims.sp_len * np.array([-math.cos(incl), -math.sin(incl)])
        d, tau = seg_dist(p[:, 1:], base, tip)
        h = self.dims.sp_h / 2 * (1.0 - 0.35 * tau)
        half_t = 2.5 if self.thoracic else 3.5
        half_t = half_t * (1.0 + 0.25 * tau)   # bulbous tip
        return np.maximum(d - h, np.abs(p[:, 0]) - half_t)

    def spinous_tip(self) -> np.ndarray:
        _, y_m, z_hi, z_lo = self._arch_points()
        incl = math.radians(self.dims.sp_incl_deg)
        base = np.array([y_m - 1.0, 0.5 * (z_hi + z_lo) + 1.0])
        tip = base + self.dims.sp_len * np.array([-math.cos(incl), -math.sin(incl)])
        return np.array([0.0, tip[0], tip[1]])

    def tp_segments(self):
        out = []
        up = math.radians(12.0 if self.thoracic else 0.0)
        back = math.radians(self.dims.tp_back_deg)
        for side in (-1, 1):
            root = np.array([side * (self.cw / 2 + self.pw + 0.5), -self.D / 2 - self.Lp - 1.0, self.z_ped])
            direc = np.array([side * math.cos(back) * math.cos(up), -math.sin(back) * math.cos(up), math.sin(up)])
            out.append((side, root, root + self.dims.tp_len * direc))
        return out

    def tp_sdf(self, p: np.ndarray) -> np.ndarray:
        out = np.full(len(p), np.inf)
        r = 4.5 if self.thoracic else 3.8
        for _, a, b in self.tp_segments():
            d, tau = seg_dist(p, a, b)
            out = np.minimum(out, d - r * (1.0 - 0.2 * tau))
        return out

    def bone_sdf_no_facets(self, p: np.ndarray) -> np.ndarray:
        """Union of the body, pedicles, laminae, spinous and transverse processes (no articular
        processes), local mm: what a neighbour's articular process must keep clear of."""
        return np.minimum.reduce([self.body_sdf(p), self.pedicle_sdf(p, -1)[0], self.pedicle_sdf(p, 1)[0],
                                  self.lamina_sdf(p), self.spinous_sdf(p), self.tp_sdf(p)])

    def facet_sdf(self, p: np.ndarray) -> np.ndarray:
        """Own articular processes: the superior pair (SAP, joint with the vertebra above) and the
        inferior pair (IAP, joint with the vertebra below), mm.

        Each process is clipped so that it keeps ``FACET_CLEARANCE_MM`` from every bone of the other
        vertebra of its joint except that vertebra's partner process (from which the joint gap
        separates it): ``max(sdf_process, c − sdf_other)``. The clip is only evaluated where the
        process is within 3 mm (elsewhere the max is the process distance or larger, which keeps the
        value a valid lower bound for culling and anti-aliasing)."""
        c = FACET_CLEARANCE_MM
        out = np.full(len(p), np.inf)
        if self.joint_up is not None:
            sap = np.minimum(self.joint_up.sdf(p, -1, "sap"), self.joint_up.sdf(p, 1, "sap"))
            if self.nb_up is not None and self.up_tf is not None:
                near = sap < 3.0
                if np.any(near):
                    R, t = self.up_tf
                    q = p[near] @ R.T + t
                    sap[near] = np.maximum(sap[near], c - self.nb_up.bone_sdf_no_facets(q))
            out = np.minimum(out, sap)
        if self.joint_down is not None and self.down_tf is not None:
            R, t = self.down_tf
            q = p @ R.T + t
            iap = np.minimum(self.joint_down.sdf(q, -1, "iap"), self.joint_down.sdf(q, 1, "iap"))
            if self.nb_down is not None:
                near = iap < 3.0
                if np.any(near):
                    iap[near] = np.maximum(iap[near], c - self.nb_down.bone_sdf_no_facets(q[near]))
            out = np.minimum(out, iap)
        return out

    def canal_sdf(self, p: np.ndarray) -> np.ndarray:
        """Spinal canal tube over this level (half a disc above and below), mm."""
        yc = -self.D / 2 - self.cd / 2
        q = 2.2
        r = ((np.abs(p[:, 0]) / (self.cw / 2)) ** q + (np.abs(p[:, 1] - yc) / (self.cd / 2)) ** q) ** (1 / q)
        d_rad = (r - 1.0) * min(self.cw, self.cd) / 2
        z_hi = self.hp / 2 + self.disc_above / 2
        z_lo = -self.hp / 2 - self.disc_below / 2
        return np.maximum.reduce([d_rad, p[:, 2] - z_hi, z_lo - p[:, 2]])

    # ------------------------------------------------------------------ ribs (thoracic)
    def rib_polyline(self, side: int) -> np.ndarray | None:
        """Centre line of the rib of this level on one side (local mm), head → shaft; None if lumbar.

        The head sits at the posterolateral corner of the body near the superior endplate, the neck
        passes in front of the transverse process tip (costotransverse joint), then the shaft sweeps
        laterally, anteriorly and downwards (T11–T12: short floating ribs)."""
        if not self.thoracic:
            return None
        tip = [b for sd, _, b in self.tp_segments() if sd == side][0]
        tx = abs(tip[0])
        pts = [
            (side * (0.40 * self.W + 2.0), -0.30 * self.D, self.hp / 2 - 2.0),
            (side * (tx + 1.0), tip[1] + 6.0, tip[2] - 2.0),
            (side * (tx + 22.0), tip[1] + 1.0, tip[2] - 8.0),
            (side * (tx + 48.0), tip[1] + 22.0, tip[2] - 20.0),
            (side * (tx + 66.0), tip[1] + 55.0, tip[2] - 30.0),
        ]
        n = {"T11": 4, "T12": 3}.get(self.name, 5)
        return np.array(pts[:n], float)

    def rib_sdf(self, p: np.ndarray) -> np.ndarray:
        """Both ribs of the level, kept ``RIB_CLEARANCE_MM`` off every bone of the vertebra (body,
        pedicles, laminae, spinous, transverse and articular processes: the joint space of the
        costovertebral and costotransverse joints), mm.

        The clip ``max(sdf_rib, c − sdf_vertebra)`` is evaluated only where the rib is within 3 mm
        (elsewhere the max is the rib distance or larger: still a valid lower bound for culling)."""
        out = np.full(len(p), np.inf)
        for side in (-1, 1):
            line = self.rib_polyline(side)
            if line is None:
                return out
            for k in range(len(line) - 1):
                d, tau = seg_dist(p, line[k], line[k + 1])
                r = 4.2 if k == 0 else 5.0
                out = np.minimum(out, d - r)
        near = out < 3.0
        if np.any(near):
            q = p[near]
            vert = np.minimum(self.bone_sdf_no_facets(q), self.facet_sdf(q))
            out[near] = np.maximum(out[near], RIB_CLEARANCE_MM - vert)
        return out

    def rib_box_world(self, margin_mm: float = 7.0) -> np.ndarray | None:
        """World corners (8, 3) of the local box around both ribs' centre lines, ``margin_mm`` wider
        (more than a rib's 5 mm radius) on every side; None for a level without ribs."""
        lines = [self.rib_polyline(side) for side in (-1, 1)]
        if lines[0] is None:
            return None
        pts = np.concatenate(lines)
        lo, hi = pts.min(0) - margin_mm, pts.max(0) + margin_mm
        return self.to_world(np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T)

    # ------------------------------------------------------------------ extents
    def local_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Conservative local bounding box of every part, mm."""
        tip = self.spinous_tip()
        tps = [b for _, _, b in self.tp_segments()]
        xmax = max(self.a * 1.05, max(abs(b[0]) for b in tps) + 5.0)
        ymin = min(tip[1] - 6.0, min(b[1] for b in tps) - 6.0, -self.D / 2 - self.cd - 12.0)
        ymin -= self.retro_mm
        ymax = self.D / 2 + 1.5
        zlo = min(-self.hp / 2 - self.disc_below - 0.35 * self.hp, tip[2] - 10)
        zhi = self.hp / 2 + self.disc_above + 0.35 * self.hp
        return np.array([-xmax, ymin, zlo]), np.array([xmax, ymax, zhi])
