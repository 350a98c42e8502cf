"""Peak memory of the tensors a piece of code creates, on any device (the CPU has no allocator statistics).

`LiveTensorMemory` watches every operator's outputs below autograd (a `TorchDispatchMode`) and keeps
the bytes of the storages still alive: the peak is what `torch.cuda.max_memory_allocated` would report
above the starting point, without the allocator's rounding and caching, and without kernels' private
workspaces. Tensors that existed before the block (weights, inputs) are not counted. `meta=True` counts
tensors on the `meta` device too: the memory a computation would take, estimated without running it
(`benchmarks/wan_memory.py`).
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveTensorMemory(TorchDispatchMode):
    """with LiveTensorMemory() as mem: f(); mem.peak  -> the most bytes of new tensors alive at once."""

    def __init__(self, meta: bool = False) -> None:
        super().__init__()
        self.meta = meta
        self.current = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        given = {t.untyped_storage()._cdata for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and (self.meta or tensor.device.type != "meta"):
                storage = tensor.untyped_storage()
                if storage._cdata not in given:  # a view of an input (a weight's transpose) or an in-place result: no new bytes
                    self._track(storage)
        return out

    def _track(self, storage: torch.UntypedStorage) -> None:
        key = storage._cdata  # the storage itself, whichever tensor or view holds it
        if key in self._sizes:
            return
        self._sizes[key] = storage.nbytes()
        self.current += self._sizes[key]
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._release, key)

    def _release(self, key: int) -> None:
        self.current -= self._sizes.pop(key, 0)
