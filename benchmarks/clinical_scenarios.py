"""Sweep the indications engine over a grid of clinical scenarios; print the verdict distribution.

Grid (864 scenarios, one L1 fracture, otherwise the demo patient): pain NRS {3, 6, 8} × pain duration
{1, 4, 10, 60} weeks × MRI oedema {yes, no, unknown} × Genant grade {1, 2, 3} × worsening {yes, no} ×
conservative care tried {yes, no} × daily function impaired {yes, no}. For orientation only: the
Hirsch 2018 panel rated 576 (different) scenarios 46 % appropriate, 16 % NSM, 38 % uncertain.

    python benchmarks/clinical_scenarios.py
"""

from __future__ import annotations

import copy
import itertools
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_clinical_cases import demo_assessment, demo_clinical  # noqa: E402

from kyphosim.clinical import evaluate, parse_clinical  # noqa: E402

GRADE_LOSS = {1: 22.0, 2: 32.0, 3: 48.0}


def main() -> None:
    base_c, base_a = demo_clinical(), demo_assessment()
    counts: Counter = Counter()
    by_oedema: dict = {}
    n = 0
    t0 = time.perf_counter()
    for nrs, weeks, oedema, grade, worse, tried, impaired in itertools.product(
            (3, 6, 8), (1, 4, 10, 60), (True, False, None), (1, 2, 3), (True, False), (True, False), (True, False)):
        c = copy.deepcopy(base_c)
        c["pain"].update(nrs=nrs, duration_weeks=weeks, worsening=worse)
        c["conservative_care"].update(tried=tried, duration_weeks=weeks if tried else None)
        c["function"]["daily_function_impaired"] = impaired
        c["levels"][0].update(mri_stir_oedema=oedema, fracture_age_weeks=weeks)
        a = copy.deepcopy(base_a)
        a["levels"][1].update(genant_grade=grade, height_loss_pct=GRADE_LOSS[grade])
        v = evaluate(parse_clinical(c), a).level("L1").verdict
        counts[v] += 1
        by_oedema.setdefault(oedema, Counter())[v] += 1
        n += 1
    dt = time.perf_counter() - t0
    print(f"{n} scenarios, {1e3 * dt / n:.2f} ms per evaluation")
    for v, k in counts.most_common():
        print(f"  {v:<26} {k:>4}  ({100 * k / n:.1f} %)")
    for oedema, cnt in by_oedema.items():
        tot = sum(cnt.values())
        print(f"  MRI oedema {str(oedema):<5}: " + ", ".join(f"{v} {100 * k / tot:.0f} %" for v, k in cnt.most_common()))


if __name__ == "__main__":
    main()
