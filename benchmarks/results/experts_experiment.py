"""Experiment: a high-noise expert (strong VIN read) and a low-noise expert (longer trained), switched by sigma."""
import json, sys
import numpy as np, torch
from torch import nn
from vin.checkpoint import load_model
from vin.generation.api import generate
from vin.metrics.evaluate import evaluate_video
from vin.metrics.features import FeatureExtractor

torch.set_num_threads(1)

class Experts(nn.Module):
    def __init__(self, high, low, boundary):
        super().__init__()
        self.high, self.low, self.boundary = high, low, boundary
        self.latent_decoder = None
    @property
    def config(self): return self.high.config
    @property
    def device(self): return self.high.device
    @property
    def dtype(self): return self.high.dtype
    def pick(self, t): return self.high if float(t.max()) >= self.boundary * 1000 else self.low
    def read_interface(self, x, t, *a, **k): return self.pick(t).read_interface(x, t, *a, **k)
    def denoise_chunks(self, x, t, *a, **k): return self.pick(t).denoise_chunks(x, t, *a, **k)

high = load_model(sys.argv[1]); low = load_model(sys.argv[2])
frames = int(sys.argv[3]); seeds = [0, 1, 2, 3]
ext = FeatureExtractor("efficientnet-lite0", image_size=112)
out = {}
for b in [float(v) for v in sys.argv[4].split(",")]:
    m = Experts(high, low, b)
    rows = []
    for seed in seeds:
        g = generate(m, frames, 10, seed, "vin")
        rows.append(evaluate_video(np.ascontiguousarray(g.video.numpy()), ext, 16, video=f"{b}/{seed}", strategy="vin", seed=seed, procedural=True))
    keys = ["background_drift", "boundary_jump", "sprite_color_changes", "track_breaks", "sprite_count_change", "mawe", "scene_cuts", "subject_consistency"]
    out[b] = {k: round(float(np.mean([getattr(r, k) for r in rows])), 4) for k in keys}
    print(b, out[b], flush=True)
json.dump(out, open(sys.argv[5], "w"), indent=1)
