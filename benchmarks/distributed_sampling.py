"""Per-step time of `vin` sampling on 1 process vs R ranks for the same video, and the bytes each rank
sends per step against what an all-gather of every keyframe token would need.

CPU (the default): one process with R threads against R ranks of one thread each (gloo).
GPUs: `--device cuda --nproc R` puts rank r on GPU r (NCCL); the single-process run uses GPU 0.

    python benchmarks/distributed_sampling.py --frames 256 --steps 10 --nproc 2 --json benchmarks/distributed_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

import vin
from vin.generation import GenerationOptions, run_strategy
from vin.generation.distributed import run_vin_distributed
from vin.parallel import init_from_env, shutdown


def options(args) -> GenerationOptions:
    return GenerationOptions(frames=args.frames, steps=args.steps, seed=0, progress=False)


def worker(rank: int, args, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(args.nproc),
                      LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(args.threads_per_rank)
    group = init_from_env(args.device)
    model = vin.load_model(args.checkpoint, group.device)
    run_vin_distributed(model, GenerationOptions(frames=args.frames, steps=2, progress=False), group)  # warm-up
    group.bytes_sent = 0
    result = run_vin_distributed(model, options(args), group)
    if rank == 0:
        Path(out).write_text(json.dumps({"seconds": result.seconds, "bytes_per_step": group.bytes_sent / args.steps}))
    shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--threads-per-rank", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    device = torch.device("cuda", 0) if args.device.startswith("cuda") else torch.device("cpu")
    torch.set_num_threads(args.threads_per_rank * args.nproc)  # the same cores for both runs
    model = vin.load_model(args.checkpoint, device)
    run_strategy(model, "vin", GenerationOptions(frames=args.frames, steps=2, progress=False))  # warm-up
    single = run_strategy(model, "vin", options(args)).seconds / args.steps

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"vin-dist-bench-{port}.json"
    mp.spawn(worker, args=(args, port, str(out)), nprocs=args.nproc)
    ranked = json.loads(out.read_text())
    out.unlink()

    cfg = model.config
    keyframes = -(-args.frames // cfg.keyframe_stride)
    tokens_per_frame = (cfg.sample_size // cfg.patch_hw) ** 2
    allgather = keyframes * tokens_per_frame * cfg.width * 4 * (args.nproc - 1) / args.nproc  # fp32, per rank
    row = {
        "frames": args.frames, "steps": args.steps, "ranks": args.nproc, "device": args.device,
        "threads_per_rank": args.threads_per_rank, "step_ms_1_process": round(1000 * single, 2),
        "step_ms_ranks": round(1000 * ranked["seconds"] / args.steps, 2),
        "speedup": round(single / (ranked["seconds"] / args.steps), 3),
        "bytes_per_step_per_rank": int(ranked["bytes_per_step"]), "allgather_keyframe_bytes_per_rank": int(allgather),
    }  # fmt: skip
    print("| " + " | ".join(row) + " |")
    print("|" + "---|" * len(row))
    print("| " + " | ".join(str(v) for v in row.values()) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
