"""Planning cohort figures: phantom pedicle truth and the shared VerSe CT cases.

    python benchmarks/bench_planning.py [--phantom-levels T10-L3] [--no-verse]

Phantom: per pedicle, the angle between the planned and true axes, |Δconvergence|, |Δsagittal|,
entry error (mm), and for each accepted trajectory the independent mask check (cannula surface
points through the pedicle sub-region inside the vertebra; distance to the canal sub-region).
VerSe: per level, the approach, feasibility, clearances and the fraction of the cannula surface
(beyond 3 mm from the entry) inside the vertebra mask.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy.spatial import cKDTree

from kyphosim.datasets import shared_data_dir
from kyphosim.imaging.labels import SUBREGION_IDS, level_region
from kyphosim.imaging.volume import Volume
from kyphosim.planning.api import plan_procedure
from kyphosim.planning.instruments import cannula_surface_points


def surface_points(t):
    return cannula_surface_points(t["entry_mm"], t["target_mm"], t["cannula_outer_diameter_mm"])


def occ(mask: Volume, pts):
    return Volume(mask.data.astype(np.float32), mask.affine).sample(pts, order=1, cval=0.0)


def phantom_figures(levels: str, seed: int, use_sub: bool, ph=None):
    """Per-pedicle rows for one phantom (built from ``levels``/``seed`` unless ``ph`` is given)."""
    from kyphosim.anatomy.phantom import PhantomSpec, make_phantom
    if ph is None:
        ph = make_phantom(PhantomSpec(levels=levels, seed=seed))
    truth = {lv["name"]: lv for lv in ph.truth["levels"]}
    t0 = time.perf_counter()
    plan = plan_procedure(ph.ct, ph.labels, levels, subregions=ph.subregions if use_sub else None).to_json_dict()
    dt = time.perf_counter() - t0
    canal = np.argwhere(ph.subregions.data == SUBREGION_IDS["spinal_canal"])
    ctree = cKDTree(ph.subregions.voxel_to_world(canal))
    rows = []
    from kyphosim.assess.geometry import vertebral_body_geometry
    from kyphosim.planning.pedicle import SIDES, axis_angles
    for lv in plan["levels"]:
        tr = truth[lv["name"]]
        # like with like: the truth axis' angles in the planner's own body frame
        frame = vertebral_body_geometry(ph.labels, lv["label"], ph.subregions if use_sub else None).frame
        for t in lv["trajectories"] + lv["rejected_trajectories"]:
            if t["kind"] != "pedicle_axis":
                continue
            tp = tr["pedicles"][t["side"]]
            ax = np.subtract(t["target_mm"], t["entry_mm"])
            ax /= np.linalg.norm(ax)
            ang = float(np.degrees(np.arccos(np.clip(ax @ np.asarray(tp["axis"]), -1, 1))))
            pts, _ = surface_points(t)
            ped = ph.subregions.with_data(ph.subregions.data == SUBREGION_IDS[f"pedicle_{t['side']}"])
            vert = ph.labels.with_data(ph.labels.data == lv["label"])
            near = occ(ped, pts) > 0
            inside = float(np.mean(occ(vert, pts[near]) >= 0.5)) if near.any() else float("nan")
            dcan = float(ctree.query(pts)[0].min())
            c_t, s_t = axis_angles(frame.rotation.T @ np.asarray(tp["axis"]), SIDES[t["side"]])
            rows.append(dict(level=lv["name"], side=t["side"], accepted=t in lv["trajectories"], angle=ang,
                             dconv=abs(t["convergence_deg"] - c_t), dsag=abs(t["sagittal_deg"] - s_t),
                             dconv_truthframe=abs(t["convergence_deg"] - tp["convergence_deg"]),
                             dsag_truthframe=abs(t["sagittal_deg"] - tp["sagittal_deg"]),
                             entry=float(np.linalg.norm(np.subtract(t["entry_mm"], tp["entry_mm"]))),
                             canal=t["clearance_canal_mm"], cortex=t["clearance_cortex_mm"],
                             mask_inside=inside, mask_canal_mm=dcan, width=t["pedicle_min_width_mm"],
                             width_true=tp["min_width_mm"]))
    return rows, dt / max(1, len(plan["levels"]))


def verse_figures(data):
    from kyphosim.imaging.io import load_ct, load_labels
    rows = []
    for case in ("005", "006", "007", "008", "012"):
        ct = load_ct(data / "verse19" / f"sub-verse{case}_ct.nii.gz")
        lab = load_labels(data / "verse19" / f"sub-verse{case}_seg-vert_msk.nii.gz", reference=ct)
        ids = [int(i) for i in np.unique(lab.data) if 0 < i < 26]
        for i in ids:
            try:
                lv = plan_procedure(ct, lab, [i]).to_json_dict()["levels"][0]
            except Exception as exc:  # report, do not hide
                rows.append(dict(case=case, level=str(i), error=str(exc)[:80]))
                continue
            vert = lab.with_data(lab.data == i)
            ins = []
            for t in lv["trajectories"]:
                pts, s = surface_points(t)
                ins.append(float(np.mean(occ(vert, pts[s >= 3.0]) >= 0.5)))
            rows.append(dict(case=case, level=lv["name"], region=level_region(i), approach=lv["approach"],
                             feasible=lv["feasible"], flags=lv["flags"],
                             canal=[t["clearance_canal_mm"] for t in lv["trajectories"]],
                             cortex=[t["clearance_cortex_mm"] for t in lv["trajectories"]],
                             conv=[t["convergence_deg"] for t in lv["trajectories"]],
                             width=[t["pedicle_min_width_mm"] for t in lv["trajectories"]],
                             inside=ins, reasons=lv["reasons"][:2], balloon=lv["balloon_length_mm"],
                             cement=lv["cement_volume_ml"]))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phantom-levels", default="T10-L3")
    ap.add_argument("--seeds", default="7")
    ap.add_argument("--no-verse", action="store_true")
    args = ap.parse_args(argv)
    for use_sub in (True, False):
        allrows = []
        for seed in [int(s) for s in args.seeds.split(",")]:
            rows, per_level = phantom_figures(args.phantom_levels, seed, use_sub)
            allrows += rows
            print(f"phantom seed {seed} ({'with' if use_sub else 'without'} sub-regions): {per_level:.1f} s/level")
        for r in allrows:
            print(f"  {r['level']:>4} {r['side']:5} acc={r['accepted']!s:5} axis {r['angle']:4.1f}° "
                  f"Δconv {r['dconv']:4.1f}° Δsag {r['dsag']:4.1f}° entry {r['entry']:4.1f} mm | canal "
                  f"{r['canal']:5.2f} cortex {r['cortex']:5.2f} | mask: in-bone {r['mask_inside']:.3f}, "
                  f"canal {r['mask_canal_mm']:.2f} mm | width {r['width']:.1f}/{r['width_true']:.1f}")
        a = np.array([r["angle"] for r in allrows])
        e = np.array([r["entry"] for r in allrows])
        acc = [r for r in allrows if r["accepted"]]
        print(f"SUMMARY {'sub' if use_sub else 'nosub'}: {len(allrows)} pedicles; axis error median {np.median(a):.1f}°, "
              f"max {a.max():.1f}°, ≤3°: {np.mean(a <= 3):.0%}; entry median {np.median(e):.1f} mm, max {e.max():.1f}, "
              f"≤2 mm: {np.mean(e <= 2):.0%}; accepted {len(acc)}; accepted with mask canal ≥ 1 mm: "
              f"{sum(r['mask_canal_mm'] >= 1.0 for r in acc)}; fully in bone: {sum(r['mask_inside'] >= 0.999 for r in acc)}")
    data = shared_data_dir()
    if data is not None and not args.no_verse:
        rows = verse_figures(data)
        for r in rows:
            print("  VerSe", r)
        lum = [r for r in rows if r.get("region") == "lumbar"]
        tho = [r for r in rows if r.get("region") == "thoracic"]
        print(f"SUMMARY VerSe: lumbar {sum(r['feasible'] and r['approach'] == 'bipedicular' for r in lum)}/{len(lum)} "
              f"bipedicular feasible, {sum(r['feasible'] for r in lum)}/{len(lum)} feasible; thoracic "
              f"{sum(r['feasible'] for r in tho)}/{len(tho)} feasible (others flagged); min canal clearance "
              f"{min([c for r in rows if 'canal' in r for c in r['canal']] or [float('nan')]):.2f} mm; "
              f"min mask in-bone fraction {min([x for r in rows if 'inside' in r for x in r['inside']] or [float('nan')]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
