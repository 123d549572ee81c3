"""Pedicle-axis cohort: planned bipedicular trajectories against the phantom's pedicle truth.

    python benchmarks/bench_pedicle_cohort.py [--quick]

Phantoms T10–L5 (kyphosim.anatomy.phantom) over several seeds, voxel spacings (0.8–1.5 mm,
anisotropic included), voxel orders (LPS, RAS, PIR, ASL) and between-subject size variability
(size_sd 0.05), one with an L1 wedge fracture; bone, discs and canal only (soft_tissue=False: the
planner reads the label map; the CT only feeds the sclerosis check). Every pedicle is planned with
and without the sub-region map. Per pedicle: 3-D angle between the planned trajectory
(entry → target) and the truth axis (world; frame-independent), |Δconvergence| and |Δsagittal|
with the truth axis expressed in the planner's own body frame (like with like: the truth file's
angles are in the phantom's measurement frame, which differs from the planner's frame by up to a
few degrees), entry error (mm). Accepted trajectories are
checked independently on the voxel masks (canal sub-region distance, in-bone fraction through the
pedicle sub-region) by ``bench_planning.phantom_figures``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_planning import phantom_figures  # noqa: E402

COHORT = [
    dict(seed=3, spacing_mm=(0.8, 0.8, 1.5), orientation="LPS", fractures=["L1:wedge:2"]),
    dict(seed=11, spacing_mm=(1.0, 1.0, 1.0), orientation="RAS", fractures=[]),
    dict(seed=23, spacing_mm=(1.5, 1.5, 1.5), orientation="PIR", fractures=[]),
    dict(seed=5, spacing_mm=(1.2, 1.2, 1.2), orientation="ASL", fractures=[]),
]


def summary(rows, label):
    a = np.array([r["angle"] for r in rows])
    dc = np.array([r["dconv"] for r in rows])
    ds = np.array([r["dsag"] for r in rows])
    e = np.array([r["entry"] for r in rows])
    acc = [r for r in rows if r["accepted"]]
    print(f"SUMMARY {label}: {len(rows)} pedicles; axis angle median {np.median(a):.1f}°, p90 "
          f"{np.percentile(a, 90):.1f}°, max {a.max():.1f}°, ≤3°: {np.sum(a <= 3)}/{len(a)} ({np.mean(a <= 3):.0%}); "
          f"|Δconv| ≤3°: {np.mean(dc <= 3):.0%}, |Δsag| ≤3°: {np.mean(ds <= 3):.0%}; entry median "
          f"{np.median(e):.1f} mm, max {e.max():.1f}, ≤2 mm: {np.sum(e <= 2)}/{len(e)} ({np.mean(e <= 2):.0%}); "
          f"accepted {len(acc)}: canal ≥ 1 mm (mask) {sum(r['mask_canal_mm'] >= 1.0 for r in acc)}, "
          f"fully in bone {sum(r['mask_inside'] >= 0.999 for r in acc)}", flush=True)
    by = {}
    for r in rows:
        by.setdefault(r["level"], []).append(r["angle"])
    print("   per level (max axis angle): " + ", ".join(f"{k} {max(v):.1f}°" for k, v in by.items()), flush=True)


def main(argv=None) -> int:
    from kyphosim.anatomy.phantom import PhantomSpec, make_phantom
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", default="T10-L5")
    ap.add_argument("--quick", action="store_true", help="first two phantoms only")
    args = ap.parse_args(argv)
    cohort = COHORT[:2] if args.quick else COHORT
    allrows = {True: [], False: []}
    for c in cohort:
        t0 = time.perf_counter()
        ph = make_phantom(PhantomSpec(levels=args.levels, seed=c["seed"], spacing_mm=c["spacing_mm"],
                                      orientation=c["orientation"], fractures=c["fractures"], size_sd=0.05,
                                      soft_tissue=False))
        print(f"phantom seed {c['seed']} spacing {c['spacing_mm']} {c['orientation']} {c['fractures']}: "
              f"built in {time.perf_counter() - t0:.0f} s", flush=True)
        for use_sub in (True, False):
            rows, per_level = phantom_figures(args.levels, c["seed"], use_sub, ph=ph)
            for r in rows:
                r["case"] = c["seed"]
                print(f"  {'sub ' if use_sub else 'mask'} {r['level']:>4} {r['side']:5} acc={r['accepted']!s:5} "
                      f"axis {r['angle']:4.1f}° Δconv {r['dconv']:4.1f}° Δsag {r['dsag']:4.1f}° entry "
                      f"{r['entry']:4.1f} mm | canal {r['canal']:5.2f} cortex {r['cortex']:5.2f} | mask in-bone "
                      f"{r['mask_inside']:.3f}, canal {r['mask_canal_mm']:.2f} mm", flush=True)
            print(f"  ({per_level:.1f} s/level)", flush=True)
            allrows[use_sub] += rows
    summary(allrows[True], "with sub-regions")
    summary(allrows[False], "mask only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
