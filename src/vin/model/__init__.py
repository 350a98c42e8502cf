"""The model: the protocol every model kind implements, the registry of kinds, and the project's own video
DiT with its VIN (`vin.model.vin`); the VIN read itself is `vin.model.interface`."""

from .protocol import VideoModel
from .vin import VINModel, assemble

__all__ = ["VINModel", "VideoModel", "assemble"]
