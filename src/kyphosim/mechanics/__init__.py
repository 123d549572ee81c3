"""Voxel finite-element strength of vertebrae: intact, fractured and augmented (cement) states.

Main entry points: :func:`compute_strength`, :func:`compare_augmentation` (see ``docs/mechanics.md``); the
failure load comes from a nonlinear pushover (:class:`PushoverSettings`), the linear estimate is kept beside it.
"""

from kyphosim.mechanics.calibration import GENERIC, Calibration, load_calibration
from kyphosim.mechanics.failure import FailureCriterion
from kyphosim.mechanics.materials import LAWS, PMMA_MODULUS_MPA, POISSON_RATIO, DensityLaw, get_law
from kyphosim.mechanics.nonlinear import PushoverResult, PushoverSettings
from kyphosim.mechanics.strength import (COMPARISON_SCHEMA, SCHEMA, AugmentationComparison, StrengthResult,
                                         compare_augmentation, compute_strength, prepare_model)

__all__ = ["compute_strength", "compare_augmentation", "prepare_model", "StrengthResult", "AugmentationComparison",
           "SCHEMA", "COMPARISON_SCHEMA", "Calibration", "GENERIC", "load_calibration", "FailureCriterion",
           "LAWS", "DensityLaw", "get_law", "PMMA_MODULUS_MPA", "POISSON_RATIO", "PushoverSettings", "PushoverResult"]
