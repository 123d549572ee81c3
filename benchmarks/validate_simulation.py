"""Validation of the procedure simulation against the literature (docs/validation.md).

Phantom cohort: BMD × fracture type/grade/age × cleft, each treated by kyphoplasty and by
vertebroplasty; cement viscosity cycles low/medium/high over the cases (and a viscosity sweep on a
subset). Real data: the graded VerSe fractures with a CT in ../shared/data. Checks (issue 5):

* balloon pressure at 2–4 mL in ~100–300 psi for osteoporotic bone;
* KP restores more anterior height than VP on acute fractures, chronic less;
* cement 2–8 mL, fill fraction;
* leakage VP > KP, low > high viscosity, cleft / cortical break more;
* mass conserved (< 1 %), injected = grid volume, deterministic, 0.5 → 0.35 mm within 10 %.

Run: ``python benchmarks/validate_simulation.py --resolution 1.0 --out /tmp/val.json``
(``--refine`` adds the 0.5 vs 0.35 mm check, ``--real`` the VerSe cases). Never tuned per case.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

PSI = 6.894757
CT_LEAK_ML = 0.005      # CT-detectable extravasation [U]
FLUORO_LEAK_ML = 0.05   # visible on fluoroscopy/radiographs [U] (= the simulation's stop threshold)


def cohort(n: int):
    bmds = (55.0, 75.0, 95.0)
    fracs = [("wedge", 2), ("wedge", 3), ("biconcave", 2), ("crush", 2), ("wedge", 1)]
    ages = ("acute", "chronic")
    clefts = (False, True)
    cases = []
    for i, (bmd, (typ, grade), age, cleft) in enumerate(itertools.product(bmds, fracs, ages, clefts)):
        if age == "chronic" and cleft:
            continue
        cases.append({"id": f"c{i:02d}", "bmd": bmd, "type": typ, "grade": grade, "age": age, "cleft": cleft,
                      "viscosity": ("low", "medium", "high")[i % 3], "seed": 100 + i})
    return cases[:n]


def pressure_at(pv, lo=2.0, hi=4.0):
    pv = np.asarray(pv, float)
    sel = (pv[:, 0] >= lo) & (pv[:, 0] <= hi)
    if not sel.any():
        return None
    return float(np.median(pv[sel, 1]))


def run_case(c, resolution, techniques=("kyphoplasty", "vertebroplasty"), viscosity=None, params=None):
    from kyphosim.anatomy.phantom import FractureSpec, PhantomSpec, make_phantom
    from kyphosim.simulation import simulate

    ph = make_phantom(PhantomSpec(levels="T12-L2", fractures=[FractureSpec(level="L1", type=c["type"], grade=c["grade"],
                                                                          age=c["age"], cleft=c["cleft"])],
                                  bmd_mg_cm3=c["bmd"], seed=c["seed"]))
    lv = next(l for l in ph.truth["levels"] if l["name"] == "L1")
    plan = {"levels": [{"level": "L1", "trajectories": [
        {"side": s, "entry_mm": lv["pedicles"][s]["entry_mm"], "target_mm": lv["pedicles"][s]["target_mm"]}
        for s in ("left", "right")]}]}
    out = {}
    for tech in techniques:
        t = time.perf_counter()
        r = simulate(ph.ct, ph.labels, "L1", plan=plan, technique=tech, resolution_mm=resolution,
                     subregions=ph.subregions, viscosity=viscosity or c["viscosity"],
                     **({"params": params} if params is not None else {}))
        d = r.to_json_dict()
        out[tech] = {
            "wall_s": time.perf_counter() - t,
            "min_height_gain_mm": (lambda hb, ha: ha[min(("anterior_mm", "middle_mm", "posterior_mm"), key=hb.get)]
                                   - hb[min(("anterior_mm", "middle_mm", "posterior_mm"), key=hb.get)])(
                d["heights"]["before"], d["heights"]["after"]),
            "heights": d["heights"], "ha_gain_mm": d["anterior_height_gain_mm"],
            "restoration_pct": d["height_restoration_pct"], "kyph_change_deg": d["kyphotic_angle_change_deg"],
            "cavity_ml": d["cavity_volume_ml"], "cement_ml": d["cement"]["volume_ml"],
            "grid_ml": d["cement"]["grid_volume_ml"], "fill": d["cement"]["fill_fraction"],
            "stop": d["cement"]["stop_reason"], "leaks": d["cement"]["leaks"],
            "cement_pmax_kpa": d["cement"]["max_pressure_kpa"],
            "leak": d["cement"]["leak_summary"]["any"], "mass_err_pct": d["bone"].get("mass_error_pct"),
            "balloons": [{"vol": b["max_volume_ml"], "pmax_psi": b["max_pressure_psi"], "stop": b["stop_reason"],
                          "pv": b["pv_curve"],
                          "p_2_4_psi": (lambda v: None if v is None else v / PSI)(pressure_at(b["pv_curve"]))}
                         for b in d["balloons"]],
            "fracture": d["fracture"], "truth_ha_mm": lv["height_anterior_mm"],
        }
    return out


def summarise(rows):
    def rate(sel):
        sel = list(sel)
        return (sum(sel) / len(sel), len(sel)) if sel else (float("nan"), 0)

    kp = [r["kyphoplasty"] for r in rows if "kyphoplasty" in r]
    vp = [r["vertebroplasty"] for r in rows if "vertebroplasty" in r]
    s = {}
    p24 = [b["p_2_4_psi"] for r, k in zip(rows, kp) if r["case"]["bmd"] <= 80 for b in k["balloons"]
           if b["p_2_4_psi"] is not None]
    pmax = [b["pmax_psi"] for k in kp for b in k["balloons"]]
    s["kp_pressure_2_4ml_psi_osteoporotic"] = {"n": len(p24), "median": float(np.median(p24)) if p24 else None,
                                               "range": [float(min(p24)), float(max(p24))] if p24 else None,
                                               "in_100_300": float(np.mean([(100 <= p <= 300) for p in p24])) if p24 else None}
    s["kp_max_pressure_psi"] = {"median": float(np.median(pmax)) if pmax else None}
    s["kp_balloon_volume_ml"] = {"median": float(np.median([b["vol"] for k in kp for b in k["balloons"]]))}
    for typ in ("wedge", "biconcave", "crush"):
        for age in ("acute", "chronic"):
            idx = [i for i, r in enumerate(rows) if r["case"]["type"] == typ and r["case"]["age"] == age]
            if not idx:
                continue
            s[f"gain_{typ}_{age}"] = {
                "kp_min_height_gain_mm": float(np.mean([rows[i]["kyphoplasty"]["min_height_gain_mm"] for i in idx])),
                "vp_min_height_gain_mm": float(np.mean([rows[i]["vertebroplasty"]["min_height_gain_mm"] for i in idx])),
                "kp_ha_gain_mm": float(np.mean([rows[i]["kyphoplasty"]["ha_gain_mm"] for i in idx])),
                "kp_restoration_pct": float(np.mean([rows[i]["kyphoplasty"]["restoration_pct"] for i in idx])),
                "kp_kyph_change_deg": float(np.mean([rows[i]["kyphoplasty"]["kyph_change_deg"] for i in idx])),
                "n": len(idx)}
    for age in ("acute", "chronic"):
        idx = [i for i, r in enumerate(rows) if r["case"]["age"] == age]
        s[f"ha_gain_mm_{age}"] = {"kp": float(np.mean([rows[i]["kyphoplasty"]["ha_gain_mm"] for i in idx])),
                                  "vp": float(np.mean([rows[i]["vertebroplasty"]["ha_gain_mm"] for i in idx])),
                                  "kp_restoration_pct": float(np.mean([rows[i]["kyphoplasty"]["restoration_pct"] for i in idx])),
                                  "kp_kyph_change_deg": float(np.mean([rows[i]["kyphoplasty"]["kyph_change_deg"] for i in idx])),
                                  "n": len(idx)}
    s["cement_ml"] = {"kp": [float(np.min([k["cement_ml"] for k in kp])), float(np.median([k["cement_ml"] for k in kp])),
                             float(np.max([k["cement_ml"] for k in kp]))],
                      "vp": [float(np.min([k["cement_ml"] for k in vp])), float(np.median([k["cement_ml"] for k in vp])),
                             float(np.max([k["cement_ml"] for k in vp]))]}
    s["fill_fraction"] = {"kp_median": float(np.median([k["fill"] for k in kp])),
                          "vp_median": float(np.median([k["fill"] for k in vp]))}
    def leaked(k, thr):
        return sum(lk["volume_ml"] for lk in k["leaks"]) >= thr

    for name, thr in (("ct", CT_LEAK_ML), ("fluoro", FLUORO_LEAK_ML)):
        s[f"leak_rate_{name}"] = {"threshold_ml": thr, "kp": rate(leaked(k, thr) for k in kp),
                                  "vp": rate(leaked(k, thr) for k in vp)}
        for v in ("low", "medium", "high"):
            s[f"leak_rate_{name}"][f"viscosity_{v}"] = rate(leaked(r[t], thr) for r in rows if r["case"]["viscosity"] == v
                                                            for t in ("kyphoplasty", "vertebroplasty"))
        s[f"leak_rate_{name}"]["cleft"] = rate(leaked(r[t], thr) for r in rows if r["case"]["cleft"]
                                               for t in ("kyphoplasty", "vertebroplasty"))
        s[f"leak_rate_{name}"]["no_cleft"] = rate(leaked(r[t], thr) for r in rows if not r["case"]["cleft"]
                                                  for t in ("kyphoplasty", "vertebroplasty"))
        s[f"leak_rate_{name}"]["acute"] = rate(leaked(r[t], thr) for r in rows if r["case"]["age"] == "acute"
                                               for t in ("kyphoplasty", "vertebroplasty"))
        s[f"leak_rate_{name}"]["chronic"] = rate(leaked(r[t], thr) for r in rows if r["case"]["age"] == "chronic"
                                                 for t in ("kyphoplasty", "vertebroplasty"))
        for tech, key in (("kyphoplasty", "kp"), ("vertebroplasty", "vp")):
            by = {}
            for name_, pred in (("acute_no_cleft", lambda c: c["age"] == "acute" and not c["cleft"]),
                                ("cleft", lambda c: c["cleft"]), ("chronic", lambda c: c["age"] == "chronic"),
                                ("low", lambda c: c["viscosity"] == "low"), ("medium", lambda c: c["viscosity"] == "medium"),
                                ("high", lambda c: c["viscosity"] == "high")):
                by[name_] = rate(leaked(r[tech], thr) for r in rows if tech in r and pred(r["case"]))
            s[f"leak_rate_{name}"][f"{key}_by"] = by
    for tech, key in (("kyphoplasty", "kp"), ("vertebroplasty", "vp")):
        ty = {}
        for r in rows:
            for lk in r.get(tech, {}).get("leaks", []):
                if lk["volume_ml"] >= CT_LEAK_ML:
                    ty[lk["type"]] = ty.get(lk["type"], 0) + 1
        s[f"leak_types_ct_{key}"] = ty
        s[f"leak_volume_ml_{key}"] = [float(np.percentile([sum(l["volume_ml"] for l in r[tech]["leaks"]) for r in rows
                                                           if tech in r], q)) for q in (50, 90, 100)]
        s[f"stop_reasons_{key}"] = {}
        for r in rows:
            if tech in r:
                s[f"stop_reasons_{key}"][r[tech]["stop"]] = s[f"stop_reasons_{key}"].get(r[tech]["stop"], 0) + 1
        s[f"injection_pressure_kpa_{key}"] = [float(np.percentile([r[tech]["cement_pmax_kpa"] for r in rows
                                                                   if tech in r], q)) for q in (10, 50, 90)]
    s["leak_rate"] = {"kp": rate(k["leak"] for k in kp), "vp": rate(k["leak"] for k in vp)}
    for v in ("low", "medium", "high"):
        s["leak_rate"][f"viscosity_{v}"] = rate(r[t]["leak"] for r in rows if r["case"]["viscosity"] == v
                                                 for t in ("kyphoplasty", "vertebroplasty"))
    s["leak_rate"]["cleft"] = rate(r[t]["leak"] for r in rows if r["case"]["cleft"] for t in ("kyphoplasty", "vertebroplasty"))
    s["leak_rate"]["no_cleft"] = rate(r[t]["leak"] for r in rows if not r["case"]["cleft"]
                                      for t in ("kyphoplasty", "vertebroplasty"))
    s["leak_rate"]["acute_cortical_break"] = rate(r[t]["leak"] for r in rows if r["case"]["age"] == "acute"
                                                  for t in ("kyphoplasty", "vertebroplasty"))
    s["leak_rate"]["chronic"] = rate(r[t]["leak"] for r in rows if r["case"]["age"] == "chronic"
                                     for t in ("kyphoplasty", "vertebroplasty"))
    types = {}
    for k in kp + vp:
        for lk in k["leaks"]:
            if lk["volume_ml"] >= 1e-3:
                types[lk["type"]] = types.get(lk["type"], 0) + 1
    s["leak_types"] = types
    s["mass_error_pct_max"] = float(max(k["mass_err_pct"] or 0 for k in kp))
    s["injected_minus_grid_ml_max"] = float(max(abs(k["cement_ml"] - k["grid_ml"]) for k in kp + vp))
    s["wall_s_median"] = float(np.median([k["wall_s"] for k in kp + vp]))
    return s


def real_cases(resolution):
    from kyphosim.datasets import shared_data_dir
    from kyphosim.imaging.io import load_ct, load_labels
    from kyphosim.imaging.labels import vertebra_name
    from kyphosim.simulation import simulate

    d = shared_data_dir()
    if d is None:
        return []
    import csv

    grades = {}
    with open(d / "verse19" / "genant_grades_dev.csv") as fh:
        for row in csv.DictReader(fh):
            grades[(row["subject"], int(row["label"]))] = int(row["genant_grade"])
    out = []
    for (subj, lab), g in sorted(grades.items()):
        if g < 1:
            continue
        ctp = d / "verse19" / f"{subj}_ct.nii.gz"
        if not ctp.exists():
            continue
        ct = load_ct(ctp)
        labels = load_labels(d / "verse19" / f"{subj}_seg-vert_msk.nii.gz", reference=ct)
        row = {"case": f"{subj} {vertebra_name(lab)}", "grade": g}
        for tech in ("kyphoplasty", "vertebroplasty"):
            try:
                r = simulate(ct, labels, lab, technique=tech, resolution_mm=resolution)
            except Exception as exc:  # report, do not hide
                row[tech] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            row[tech] = {"ha_gain_mm": r.anterior_height_gain_mm, "heights": r.to_json_dict()["heights"],
                         "cavity_ml": r.cavity_volume_ml, "cement_ml": r.cement.volume_ml,
                         "fill": r.cement.fill_fraction, "leaks": [l.type for l in r.cement.leaks],
                         "stop": r.cement.stop_reason, "fracture": r.fracture,
                         "balloons": [(b.max_volume_ml, b.max_pressure_psi, b.stop_reason) for b in r.balloons],
                         "bmd": r.bone["trabecular_bmd_mg_cm3"]}
        out.append(row)
        print(json.dumps(row)[:600], flush=True)
    return out


def refine_check(cases, r0=0.5, r1=0.35):
    """KP at two grid spacings: volumes, fill, heights after, median balloon pressure over 2–4 mL."""
    res = []
    for c in cases:
        a = run_case(c, r0, techniques=("kyphoplasty",))["kyphoplasty"]
        b = run_case(c, r1, techniques=("kyphoplasty",))["kyphoplasty"]

        def p24(x):
            v = [bb["p_2_4_psi"] for bb in x["balloons"] if bb["p_2_4_psi"] is not None]
            return float(np.median(v)) if v else float("nan")

        def p_common(x, v_lo, v_hi):
            """median balloon pressure (psi) over a volume window both grids reach"""
            v = [pressure_at(bb["pv"], v_lo, v_hi) for bb in x["balloons"]]
            v = [q / PSI for q in v if q is not None]
            return float(np.median(v)) if v else float("nan")

        vmin = min(bb["vol"] for bb in a["balloons"] + b["balloons"])
        keys = {"cavity_ml": (a["cavity_ml"], b["cavity_ml"]), "cement_ml": (a["cement_ml"], b["cement_ml"]),
                "p_half_to_full_psi": (p_common(a, 0.5 * vmin, vmin), p_common(b, 0.5 * vmin, vmin)),
                "fill": (a["fill"], b["fill"]),
                "balloon_ml": (sum(x["vol"] for x in a["balloons"]), sum(x["vol"] for x in b["balloons"])),
                "p_2_4ml_psi": (p24(a), p24(b)),
                "ha_after_mm": (a["heights"]["after"]["anterior_mm"], b["heights"]["after"]["anterior_mm"]),
                "hm_after_mm": (a["heights"]["after"]["middle_mm"], b["heights"]["after"]["middle_mm"]),
                "hp_after_mm": (a["heights"]["after"]["posterior_mm"], b["heights"]["after"]["posterior_mm"]),
                "ha_gain_mm": (a["ha_gain_mm"], b["ha_gain_mm"]),
                "pmax_psi": (max(x["pmax_psi"] for x in a["balloons"]), max(x["pmax_psi"] for x in b["balloons"])),
                "cement_pmax_kpa": (a["cement_pmax_kpa"], b["cement_pmax_kpa"]),
                "leak_ml": (sum(l["volume_ml"] for l in a["leaks"]), sum(l["volume_ml"] for l in b["leaks"])),
                "leak_extravertebral_ml": (sum(l.get("extravertebral_ml") or 0.0 for l in a["leaks"]),
                                           sum(l.get("extravertebral_ml") or 0.0 for l in b["leaks"]))}
        rel = {k: (abs(v[1] - v[0]) / max(abs(v[0]), 1e-9) if abs(v[0]) > 1e-6 else abs(v[1] - v[0])) for k, v in keys.items()}
        res.append({"case": c["id"], "spec": c, "values": keys, "rel_change": rel,
                    "wall_s": (a["wall_s"], b["wall_s"]),
                    "side": (a["fracture"].get("side"), b["fracture"].get("side")),
                    "balloon_stops": ([(x["vol"], round(x["pmax_psi"]), x["stop"]) for x in a["balloons"]],
                                      [(x["vol"], round(x["pmax_psi"]), x["stop"]) for x in b["balloons"]]),
                    "cement_stop": (a["stop"], b["stop"]),
                    "leaks": ([(l["type"], l["volume_ml"]) for l in a["leaks"]],
                              [(l["type"], l["volume_ml"]) for l in b["leaks"]])})
        print(json.dumps(res[-1]), flush=True)
    return res


def viscosity_sweep(cases, resolution):
    """The same phantoms with low and with high viscosity cement (paired), KP and VP."""
    out = []
    for c in cases:
        row = {"case": c["id"]}
        for visc in ("low", "high"):
            r = run_case(c, resolution, viscosity=visc)
            row[visc] = {t: {"leak_ml": sum(l["volume_ml"] for l in r[t]["leaks"]), "cement_ml": r[t]["cement_ml"],
                             "stop": r[t]["stop"], "leaks": [l["type"] for l in r[t]["leaks"]]} for t in r}
        out.append(row)
        print(json.dumps(row), flush=True)
    summ = {}
    for t, key in (("kyphoplasty", "kp"), ("vertebroplasty", "vp")):
        for visc in ("low", "high"):
            for name, thr in (("ct", CT_LEAK_ML), ("0.02", 0.02), ("fluoro", FLUORO_LEAK_ML)):
                v = [r[visc][t]["leak_ml"] >= thr for r in out]
                summ[f"{key}_{visc}_{name}"] = (sum(v) / len(v), len(v))
            summ[f"{key}_{visc}_leak_ml_mean"] = float(np.mean([r[visc][t]["leak_ml"] for r in out]))
            summ[f"{key}_{visc}_leak_ml_median"] = float(np.median([r[visc][t]["leak_ml"] for r in out]))
            summ[f"{key}_{visc}_cement_ml_mean"] = float(np.mean([r[visc][t]["cement_ml"] for r in out]))
    print(json.dumps(summ, indent=1))
    return {"cases": out, "summary": summ}


#: Habib 2010 bench protocol [C]: low-viscosity cement injected 3.5 / 6.5 / 9.5 min after mixing,
#: high-viscosity cement 3.5 / 6.5 min (CR §4d).
TIMING_SCHEDULE = (("low", 3.5), ("low", 6.5), ("low", 9.5), ("high", 3.5), ("high", 6.5))


def timing_sweep(cases, resolution):
    """The same phantoms and the same cement injected early and late (injection clock, Habib's schedule)."""
    from kyphosim.simulation import DEFAULT_PARAMS

    out = []
    for c in cases:
        row = {"case": c["id"]}
        for visc, t0 in TIMING_SCHEDULE:
            r = run_case(c, resolution, viscosity=visc, params=DEFAULT_PARAMS.with_(injection_start_min=t0))
            row[f"{visc}@{t0}"] = {t: {"leak_ml": sum(l["volume_ml"] for l in r[t]["leaks"]),
                                       "cement_ml": r[t]["cement_ml"], "stop": r[t]["stop"],
                                       "leaks": [l["type"] for l in r[t]["leaks"]]} for t in r}
        out.append(row)
        print(json.dumps(row), flush=True)
    summ = {}
    for t, key in (("kyphoplasty", "kp"), ("vertebroplasty", "vp")):
        for visc, t0 in TIMING_SCHEDULE:
            g = f"{visc}@{t0}"
            vals = [r[g][t]["leak_ml"] for r in out]
            summ[f"{key}_{g}"] = {"leak_ml_mean": float(np.mean(vals)), "leak_ml_median": float(np.median(vals)),
                                  "cement_ml_mean": float(np.mean([r[g][t]["cement_ml"] for r in out])),
                                  **{f"rate_{thr}": sum(v >= thr for v in vals) / len(vals)
                                     for thr in (CT_LEAK_ML, 0.02, FLUORO_LEAK_ML)}}
    print(json.dumps(summ, indent=1))
    return {"cases": out, "summary": summ}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=float, default=1.0)
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--out", type=Path, default=Path("validate_simulation.json"))
    ap.add_argument("--refine", action="store_true")
    ap.add_argument("--refine-cases", type=int, nargs="+", default=[0, 1, 15])
    ap.add_argument("--real", action="store_true")
    ap.add_argument("--skip-cohort", action="store_true")
    ap.add_argument("--sweep", type=int, default=0, help="paired low/high viscosity on the first N acute cases")
    ap.add_argument("--timing", type=int, default=0, help="same cement injected early/late (Habib) on the first N acute cases")
    ap.add_argument("--resummarise", type=Path, help="recompute the summary of a saved report")
    a = ap.parse_args()
    if a.resummarise:
        rep = json.loads(a.resummarise.read_text())
        rep["summary"] = summarise(rep["cases"])
        print(json.dumps(rep["summary"], indent=1))
        a.resummarise.write_text(json.dumps(rep, indent=1, default=str))
        return
    report = {"resolution_mm": a.resolution}
    if not a.skip_cohort:
        rows = []
        for c in cohort(a.n):
            try:
                r = run_case(c, a.resolution)
            except Exception as exc:  # report and go on
                print(f"{c['id']} failed: {type(exc).__name__}: {exc}", flush=True)
                continue
            r["case"] = c
            rows.append(r)
            a.out.write_text(json.dumps({"resolution_mm": a.resolution, "partial": True, "cases": rows},
                                        default=str))
            k, v = r["kyphoplasty"], r["vertebroplasty"]
            print(f"{c['id']} bmd {c['bmd']:.0f} {c['type']}{c['grade']} {c['age']:<7} cleft={int(c['cleft'])} "
                  f"{c['viscosity']:<6} | KP bal {[b['vol'] for b in k['balloons']]} mL "
                  f"{[b['pmax_psi'] for b in k['balloons']]} psi Ha {k['ha_gain_mm']:+.1f} cem {k['cement_ml']:.1f} "
                  f"leak {[l['type'] for l in k['leaks']]} | VP Ha {v['ha_gain_mm']:+.1f} cem {v['cement_ml']:.1f} "
                  f"leak {[l['type'] for l in v['leaks']]}", flush=True)
        report["cases"] = rows
        report["summary"] = summarise(rows)
        print(json.dumps(report["summary"], indent=1))
        # determinism: the first case again
        again = run_case(rows[0]["case"], a.resolution)
        report["deterministic"] = all(
            json.dumps({k: v for k, v in again[t].items() if k != "wall_s"}, sort_keys=True) ==
            json.dumps({k: v for k, v in rows[0][t].items() if k != "wall_s"}, sort_keys=True)
            for t in ("kyphoplasty", "vertebroplasty"))
        print("deterministic:", report["deterministic"])
    if a.sweep:
        acute = [c for c in cohort(48) if c["age"] == "acute" and not c["cleft"]][: a.sweep]
        report["viscosity_sweep"] = viscosity_sweep(acute, a.resolution)
    if a.timing:
        acute = [c for c in cohort(48) if c["age"] == "acute" and not c["cleft"]][: a.timing]
        report["timing_sweep"] = timing_sweep(acute, a.resolution)
        a.out.write_text(json.dumps(report, indent=1, default=str))
    if a.refine:
        cs = cohort(48)
        report["refinement"] = refine_check([cs[i] for i in a.refine_cases])
    if a.real:
        report["real"] = real_cases(a.resolution)
    a.out.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
