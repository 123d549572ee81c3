"""Benchmark: kyphosim's DRR renderer vs DiffDRR 0.6.1 (CPU torch), same CT, image size and sampling.

    python benchmarks/bench_fluoro.py [--diffdrr-venv /work/venv-diffdrr] [--sizes 200,512] [--repeats 5]

kyphosim runs in this interpreter (numba, NUMBA_NUM_THREADS threads, default all cores); DiffDRR
runs in its own virtual environment (torch CPU, 2 threads, no gradients) through
``bench_fluoro_diffdrr_worker.py``, one process per configuration. Both use the same cone-beam
geometry (SDD 1000 mm, source–isocentre 700 mm, isocentre at the volume centre, square detector
with 0.586 mm pixels at 512² and 1.5 mm at 200²) and the same sampling density: kyphosim's default
(Joseph) quadrature takes one trilinear sample per voxel plane crossed (1 mm planes along the beam
here: a step of 1.000–1.02 mm along each ray, printed as the mean step), its trilinear mode a fixed
1 mm step; DiffDRR's trilinear renderer gets the number of points that gives the same 1 mm step
over its (global) ray range; its Siddon renderer is exact voxel traversal (patched when it would
exceed memory). The geometry is checked by the correlation of the two trilinear images (best over
flips/rotations, display conventions differ). The sample counts per image are printed (kyphosim clips every ray to the volume,
DiffDRR samples its global range for every ray). Timings: one warm-up render, median of
``--repeats``; the blocks alternate kyphosim / DiffDRR. The DiffDRR part is skipped cleanly
when its venv is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from kyphosim.datasets import shared_data_dir
from kyphosim.imaging.io import load_ct
from kyphosim.planning.fluoro import carm_geometry, render_drr

HERE = Path(__file__).resolve().parent
SDD_MM, SID_MM = 1000.0, 700.0
DETECTOR_MM = 300.0


def time_kyphosim(ct, geom, repeats, sampling="joseph"):
    """Median wall time of ``render_drr`` (the whole call: μ from the per-CT cache, quadrature,
    image allocation) after one warm-up render (JIT compile/cache load, μ conversion)."""
    render_drr(ct, geom, sampling=sampling)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        drr = render_drr(ct, geom, sampling=sampling)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), drr


def joseph_samples(ct, geom):
    """Samples per image of the Joseph quadrature (planes crossed by every ray) and the mean step."""
    inv = np.linalg.inv(ct.affine)
    pts = geom.pixel_centers_mm().reshape(-1, 3)
    s = inv[:3, :3] @ geom.source_mm + inv[:3, 3]
    d = pts @ inv[:3, :3].T + inv[:3, 3] - s
    hi = np.asarray(ct.shape) - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        a0 = (0.0 - s) / d
        a1 = (hi - s) / d
    amin = np.clip(np.nanmax(np.minimum(a0, a1), axis=1), 0, 1)
    amax = np.clip(np.nanmin(np.maximum(a0, a1), axis=1), 0, 1)
    span = np.clip(amax - amin, 0, None)
    m = np.abs(d).max(axis=1)
    n = np.floor(span * m + 1e-9)
    hit = span > 0
    seg_mm = span * np.linalg.norm(pts - geom.source_mm, axis=1)
    return int(n[hit].sum() + hit.sum()), float(seg_mm[hit].sum() / max(1, n[hit].sum()))


def diffdrr_n_points(ct, geom, step_mm):
    """Number of DiffDRR trilinear samples that gives ``step_mm`` over its global ray range."""
    lo = -0.5 * np.ones(3)
    hi = np.asarray(ct.shape) - 0.5
    inv = np.linalg.inv(ct.affine)
    pts = geom.pixel_centers_mm().reshape(-1, 3)[:: max(1, geom.rows * geom.cols // 20000)]
    s = inv[:3, :3] @ geom.source_mm + inv[:3, 3]
    t = pts @ inv[:3, :3].T + inv[:3, 3]
    d = t - s
    with np.errstate(divide="ignore"):
        a0 = (lo - s) / d
        a1 = (hi - s) / d
    amin = np.minimum(a0, a1).max(1)
    amax = np.maximum(a0, a1).min(1)
    ok = amax > amin
    span_alpha = amax[ok].max() - amin[ok].min()
    return int(np.ceil(span_alpha * geom.source_to_detector_mm / step_mm)) + 1


def image_agreement(ours, theirs):
    """Best Pearson correlation between our line-integral image and DiffDRR's over the 8 flips /
    90° rotations (display conventions differ; DiffDRR's attenuation scale differs too) — a check
    that both rendered the same geometry."""
    best = -1.0
    for k in range(4):
        for flip in (False, True):
            x = np.rot90(theirs, k)
            x = np.fliplr(x) if flip else x
            if x.shape == ours.shape:
                best = max(best, float(np.corrcoef(x.ravel(), ours.ravel())[0, 1]))
    return best


def run_diffdrr(python, ct_path, cfg):
    cfg = dict(cfg, ct=str(ct_path))
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg.get("threads", 2)))
    p = subprocess.run([python, str(HERE / "bench_fluoro_diffdrr_worker.py"), json.dumps(cfg)],
                       capture_output=True, text=True, env=env, timeout=1800)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--diffdrr-venv", default=os.environ.get("DIFFDRR_VENV", "/work/venv-diffdrr"))
    ap.add_argument("--sizes", default="200,512")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ct", default=None, help="CT (default: shared VerSe sub-verse005)")
    ap.add_argument("--siddon", action="store_true", help="also time DiffDRR's Siddon renderer")
    args = ap.parse_args(argv)
    data = shared_data_dir()
    ct_path = Path(args.ct) if args.ct else (data / "verse19" / "sub-verse005_ct.nii.gz" if data else None)
    if ct_path is None or not ct_path.exists():
        print("no CT available (shared data absent): nothing to benchmark")
        return 0
    ct = load_ct(ct_path)
    import numba
    py = Path(args.diffdrr_venv) / "bin" / "python"
    have_diffdrr = py.exists()
    print(f"CT {ct_path.name}: {ct.shape} voxels, spacing {np.round(ct.spacing, 3).tolist()} mm; "
          f"numba threads {numba.get_num_threads()}; DiffDRR venv {'found' if have_diffdrr else 'absent (skipped)'}")
    rows = []
    step = float(np.min(ct.spacing))
    centre = np.mean(ct.world_bounds(), axis=0)
    for size in [int(s) for s in args.sizes.split(",")]:
        for view, rot in (("ap", [0.0, 0.0, 0.0]), ("lateral", [np.pi / 2, 0.0, 0.0])):
            geom = carm_geometry(view, centre, rows=size, pixel_mm=DETECTOR_MM / 512 if size == 512
                                 else DETECTOR_MM / size, sdd_mm=SDD_MM, sid_mm=SID_MM)
            t_k, drr_k = time_kyphosim(ct, geom, args.repeats)
            t_t, _ = time_kyphosim(ct, geom, args.repeats, "trilinear")
            n_j, step_j = joseph_samples(ct, geom)
            row = {"size": size, "view": view, "kyphosim_s": t_k, "kyphosim_trilinear_s": t_t,
                   "kyphosim_samples": n_j, "kyphosim_mean_step_mm": step_j}
            if have_diffdrr:
                npts = diffdrr_n_points(ct, geom, step)
                base = {"sdd_mm": SDD_MM, "sid_mm": SID_MM, "rows": size, "pixel_mm": geom.pixel_mm,
                        "rotation": rot, "threads": 2, "repeats": args.repeats}
                img_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_fluoro_diffdrr_{os.getpid()}.npy"
                tri = run_diffdrr(py, ct_path, dict(base, renderer="trilinear", n_points=npts, save=str(img_path)))
                if img_path.exists():
                    row["image_correlation"] = image_agreement(drr_k.line_integral, np.load(img_path))
                    img_path.unlink()
                row.update(diffdrr_trilinear_s=tri.get("median_s"), diffdrr_trilinear_points=npts,
                           diffdrr_trilinear_rss_mb=tri.get("peak_rss_mb"), diffdrr_error=tri.get("error"))
                if args.siddon:
                    sid = run_diffdrr(py, ct_path, dict(base, renderer="siddon", n_points=0,
                                                        patch_size=128 if size >= 512 else None))
                    row.update(diffdrr_siddon_s=sid.get("median_s"), diffdrr_siddon_rss_mb=sid.get("peak_rss_mb"))
                t_k2, _ = time_kyphosim(ct, geom, args.repeats)    # alternate: kyphosim again
                t_t2, _ = time_kyphosim(ct, geom, args.repeats, "trilinear")
                row["kyphosim_s"] = statistics.median([t_k, t_k2])
                row["kyphosim_trilinear_s"] = statistics.median([t_t, t_t2])
                row["kyphosim_s_runs"] = [t_k, t_k2]
                row["diffdrr_trilinear_samples"] = npts * size * size
            rows.append(row)
            msg = (f"{size}² {view:8s} kyphosim {row['kyphosim_s']:.3f} s ({row['kyphosim_samples'] / 1e6:.1f} M "
                   f"samples, mean step {row['kyphosim_mean_step_mm']:.3f} mm), kyphosim trilinear "
                   f"{row['kyphosim_trilinear_s']:.3f} s")
            if row.get("diffdrr_trilinear_s"):
                msg += (f" | DiffDRR trilinear ({row['diffdrr_trilinear_points']} pts/ray, "
                        f"{row['diffdrr_trilinear_samples'] / 1e6:.1f} M samples) "
                        f"{row['diffdrr_trilinear_s']:.2f} s, {row['diffdrr_trilinear_rss_mb']:.0f} MB "
                        f"→ {row['diffdrr_trilinear_s'] / row['kyphosim_s']:.0f}× faster")
            if row.get("diffdrr_siddon_s"):
                msg += (f" | DiffDRR siddon {row['diffdrr_siddon_s']:.2f} s "
                        f"→ {row['diffdrr_siddon_s'] / row['kyphosim_s']:.0f}×")
            if row.get("image_correlation") is not None:
                msg += f" | same-geometry check: image correlation {row['image_correlation']:.4f}"
            if row.get("diffdrr_error"):
                msg += f" | DiffDRR failed: {row['diffdrr_error']}"
            print(msg, flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
