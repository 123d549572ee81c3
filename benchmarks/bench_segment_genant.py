"""Downstream agreement: Genant grades from ``kyphosim.assess.assess_spine`` on our masks vs the reference masks.

Same CT, same assessment code; only the label map differs. For each shared VerSe CT case the automatic
segmentation is run (classical backend), our vertebrae are matched to the reference ones by overlap
(so the comparison does not depend on naming) and renamed to the reference names, then both label maps
are assessed. Levels fully in view in the reference are compared. Reference masks are used only here.
Run: ``python benchmarks/bench_segment_genant.py [--surface-fraction F] [case ...]``.
"""

from __future__ import annotations

import sys

import numpy as np

from kyphosim.assess import assess_spine
from kyphosim.datasets import shared_data_dir
from kyphosim.imaging.io import load_ct, load_labels
from kyphosim.segment import segment_spine

CASES = ["005", "006", "007", "008", "012"]


def matched_labels(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Our label map renamed to the reference ids (best overlap); unmatched labels dropped."""
    out = np.zeros_like(ref)
    for vid in [int(v) for v in np.unique(ref) if v and v != 26]:
        cand = np.bincount(ours[ref == vid].ravel(), minlength=30)
        cand[0] = 0
        if cand.any():
            out[ours == int(np.argmax(cand))] = vid
    return out


def main(argv):
    frac = None
    if argv and argv[0] == "--surface-fraction":
        frac, argv = float(argv[1]), argv[2:]
    d = shared_data_dir()
    if d is None:
        print("shared data not found")
        return 1
    agree = total = 0
    for case in argv or CASES:
        ct = load_ct(d / f"verse19/sub-verse{case}_ct.nii.gz")
        ref = load_labels(d / f"verse19/sub-verse{case}_seg-vert_msk.nii.gz", reference=ct)
        kw = {} if frac is None else {"surface_fraction": frac}
        res = segment_spine(ct, backend="classic", **kw)
        ours = ref.with_data(matched_labels(res.labels.data, ref.data), is_label=True)
        nz = ref.as_canonical().data
        full = set()
        for vid in [int(v) for v in np.unique(nz) if v and v != 26]:
            z = np.argwhere(nz == vid)[:, 2]
            if z.min() > 0 and z.max() < nz.shape[2] - 1:
                full.add(vid)
        a_ref = {lv.name: lv for lv in assess_spine(ct, ref).levels}
        a_our = {lv.name: lv for lv in assess_spine(ct, ours).levels}
        rows = []
        for name, lr in a_ref.items():
            lo = a_our.get(name)
            from kyphosim.imaging.labels import vertebra_id
            if vertebra_id(name) not in full:
                continue
            g_r, g_o = lr.genant_grade, (lo.genant_grade if lo else None)
            ok = g_r == g_o
            agree += ok
            total += 1
            hr = getattr(lr, "height_loss_pct", None)
            ho = getattr(lo, "height_loss_pct", None) if lo else None
            rows.append(f"{name}: ref {g_r} ours {g_o} (height loss {hr} vs {ho} %){'' if ok else '  ✗'}")
        print(f"== verse{case}: " + "; ".join(rows))
    print(f"Genant agreement over fully visible levels: {agree}/{total}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
