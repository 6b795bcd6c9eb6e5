"""Active experiments run on copies of the model: the pre-flight protocol."""

from babysit.experiments.batch import Batch, LossSpec
from babysit.experiments.context import Context, OptimizerSpec, Settings, Skipped
from babysit.experiments.protocol import EXPERIMENTS, run_protocol

__all__ = [
    "EXPERIMENTS",
    "Batch",
    "Context",
    "LossSpec",
    "OptimizerSpec",
    "Settings",
    "Skipped",
    "run_protocol",
]
