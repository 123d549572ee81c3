"""Benchmark of the voxel-FE strength solver on the spineFE vertebra (VerSe sub-verse004 L2).

Cases (each in a fresh subprocess, so peak memory is per case):

* ``fast-1mm``      matrix-free PCG + geometric/AMG multigrid (kyphosim default), 1 mm voxels
* ``baseline-1mm``  straightforward assembled CSR matrix (NumPy COO → SciPy CSR, Dirichlet rows/columns
                    eliminated) + SciPy ``cg`` with a Jacobi preconditioner, same tolerance
* ``fast-0.5mm``    the same vertebra resampled to 0.5 mm voxels (≈ 0.5 M elements, 1.7 M unknowns)
* ``amg-1mm``       assembled block matrix + pyamg smoothed aggregation (the other kyphosim solver)
* ``pushover-1mm``, ``pushover-1.5mm``, ``pushover-2mm``, ``pushover-3mm``
                    nonlinear pushover (secant damage, 10 increments to 2 % apparent strain; the defaults) of the same
                    vertebra on that grid: failure load (peak reaction), 0.2 % offset load, iterations, time
                    (grid convergence of the failure load)
* ``demo-augmentation``  intact (L2) / fractured / augmented L1 of a ``kyphosim demo`` output folder
                    (``--demo-dir``, default /tmp/kyphosim-demo): linear 1 mm + pushover on the pathway's grid
                    (``--nonlinear-mm``, default auto = 2 mm)

Run:  python benchmarks/bench_mechanics.py [--threads 1] [--cases fast-1mm,baseline-1mm,fast-0.5mm]
Prints wall and CPU seconds (assembly = model + mesh + preconditioner set-up; solve = PCG), iterations,
stiffness, peak resident memory, and the baseline/fast ratios measured in the same run. The machine is
shared: the load average is printed with every case, CPU seconds are the load-independent figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(os.environ.get("KYPHOSIM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _load():
    from kyphosim.imaging.io import load_image
    from kyphosim.imaging.volume import Volume

    d = DATA / "spinefe_verse004_L2"
    img = load_image(d / "sub-verse004_0000_vertebra_21_im.nii.gz")
    raw = load_image(d / "sub-verse004_0000_vertebra_21_seg.nii.gz")
    return img, Volume(raw.data, raw.affine, is_label=True, source_axcodes=raw.source_axcodes)


def run_fast(resample_mm, solver="gmg", tol=1e-6):
    from kyphosim.mechanics.strength import analyse_model, prepare_model

    img, lab = _load()
    t0, c0 = time.perf_counter(), time.process_time()
    model = prepare_model(img, lab, bone_labels=[1, 2, 3, 4], caps=(5, 6), density="calibrated", law="kopperdahl",
                          resample_mm=resample_mm)
    r = analyse_model(model, displacement_mm=0.2, solver=solver, tol=tol, keep_fields=False,
                      t_start=t0)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {"elements": r.elements, "dofs": r.dofs, "stiffness_n_per_mm": r.stiffness_n_per_mm,
            "iterations": r.solver["iterations"], "relative_residual": r.solver["relative_residual"],
            "wall_assembly_s": r.seconds["assembly"], "wall_solve_s": r.seconds["solve"],
            "wall_assembly_plus_solve_s": r.seconds["assembly"] + r.seconds["solve"], "wall_total_s": wall,
            "cpu_assembly_plus_solve_s": r.seconds["cpu_assembly"] + r.seconds["cpu_solve"], "cpu_total_s": cpu}


def run_baseline(resample_mm, tol=1e-6, maxiter=20000):
    """Straightforward assembled matrix + SciPy CG (Jacobi)."""
    import numpy as np
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    from kyphosim.mechanics.element import hex8_stiffness
    from kyphosim.mechanics.mesh import build_mesh
    from kyphosim.mechanics.strength import _face_nodes, _rigid_body_constraints, prepare_model

    img, lab = _load()
    t0, c0 = time.perf_counter(), time.process_time()
    model = prepare_model(img, lab, bone_labels=[1, 2, 3, 4], caps=(5, 6), density="calibrated", law="kopperdahl",
                          resample_mm=resample_mm)
    mesh = build_mesh(model.modulus_mpa, model.material, model.grid.spacing)
    K0 = hex8_stiffness(mesh.spacing, 0.3)
    dofs = (3 * mesh.conn[:, :, None] + np.arange(3)).reshape(mesh.n_elements, 24)
    rows = np.repeat(dofs, 24, axis=1).ravel()
    cols = np.tile(dofs, (1, 24)).ravel()
    vals = (mesh.modulus_mpa[:, None] * K0.ravel()[None, :]).ravel()
    A = sp.coo_matrix((vals, (rows, cols)), shape=(mesh.n_dofs, mesh.n_dofs)).tocsr()
    del rows, cols, vals
    top = _face_nodes(mesh, 3, True)
    bot = _face_nodes(mesh, 2, False)
    rbm, _ = _rigid_body_constraints(mesh, bot)
    fixed = np.concatenate([3 * top + 2, 3 * bot + 2, rbm])
    values = np.concatenate([np.full(top.size, -0.2), np.zeros(bot.size + rbm.size)])
    free = np.setdiff1d(np.arange(mesh.n_dofs), fixed)
    Aff = A[free][:, free].tocsr()
    b = -(A[free][:, fixed] @ values)
    Minv = sp.diags(1.0 / Aff.diagonal())
    t1, c1 = time.perf_counter(), time.process_time()
    its = [0]
    x, info = spla.cg(Aff, b, rtol=tol, atol=0.0, maxiter=maxiter, M=Minv,
                      callback=lambda xk: its.__setitem__(0, its[0] + 1))
    t2, c2 = time.perf_counter(), time.process_time()
    u = np.zeros(mesh.n_dofs)
    u[fixed] = values
    u[free] = x
    R = float((A @ u)[3 * top + 2].sum())
    res = float(np.linalg.norm(b - Aff @ x) / np.linalg.norm(b))
    return {"elements": mesh.n_elements, "dofs": mesh.n_dofs, "stiffness_n_per_mm": abs(R) / 0.2,
            "iterations": its[0], "relative_residual": res, "converged": info == 0,
            "wall_assembly_s": t1 - t0, "wall_solve_s": t2 - t1, "wall_assembly_plus_solve_s": t2 - t0,
            "cpu_assembly_plus_solve_s": c2 - c0, "matrix_nnz": int(A.nnz)}


def run_push(resample_mm, increments=10):
    from kyphosim.mechanics.nonlinear import PushoverSettings
    from kyphosim.mechanics.strength import prepare_model, run_pushover

    img, lab = _load()
    model = prepare_model(img, lab, bone_labels=[1, 2, 3, 4], caps=(5, 6), density="calibrated", law="kopperdahl",
                          resample_mm=resample_mm)
    r, mesh = run_pushover(model, PushoverSettings(increments=increments))
    return {"elements": mesh.n_elements, "dofs": mesh.n_dofs, "failure_load_n": r.failure_load_n,
            "yield_load_offset_n": r.yield_load_offset_n, "displacement_at_peak_mm": r.displacement_at_peak_mm,
            "max_displacement_mm": r.max_displacement_mm, "initial_stiffness_n_per_mm": r.initial_stiffness_n_per_mm,
            "increments": r.increments, "iterations": r.iterations_total, "cg_iterations": r.cg_iterations_total,
            "preconditioner_builds": r.preconditioner_builds, "all_converged": r.all_converged, "stopped": r.stopped,
            "wall_s": r.seconds, "cpu_s": r.cpu_seconds,
            "curve_n": [round(c["reaction_force_n"]) for c in r.curve],
            "iterations_per_increment": [c["iterations"] for c in r.curve[1:]]}


def run_demo():
    from kyphosim.imaging.io import load_image, load_labels
    from kyphosim.imaging.volume import Volume
    from kyphosim.mechanics import compare_augmentation

    d = Path(os.environ.get("KYPHOSIM_DEMO_DIR", "/tmp/kyphosim-demo"))
    nl = os.environ.get("KYPHOSIM_NONLINEAR_MM", "auto")
    nl = None if nl == "same" else (nl if nl == "auto" else float(nl))
    ct = load_image(d / "phantom" / "ct.nii.gz")
    lab = load_labels(d / "phantom" / "labels.nii.gz")
    c = load_image(d / "simulation" / "kyphoplasty" / "cement.nii.gz")
    cem = Volume(c.data, c.affine, is_label=True, source_axcodes=c.source_axcodes)
    t0, c0 = time.perf_counter(), time.process_time()
    comp = compare_augmentation(ct, lab, cem, level="L1", density="hu", resample_mm=1.0, intact_level="L2",
                                nonlinear_resample_mm=nl, keep_fields=False)
    out = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "changes": comp.changes,
           "states": {}}
    for k, r in comp.states.items():
        n = r.nonlinear or {}
        out["states"][k] = {"stiffness_n_per_mm": r.stiffness_n_per_mm, "failure_load_n": r.failure_load_n,
                            "linear_estimate_n": r.failure_load_linear_estimate_n,
                            "yield_load_offset_n": n.get("yield_load_offset_n"),
                            "pushover_voxel_mm": n.get("voxel_size_mm"), "pushover_elements": n.get("elements"),
                            "iterations": n.get("iterations_total"), "converged": n.get("all_converged"),
                            "pushover_s": n.get("seconds"), "cement_ml": r.model["cement_volume_ml"]}
    return out


CASES = {
    "fast-1mm": lambda: run_fast(None),
    "amg-1mm": lambda: run_fast(None, solver="amg"),
    "baseline-1mm": lambda: run_baseline(None),
    "fast-0.5mm": lambda: run_fast(0.5),
    "baseline-0.5mm": lambda: run_baseline(0.5),
    "pushover-1mm": lambda: run_push(None),
    "pushover-1.5mm": lambda: run_push(1.5),
    "pushover-2mm": lambda: run_push(2.0),
    "pushover-3mm": lambda: run_push(3.0),
    "demo-augmentation": run_demo,
}


def _child(case: str) -> None:
    out = CASES[case]()
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("RESULT " + json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="fast-1mm,baseline-1mm,fast-0.5mm")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--child")
    ap.add_argument("--demo-dir", help="kyphosim demo output folder for demo-augmentation")
    ap.add_argument("--nonlinear-mm", default="auto", help="pushover grid for demo-augmentation: auto | same | mm")
    a = ap.parse_args()
    if a.child:
        _child(a.child)
        return
    if a.demo_dir:
        os.environ["KYPHOSIM_DEMO_DIR"] = a.demo_dir
    os.environ["KYPHOSIM_NONLINEAR_MM"] = a.nonlinear_mm
    results = {}
    for threads in a.threads.split(","):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads,
                   KYPHOSIM_THREADS=threads)
        for case in a.cases.split(","):
            runs = []
            reps = 1 if case.startswith(("baseline", "pushover", "demo")) else a.repeat
            for _ in range(reps):
                load = os.getloadavg()[0]
                p = subprocess.run([sys.executable, __file__, "--child", case], env=env, capture_output=True, text=True)
                line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
                if not line:
                    print(f"{case} threads={threads}: failed\n{p.stderr[-2000:]}")
                    break
                r = json.loads(line[0][7:])
                r["load_avg"] = load
                runs.append(r)
            if not runs:
                continue
            if case.startswith(("pushover", "demo")):
                r = runs[0]
                results[(case, threads)] = r
                print(f"{case:>14} threads={threads} load {r['load_avg']:.1f} peak RSS {r['peak_rss_mb']:.0f} MB "
                      + json.dumps({k: v for k, v in r.items() if k not in ("load_avg", "peak_rss_mb")}), flush=True)
                continue
            best = min(runs, key=lambda r: r["wall_assembly_plus_solve_s"])
            results[(case, threads)] = best
            print(f"{case:>14} threads={threads} elements={best['elements']:,} dofs={best['dofs']:,} "
                  f"iters={best['iterations']} res={best['relative_residual']:.1e} "
                  f"k={best['stiffness_n_per_mm']:.1f} N/mm | assembly+solve wall {best['wall_assembly_plus_solve_s']:.2f} s "
                  f"(assembly {best['wall_assembly_s']:.2f}, solve {best['wall_solve_s']:.2f}) "
                  f"cpu {best['cpu_assembly_plus_solve_s']:.2f} s | peak RSS {best['peak_rss_mb']:.0f} MB "
                  f"| load {best['load_avg']:.1f}", flush=True)
    for threads in a.threads.split(","):
        f, b = results.get(("fast-1mm", threads)), results.get(("baseline-1mm", threads))
        if f and b:
            print(f"ratio baseline/fast (1 mm, threads={threads}): wall {b['wall_assembly_plus_solve_s'] / f['wall_assembly_plus_solve_s']:.1f}×, "
                  f"cpu {b['cpu_assembly_plus_solve_s'] / f['cpu_assembly_plus_solve_s']:.1f}×, "
                  f"stiffness difference {abs(b['stiffness_n_per_mm'] - f['stiffness_n_per_mm']) / f['stiffness_n_per_mm'] * 100:.3f} %")


if __name__ == "__main__":
    main()
