"""Segmentation benchmark on the shared data: per-vertebra Dice (whole vertebra and body), labels, time.

Run: ``python benchmarks/bench_segment.py [case ...]``. Reference masks are used only here, for scoring.
Body Dice: the reference vertebra is restricted to its body region R (the largest component of the
reference vertebra opened by a 5 mm ball, dilated by 3 mm), the predicted vertebra (the predicted label
overlapping the reference vertebra most) to the union of all reference body regions, so posterior
elements do not count but a prediction spilling into a neighbouring body (a missed disc) does.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from scipy import ndimage as ndi

from kyphosim.datasets import shared_data_dir
from kyphosim.imaging.io import load_ct, load_labels
from kyphosim.imaging.labels import vertebra_name
from kyphosim.segment import segment_spine
from kyphosim.segment.bone import ball


def cases(d):
    out = {c: (d / f"verse19/sub-verse{c}_ct.nii.gz", d / f"verse19/sub-verse{c}_seg-vert_msk.nii.gz")
           for c in ["005", "006", "007", "008", "012"]}
    out["ts"] = (d / "totalsegmentator_example/example_ct.nii.gz", d / "totalsegmentator_example/example_seg_v1")
    out["tptbox"] = (d / "tptbox_l3/sub-ct_label-22_ct.nii.gz", d / "tptbox_l3/sub-ct_seg-vert_label-22_msk.nii.gz")
    return out


def dice(a, b):
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else float("nan")


def body_region(ref_mask, spacing):
    r = 5.0 / float(np.mean(spacing))
    op = ndi.binary_opening(ref_mask, structure=ball(r))
    lab, n = ndi.label(op)
    if n == 0:
        return ref_mask
    big = lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    return ndi.binary_dilation(big, structure=ball(3.0 / float(np.mean(spacing))))


def evaluate(name, ct_path, ref_path):
    ct = load_ct(ct_path)
    ref = load_labels(ref_path, reference=ct).as_canonical()
    t = time.perf_counter()
    res = segment_spine(ct, backend="classic")
    dt = time.perf_counter() - t
    ours = res.labels.as_canonical().data
    rd = ref.data
    rows = []
    sp = ref.spacing
    nz = rd.shape[2]
    vids = [int(v) for v in np.unique(rd) if v and v != 26]
    regions = {vid: body_region(rd == vid, sp) for vid in vids}
    r_all = np.zeros(rd.shape, bool)
    for r in regions.values():
        r_all |= r
    for vid in vids:
        rm = rd == vid
        idx = np.argwhere(rm)
        full = idx[:, 2].min() > 0 and idx[:, 2].max() < nz - 1
        # best-matching predicted component (label-independent) and same-label Dice
        cand = np.bincount(ours[rm].ravel(), minlength=30)
        cand[0] = 0
        best = int(np.argmax(cand)) if cand.any() else 0
        om = ours == best if best else np.zeros_like(rm)
        R = regions[vid]
        rows.append({"ref": vertebra_name(vid), "pred": vertebra_name(best) if best else "-",
                     "label_ok": best == vid, "full": bool(full),
                     "dice_vertebra": round(dice(om, rm), 3), "dice_body": round(dice(om & r_all, rm & R), 3)})
    return {"case": name, "time_s": round(dt, 2), "ambiguous": res.ambiguous, "method": res.method,
            "levels": [(l["name"], l["confidence"]) for l in res.levels], "rows": rows}


def main(argv):
    d = shared_data_dir()
    if d is None:
        print("shared data not found")
        return 1
    sel = argv or list(cases(d))
    allb = []
    for name in sel:
        ct, ref = cases(d)[name]
        r = evaluate(name, ct, ref)
        print(f"== {name}: {r['time_s']} s, method {r['method']}, ambiguous {r['ambiguous']}, levels {r['levels']}")
        for row in r["rows"]:
            print(f"   {row['ref']:>4} → {row['pred']:>4}  full={row['full']!s:5}  Dice vert {row['dice_vertebra']:.3f}"
                  f"  body {row['dice_body']:.3f}  label_ok={row['label_ok']}")
            if row["full"]:
                allb.append(row["dice_body"])
    if allb:
        print(f"body Dice over fully visible levels: mean {np.mean(allb):.3f}, min {np.min(allb):.3f}, "
              f"n={len(allb)}, ≥0.85: {np.mean(np.asarray(allb) >= 0.85):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
