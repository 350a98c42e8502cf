"""Counting floating-point operations with `torch.utils.flop_counter.FlopCounterMode`.

`FlopCounterMode` knows the CUDA attention kernels but not the one that `scaled_dot_product_attention`
runs on CPU in torch 2.x (`aten._scaled_dot_product_flash_attention_for_cpu` and its backward), so
attention would count as zero there. `count_flops` adds those two formulas (reusing torch's own
`sdpa_flop_count`) through the mode's `custom_mapping`, which leaves torch's global registry untouched.
On the `meta` device attention decomposes into two `bmm`s, which torch already counts: forward figures
agree exactly (backward: torch's formula counts 2.5x the forward, the meta decomposition 2x).

Convention: one multiply-add is 2 FLOPs, as in torch's counter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten


def _cpu_sdpa_forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def extra_formulas() -> dict:
    """FLOP formulas for kernels torch's counter does not know, keyed by aten overload packet."""
    mapping: dict = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_forward
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _cpu_sdpa_backward
    return mapping


@dataclass
class FlopCount:
    """The result of `count_flops`: a total and a break-down by operator (and by module, if asked)."""

    total: int = 0
    by_operator: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, dict[str, int]] = field(default_factory=dict)

    def attention(self) -> int:
        """FLOPs of attention kernels (SDPA in any of its forms, and the `bmm`s of its meta decomposition)."""
        return sum(v for k, v in self.by_operator.items() if "attention" in k or k.startswith("aten.bmm"))


@contextmanager
def count_flops(modules: torch.nn.Module | list[torch.nn.Module] | None = None) -> Iterator[FlopCount]:
    """Counts FLOPs of the code run inside the block; the returned `FlopCount` fills in on exit.

        with count_flops() as flops:
            model(x)
        flops.total
    """
    result = FlopCount()
    mode = FlopCounterMode(mods=modules, display=False, custom_mapping=extra_formulas())
    with mode:
        yield result
    counts = mode.get_flop_counts()
    result.total = int(mode.get_total_flops())
    result.by_operator = {str(op): int(n) for op, n in counts.get("Global", {}).items()}
    result.by_module = {name: {str(op): int(n) for op, n in ops.items()} for name, ops in counts.items()}


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Parameters without requires_grad inside the block.

    FlopCounterMode's module tracker hooks every module input that requires grad; in `no_grad` code, views
    of parameters (a learned token expanded over the batch) require grad but have no grad function, which
    makes the tracker fail. Counting inference code on a frozen model avoids it.
    """
    flags = [p.requires_grad for p in module.parameters()]
    try:
        for p in module.parameters():
            p.requires_grad_(False)
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def flops_of(fn: Callable[[], object]) -> FlopCount:
    """FLOPs of calling `fn()` once."""
    with count_flops() as result:
        fn()
    return result
