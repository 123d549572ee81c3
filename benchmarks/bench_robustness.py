"""Robustness benchmark: orientation invariance of the assessment on the shared cases, and degraded grids.

    nice -n 10 python benchmarks/bench_robustness.py [--data ../shared/data] [--cases sub-verse005,...]
                                                     [--orients RAS,LPS,...] [--degraded] [--segment]

1. Invariance: every shared case (VerSe CT+mask, VerSe mask-only, TotalSegmentator example, TPTBox L3) is
   rewritten as NIfTI in other voxel orders — pure axis permutations/flips of the array with the affine
   updated so the world geometry is identical — read back through ``load_ct``/``load_labels`` and
   assessed. Prints, per case × orientation, the largest difference against the file's own orientation
   of every numeric field of every level (heights, ratios, angles, HU, vBMD, centroids, axes, ...) and
   whether grades, types and flags are identical.
2. ``--degraded``: one anisotropic resample (1×1×3 mm with the 3 mm along another axis than the file's
   coarse axis) and a crop through a vertebra at the edge of the field of view: the grades and flags.
3. ``--segment``: the classical segmenter on one lumbar CT in two orientations (slow): label agreement.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

#: orientations tried: the three of the shared data, two more permutations, and two non-diagonal mixes
ORIENTS = ["RAS", "LPS", "PIR", "ASL", "ILA", "SRP", "LIA"]


def reoriented(vol, codes: str):
    """``vol`` with its array reordered/flipped to ``codes`` (world unchanged), as if read from such a file."""
    from kyphosim.imaging.volume import Volume

    r = vol.reorient(tuple(codes))
    return Volume(r.data, r.affine, is_label=vol.is_label, source_axcodes=tuple(codes), meta=dict(vol.meta))


def through_file(vol, path: Path, *, labels: bool):
    """Write ``vol`` (in its source orientation) and read it back as a CT or a label map."""
    from kyphosim.imaging.io import load_ct, load_image, load_labels, save_volume

    save_volume(vol, path)
    if labels:
        return load_labels(path)
    if vol.meta.get("units") == "HU":
        return load_ct(path)
    return load_image(path)


def _flat(obj, prefix=""):
    """Flatten a JSON-like value into {path: leaf}."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list) and obj and all(isinstance(v, (int, float)) or v is None for v in obj):
        for i, v in enumerate(obj):
            out[f"{prefix}[{i}]"] = v
    else:
        out[prefix] = obj
    return out


#: fields that legitimately depend on the input file (paths) and are not compared
_IGNORED = ("inputs",)


def compare_assessments(a, b) -> dict:
    """Differences between two assessments of the same spine: {'max_abs': float, 'worst': field,
    'categorical': [fields that differ (grades, types, flags, names, missing values)]}."""
    da = a.to_json_dict() if hasattr(a, "to_json_dict") else a
    db = b.to_json_dict() if hasattr(b, "to_json_dict") else b
    la = {lv["name"]: lv for lv in da["levels"]}
    lb = {lv["name"]: lv for lv in db["levels"]}
    cat: list[str] = []
    if sorted(la) != sorted(lb):
        cat.append(f"levels {sorted(la)} vs {sorted(lb)}")
    fa = _flat({"levels": {n: la[n] for n in la if n in lb}, "spine": da["spine"]})
    fb = _flat({"levels": {n: lb[n] for n in la if n in lb}, "spine": db["spine"]})
    worst, worst_key = 0.0, None
    for k in sorted(set(fa) | set(fb)):
        if k.split(".")[0] in _IGNORED:
            continue
        va, vb = fa.get(k), fb.get(k)
        if isinstance(va, bool) or isinstance(vb, bool) or not (
                isinstance(va, (int, float)) and isinstance(vb, (int, float))):
            if va != vb:
                cat.append(f"{k}: {va!r} vs {vb!r}")
            continue
        if k.endswith(("genant_grade", ".label", ".sdi", ".sdi_partial")):
            if va != vb:
                cat.append(f"{k}: {va!r} vs {vb!r}")
            continue
        d = abs(float(va) - float(vb))
        if d > worst:
            worst, worst_key = d, k
    return {"max_abs": worst, "worst": worst_key, "categorical": cat}


def shared_cases(d: Path) -> list[tuple[str, Path | None, Path]]:
    """(name, CT path or None, labels path) of every shared case the assessment can read."""
    v = d / "verse19"
    cases = []
    for p in sorted(v.glob("sub-verse*_seg-vert_msk.nii.gz")):
        subj = p.name.split("_")[0]
        ct = v / f"{subj}_ct.nii.gz"
        cases.append((subj, ct if ct.exists() else None, p))
    ts = d / "totalsegmentator_example"
    if (ts / "example_ct.nii.gz").exists():
        cases.append(("totalseg-example", ts / "example_ct.nii.gz", ts / "example_seg_v1"))
    tp = d / "tptbox_l3"
    if (tp / "sub-ct_label-22_ct.nii.gz").exists():
        cases.append(("tptbox-l3", tp / "sub-ct_label-22_ct.nii.gz", tp / "sub-ct_seg-vert_label-22_msk.nii.gz"))
    return cases


def invariance(cases, orients, tmp: Path) -> list[dict]:
    from kyphosim.assess import assess_spine
    from kyphosim.imaging.io import load_ct, load_labels

    rows = []
    for name, ctp, labp in cases:
        ct = load_ct(ctp) if ctp is not None else None
        lab = load_labels(labp, reference=ct)
        t0 = time.perf_counter()
        ref = assess_spine(ct, lab)
        t_ref = time.perf_counter() - t0
        own = "".join(lab.axcodes)
        for codes in orients:
            if codes == own:
                continue
            lab_o = through_file(reoriented(lab, codes), tmp / f"{name}_{codes}_msk.nii.gz", labels=True)
            ct_o = (through_file(reoriented(ct, codes), tmp / f"{name}_{codes}_ct.nii.gz", labels=False)
                    if ct is not None else None)
            assert "".join(lab_o.axcodes) == codes
            res = assess_spine(ct_o, lab_o)
            c = compare_assessments(ref, res)
            rows.append({"case": name, "own": own, "orient": codes, "ct": ct is not None, **c})
            print(f"{name:18s} {own}->{codes}  max|diff| {c['max_abs']:.3g} ({c['worst']})  "
                  f"categorical {len(c['categorical'])}{': ' + '; '.join(c['categorical'][:3]) if c['categorical'] else ''}"
                  f"  [{t_ref:.1f} s/assess]", flush=True)
    return rows


def degraded(d: Path) -> None:
    """Anisotropic resample and an edge crop on sub-verse005 (1 mm, PIR): grades and flags."""
    from kyphosim.assess import assess_spine
    from kyphosim.imaging.io import load_ct, load_labels

    v = d / "verse19"
    ct = load_ct(v / "sub-verse005_ct.nii.gz")
    lab = load_labels(v / "sub-verse005_seg-vert_msk.nii.gz", reference=ct)
    ref = assess_spine(ct, lab)

    def show(tag, res):
        print(f"-- {tag}")
        for lv in res.levels:
            r = next((x for x in ref.levels if x.name == lv.name), None)
            hs = [lv.height_anterior_mm, lv.height_middle_mm, lv.height_posterior_mm]
            hr = [r.height_anterior_mm, r.height_middle_mm, r.height_posterior_mm] if r else [None] * 3
            dh = [None if a is None or b is None else round(a - b, 2) for a, b in zip(hs, hr)]
            print(f"   {lv.name:4s} grade {lv.genant_grade} (ref {r.genant_grade if r else '-'}) "
                  f"dH {dh}  HU {lv.trabecular_hu} (ref {r.trabecular_hu if r else '-'})  flags {lv.flags}")

    # 1x1x3 mm with the 3 mm along the array axis that is R (left-right), not the file's coarse axis
    sp = np.ones(3)
    sp[[i for i, c in enumerate(ct.axcodes) if c in "RL"][0]] = 3.0
    ct3 = ct.resample(spacing=sp)
    lab3 = lab.resample(like=ct3)
    show(f"resampled to {sp.tolist()} mm ({''.join(ct.axcodes)})", assess_spine(ct3, lab3))
    # 1x1x3 with 3 mm along S-I (as thick-slice CT)
    sp = np.ones(3)
    sp[[i for i, c in enumerate(ct.axcodes) if c in "SI"][0]] = 3.0
    ct3 = ct.resample(spacing=sp)
    lab3 = lab.resample(like=ct3)
    show(f"resampled to {sp.tolist()} mm ({''.join(ct.axcodes)})", assess_spine(ct3, lab3))
    # crop cutting through the caudal-most vertebra at the edge of the field of view
    si = [i for i, c in enumerate(ct.axcodes) if c in "SI"][0]
    ids = sorted(set(np.unique(lab.data).tolist()) - {0})
    last = max(ids)
    idx = np.argwhere(lab.data == last)[:, si]
    lo_i, hi_i = idx.min(), idx.max()
    mid = (lo_i + hi_i) // 2
    lo = [0, 0, 0]
    hi = list(ct.shape)
    # keep the cranial part: axis code I means index grows caudally
    if ct.axcodes[si] == "I":
        hi[si] = mid
    else:
        lo[si] = mid
    show(f"cropped through the middle of id {last} along {ct.axcodes[si]}", assess_spine(ct.crop(lo, hi),
                                                                                      lab.crop(lo, hi)))


def segment_orientation(d: Path) -> None:
    """Classical segmenter on sub-verse005 in its own order (PIR) and in RAS: label agreement."""
    from kyphosim.imaging.io import load_ct
    from kyphosim.segment import segment_spine

    ct = load_ct(d / "verse19" / "sub-verse005_ct.nii.gz")
    t0 = time.perf_counter()
    a = segment_spine(ct).labels
    t1 = time.perf_counter()
    ct_r = reoriented(ct, "LPS")
    b = segment_spine(ct_r).labels
    t2 = time.perf_counter()
    b_back = b.reorient(tuple(a.axcodes))
    assert b_back.same_grid(a)
    da, db = a.data, b_back.data
    diff = np.count_nonzero(da != db)
    print(f"segment sub-verse005 PIR vs LPS: {diff} of {np.count_nonzero((da > 0) | (db > 0))} labelled voxels differ "
          f"({t1 - t0:.0f} s, {t2 - t1:.0f} s)")
    for v in sorted(set(np.unique(da).tolist()) | set(np.unique(db).tolist()) - {0}):
        if v == 0:
            continue
        ma, mb = da == v, db == v
        dice = 2 * np.count_nonzero(ma & mb) / max(1, ma.sum() + mb.sum())
        print(f"   id {v:3d}: {ma.sum():7d} vs {mb.sum():7d} voxels, Dice {dice:.4f}")


def main() -> None:
    from kyphosim.datasets import shared_data_dir

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=None)
    ap.add_argument("--cases", default=None, help="comma-separated case names")
    ap.add_argument("--orients", default=",".join(ORIENTS))
    ap.add_argument("--degraded", action="store_true")
    ap.add_argument("--segment", action="store_true")
    ap.add_argument("--no-invariance", action="store_true")
    a = ap.parse_args()
    d = Path(a.data) if a.data else shared_data_dir()
    if d is None:
        raise SystemExit("shared data not found")
    cases = shared_cases(d)
    if a.cases:
        want = a.cases.split(",")
        cases = [c for c in cases if c[0] in want]
    if not a.no_invariance:
        with tempfile.TemporaryDirectory() as tmp:
            rows = invariance(cases, a.orients.split(","), Path(tmp))
        print("\ncase               orientations  max|diff| (field)                     categorical diffs")
        for name in dict.fromkeys(r["case"] for r in rows):
            rs = [r for r in rows if r["case"] == name]
            w = max(rs, key=lambda r: r["max_abs"])
            ncat = sum(len(r["categorical"]) for r in rs)
            print(f"{name:18s} {rs[0]['own']}->{len(rs)}   {w['max_abs']:.3g} ({w['orient']}, {w['worst']})  {ncat}")
    if a.degraded:
        degraded(d)
    if a.segment:
        segment_orientation(d)


if __name__ == "__main__":
    main()
