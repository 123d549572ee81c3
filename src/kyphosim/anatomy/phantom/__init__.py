"""Synthetic spine phantom with known truth (``kyphosim phantom``; docs/phantom.md).

>>> from kyphosim.anatomy.phantom import PhantomSpec, FractureSpec, make_phantom
>>> ph = make_phantom(PhantomSpec(levels="T12-L2", fractures=["L1:wedge:2"], spacing_mm=1.0))
>>> ph.save("out")   # ct.nii.gz, labels.nii.gz, subregions.nii.gz, truth.json
"""

from kyphosim.anatomy.phantom.build import Phantom, make_phantom
from kyphosim.anatomy.phantom.hu import HU_MARROW, HU_PER_MG_CM3, TISSUE_HU, hu_from_vbmd, vbmd_from_hu
from kyphosim.anatomy.phantom.measure import genant_grade
from kyphosim.anatomy.phantom.spec import (FractureSpec, PhantomSpec, demo_case, parse_fracture,
                                           parse_spacing)
from kyphosim.anatomy.phantom.truth import TRUTH_SCHEMA

__all__ = ["PhantomSpec", "FractureSpec", "Phantom", "make_phantom", "demo_case", "parse_fracture",
           "parse_spacing", "genant_grade", "hu_from_vbmd", "vbmd_from_hu", "HU_MARROW", "HU_PER_MG_CM3",
           "TISSUE_HU", "TRUTH_SCHEMA"]
