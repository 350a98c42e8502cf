"""torch.distributed plumbing: process groups from torchrun, chunk shares, and the collectives VIN needs.

Launch with `torchrun --nproc-per-node R -m vin generate|train ...` (or `vin generate --nproc R`).
NCCL on GPUs, gloo on CPUs. Every collective has a timeout, so a rank that dies brings the others
down with a message instead of a hang.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from .errors import VinError

DEFAULT_TIMEOUT_S = 300


@dataclass
class Group:
    """This process's place among the ranks, and the bytes it has sent (for the benchmark)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    bytes_sent: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "cpu", timeout_s: int = DEFAULT_TIMEOUT_S) -> Group:
    """Joins the process group that torchrun described in the environment (a single process otherwise)."""
    if not launched_by_torchrun():
        return Group(device=torch.device(device))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise VinError("device cuda was asked for but CUDA is not available; use --device cpu")
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        dev, backend = torch.device("cuda", local), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s))
    return Group(rank, world, dev)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def chunk_ranges(chunks: int, world: int) -> list[tuple[int, int]]:
    """Contiguous, balanced shares of `chunks` chunks: [(first, end), ...], one per rank."""
    if world > chunks:
        raise VinError(f"{world} ranks for {chunks} chunks: use at most {chunks} processes, or a longer video")
    base, extra = divmod(chunks, world)
    bounds = [0]
    for r in range(world):
        bounds.append(bounds[-1] + base + (r < extra))
    return list(zip(bounds[:-1], bounds[1:]))


def allreduce_merge(group: Group):
    """The VIN read across ranks: each rank attends over its own keyframes; two all-reduces of O(M x D)
    merge the partial outputs exactly by their log-sum-exp (as flash-decoding splits keys)."""

    def merge(out: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
        # out: (B, H, M, Dh) normalised over this rank's keys; lse: (B, H, M)
        top = lse.clone()
        dist.all_reduce(top, op=dist.ReduceOp.MAX)
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        weight = torch.exp(lse - top)  # (B, H, M); 0 for a rank without keyframes
        packed = torch.cat([out * weight.unsqueeze(-1), weight.unsqueeze(-1)], dim=-1).contiguous()
        dist.all_reduce(packed, op=dist.ReduceOp.SUM)
        group.bytes_sent += (top.numel() + packed.numel()) * packed.element_size()
        return packed[..., :-1] / packed[..., -1:]

    return merge


def shift(group: Group, tensor: torch.Tensor | None, direction: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor | None:
    """Sends `tensor` to rank + direction and returns what rank - direction sent (None at the ends).

    Only neighbours talk: the context frames go forward (+1), the overlap predictions backward (-1).
    """
    to, frm = group.rank + direction, group.rank - direction
    ops = []
    received = None
    if 0 <= frm < group.world:
        received = torch.empty(shape, dtype=dtype, device=group.device)
        ops.append(dist.P2POp(dist.irecv, received, frm))
    if 0 <= to < group.world and tensor is not None:
        tensor = tensor.contiguous()
        ops.append(dist.P2POp(dist.isend, tensor, to))
        group.bytes_sent += tensor.numel() * tensor.element_size()
    if ops:
        for req in dist.batch_isend_irecv(ops):
            req.wait()
    return received


def gather_frames(group: Group, part: torch.Tensor, ranges: list[tuple[int, int]], chunk_frames: int) -> torch.Tensor | None:
    """Collects every rank's frames (B, C, T_r, H, W) on rank 0 -> (B, C, T, H, W); None elsewhere."""
    if not group.distributed:
        return part
    if group.rank == 0:
        parts = [part]
        for r in range(1, group.world):
            shape = part.shape[:2] + ((ranges[r][1] - ranges[r][0]) * chunk_frames,) + part.shape[3:]
            buf = torch.empty(shape, dtype=part.dtype, device=part.device)
            dist.recv(buf, r)
            parts.append(buf)
        return torch.cat(parts, dim=2)
    dist.send(part.contiguous(), 0)
    return None
