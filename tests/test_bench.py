"""`vin bench`: FLOP counts against a hand count of the tiny model's layers, meta against real tensors,
and both commands end to end on the tiny config."""

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from vin.bench import BenchSetup, flops_table, parse_strategies
from vin.bench.memory import LiveTensorMemory
from vin.bench.speed import linear_fit
from vin.cli import main
from vin.config import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")

# the tiny config: 16x16 frames of 3 channels, patches 2x4x4 -> S = 16 tokens per patch-frame; width 32,
# 2 heads, MLP 128, 2 DiT blocks, 8 VIN tokens, 1 process block, chunks of 4 frames, context 2, keyframes every 2
D, HID, M, S, C, PT, P, DEPTH = 32, 128, 8, 16, 3, 2, 4, 2


def lin(n: int, i: int, o: int) -> int:  # n tokens through an i -> o linear layer
    return 2 * n * i * o


def att(w: int, lq: int, lk: int) -> int:  # w sequences, lq queries on lk keys: q @ k^T and p @ v, all heads
    return 2 * 2 * w * lq * lk * D


def block(w: int, lq: int, lk: int | None = None) -> tuple[int, int]:
    """(attention, the rest) of one adaLN block over w sequences of lq tokens attending to lk keys."""
    rest = lin(w, D, 6 * D) + lin(w * lq, D, D) + lin(w * lq, D, 2 * D) + lin(w * lq, D, D)
    return att(w, lq, lk or lq), rest + lin(w * lq, D, HID) + lin(w * lq, HID, D)


def temb(b: int) -> int:  # timestep embedder: 256 sin-cos features -> D -> D
    return lin(b, 256, D) + lin(b, D, D)


def vin_read(b: int, keyframes: int) -> tuple[int, int]:
    """(read, process) of b videos with `keyframes` keyframes each; plus the condition's timestep embedding."""
    keys = keyframes * S
    conv = 2 * b * keys * D * (C * P * P)
    read = conv + lin(b * M, D, D) + lin(b * keys, D, 2 * D) + att(b, M, keys) + lin(b * M, D, D)
    read += lin(b * M, D, HID) + lin(b * M, HID, D)
    return read, sum(block(b, M))


def dit(b: int, frames: int, windows: int, length: int, keys: int | None = None) -> dict[str, int]:
    """Patch embedding of b videos, condition, DEPTH blocks over `windows` sequences (+ M VIN tokens), output."""
    attention, rest = block(windows, length + M, (keys or length) + M)
    patch = 2 * b * (frames // PT) * S * D * (C * PT * P * P)
    out = lin(windows, D, 2 * D) + lin(windows * length, D, PT * P * P * C)
    return {"dit_attention": DEPTH * attention, "dit_linear": DEPTH * rest, "other": patch + temb(b) + out}


def add(*parts: dict[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total


def vin_part(b: int, keyframes: int) -> dict[str, int]:
    read, process = vin_read(b, keyframes)
    return {"vin_read": read, "vin_process": process, "other": temb(b)}


def hand_count(strategy: str) -> dict[str, int]:
    """One denoising step of 8 frames (2 chunks of 4; windows of (K+F)/PT = 3 patch-frames = 48 tokens)."""
    window = (2 + 4) // PT * S
    if strategy == "vin":
        return add(vin_part(1, 4), dit(1, 8, 2, window))
    if strategy == "vin:shared":  # own frames only (32 tokens), keys: 16 borrowed + 32 own
        return add(vin_part(1, 4), dit(1, 8, 2, 32, 48))
    if strategy == "full":
        return add(vin_part(1, 4), dit(1, 8, 1, 64))
    if strategy == "independent":  # two one-chunk videos, each with its own read
        return add(vin_part(2, 2), dit(2, 4, 2, window))
    if strategy == "overlap":  # windows at 0, 2, 4
        return add(vin_part(3, 2), dit(3, 4, 3, window))
    if strategy == "autoregressive":  # chunk 0 alone; chunk 1 with chunk 0 before it (read of both, one window)
        return add(vin_part(1, 2), dit(1, 4, 1, window), vin_part(1, 4), dit(1, 8, 1, window))
    if strategy == "spectral":  # every block: global attention over 64 + M, local over 2 windows of 32 + M
        g_att, g_rest = block(1, 64 + M)
        l_att, l_rest = block(2, 32 + M)
        local_projections = l_rest - lin(2, D, 6 * D) - lin(2 * (32 + M), D, HID) - lin(2 * (32 + M), HID, D)
        base = dit(1, 8, 1, 64)
        return add(vin_part(1, 4), {**base, "dit_attention": DEPTH * (g_att + l_att), "dit_linear": DEPTH * (g_rest + local_projections)})
    raise AssertionError(strategy)


def setup() -> BenchSetup:
    return BenchSetup(load_config(TINY))


@pytest.mark.parametrize("strategy", ["vin", "vin:shared", "full", "independent", "overlap", "autoregressive", "spectral"])
def test_flops_equal_a_hand_count_of_the_layers(strategy):
    (row,) = flops_table(setup(), parse_strategies(strategy), [8], steps=3)
    expected = hand_count(strategy)
    got = {k: getattr(row, k) for k in ("dit_attention", "dit_linear", "vin_read", "vin_process", "other")}
    assert got == {k: expected.get(k, 0) for k in got}
    assert row.flops_step == sum(expected.values())
    assert row.flops_video == 3 * row.flops_step


def test_freenoise_costs_what_overlap_costs_and_ratios_are_to_full():
    rows = flops_table(setup(), parse_strategies("full,overlap,freenoise"), [8, 16])
    by = {(r.strategy, r.frames): r for r in rows}
    for n in (8, 16):
        assert by["freenoise", n].flops_step == by["overlap", n].flops_step
        assert by["full", n].ratio_to_full == 1.0
        assert by["overlap", n].ratio_to_full == round(by["overlap", n].flops_step / by["full", n].flops_step, 4)


def test_meta_count_equals_count_on_real_cpu_tensors():
    specs = parse_strategies("vin,vin:shared,full,autoregressive,independent,overlap,freenoise,spectral,"
                             "vin:factorised,full:factorised,vin:factorised:shared")  # fmt: skip
    meta = flops_table(setup(), specs, [8])
    cpu = flops_table(setup(), specs, [8], device="cpu")
    assert [r.__dict__ for r in meta] == [r.__dict__ for r in cpu]


def test_shared_context_saves_what_the_hand_count_says():
    rows = {r.strategy: r for r in flops_table(setup(), parse_strategies("vin,vin:shared,vin:k0,vin:shared:k0"), [16])}
    assert rows["vin:shared"].flops_step < rows["vin"].flops_step
    assert rows["vin:k0"].flops_step == rows["vin:shared:k0"].flops_step  # nothing to borrow: the same work


def test_live_tensor_memory_counts_new_storages_once():
    with torch.no_grad(), LiveTensorMemory() as mem:
        a = torch.ones(256, 256)
        view = a[:128]  # a view: no new storage
        b = a * 2
        del b
        c = a + view.sum()  # the sum is a 4-byte temporary, alive while c is made
    assert mem.peak == 2 * a.nbytes + 4
    assert mem.current == a.nbytes + c.nbytes


def test_live_tensor_memory_does_not_count_views_of_what_existed_before():
    """A linear layer's weight transposed inside F.linear (on meta too): the weight's bytes are not the block's."""
    for device, meta in (("cpu", False), ("meta", True)):
        layer = torch.nn.Linear(512, 512, device=device)
        x = torch.ones(4, 512, device=device)
        with torch.no_grad(), LiveTensorMemory(meta=meta) as mem:
            y = layer(x)
            x.mul_(2)  # in place: no new storage
        assert mem.peak == y.nbytes, (device, mem.peak)


def test_linear_fit():
    slope, r2 = linear_fit([1, 2, 3], [5.0, 7.0, 9.0])
    assert slope == pytest.approx(2.0) and r2 == pytest.approx(1.0)
    assert linear_fit([1], [1.0]) == (None, None)


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_bench_flops_command_writes_json_markdown_and_plot(tmp_path):
    out = tmp_path / "flops.json"
    result = run("bench", "flops", "--config", TINY, "--strategies", "vin,full,vin:shared:k2", "--frames", "8,16",
                 "--steps", "10", "--json", str(out), "--markdown", str(tmp_path / "flops.md"), "--plot", str(tmp_path / "f.png"))  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert len(rows) == 6
    for key in ("strategy", "frames", "flops_step", "flops_video", "ratio_to_full", "dit_attention", "vin_read"):
        assert key in rows[0]
    assert [r["strategy"] for r in rows[:3]] == ["vin", "full", "vin:shared:k2"]
    assert all(r["flops_video"] == 10 * r["flops_step"] for r in rows)
    assert "| vin:shared:k2 | 16 |" in (tmp_path / "flops.md").read_text()
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_speed_command_on_the_cpu(tmp_path):
    out = tmp_path / "speed.json"
    result = run("bench", "speed", "--config", TINY, "--strategies", "vin,full", "--frames", "8,16", "--repeats", "1",
                 "--warmup", "0", "--json", str(out), "--plot", str(tmp_path / "s.png"))  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [(r["strategy"], r["frames"]) for r in rows] == [("vin", 8), ("full", 8), ("vin", 16), ("full", 16)]
    for r in rows:
        assert r["ms_step"] > 0 and r["peak_memory_bytes"] > 0 and r["flops_step"] > 0 and r["matmul_tflops"] > 0
        assert r["memory_slope_bytes_per_frame"] is not None
    assert rows[1]["ratio_to_full"] == 1.0
    assert "ms / step" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strategies", "vin,nope"], "unknown strategy 'nope'"),
        (["--strategies", "vin:k3:wat"], "unknown setting 'wat'"),
        (["--strategies", "vin:depthh=3"], "neither a model config key"),
        (["--frames", "6"], "cannot be cut into chunks of 4"),
        (["--frames", "8,x"], "comma-separated integers"),
        (["--json", "out.txt"], "must end in one of .json"),
        (["--plot", "/no/such/dir/p.png"], "does not exist"),
    ],
)
def test_bench_bad_input_is_one_clear_line(args, message):
    result = run("bench", "flops", "--config", TINY, "--frames", "8", *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_video_frames_map_to_latent_frames():
    cfg = load_config(TINY, ["latent.video_frames=16", "latent.latent_frames=5", "latent.height=8", "latent.width=12"])
    s = BenchSetup(cfg)
    assert s.latent_frames(64) == 20 and s.frame_size() == (8, 12)
    with pytest.raises(Exception, match="multiple of 16"):
        s.latent_frames(40)


def test_paper_config_has_the_papers_shapes():
    s = BenchSetup(load_config(ROOT / "configs" / "paper.yaml"))
    m = s.config.model
    assert (m.width, m.depth, m.heads, m.vin_tokens, m.vin_process_blocks, m.chunk_frames) == (1152, 28, 16, 512, 4, 20)
    assert s.frame_size() == (24, 40) and s.latent_frames(64) == 20  # 192x320 / 8; 16 -> 5 frames
    (row,) = flops_table(s, parse_strategies("full"), [64], steps=1)  # on the meta device: no memory
    assert row.tokens == 20 * 240 and row.flops_step > 8e12
