"""Phantom figures: build time, truth vs voxelised labels, calibration tissues, Genant draws.

Run: ``python benchmarks/bench_phantom.py`` (prints the numbers quoted in docs/phantom.md);
``--contacts`` prints only the vertebra-contact counts, at 1 and 0.5 mm.
"""

from __future__ import annotations

import time

import numpy as np

from kyphosim.anatomy.phantom import FractureSpec, PhantomSpec, make_phantom
from kyphosim.anatomy.phantom.chain import build_shapes
from kyphosim.anatomy.phantom.measure import measure_heights_on_labels
from kyphosim.anatomy.phantom.spec import GENANT_BANDS_PCT
from kyphosim.anatomy.phantom.truth import level_truth


def build_times() -> None:
    print("== build time (T10–L3, L1 wedge grade 2, soft tissue)")
    for sp in [(1.0, 1.0, 1.0), (0.8, 0.8, 1.5), (2.0, 2.0, 2.0)]:
        spec = PhantomSpec(levels="T10-L3", fractures=["L1:wedge:2"], spacing_mm=sp, seed=7)
        w, c = time.perf_counter(), time.process_time()
        ph = make_phantom(spec)
        print(f"  spacing {sp}: {np.prod(ph.ct.shape) / 1e6:5.1f} M voxels  wall {time.perf_counter() - w:5.2f} s"
              f"  cpu {time.process_time() - c:5.2f} s")


def truth_vs_voxels(spacing: float = 0.5) -> None:
    print(f"== truth vs heights measured on a {spacing} mm label map (same frame), mm")
    cases = [("T8", None), ("T12", "wedge:3"), ("L1", "wedge:2"), ("L2", "biconcave:2"), ("L3", "crush:1"),
             ("L4", None), ("L1", "biconcave:3:chronic:cleft:retropulsion=3")]
    errs = []
    for k, (lvl, fr) in enumerate(cases):
        spec = PhantomSpec(levels=lvl, fractures=[f"{lvl}:{fr}"] if fr else [], spacing_mm=spacing, seed=k,
                           soft_tissue=False, margin_mm=1, noise_hu=0, orientation=["LPS", "PIR", "RAS"][k % 3])
        ph = make_phantom(spec)
        lv = ph.truth["levels"][0]
        m = measure_heights_on_labels(ph.labels, lv, ph.subregions)
        e = [m["ha"] - lv["height_anterior_mm"], m["hm"] - lv["height_middle_mm"],
             m["hp"] - lv["height_posterior_mm"], m["depth"] - lv["body_depth_mm"], m["width"] - lv["body_width_mm"]]
        errs.append(e)
        print(f"  {lvl:>3} {fr or 'intact':<40} Ha {lv['height_anterior_mm']:5.2f} Hm {lv['height_middle_mm']:5.2f} "
              f"Hp {lv['height_posterior_mm']:5.2f}  errors Ha/Hm/Hp/D/W " + " ".join(f"{v:+.2f}" for v in e))
    a = np.abs(np.array(errs))
    print(f"  mean |error| {a.mean():.2f} mm, max {a.max():.2f} mm, bias {np.mean(errs):+.2f} mm")


def calibration_tissues() -> None:
    print("== calibration tissues in the CT (1 mm, noise 12 HU at 1 mm³): ROI mean ± SD vs nominal")
    ph = make_phantom(PhantomSpec(levels="T12-L2", spacing_mm=1.0, seed=3))
    for name, roi in ph.truth["calibration_rois"].items():
        c, r = np.asarray(roi["center_mm"]), roi["radius_mm"]
        g = np.mgrid[-r:r:0.5, -r:r:0.5, -r:r:0.5].reshape(3, -1).T
        v = ph.ct.sample(c + g[np.linalg.norm(g, axis=1) <= r], order=0)
        print(f"  {name:<7} {v.mean():8.1f} ± {v.std():4.1f} HU (nominal {roi['hu']:g}, radius {r:.1f} mm)")
    for lv in ph.truth["levels"]:
        body = (ph.labels.data == lv["label"]) & (ph.subregions.data == 1)
        from scipy import ndimage
        core = ndimage.binary_erosion(body, iterations=3)
        print(f"  {lv['name']:>3} trabecular truth {lv['trabecular_hu']:6.1f} HU ({lv['vbmd_mg_cm3']:.1f} mg/cm³), "
              f"CT median in body eroded 3 mm {np.median(ph.ct.data[core]):6.1f} HU")


def genant_draws() -> None:
    print("== drawn height loss (shape model) per type and grade over 10 seeds: min–max %, grade agreement")
    for t in ("wedge", "biconcave", "crush"):
        for g in (1, 2, 3):
            losses, ok = [], 0
            for seed in range(10):
                spec = PhantomSpec(levels="T12-L2", fractures=[FractureSpec("L1", t, g)], seed=seed)
                shapes, draws = build_shapes(spec)
                lv = level_truth(shapes[1], {"vbmd_mg_cm3": 80.0, "vbmd_baseline_mg_cm3": 80.0}, spec, draws["L1"])
                losses.append(lv["height_loss_pct"])
                ok += lv["genant_grade"] == g and lv["genant_type"] == t
            lo, hi = GENANT_BANDS_PCT[g]
            print(f"  {t:<9} grade {g}: {min(losses):5.1f}–{max(losses):5.1f} % (band {lo}–{hi}) grade+type ok {ok}/10")


def morphometry() -> None:
    print("== intact measured dimensions (shape model): Hp, Ha, depth, width at mid-height, mm")
    spec = PhantomSpec(levels="T1-L5", seed=0)
    shapes, _ = build_shapes(spec)
    for s in shapes:
        lv = level_truth(s, {"vbmd_mg_cm3": 80.0, "vbmd_baseline_mg_cm3": 80.0}, spec, None)
        print(f"  {s.name:>3} Hp {lv['height_posterior_mm']:5.1f} Ha {lv['height_anterior_mm']:5.1f} "
              f"D {lv['body_depth_mm']:5.1f} W {lv['body_width_mm']:5.1f} wedge {lv['wedge_angle_deg']:+5.1f}° "
              f"loss {lv['height_loss_pct']:4.1f} % pedicle conv {lv['pedicles']['left']['convergence_deg']:4.1f}° "
              f"sag {lv['pedicles']['left']['sagittal_deg']:4.1f}°")
    from kyphosim.anatomy.phantom.truth import spine_truth
    t = spine_truth(shapes)
    print(f"  T1–L5 regional angle {t['regional_kyphosis_deg']:+.1f}°")
    for rng, lv in (("T1-T12", "T1-T12"), ("L1-L5", "L1-L5"), ("T4-T12", "T4-T12")):
        sh, _ = build_shapes(PhantomSpec(levels=lv))
        print(f"  {rng} Cobb (kyphotic +) {spine_truth(sh)['regional_kyphosis_deg']:+.1f}°")


def contacts(spacings=(1.0, 0.5)) -> None:
    """Voxel faces where two vertebra labels are both bone (issue #8; 0 expected at ≤ 1 mm)."""
    from kyphosim.anatomy.phantom.contacts import label_contacts
    from kyphosim.imaging.labels import vertebra_name
    print("== bone-to-bone contact faces between vertebrae (margin 5 mm, seed 7)")
    for lv in ("T10-L3", "L1-L5"):
        for sp in spacings:
            ph = make_phantom(PhantomSpec(levels=lv, fractures=[], spacing_mm=sp, margin_mm=5.0, seed=7))
            c = label_contacts(ph.labels.data)
            per = ", ".join(f"{vertebra_name(a)}-{vertebra_name(b)} {n}" for (a, b), n in sorted(c.items()))
            print(f"  {lv} {sp} mm: total {sum(c.values())} {per}")


if __name__ == "__main__":
    import sys
    if "--contacts" in sys.argv:
        contacts()
        raise SystemExit(0)
    contacts(spacings=(1.0,))
    build_times()
    morphometry()
    genant_draws()
    truth_vs_voxels()
    calibration_tissues()
