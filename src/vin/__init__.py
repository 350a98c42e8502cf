"""vin: scalable parallel long-video generation with Video Interface Networks."""

from .config import Config, load_config
from .errors import VinError
from .generation import generate
from .io import default_checkpoint, load_model, read_video, write_video
from .model.vin import VINModel

__all__ = [
    "Config",
    "VINModel",
    "VinError",
    "default_checkpoint",
    "generate",
    "load_config",
    "load_model",
    "read_video",
    "write_video",
]
__version__ = "0.1.0"
