"""Simulated C-arm fluoroscopy: cone-beam DRRs from a CT with radiopaque instruments.

>>> from kyphosim.planning.fluoro import render_drr
>>> from kyphosim.planning.instruments import Cannula, MaskObject
>>> drr = render_drr(ct, "lateral", isocenter_mm=centroid, instruments=[Cannula(entry, tip, 10)])  # doctest: +SKIP
"""

from kyphosim.planning.fluoro.geometry import VIEWS, CArmGeometry, carm_geometry
from kyphosim.planning.fluoro.render import DRR, EFFECTIVE_ENERGY_KEV, clear_cache, hu_to_mu, render_drr

__all__ = ["render_drr", "DRR", "CArmGeometry", "carm_geometry", "hu_to_mu", "VIEWS", "EFFECTIVE_ENERGY_KEV",
           "clear_cache"]
