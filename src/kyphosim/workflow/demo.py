"""``kyphosim demo``: the whole pathway on the built-in phantom case, with no data and no network.

The case: a painful acute L1 wedge fracture (Genant grade 2) in osteoporotic bone, from the phantom
generator (:func:`kyphosim.anatomy.phantom.demo_case`), with the built-in clinical file
(``kyphosim/clinical/examples/demo_clinical.yaml``). The same spine without the fracture is built
too, so strength can be shown intact / fractured / augmented.
"""

from __future__ import annotations

import dataclasses
import os
from importlib import resources
from pathlib import Path

from kyphosim.workflow.pathway import PathwayOptions, PathwayResult, run_pathway

__all__ = ["run_demo", "DEMO_PROCEDURE_DATE", "demo_clinical_path"]

#: fixed so the demo's care plan and calendar are reproducible
DEMO_PROCEDURE_DATE = "2026-12-01"


def demo_clinical_path() -> Path:
    """Path of the built-in demo clinical file."""
    return Path(str(resources.files("kyphosim.clinical") / "examples" / "demo_clinical.yaml"))


def run_demo(out_dir: str | os.PathLike = "kyphosim-demo", *, progress: bool = True, spacing_mm: float = 1.0,
             simulate: bool = True, strength: bool = True) -> PathwayResult:
    """Build the demo phantom, run the pathway on it, and write ``out_dir/report.html`` (and the rest)."""
    from kyphosim.anatomy.phantom import demo_case, make_phantom

    out = Path(out_dir)
    spec = demo_case(spacing_mm=(spacing_mm,) * 3)
    phantom = make_phantom(spec)
    phantom.save(out / "phantom")
    intact_spec = dataclasses.replace(spec, fractures=[])
    intact = make_phantom(intact_spec)
    opts = PathwayOptions(procedure_date=DEMO_PROCEDURE_DATE, truth=phantom.truth, simulate=simulate,
                          strength=strength, intact=(intact.ct, intact.labels),
                          case_title="kyphosim demo: acute L1 wedge fracture (synthetic phantom)")
    ct = phantom.ct.with_data(phantom.ct.data, path=str(out / "phantom" / "ct.nii.gz"))
    labels = phantom.labels.with_data(phantom.labels.data, path=str(out / "phantom" / "labels.nii.gz"))
    return run_pathway(ct, labels, out, clinical=demo_clinical_path(), subregions=phantom.subregions,
                       options=opts, progress=progress)
