"""`vin bench`: what the strategies cost, side by side: FLOPs (counted on the `meta` device) and wall time."""

from .flops import FlopRow, count_step, flops_table
from .spec import BenchSetup, StrategySpec, parse_frames, parse_strategies
from .speed import SpeedRow, speed_table

__all__ = [
    "BenchSetup", "FlopRow", "SpeedRow", "StrategySpec", "count_step", "flops_table", "parse_frames", "parse_strategies",
    "speed_table",
]  # fmt: skip
