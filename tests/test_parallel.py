"""Several processes (gloo on CPU): chunk-parallel sampling and DDP training equal one process."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from vin.errors import VinError
from vin.generation import GenerationOptions, run_strategy
from vin.model.attention import Attention, merge_partials
from vin.parallel import chunk_ranges

from .conftest import tiny_model

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_group(rank: int, world: int, port: int) -> None:
    """Joins a gloo group with a short timeout, so that a broken test fails instead of hanging."""
    from datetime import timedelta

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))


def spawn(fn, *args, seconds: float = 180, grace_period: float | None = None) -> None:
    """mp.spawn with a deadline: the processes are killed and the test fails if they do not finish.

    Once a rank fails, mp.spawn SIGTERMs the others at once unless `grace_period` gives them that long to end
    on their own (what a test of their own failure handling needs).
    """
    context = mp.spawn(fn, args=(2, free_port(), *args), nprocs=2, join=False)
    deadline = time.time() + seconds
    while not context.join(timeout=1, grace_period=grace_period):
        if time.time() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"{fn.__name__} did not finish in {seconds} s")


def test_merged_partial_cross_attention_equals_full_attention():
    torch.manual_seed(0)
    attn = Attention(32, 4)
    queries, keys = torch.randn(2, 5, 32), torch.randn(2, 23, 32)
    full = attn(queries, keys)
    parts = [attn.partial(queries, keys[:, a:b]) for a, b in ((0, 7), (7, 8), (8, 23), (23, 23))]  # one part empty
    merged = attn.finish(merge_partials([o for o, _ in parts], [lse for _, lse in parts]))
    torch.testing.assert_close(merged, full, rtol=1e-5, atol=1e-6)


def test_chunk_ranges():
    assert chunk_ranges(4, 2) == [(0, 2), (2, 4)]
    assert chunk_ranges(3, 2) == [(0, 2), (2, 3)]
    assert chunk_ranges(7, 3) == [(0, 3), (3, 5), (5, 7)]
    with pytest.raises(VinError, match="3 ranks for 2 chunks"):
        chunk_ranges(2, 3)


def _sample_worker(rank: int, world: int, port: int, out: str) -> None:
    join_group(rank, world, port)
    from vin.generation.distributed import run_vin_distributed
    from vin.parallel import init_from_env, shutdown

    group = init_from_env()
    results = {}
    for chunks in (3, 4):
        for kwargs in ({}, {"global_tokens": "chunk"}, {"window_batch": 1}):
            o = GenerationOptions(frames=4 * chunks, steps=4, seed=7, progress=False, fusion_fraction=0.5, **kwargs)
            res = run_vin_distributed(tiny_model(), o, group)
            if rank == 0:
                results[f"{chunks}-{kwargs}"] = res.sample
    results["bytes"] = torch.tensor(group.bytes_sent)
    shutdown()
    if rank == 0:
        torch.save(results, out)


def test_two_ranks_sample_what_one_process_samples(tmp_path):
    out = str(tmp_path / "samples.pt")
    spawn(_sample_worker, out)
    results = torch.load(out, weights_only=True)
    for chunks in (3, 4):  # uneven and even splits
        for kwargs in ({}, {"global_tokens": "chunk"}, {"window_batch": 1}):
            o = GenerationOptions(frames=4 * chunks, steps=4, seed=7, progress=False, fusion_fraction=0.5, **kwargs)
            single = run_strategy(tiny_model(), "vin", o).sample
            torch.testing.assert_close(results[f"{chunks}-{kwargs}"], single, rtol=0, atol=1e-5)
    assert results["bytes"] > 0


def _train_worker(rank: int, world: int, port: int, out: str) -> None:
    join_group(rank, world, port)
    from vin.config import load_config
    from vin.train import train

    overrides = ["train.steps=3", "train.windows_per_step=8", "train.chunk_counts=[1,2]", f"train.out_dir={out}"]
    train(load_config(ROOT / "configs" / "tiny.yaml", overrides), progress=False)


def test_two_rank_ddp_training_equals_one_process(tmp_path):
    from vin.config import load_config
    from vin.train import train

    spawn(_train_worker, str(tmp_path / "ddp"))
    overrides = ["train.steps=3", "train.windows_per_step=8", "train.chunk_counts=[1,2]", f"train.out_dir={tmp_path / 'one'}"]
    train(load_config(ROOT / "configs" / "tiny.yaml", overrides), progress=False)
    assert_ddp_run_equals_one_process(tmp_path / "ddp", tmp_path / "one")


def assert_ddp_run_equals_one_process(ddp: Path, one: Path) -> None:
    """The exported weights of a 2-rank run equal one process's (to float rounding), and it ran on 2 ranks."""
    from safetensors.torch import load_file

    a = load_file(ddp / "diffusion_pytorch_model.safetensors")
    b = load_file(one / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)  # all-reduce sums in another order: ~2e-6 seen
    assert json.loads((ddp / "summary.json").read_text())["ranks"] == 2


def _failing_worker(rank: int, world: int, port: int, out: str) -> None:
    join_group(rank, world, port)
    from vin.generation.distributed import run_vin_distributed
    from vin.parallel import init_from_env

    group = init_from_env()
    if rank == 1:
        raise SystemExit(3)  # dies before its first collective
    start = time.perf_counter()
    try:
        run_vin_distributed(tiny_model(), GenerationOptions(frames=16, steps=2, progress=False), group)
        status = "finished"
    except Exception as err:  # what the CLI turns into one line
        status = f"{type(err).__name__} after {time.perf_counter() - start:.0f} s"
    Path(out).write_text(status)


def test_a_failing_rank_brings_the_other_down_instead_of_hanging(tmp_path):
    out = tmp_path / "status.txt"
    with pytest.raises(mp.ProcessExitedException):  # rank 1's exit code 3
        spawn(_failing_worker, str(out), grace_period=120)  # rank 0 must end by itself, before mp.spawn kills it
    assert out.exists(), "rank 0 did not end by itself within 120 s of rank 1's exit"
    status = out.read_text()
    assert status != "finished" and "Error" in status, status


def test_cli_nproc_equals_one_process(tmp_path):
    ckpt = tmp_path / "ckpt"
    tiny_model().save_pretrained(ckpt)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "vin", "generate", "--checkpoint", str(ckpt), "--frames", "12", "--steps", "3", "--quiet"]
    one = subprocess.run(base + ["--out", str(tmp_path / "one.npy")], capture_output=True, text=True, env=env, timeout=300)
    two = subprocess.run(base + ["--out", str(tmp_path / "two.npy"), "--nproc", "2", "--json"], capture_output=True,
                         text=True, env=env, timeout=300)  # fmt: skip
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    a, b = np.load(tmp_path / "one.npy").astype(int), np.load(tmp_path / "two.npy").astype(int)
    assert np.abs(a - b).max() <= 1  # uint8 rounding of float differences ~1e-6
    assert json.loads(two.stdout.strip().splitlines()[-1])["ranks"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "one.npy", "two.npy"]
