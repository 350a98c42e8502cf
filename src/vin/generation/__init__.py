"""Generation strategies over a trained model: `vin` and the baselines it is measured against."""

from .api import Generation, check_request, generate
from .strategies import STRATEGIES, GenerationOptions, StrategyOutput, run_strategy

__all__ = ["STRATEGIES", "Generation", "GenerationOptions", "StrategyOutput", "check_request", "generate", "run_strategy"]
