"""Pretrained video DiTs as the chunk-parallel backbone of a VIN (diffusers models, loaded from local folders)."""
