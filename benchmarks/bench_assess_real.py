"""Real-data benchmark of the assessment: VerSe19 grades, the TotalSegmentator example, speed.

    python benchmarks/bench_assess_real.py [--data ../shared/data]

1. VerSe19 (``verse19/genant_grades_dev.csv``; CT cases with their CT, mask-only cases without):
   confusion matrix of Genant grades, detection of grade 2–3, grade-0 levels called 2–3, exact %.
   The grades are used only here, to evaluate — nothing is fitted to them.
2. TotalSegmentator example (3 mm CT, v1 masks and the v2 label map): our grades and heights next to
   TotalSegmentator's own ``spine_report.json``.
3. Speed: wall time of ``assess_spine`` per case after imports on the machine's cores (per-level work
   runs on a small thread pool) and the process CPU time summed over the threads (best of runs; on a
   shared machine wall time includes waiting for a core).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from kyphosim.assess import assess_spine
    from kyphosim.datasets import shared_data_dir
    from kyphosim.imaging.io import load_ct, load_labels

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--variants", action="store_true",
                    help="also grade with the alternative references of a central depression and report a "
                         "leave-one-case-out selection among them (the selection is the only thing fitted)")
    a = ap.parse_args()
    d = Path(a.data) if a.data else shared_data_dir()
    if d is None:
        raise SystemExit("shared data not found")
    v = d / "verse19"
    truth: dict = {}
    with open(v / "genant_grades_dev.csv") as fh:
        for r in csv.DictReader(fh):
            truth.setdefault(r["subject"], {})[int(r["label"])] = int(r["genant_grade"])
    conf = np.zeros((4, 5), int)
    rows = []
    times = {}
    for subj in sorted(truth):
        lab = load_labels(v / f"{subj}_seg-vert_msk.nii.gz")
        ctp = v / f"{subj}_ct.nii.gz"
        ct = load_ct(ctp) if ctp.exists() else None
        best, best_w = float("inf"), float("inf")
        for _ in range(a.repeat):
            t0, w0 = time.process_time(), time.perf_counter()
            res = assess_spine(ct, lab)
            best = min(best, time.process_time() - t0)
            best_w = min(best_w, time.perf_counter() - w0)
        times[subj] = (best, best_w, "CT+labels" if ct is not None else "labels", lab.shape, len(res.levels))
        for lv in res.levels:
            tg = truth[subj].get(lv.label)
            if tg is None:
                continue
            conf[tg, 4 if lv.genant_grade is None else lv.genant_grade] += 1
            rows.append((subj, lv.name, tg, lv.genant_grade, lv.genant_type, lv.height_loss_pct,
                         lv.height_anterior_mm, lv.height_middle_mm, lv.height_posterior_mm, lv.flags))
    n = conf.sum()
    exact = np.trace(conf[:, :4]) / n
    sev = conf[2:, :].sum()
    det_any = conf[2:, 1:4].sum()
    det_2plus = conf[2:, 2:4].sum()
    fp = conf[0, 2:4].sum()
    print("VerSe19 dev grades: rows truth 0–3, columns ours 0,1,2,3,null")
    for g in range(4):
        print(f"  truth {g}: {conf[g].tolist()}")
    print(f"  levels {n}, exact {100 * exact:.1f} %, grade 2–3 found as fractured (≥1) {det_any}/{sev}, "
          f"as ≥2 {det_2plus}/{sev}; grade-0 called 2–3: {fp}; within one grade "
          f"{100 * sum(conf[i, j] for i in range(4) for j in range(4) if abs(i - j) <= 1) / n:.1f} %")
    for r in rows:
        if r[2] != r[3]:
            print(f"    {r[0]} {r[1]:>4} truth {r[2]} ours {r[3]} {r[4]} loss {r[5]} "
                  f"H {r[6]}/{r[7]}/{r[8]} {r[9]}")
    if a.variants:
        variants_report(d, truth)
    # ------------------------------------------------------------------ TotalSegmentator example
    t = d / "totalsegmentator_example"
    ct = load_ct(t / "example_ct.nii.gz")
    rep = json.loads((t / "spine_report" / "spine_report.json").read_text())["results"]
    for masks in ("example_seg_v1", "spine_report/totalseg.nii.gz"):
        lab = load_labels(t / masks, reference=ct)
        t0, w0 = time.process_time(), time.perf_counter()
        res = assess_spine(ct, lab)
        times[f"TS example ({masks})"] = (time.process_time() - t0, time.perf_counter() - w0, "CT+labels",
                                          lab.shape, len(res.levels))
        print(f"\nTotalSegmentator example, masks {masks}: ours | TotalSegmentator spine_report")
        print("  level  Ha/Hm/Hp (mm)        loss%  grade | TS Ha/Hm/Hp      TS diff  TS HU median | our HU")
        for lv in res.levels:
            k = f"vertebrae_{lv.name}"
            tsh = "/".join(f"{rep.get(f'{k}_height_{w}_mm', float('nan')):.1f}" for w in ("anterior", "middle", "posterior"))
            hs = "/".join("–" if h is None else f"{h:.1f}" for h in
                          (lv.height_anterior_mm, lv.height_middle_mm, lv.height_posterior_mm))
            print(f"  {lv.name:>4}  {hs:<18} {('–' if lv.height_loss_pct is None else f'{lv.height_loss_pct:.1f}'):>6}  "
                  f"{('–' if lv.genant_grade is None else lv.genant_grade)!s:>3}   | {tsh:<16} "
                  f"{rep.get(f'{k}_height_difference', float('nan')):>6} {rep.get(f'{k}_intensity_median', float('nan')):>8} "
                  f"| {lv.trabecular_hu}  {','.join(f for f in lv.flags if f in ('cut_by_fov', 'coarse_slice_spacing'))}")
        sp = res.spine
        print(f"  L1 HU {sp.l1_trabecular_hu} ({sp.l1_level}) → {sp.osteoporosis}; vBMD mean {sp.vbmd_mean_mg_cm3} "
              f"mg/cm³; regional {sp.regional_levels} {sp.regional_kyphosis_deg}°")
    print("\nSpeed (assess_spine after imports; wall time, and process CPU time summed over threads):")
    for k, (s, w, kind, shape, nl) in times.items():
        print(f"  {k:<42} CPU {s:5.2f} s  wall {w:5.2f} s  {kind:<10} grid {shape}  {nl} levels")


def variants_report(d: Path, truth: dict) -> None:
    """Exact grade per ``middle_reference`` variant, the normal TotalSegmentator levels, and a
    leave-one-case-out choice among the variants (chosen on the other cases, scored on the held-out one)."""
    from kyphosim.assess.api import assess_spine_detailed
    from kyphosim.assess.genant import MIDDLE_REFERENCES
    from kyphosim.imaging.io import load_ct, load_labels

    v = d / "verse19"
    hits: dict = {m: {} for m in MIDDLE_REFERENCES}     # variant → case → (exact, n, confusion)
    for subj in sorted(truth):
        lab = load_labels(v / f"{subj}_seg-vert_msk.nii.gz")
        ctp = v / f"{subj}_ct.nii.gz"
        ct = load_ct(ctp) if ctp.exists() else None
        for m in MIDDLE_REFERENCES:
            res = assess_spine_detailed(ct, lab, middle_reference=m)[0]
            c = np.zeros((4, 5), int)
            for lv in res.levels:
                tg = truth[subj].get(lv.label)
                if tg is not None:
                    c[tg, 4 if lv.genant_grade is None else lv.genant_grade] += 1
            hits[m][subj] = c
    t = d / "totalsegmentator_example"
    ct = load_ct(t / "example_ct.nii.gz")
    print("\nVariants of the reference of a central depression (VerSe19 dev exact grade; TS example losses):")
    ts = {}
    for masks in ("example_seg_v1", "spine_report/totalseg.nii.gz"):
        lab = load_labels(t / masks, reference=ct)
        for m in MIDDLE_REFERENCES:
            res = assess_spine_detailed(ct, lab, middle_reference=m)[0]
            ts.setdefault(m, []).append(" ".join(f"{lv.name}:{lv.genant_grade}({lv.height_loss_pct})"
                                                 for lv in res.levels if lv.genant_grade is not None))
    for m in MIDDLE_REFERENCES:
        c = sum(hits[m].values())
        print(f"  {m:<10} exact {np.trace(c[:, :4])}/{c.sum()}  grade-0 called ≥1: {c[0, 1:4].sum()}, "
              f"called 2–3: {c[0, 2:4].sum()}  | TS v1 {ts[m][0]} | TS v2 {ts[m][1]}")
    cases = sorted(truth)
    tot = np.zeros((4, 5), int)
    for held in cases:
        def score(m):
            return sum(np.trace(hits[m][c][:, :4]) for c in cases if c != held)
        best = max(MIDDLE_REFERENCES, key=lambda m: (score(m), -MIDDLE_REFERENCES.index(m)))
        tot += hits[best][held]
        print(f"  leave out {held}: chosen on the others '{best}', held-out exact "
              f"{np.trace(hits[best][held][:, :4])}/{hits[best][held].sum()}")
    print(f"  leave-one-case-out exact {np.trace(tot[:, :4])}/{tot.sum()} "
          f"({100 * np.trace(tot[:, :4]) / tot.sum():.1f} %)")


if __name__ == "__main__":
    main()
