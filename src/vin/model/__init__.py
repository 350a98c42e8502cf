"""The model: video DiT backbone, the VIN, and the chunk-parallel wrapper that couples them."""

from .vin import VINModel, assemble, check_geometry

__all__ = ["VINModel", "assemble", "check_geometry"]
