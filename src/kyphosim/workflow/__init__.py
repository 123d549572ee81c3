"""The top of the pipeline: the end-to-end pathway (``kyphosim run``) and the demo (``kyphosim demo``)."""

from kyphosim.workflow.demo import run_demo
from kyphosim.workflow.pathway import PathwayOptions, PathwayResult, run_pathway

__all__ = ["run_pathway", "run_demo", "PathwayOptions", "PathwayResult"]
