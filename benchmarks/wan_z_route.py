"""How Z_t reaches Wan: the decoupled cross-attention (the library's `ZCrossAttention`) against Z projected to
the text width and appended to the prompt embeddings, measured on tiny random Wans on the CPU.

    python benchmarks/wan_z_route.py --json benchmarks/results/wan_z_route.json [--steps 300,1000] [--seeds 0,1,2]

Two routes for the VIN's tokens Z (B, M, D_vin):

- `decoupled`: `WanVIN` as the library builds it: in every block attn2's queries also attend to Z with key and
  value projections of their own (values zero-initialised), added before attn2's output projection;
- `append`: a linear projection D_vin -> text_dim (code only in this script), its M outputs concatenated
  after the prompt tokens, so Wan's own text embedder and cross-attention read them (nothing inside Wan changes).

1. At initialisation: |prediction - Wan's own prediction| with a random Z, relative to mean |Wan prediction|,
   for the decoupled route (zero values, as built; and, for symmetry, random values) and the append route
   (projection zero-initialised; and randomly initialised), with the prompt alone and zero-padded (Wan's
   pipeline pads every prompt with zero vectors, so its DiT has always read some zero-embedding tokens).
2. Does the DiT learn to read Z: only the adapter trains (VIN + the route's projections; backbone frozen),
   the same seed and batches for both routes, on clips whose every frame is one random per-clip pattern plus
   small noise: a chunk at high noise cannot know its content but through Z, read from a cleaner chunk 0.
   On held-out clips, `vin.metrics.probe.loss_gap` (chunk 0 at sigma 0.2, the rest at 0.85, scored on the
   rest): the loss with each clip's Z, with another clip's Z (gap = other_clip / global - 1), with each
   chunk's own Z, and plain Wan's loss (no Z) on the same noise. Two kinds of pattern: one value per channel
   (`channel`: 4 numbers, what M tokens can carry) and one per channel and pixel (`pixel`: 256 numbers);
   one training run per route, data kind and seed, evaluated after each of `--steps`; then both routes at
   other learning rates (first seed, first data kind, first steps), in case one learning rate favours a route.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

# the tests' tiny Wan (tests/test_wan.py: TINY_WAN)
TINY_WAN = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4,
                text_dim=16, freq_dim=32, ffn_dim=32, num_layers=2, rope_max_seq_len=64)  # fmt: skip
ROUTES = ("decoupled", "append")
CAVEATS = [
    "the tiny Wan backbones are randomly initialised, not pretrained: what an adapter does to a pretrained DiT "
    "(section 1) and how easily a pretrained DiT learns to read Z (section 2) may differ on Wan2.1's real weights",
    "tiny sizes (2 blocks, inner width 24, text width 16, 8x8 latents), a few hundred adapter steps and a few seeds "
    "on synthetic clips (one random pattern per clip plus noise): a comparison of the two routes, not a quality figure",
    "the append route's projected tokens pass through Wan's frozen text embedder (Linear-GELU-Linear) and attn2's "
    "frozen key/value projections; the decoupled route trains its own key/value projections per block: about 6x more "
    "route parameters here (route_parameters), so capacity and the route are not separated",
    "one learning rate for the main runs; lr_check repeats one seed at other learning rates",
]


@dataclass(frozen=True)
class Settings:
    """Every setting of a run (written into the JSON)."""

    steps: tuple[int, ...] = (300, 1000)  # evaluated after each; one training run to the last
    seeds: tuple[int, ...] = (0, 1, 2)
    data: tuple[str, ...] = ("channel", "pixel")  # what a clip's pattern is (see `clips`)
    lr_check: tuple[float, ...] = (3e-3, 1e-2)  # other learning rates, first seed, first data, first steps
    batch: int = 8  # clips per training step
    lr: float = 1e-3  # Adam, on the adapter only
    chunks: int = 4  # N
    chunk_frames: int = 2  # F latent frames per chunk; K = 0 context frames
    size: int = 8  # latent height and width
    vin_tokens: int = 4  # M
    vin_width: int = 16  # D_vin
    prompt_tokens: int = 5  # random prompt token embeddings ...
    prompt_padding: int = 11  # ... then this many zero vectors (as Wan's pipeline pads prompts)
    pattern_noise: float = 0.1  # frame = the clip's pattern + this std of noise
    train_first_sigma: tuple[float, float] = (0.05, 0.35)  # chunk 0's noise in training, uniform
    train_sigma: tuple[float, float] = (0.5, 1.0)  # the other chunks' (one per clip), uniform
    eval_sigma: float = 0.85  # loss_gap's sigma (the probe's) ...
    eval_first_sigma: float = 0.2  # ... and chunk 0's
    eval_clips: int = 32
    init_clips: int = 4


def build(seed: int, s: Settings):
    """A tiny random Wan (seeded) with the library's VIN adapter (decoupled cross-attention, K = 0)."""
    import diffusers

    from vin.backbones.wan import WanVIN
    from vin.config import ModelConfig

    torch.manual_seed(seed)
    wan = diffusers.WanTransformer3DModel(**TINY_WAN)
    config = ModelConfig(vin_tokens=s.vin_tokens, width=s.vin_width, heads=2, vin_process_blocks=1,
                         chunk_frames=s.chunk_frames, context_frames=0, keyframe_stride=1,
                         sample_size=s.size)  # fmt: skip
    return WanVIN(wan, config)


class AppendRoute(nn.Module):
    """Z reaches Wan as extra prompt tokens: proj(Z) (B, M, text_dim) after the prompt (B, L, text_dim).

    Wraps a `WanVIN` for its VIN read and its chunk batching; its decoupled cross-attention is never fed
    (z=None), so the backbone is Wan itself. Has what `Objective.loss` and `loss_gap` read of a model."""

    def __init__(self, vin, zero_init: bool = True) -> None:
        super().__init__()
        self.vin = vin
        self.proj = nn.Linear(vin.config.width, vin.config.text_dim)  # D_vin -> text_dim
        if zero_init:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)
        self.config, self.device, self.dtype = vin.config, vin.device, vin.dtype

    def read_interface(self, x, timestep, *args, **kwargs) -> torch.Tensor:
        return self.vin.read_interface(x, timestep, *args, **kwargs)  # (B, M, D_vin)

    def denoise_chunks(self, x, timestep, prompt_embeds, z, f: int, k: int) -> torch.Tensor:
        """x (B, C, T, H, W), z (B, M, D_vin), or (B, N, M, D_vin) one per chunk -> windows (B, N, C, F, H, W)."""
        if z is None:
            return self.vin.denoise_chunks(x, timestep, prompt_embeds, None, f, k)
        if z.ndim == 3:
            return self.vin.denoise_chunks(x, timestep, self.prompt(prompt_embeds, z), None, f, k)
        windows = [self.vin.denoise_chunks(x, timestep, self.prompt(prompt_embeds, z[:, i]), None, f, k,
                                           chunks=slice(i, i + 1))
                   for i in range(z.shape[1])]  # fmt: skip  (each chunk its own Z: one window at a time)
        return torch.cat(windows, 1)

    def prompt(self, prompt_embeds: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(B, L, text_dim), (B, M, D_vin) -> (B, L + M, text_dim)."""
        return torch.cat([prompt_embeds, self.proj(z).to(prompt_embeds.dtype)], 1)

    def forward(self, x, timestep, prompt_embeds) -> torch.Tensor:
        c = self.config
        z = self.read_interface(x, timestep, None, c.keyframe_stride)
        return self.denoise_chunks(x, timestep, prompt_embeds, z, c.chunk_frames, c.context_frames)


class PlainWan(AppendRoute):
    """Wan alone on every chunk (Z is read and ignored): the baseline loss, through `loss_gap` like the routes."""

    def denoise_chunks(self, x, timestep, prompt_embeds, z, f: int, k: int) -> torch.Tensor:
        return self.vin.denoise_chunks(x, timestep, prompt_embeds, None, f, k)


def prompts(batch: int, s: Settings, gen: torch.Generator, padded: bool = True) -> torch.Tensor:
    """One random prompt for every clip: (B, L, text_dim), L = prompt_tokens (+ prompt_padding zero vectors)."""
    p = torch.randn(1, s.prompt_tokens, TINY_WAN["text_dim"], generator=gen)
    if padded:
        p = torch.cat([p, torch.zeros(1, s.prompt_padding, p.shape[2])], 1)
    return p.expand(batch, -1, -1).contiguous()


def clips(batch: int, s: Settings, gen: torch.Generator, data: str = "pixel") -> torch.Tensor:
    """(B, C, N*F, H, W): every frame of a clip is the clip's random pattern plus small noise. `data`: "channel",
    the pattern is one random value per channel (C numbers: what M tokens can carry); "pixel", a random value
    per channel and pixel (C*H*W numbers)."""
    c, t = TINY_WAN["in_channels"], s.chunks * s.chunk_frames
    hw = (1, 1) if data == "channel" else (s.size, s.size)
    pattern = torch.randn(batch, c, 1, *hw, generator=gen)
    return pattern + s.pattern_noise * torch.randn(batch, c, t, s.size, s.size, generator=gen)


def relative_change(pred: torch.Tensor, wan: torch.Tensor) -> dict[str, float]:
    """max and mean |pred - wan|, each divided by mean |wan|."""
    scale = wan.abs().mean()
    diff = (pred - wan).abs()
    return {"max": float(diff.max() / scale), "mean": float(diff.mean() / scale)}


@torch.no_grad()
def init_effect(seed: int, s: Settings) -> dict[str, dict[str, dict[str, float]]]:
    """What an untrained adapter with a random Z (B, M, D_vin) does to Wan's predictions
    -> {prompt style: {variant: relative_change}}."""
    model = build(seed, s).eval()
    gen = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(s.init_clips, TINY_WAN["in_channels"], s.chunks * s.chunk_frames, s.size, s.size, generator=gen)
    t = torch.rand(s.init_clips, generator=gen) * 1000  # (B,)
    z = torch.randn(s.init_clips, s.vin_tokens, s.vin_width, generator=gen)  # a random, non-zero Z
    torch.manual_seed(seed + 1)
    append = {"append_zero_init": AppendRoute(model, zero_init=True),
              "append_random_init": AppendRoute(model, zero_init=False)}  # fmt: skip
    random_v = [nn.Linear(kv.to_v.in_features, kv.to_v.out_features) for kv in model.z_kv]  # default (random) init
    out = {}
    for style in ("prompt_only", "prompt_zero_padded"):
        p = prompts(s.init_clips, s, gen, padded=style == "prompt_zero_padded")
        geo = (model.config.chunk_frames, model.config.context_frames)
        wan = model.denoise_chunks(x, t, p, None, *geo)  # (B, N, C, F, H, W): Wan's own prediction
        row = {"decoupled": relative_change(model.denoise_chunks(x, t, p, z, *geo), wan)}
        row.update({name: relative_change(route.denoise_chunks(x, t, p, z, *geo), wan) for name, route in append.items()})
        zero_v = [kv.to_v for kv in model.z_kv]
        for kv, v in zip(model.z_kv, random_v):
            kv.to_v = v
        row["decoupled_random_values"] = relative_change(model.denoise_chunks(x, t, p, z, *geo), wan)
        for kv, v in zip(model.z_kv, zero_v):
            kv.to_v = v
        out[style] = row
    return out


def route_model(name: str, seed: int, s: Settings):
    """The model a route trains and the parameters it trains; the same backbone and VIN init for both routes."""
    vin = build(seed, s)
    if name == "decoupled":
        model = vin
        params = [p for p in vin.parameters() if p.requires_grad]
    else:
        model = AppendRoute(vin, zero_init=True)
        params = [p for n, p in vin.named_parameters() if p.requires_grad and not n.startswith("z_kv.")]
        params += list(model.proj.parameters())
    return model, params


def train_times(batch: int, s: Settings, gen: torch.Generator) -> torch.Tensor:
    """(B, N) model times: chunk 0 cleaner (train_first_sigma), the others at one high sigma per clip (train_sigma)."""
    lo, hi = s.train_sigma
    t = (lo + (hi - lo) * torch.rand(batch, 1, generator=gen)).expand(-1, s.chunks).clone()
    lo, hi = s.train_first_sigma
    t[:, 0] = lo + (hi - lo) * torch.rand(batch, generator=gen)
    return t * 1000


def train(name: str, seed: int, s: Settings, data: str, lr: float, steps: tuple[int, ...]) -> dict:
    """Adam steps of the route's adapter on `data` clips, evaluated after each of `steps`
    -> {"train_loss_every_50": [...], "eval": {str(step): evaluate's figures}}."""
    from vin.diffusion.objective import Objective

    model, params = route_model(name, seed, s)
    model.train()
    objective = Objective("flow")
    optimizer = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed + 200)  # the same batches, times and noise for both routes
    p = prompts(s.batch, s, torch.Generator().manual_seed(seed + 300))
    losses, log, evals = [], [], {}
    for step in range(1, max(steps) + 1):
        x0 = clips(s.batch, s, gen, data)  # (B, C, N*F, H, W)
        t, noise = train_times(s.batch, s, gen), torch.randn(x0.shape, generator=gen)
        loss = objective.loss(model, x0, p, t=t, noise=noise)  # x_t = (1-sigma) x0 + sigma noise, target noise - x0
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 50 == 0:
            log.append(sum(losses) / len(losses))
            losses = []
        if step in steps:
            evals[str(step)] = evaluate(model.eval(), seed, s, data)
            model.train()
    vin = model if name == "decoupled" else model.vin
    assert all(q.grad is None for q in vin.backbone.parameters()), "the backbone must stay frozen"
    return {"train_loss_every_50": log, "eval": evals}


def evaluate(model: nn.Module, seed: int, s: Settings, data: str) -> dict[str, float]:
    """loss_gap on held-out clips (chunk 0 at eval_first_sigma), and plain Wan's loss on the same clips and noise."""
    from vin.metrics.probe import loss_gap

    held_out = clips(s.eval_clips, s, torch.Generator().manual_seed(seed + 400), data)
    p = prompts(s.eval_clips, s, torch.Generator().manual_seed(seed + 300))  # the training prompt

    def probe(m) -> dict[str, float]:
        return loss_gap(m, held_out, s.eval_sigma, torch.Generator().manual_seed(seed + 500), s.eval_first_sigma, p)

    out = probe(model)
    vin = model.vin if isinstance(model, AppendRoute) else model
    out["plain_wan"] = probe(PlainWan(vin))["global"]
    out["vs_plain"] = out["global"] / out["plain_wan"] - 1  # < 0: the adapter lowers Wan's loss
    return out


def mean_of(rows: list):
    """The mean over seeds of nested dicts of floats (lists: element-wise)."""
    first = rows[0]
    if isinstance(first, dict):
        return {k: mean_of([r[k] for r in rows]) for k in first}
    if isinstance(first, list):
        return [sum(v) / len(v) for v in zip(*rows)]
    return sum(rows) / len(rows)


def parameter_counts(route: str, s: Settings) -> dict[str, int]:
    """Trainable parameters of a route: all of them, and the route's own (z_kv, or the append projection)."""
    model, params = route_model(route, s.seeds[0], s)
    own = model.z_kv.parameters() if route == "decoupled" else model.proj.parameters()
    return {"trainable_parameters": sum(p.numel() for p in params), "route_parameters": sum(p.numel() for p in own)}


def run_training(s: Settings, start: float) -> dict:
    """Both routes, every data kind and seed: {data: {route: {parameters, per_seed, mean}}}."""
    out = {}
    for data in s.data:
        out[data] = {}
        for route in ROUTES:
            per_seed = []
            for seed in s.seeds:
                per_seed.append(train(route, seed, s, data, s.lr, s.steps))
                last = per_seed[-1]["eval"][str(max(s.steps))]
                took = time.perf_counter() - start
                print(f"{data:<8} {route:<10} seed {seed}: gap {last['gap']:.4f}  ({took:.0f} s)", flush=True)
            out[data][route] = {**parameter_counts(route, s), "per_seed": per_seed, "mean": mean_of(per_seed)}
    return out


def run_lr_check(s: Settings) -> dict:
    """Is the comparison a learning-rate artefact? {route: {lr: evaluate's figures}} (first seed, data, steps)."""
    seed, data, steps = s.seeds[0], s.data[0], (min(s.steps),)
    lrs = (s.lr, *s.lr_check)
    return {route: {f"{lr:g}": train(route, seed, s, data, lr, steps)["eval"][str(steps[0])] for lr in lrs}
            for route in ROUTES}  # fmt: skip


EVAL_COLUMNS = ("global", "other_clip", "own_chunk", "gap", "plain_wan", "vs_plain")


def eval_row(label: str, e: dict) -> str:
    return f"    {label:<26}" + "".join(f"{e[c]:>11.4f}" for c in EVAL_COLUMNS)


def table(result: dict) -> str:
    """The figures as a small text table."""
    lines = ["1. at initialisation, random Z: |pred - Wan| / mean |Wan|, mean over seeds"]
    for style, row in result["init"]["mean"].items():
        lines.append(f"  {style}:")
        lines += [f"    {variant:<26} max {f['max']:8.4f}   mean {f['mean']:8.4f}" for variant, f in row.items()]
    lines.append("2. adapter trained, held-out clips (loss_gap: chunk 0 at sigma 0.2, the rest at 0.85)")
    lines.append("    " + " " * 26 + "".join(f"{c:>11}" for c in EVAL_COLUMNS))
    settings = result["settings"]
    for data, routes in result["training"].items():
        for route, r in routes.items():
            counts = f"{r['trainable_parameters']} trainable, {r['route_parameters']} of the route"
            lines.append(f"  {data} data, {route} ({counts}):")
            for step in map(str, settings["steps"]):
                for seed, run in zip(settings["seeds"], r["per_seed"]):
                    lines.append(eval_row(f"step {step} seed {seed}", run["eval"][step]))
                lines.append(eval_row(f"step {step} mean", r["mean"]["eval"][step]))
    first = f"seed {settings['seeds'][0]}, {settings['data'][0]} data, step {min(settings['steps'])}"
    lines.append(f"  learning rates ({first}):")
    for route, by_lr in result["lr_check"].items():
        lines += [eval_row(f"{route} lr {lr}", e) for lr, e in by_lr.items()]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default=",".join(map(str, Settings.steps)), help="evaluate after these adapter steps")
    ap.add_argument("--seeds", default=",".join(map(str, Settings.seeds)), help="comma-separated seeds")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    s = Settings(steps=tuple(int(v) for v in args.steps.split(",")), seeds=tuple(int(v) for v in args.seeds.split(",")))
    start = time.perf_counter()
    init = [init_effect(seed, s) for seed in s.seeds]
    result = {"settings": asdict(s), "backbone": TINY_WAN, "caveats": CAVEATS,
              "init": {"per_seed": init, "mean": mean_of(init)}, "training": run_training(s, start),
              "lr_check": run_lr_check(s)}  # fmt: skip
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(table(result))
    print(f"wall time {result['wall_seconds']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
