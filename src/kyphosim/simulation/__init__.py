"""Virtual balloon kyphoplasty and vertebroplasty in the patient's own vertebra.

See ``docs/simulation.md`` for the model (equations, parameters, sources, limits) and
``docs/validation.md`` for the comparison with the literature.
"""

from kyphosim.simulation.params import BALLOONS, CEMENTS, DEFAULT_PARAMS, SimParams
from kyphosim.simulation.procedure import SCHEMA, SimulationResult, simulate

__all__ = ["simulate", "SimulationResult", "SimParams", "DEFAULT_PARAMS", "BALLOONS", "CEMENTS", "SCHEMA"]
