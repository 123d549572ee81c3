"""Small synthetic vertebra blocks for tests and benchmarks of the simulation physics.

Three stacked vertebrae (T12, L1, L2) in RAS voxel order: elliptic-cylinder bodies with a cortical
shell, discs, a ring-shaped posterior arch with pedicles and a canal. The middle one (L1) can carry
a wedge fracture (superior endplate depressed anteriorly), a sclerotic band (chronic) and a gas
cleft. HU values follow the model calibration (HU = BMD / 0.8), so the BMD in mg/cm³ is known.
This is not the project's phantom (``kyphosim.anatomy.phantom``); it exists so the simulation can
be tested on its own.
"""

from __future__ import annotations

import numpy as np

from kyphosim.imaging.volume import Volume

__all__ = ["make_block_spine", "truth_plan"]


def make_block_spine(*, bmd_mg_cm3: float = 80.0, wedge_mm: float = 6.0, age: str = "acute",
                     cleft: bool = False, spacing_mm: float = 0.8, seed: int = 0,
                     hu_per_bmd: float = 1.0 / 0.8) -> tuple[Volume, Volume, Volume, dict]:
    """CT (HU), labels (VerSe ids 19/20/21), sub-regions and truth (pedicle trajectories, world mm)."""
    rng = np.random.default_rng(seed)
    h = float(spacing_mm)
    ext = np.array([70.0, 90.0, 110.0])
    n = np.ceil(ext / h).astype(int)
    aff = np.diag([h, h, h, 1.0])
    aff[:3, 3] = -ext / 2
    I, J, K = np.indices(tuple(n), dtype=np.float32)
    x, y, z = I * h - ext[0] / 2, J * h - ext[1] / 2, K * h - ext[2] / 2
    ct = np.full(tuple(n), -50.0, np.float32) + rng.normal(0, 8, tuple(n)).astype(np.float32)
    lab = np.zeros(tuple(n), np.uint8)
    sub = np.zeros(tuple(n), np.uint8)
    a, b, hb, disc = 21.0, 15.0, 25.0, 9.0
    trab_hu = bmd_mg_cm3 * hu_per_bmd
    truth: dict = {"levels": {}}
    for idx, (vid, zc) in enumerate(((19, hb + disc), (20, 0.0), (21, -(hb + disc)))):
        r2 = (x / a) ** 2 + ((y - 2.0) / b) ** 2
        zt = zc + hb / 2
        zb = zc - hb / 2
        ztop = np.full_like(y, zt)
        if vid == 20 and wedge_mm > 0:
            frac_ap = np.clip((y - 2.0 + b) / (2 * b), 0, 1)     # 0 posterior … 1 anterior
            ztop = zt - wedge_mm * np.clip((frac_ap - 0.25) / 0.75, 0, 1)
        body = (r2 <= 1.0) & (z <= ztop) & (z >= zb)
        shell = body & ((r2 > (1 - 1.2 / a) ** 2) | (z > ztop - 1.0) | (z < zb + 1.0))
        ct[body] = trab_hu + rng.normal(0, 10, int(body.sum()))
        ct[shell] = 450.0
        lab[body] = vid
        sub[body] = 1
        if vid == 20 and wedge_mm > 0:
            band = body & ~shell & (z <= ztop - 2.0) & (z > ztop - 4.5) & (ztop < zt - 0.5)
            ct[band] = trab_hu * (2.2 if age == "chronic" else 1.15)
            if cleft:
                cl = (((x / 8.0) ** 2 + ((y - 9.0) / 5.0) ** 2 + ((z - (ztop - 5.0)) / 2.5) ** 2) <= 1.0) & body & ~shell
                ct[cl] = -500.0
        # posterior arch: ring around the canal + pedicles
        yc = 2.0 - b - 8.0
        rr = np.hypot(x, y - yc)
        ring = (rr >= 8.0) & (rr <= 13.0) & (np.abs(z - zc) <= 8.0) & (y <= 2.0 - b + 2)
        ped = ((np.hypot(np.abs(x) - 11.0, z - zc) <= 4.5) & (y <= 2.0 - b + 3) & (y >= yc))
        post = (ring | ped) & ~body
        ct[post] = 350.0
        lab[post] = vid
        sub[post & ped & (x < 0)] = 2
        sub[post & ped & (x > 0)] = 3
        sub[post & ring & ~ped] = 4
        canal = (rr < 8.0) & (np.abs(z - zc) <= 8.0)
        sub[canal & (lab == 0)] = 5
        if idx < 2:
            dz = (z < zb) & (z > zb - disc) & ((x / a) ** 2 + ((y - 2.0) / b) ** 2 <= 1.0)
            ct[dz & (lab == 0)] = 90.0
            sub[dz & (lab == 0)] = 7
        peds = {}
        for name, sx in (("left", -1.0), ("right", 1.0)):
            entry = np.array([sx * 16.0, yc - 14.0, zc])
            target = np.array([sx * 5.0, 2.0 + 0.55 * b, zc])
            peds[name] = {"entry_mm": entry.tolist(), "target_mm": target.tolist()}
        truth["levels"][vid] = {"pedicles": peds, "trabecular_hu": trab_hu, "vbmd_mg_cm3": bmd_mg_cm3}
    ctv = Volume(ct, aff, meta={"units": "HU"})
    return ctv, Volume(lab, aff, is_label=True), Volume(sub, aff, is_label=True), truth


def truth_plan(truth: dict, *, gauge: int = 8, level: int = 20, name: str = "L1") -> dict:
    """A ``kyphosim.plan/1`` dict whose bipedicular trajectories are the block's true pedicle axes
    (``truth`` from :func:`make_block_spine`), for tests and benchmarks of the procedure alone."""
    peds = truth["levels"][level]["pedicles"]
    return {"schema": "kyphosim.plan/1",
            "levels": [{"level": name, "trajectories": [{"side": s, **peds[s], "gauge": gauge}
                                                        for s in ("left", "right")]}]}
