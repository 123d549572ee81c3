"""Speed of one bipedicular balloon kyphoplasty at 0.5 mm, time split by step.

Target (issue 5): < 30 s on 2 cores. Run: ``python benchmarks/bench_simulation.py [--resolution 0.5]``.
Uses the project phantom (L1 wedge grade 2, acute, 75 mg/cm³) with the phantom's own pedicle
truth as the plan, so planning time is not included. Prints one line per step.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=float, default=0.5)
    ap.add_argument("--technique", default="kyphoplasty")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    from kyphosim.anatomy.phantom import FractureSpec, PhantomSpec, make_phantom
    from kyphosim.simulation import simulate

    ph = make_phantom(PhantomSpec(levels="T12-L2", fractures=[FractureSpec(level="L1", type="wedge", grade=2,
                                                                          age="acute")], bmd_mg_cm3=75, seed=1))
    lv = next(l for l in ph.truth["levels"] if l["name"] == "L1")
    plan = {"levels": [{"level": "L1", "trajectories": [
        {"side": s, "entry_mm": lv["pedicles"][s]["entry_mm"], "target_mm": lv["pedicles"][s]["target_mm"]}
        for s in ("left", "right")]}]}
    print(f"cores available: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")
    for _ in range(a.repeat):
        t = time.perf_counter()
        c0 = time.process_time()
        r = simulate(ph.ct, ph.labels, "L1", plan=plan, technique=a.technique, resolution_mm=a.resolution,
                     subregions=ph.subregions)
        wall = time.perf_counter() - t
        cpu = time.process_time() - c0
        print(f"{a.technique} bipedicular L1 at {a.resolution} mm: {wall:.1f} s wall, {cpu:.1f} s CPU "
              f"(load average after {os.getloadavg()[0]:.1f})")
        for k, v in r.timings_s.items():
            print(f"  {k:<10} {v:7.2f} s")
        print(f"  balloons {[round(b.max_volume_ml, 2) for b in r.balloons]} mL, cement {r.cement.volume_ml:.2f} mL, "
              f"leaks {[l.type for l in r.cement.leaks]}")


if __name__ == "__main__":
    main()
