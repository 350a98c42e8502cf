"""Generation strategies over a trained model."""

from .api import generate

__all__ = ["generate"]
