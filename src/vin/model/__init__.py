"""The model: video DiT backbone, the VIN, and the chunk-parallel wrapper that couples them."""

from ..config import check_geometry
from .vin import VINModel, assemble

__all__ = ["VINModel", "assemble", "check_geometry"]
