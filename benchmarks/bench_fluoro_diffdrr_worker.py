"""DiffDRR timing worker for ``bench_fluoro.py`` — runs inside the separate DiffDRR virtualenv.

Usage: python bench_fluoro_diffdrr_worker.py '<json config>'  → prints one JSON line.
Never imported by kyphosim; needs torch (CPU) and diffdrr 0.6.1 (installed with --no-deps).
"""

import json
import resource
import statistics
import sys
import time


def main() -> None:
    cfg = json.loads(sys.argv[1])
    import torch
    from diffdrr.data import read
    from diffdrr.drr import DRR

    torch.set_num_threads(int(cfg.get("threads", 2)))
    subject = read(cfg["ct"], orientation="AP")
    kw = {}
    if cfg["renderer"] == "siddon" and cfg.get("patch_size"):
        kw["patch_size"] = int(cfg["patch_size"])
    drr = DRR(subject, sdd=cfg["sdd_mm"], height=cfg["rows"], delx=cfg["pixel_mm"],
              renderer=cfg["renderer"], **kw)
    rot = torch.tensor([cfg["rotation"]], dtype=torch.float32)
    trans = torch.tensor([[0.0, cfg["sid_mm"], 0.0]], dtype=torch.float32)
    rkw = {"n_points": int(cfg["n_points"])} if cfg["renderer"] == "trilinear" else {}
    times = []
    with torch.no_grad():
        img = drr(rot, trans, parameterization="euler_angles", convention="ZXY", **rkw)   # warm-up
        for _ in range(int(cfg.get("repeats", 5))):
            t = time.perf_counter()
            img = drr(rot, trans, parameterization="euler_angles", convention="ZXY", **rkw)
            times.append(time.perf_counter() - t)
    if cfg.get("save"):
        import numpy as np
        np.save(cfg["save"], img.detach().cpu().numpy().reshape(cfg["rows"], cfg["rows"]))
    print(json.dumps({"median_s": statistics.median(times), "times_s": times,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                      "shape": list(img.shape), "max": float(img.max())}))


if __name__ == "__main__":
    main()
