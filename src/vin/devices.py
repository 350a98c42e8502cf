"""Where work runs: a device name and a CPU thread count, checked before anything is loaded."""

from __future__ import annotations

import os
import re

from .errors import VinError

DEVICE_NAMES = "auto, cpu, cuda or cuda:N"
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}  # a pretrained backbone's dtype names: torch's


def backbone_dtype(name: str | None, device):
    """The torch dtype a pretrained backbone computes in: `name` (bf16 | fp16 | fp32), or by default (None or
    "auto") bfloat16 on CUDA and float32 elsewhere (a CPU's bf16 matrix products are slow, and float32 is exact)."""
    import torch

    if name in (None, "auto"):
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if name not in DTYPES:
        raise VinError(f"dtype {name!r}: use one of {', '.join(DTYPES)}")
    return getattr(torch, DTYPES[name])


def cpu_count() -> int:
    """CPU threads this process may use (its affinity, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_threads(threads: int | None, flag: str = "--threads") -> int | None:
    """`None` (torch's default) or a thread count in [1, cpu_count()]."""
    if threads is None:
        return None
    available = cpu_count()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise VinError(f"{flag} must be a whole number of at least 1, got {threads!r} (leave it out for torch's default)")
    if threads > available:
        raise VinError(f"{flag} {threads} is more than the {available} CPU threads this process can use; "
                       f"use at most {available} (more threads than cores is much slower)")  # fmt: skip
    return threads


def resolve_device(name: str, allow_auto: bool = True):
    """A torch.device from auto | cpu | cuda | cuda:N, or a VinError saying why it cannot be used."""
    import torch

    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name) or (name == "auto" and not allow_auto):
        names = DEVICE_NAMES if allow_auto else DEVICE_NAMES.replace("auto, ", "")
        raise VinError(f"device {name!r} is not one vin runs on; use {names}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise VinError(f"device {name!r} was asked for but CUDA is not available; use cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise VinError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0")
    return torch.device(name)
