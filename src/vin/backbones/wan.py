"""A VIN on a pretrained Wan2.1 DiT (diffusers' `WanTransformer3DModel`), chunk-parallel.

Every chunk's window (`K` context latent frames, then its `F` own) goes through the unchanged Wan
forward as one batch, so Wan's 3D RoPE, computed from each window's own shape, gives positions local
to the window for free. The VIN (`vin.model.interface.VideoInterface`) reads the keyframes of the whole
noisy latent video once per step; its tokens `Z_t` reach Wan through a **decoupled cross-attention**
in every block: beside the prompt's cross-attention, each block's queries attend to `Z_t` with key and
value projections of their own, and the two outputs add before the output projection. This is how
Wan's image-to-video model reads its image tokens (`added_kv_proj_dim`), and IP-Adapter's design: the
value projections start at zero, so an untrained adapter leaves Wan's predictions exactly as they were
(the prompt's attention is never diluted by extra keys, as appending Z to the prompt would do).

Only the adapter trains (the VIN, its time embedding, the Z projections, the first chunk's context
placeholder); the backbone is frozen. Chunk 0's context is a learned latent placeholder, so all
windows have one length and batch together.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import (
    backbone_config, backbone_fingerprint, backbone_settings, check_recorded_settings, pipeline_folder, resolve_backbone,
    transformer_folder,
)  # fmt: skip
from ..config import ModelConfig, check_geometry
from ..devices import backbone_dtype
from ..errors import VinError
from ..model.embed import TimestepEmbedder
from ..model.interface import VideoInterface
from ..model.protocol import TextEncoder, VideoModel
from ..model.windows import chunk_times, read_times, window_pixels, window_times
from ..weights import WEIGHTS_NAME, first_mismatch, read_safetensors


class ZKeyValue(nn.Module):
    """One block's key and value projections of Z_t (B, M, D_vin) -> (B, M, inner) each; values start at zero."""

    def __init__(self, vin_width: int, inner: int, eps: float) -> None:
        super().__init__()
        self.to_k = nn.Linear(vin_width, inner)
        self.to_v = nn.Linear(vin_width, inner)
        self.norm_k = nn.RMSNorm(inner, eps=eps)
        nn.init.zeros_(self.to_v.weight)
        nn.init.zeros_(self.to_v.bias)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.norm_k(self.to_k(z)), self.to_v(z)


class ZCrossAttention:
    """An attention processor for a Wan block's cross-attention (attn2): the prompt's attention as Wan computes
    it, plus an attention of the same queries to Z_t, added before the block's output projection: one `to_q`,
    one `to_out`, as diffusers' Wan processor adds an image-to-video model's image tokens. Without Z_t (None)
    the block runs Wan's own processor."""

    def __init__(self, base, kv: ZKeyValue, adapter: "WanVIN") -> None:
        self.base, self.kv, self.adapter = base, kv, adapter

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        z = self.adapter.current_z
        if z is None or encoder_hidden_states is None:
            return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)

        def heads(x: torch.Tensor) -> torch.Tensor:  # (W, L, inner) -> (W, H, L, Dh)
            return x.unflatten(2, (attn.heads, -1)).transpose(1, 2)

        q = heads(attn.norm_q(attn.to_q(hidden_states)))
        k, v = heads(attn.norm_k(attn.to_k(encoder_hidden_states))), heads(attn.to_v(encoder_hidden_states))
        prompt = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)  # (W, H, L, Dh)
        kz, vz = (heads(p).to(q.dtype) for p in self.kv(z))  # (W, H, M, Dh)
        read = F.scaled_dot_product_attention(q, kz, vz)
        out = (prompt + read).transpose(1, 2).flatten(2).type_as(q)  # (W, L, inner)
        return attn.to_out[1](attn.to_out[0](out))


LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]  # every attention projection of Wan's blocks (attn1, attn2)


class WanVIN(nn.Module, VideoModel):
    """Wan2.1 denoising every chunk in parallel, coupled to a VIN; `backbone` is frozen, the rest trains.

    `config`: the VIN's settings (a `ModelConfig`: vin_tokens, width and heads of the VIN, its process
    blocks, chunk_frames F, context_frames K, keyframe_stride s, sample_size, flow_shift); what the
    backbone decides (in_channels, patch_hw, text_dim, ...) is read from `backbone.config`. `self.config`
    is the resolved config (the protocol's geometry); its `width` is the VIN's, `token_width` Wan's.
    `lora_rank` > 0: LoRA adapters on every attention projection of the DiT (through peft) train too.
    """

    needs_condition = True  # Wan samples from a prompt; guidance contrasts it with a negative prompt

    def __init__(self, backbone, config: ModelConfig | None = None, lora_rank: int = 0) -> None:
        super().__init__()
        bc = backbone.config
        self.config = replace(config or ModelConfig(), **backbone_settings(bc)).check()
        c = self.config
        self.lora_rank = lora_rank
        self.backbone = backbone.requires_grad_(False)
        if lora_rank > 0:
            add_lora(backbone, lora_rank)  # in float32 whatever the backbone's dtype: it trains
        inner = bc.num_attention_heads * bc.attention_head_dim
        self.t_embedder = TimestepEmbedder(c.width)
        self.interface = VideoInterface(bc.in_channels, bc.patch_size[1], c.width, c.heads, c.vin_tokens,
                                        c.vin_process_blocks, c.mlp_ratio)  # fmt: skip
        self.z_kv = nn.ModuleList(ZKeyValue(c.width, inner, bc.eps) for _ in backbone.blocks)
        placeholder = torch.zeros(bc.in_channels, max(c.context_frames, 1), 1, 1)
        self.context_placeholder = nn.Parameter(placeholder, requires_grad=c.context_frames > 0)  # unused without context
        self.current_z: torch.Tensor | None = None  # (W, M, D_vin) while `denoise_chunks` runs the backbone
        self.latent_decoder = None  # set where the model is loaded: latents -> pixels (AutoencoderKLWan)
        self.inner_width = inner
        self.backbone_dtype = backbone.patch_embedding.weight.dtype  # windows and prompts enter the backbone in it
        self.text: WanText | None = None  # the pipeline folder's tokenizer and UMT5 encoder, loaded on first use
        for block, kv in zip(backbone.blocks, self.z_kv):
            block.attn2.set_processor(ZCrossAttention(block.attn2.processor, kv, self))

    # ---- the model protocol: building, saving, loading, what trains (vin.model.protocol)
    extra_settings = ("lora_rank", "backbone_fingerprint")  # config.json keys beside the ModelConfig's

    @classmethod
    def resolve_config(cls, config: ModelConfig) -> ModelConfig:
        return resolve_backbone(config)

    @classmethod
    def build(cls, config: ModelConfig, lora_rank: int = 0, dtype: torch.dtype | None = None) -> "WanVIN":
        return cls(load_backbone(config.backbone, dtype), config, lora_rank)

    @classmethod
    def load(cls, folder: Path, config: ModelConfig, meta: dict, device: str | torch.device,
             backbone: str | Path | None = None, dtype: torch.dtype | None = None) -> "WanVIN":  # fmt: skip
        """The adapter in `folder` on its recorded backbone, or on `backbone` (another copy of it), in eval mode;
        the backbone in `dtype` (None: bfloat16 on CUDA, float32 elsewhere), the adapter in float32."""
        if backbone is not None:
            config = replace(config, backbone=str(backbone))
        check_recorded_settings(meta, config.backbone, f"checkpoint {folder}")
        recorded, found = meta.get("backbone_fingerprint"), backbone_fingerprint(config.backbone)
        if recorded and recorded != found:
            warnings.warn(f"checkpoint {folder} was trained on a backbone with fingerprint {recorded}; {config.backbone!r} "
                          f"has {found} (another backbone, or a re-saved copy of it): the adapter may not fit it", stacklevel=2)  # fmt: skip
        if dtype is None:
            dtype = backbone_dtype(None, device)
        skeleton = torch.device(device).type == "meta"  # checks only: shapes, no weight read (gigabytes for Wan)
        model = cls(load_backbone(config.backbone, dtype, weights=not skeleton), config, int(meta.get("lora_rank", 0)))
        if not skeleton:
            model.load_trained_state_dict(read_safetensors(folder / WEIGHTS_NAME, f"checkpoint {folder}: the adapter weights"))
        return model.to(device).eval()

    @classmethod
    def text_encoder(cls, config: ModelConfig, device: str | torch.device) -> TextEncoder:
        """The pipeline folder's UMT5 (`WanText`, loaded on the first call), which encodes as `encode_prompt` does."""
        import functools

        folder = pipeline_folder(config.backbone) if config.backbone else None
        if folder is None:
            raise VinError("data.captions as text needs the backbone's text encoder: point model.backbone at the whole "
                           "Wan2.1 pipeline folder (with text_encoder/ and tokenizer/), or give precomputed embeddings")  # fmt: skip
        loaded = functools.cache(lambda: WanText(folder, torch.device(device)))
        return TextEncoder(str((folder / "text_encoder").resolve()), MAX_SEQUENCE_LENGTH, lambda texts: loaded()(texts))

    def save(self, folder: Path) -> None:
        """The adapter only: config.json (the `ModelConfig`, whose `backbone` is the backbone's folder, and the LoRA
        rank) and the adapter's weights as safetensors; the backbone stays where it is."""
        from safetensors.torch import save_file

        from ..files import atomic_path, atomic_write_bytes

        if not self.config.backbone:
            raise VinError("this WanVIN's backbone has no folder (config.backbone): build it with the folder "
                           "the backbone was loaded from, so the checkpoint can find it")  # fmt: skip
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"_class_name": type(self).__name__, **asdict(self.config),
                "backbone": str(Path(self.config.backbone).expanduser().resolve()), "lora_rank": self.lora_rank,
                "backbone_fingerprint": backbone_fingerprint(self.config.backbone)}  # fmt: skip
        with atomic_path(folder / WEIGHTS_NAME) as tmp:
            save_file({k: v.detach().contiguous().cpu() for k, v in self.trained_state_dict().items()}, tmp)
        atomic_write_bytes(folder / "config.json", (json.dumps(meta, indent=1) + "\n").encode())

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor but the backbone's own (megabytes, not gigabytes); its LoRA adapters, when there are any."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.") or ".lora_" in k}

    def load_trained_state_dict(self, weights: dict[str, torch.Tensor]) -> None:
        """Loads what `trained_state_dict` gave; a missing, unexpected or misshapen tensor is a VinError naming it."""
        mismatch = first_mismatch(self.trained_state_dict(), weights)
        if mismatch:
            raise VinError(f"the adapter weights do not match this adapter and backbone ({mismatch})")
        self.load_state_dict(weights, strict=False)

    def compile_blocks(self) -> None:
        for block in self.backbone.blocks:
            block.compile()

    def checkpoint_activations(self) -> None:
        """Every Wan block recomputes its activations in the backward pass (less memory, ~30% more compute).
        Z_t goes into the checkpoint as an input, so the recomputation reads what the forward read."""
        from torch.utils.checkpoint import checkpoint

        for block in self.backbone.blocks:
            inner = block.forward

            def run(z, *args, _inner=inner, **kwargs):
                with self.reading(z):
                    return _inner(*args, **kwargs)

            def forward(*args, _run=run, **kwargs):
                return checkpoint(_run, self.current_z, *args, use_reentrant=False, **kwargs)

            block.forward = forward

    @property
    def device(self) -> torch.device:
        return self.context_placeholder.device

    @property
    def dtype(self) -> torch.dtype:
        return self.context_placeholder.dtype

    @property
    def token_width(self) -> int:
        return self.inner_width

    @property
    def default_scheduler(self) -> str:
        return "pipeline" if self._pipeline_part("scheduler") is not None else "euler"

    @property
    def schedulers(self) -> tuple[str, ...]:
        return ("pipeline", "euler") if self._pipeline_part("scheduler") is not None else ("euler",)

    def make_scheduler(self, name: str, clip: bool):
        """`pipeline`: the folder's own scheduler (Wan2.1: UniPC with its flow shift), as WanPipeline samples;
        `euler`: flow-matching Euler with `model.flow_shift`."""
        import diffusers

        from ..diffusion.objective import make_scheduler

        if name == "euler":
            return make_scheduler("flow", clip, self.config.flow_shift)
        folder = self._pipeline_part("scheduler")
        kind = json.loads((folder / "scheduler_config.json").read_text())["_class_name"]
        return getattr(diffusers, kind).from_pretrained(folder)

    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """Token embeddings (B, 512, text_dim) of text prompts, exactly as `WanPipeline.encode_prompt` makes them."""
        if self.text is None:
            folder = pipeline_folder(self.config.backbone) if self.config.backbone else None
            if folder is None:
                raise VinError("this Wan backbone is a transformer folder alone: it has no text encoder; point "
                               "model.backbone (or --backbone) at the whole pipeline folder (with model_index.json, "
                               "text_encoder/ and tokenizer/), or give prompt embeddings (--prompt-embeds)")  # fmt: skip
            self.text = WanText(folder, self.device)
        return self.text(prompts).to(self.dtype)

    def _pipeline_part(self, name: str) -> Path | None:
        """A part of the backbone's pipeline folder (`scheduler`, `vae`, ...), or None without one."""
        folder = pipeline_folder(self.config.backbone) if self.config.backbone else None
        return folder / name if folder is not None and (folder / name).is_dir() else None

    def null_condition(self, labels: torch.Tensor) -> torch.Tensor:
        raise VinError("classifier-free guidance with Wan contrasts the prompt with a negative prompt: give its "
                       "embeddings (null_labels / --negative-embeds)")  # fmt: skip

    # ---- the VIN read and the chunk-parallel backbone
    def read_interface(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        labels: torch.Tensor | None,
        keyframe_stride: int,
        frame_offset: int = 0,
        merge=None,
    ) -> torch.Tensor:
        """Z_t = VIN(keyframes of the whole noisy latent video): (B, C, T, H, W) -> (B, M, D_vin).

        The read is not conditioned on the prompt (`labels`, accepted as the strategies pass it): the
        tokens carry what the video shows, the prompt reaches every window through Wan's own attention.
        `frame_offset`, `merge`: one rank's share of a video spread over processes (as
        `VINModel.read_interface`).
        `timestep` (B,) in [0, 1000], or (B, N) one per chunk: the read is then conditioned on their mean
        and every keyframe token carries its offset from it (as `VINModel.read_interface`).
        """
        timestep, offsets = read_times(timestep, x.shape[2], merge)
        return self.interface(x, self.t_embedder(timestep), keyframe_stride, None, frame_offset, merge, offsets)

    @contextmanager
    def reading(self, z: torch.Tensor | None) -> Iterator[None]:
        """Z_t for the Wan blocks' cross-attention inside the block (None: Wan alone); nests."""
        previous, self.current_z = self.current_z, z
        try:
            yield
        finally:
            self.current_z = previous

    def denoise_chunks(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        prompt_embeds: torch.Tensor,
        z: torch.Tensor | None,
        chunk_frames: int,
        context_frames: int,
        time_scale: float = 1.0,
        chunks: slice | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Every chunk's window through Wan as one batch: x (B, C, T, H, W), timestep (B,) or (B, N) one per
        chunk, prompt_embeds (B, L, text_dim), z (B, M, D_vin) or None -> Wan's flow prediction of each
        window (B, N, C, K+F, H, W). With a time per chunk every token gets its frame's time (Wan takes a
        timestep per token): context frames at their owner's, the chunk's own frames at the chunk's.
        `chunks`: only those windows; `context` (B, C, K, H, W): chunk 0's context when `x` is part of a
        longer video. `time_scale` must be 1 (Wan's RoPE positions are its own)."""
        c = self.config
        f, k = chunk_frames, context_frames
        if time_scale != 1.0:
            raise VinError("Wan keeps its own RoPE positions: position interpolation does not apply; sample with "
                           "--no-position-interpolation (position_interpolation=False)")  # fmt: skip
        b = x.shape[0]
        n = check_geometry(x.shape[2], f, k, 1, c.keyframe_stride)
        blank = self.context_placeholder[:, :k].expand(b, -1, -1, x.shape[3], x.shape[4]).to(x.dtype)  # (B, C, K, H, W)
        windows = window_pixels(x, f, k, blank if context is None and k else context)  # (B, N, C, K+F, H, W)
        tokens = (x.shape[3] // c.patch_hw) * (x.shape[4] // c.patch_hw)  # per latent frame
        if timestep.ndim == 2:  # every token at its frame's time (context frames at their owner's)
            t = window_times(chunk_times(timestep, n), f, k).repeat_interleave(tokens, dim=2)  # (B, N, (K+F) * tokens)
        else:
            t = timestep[:, None].expand(-1, n)  # (B, N)
        if z is not None:
            z = z.unsqueeze(1).expand(-1, n, -1, -1) if z.ndim == 3 else z  # (B, N, M, D_vin)
        if chunks is not None:
            windows, t, z = windows[:, chunks], t[:, chunks], (z[:, chunks] if z is not None else None)
        n = windows.shape[1]
        windows, t = windows.flatten(0, 1).to(self.backbone_dtype), t.flatten(0, 1)  # (B*N, C, K+F, H, W), (B*N[, L])
        zw = z.flatten(0, 1) if z is not None else None
        prompts = prompt_embeds.to(self.backbone_dtype).repeat_interleave(n, dim=0)
        with self.reading(zw):
            out = self.backbone(windows, t, prompts, return_dict=False)[0]
        return out.unflatten(0, (b, n))

    def forward(
        self, x: torch.Tensor, timestep: torch.Tensor, prompt_embeds: torch.Tensor
    ) -> torch.Tensor:
        """One denoising evaluation with the model's own geometry (training): the VIN read, then all chunks in
        parallel -> windows (B, N, C, K+F, H, W)."""
        c = self.config
        z = self.read_interface(x, timestep, prompt_embeds, c.keyframe_stride)
        return self.denoise_chunks(x, timestep, prompt_embeds, z, c.chunk_frames, c.context_frames)


def add_lora(backbone, rank: int) -> None:
    """LoRA adapters of `rank` (alpha = rank: scale 1) on every attention projection of Wan's blocks, through
    peft; their B matrices start at zero, so the adapted DiT starts as the pretrained one."""
    try:
        from peft import LoraConfig
    except ImportError:
        raise VinError("train.lora_rank > 0 needs peft: pip install peft (or set train.lora_rank=0)") from None
    backbone.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True, target_modules=LORA_TARGETS))
    for name, weight in backbone.named_parameters():  # peft makes them in the base layer's dtype; they train: float32
        if "lora_" in name:
            weight.data = weight.data.float()


def load_backbone(path: str | Path, dtype: torch.dtype | None = None, weights: bool = True):
    """A `WanTransformer3DModel` from a local diffusers folder (config.json + safetensors), in `dtype` (None:
    float32) whatever it was saved in, with what diffusers keeps in float32 (`_keep_in_fp32_modules`: the time
    embedder, the modulation tables, the norms) in float32; nothing is downloaded. `weights=False`: the skeleton
    on the `meta` device, no weight read (what a request's checks need: shapes and sizes)."""
    import diffusers

    backbone_config(path)  # a VinError that says what is wrong with the folder
    folder = transformer_folder(path)
    config = diffusers.WanTransformer3DModel.load_config(folder)
    with torch.device("meta"):
        model = diffusers.WanTransformer3DModel.from_config(config)
    if not weights:
        return model.eval()
    index = folder / "diffusion_pytorch_model.safetensors.index.json"  # sharded weights, as large models are saved
    names = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else ["diffusion_pytorch_model.safetensors"]
    weights: dict[str, torch.Tensor] = {}
    for name in names:
        weights.update(read_safetensors(folder / name, f"wan backbone {str(folder)!r}"))
    mismatch = first_mismatch(model.state_dict(), weights)
    if mismatch:
        raise VinError(f"wan backbone {str(folder)!r}: its weights do not match its config.json ({mismatch})")
    model.load_state_dict(weights, assign=True)
    model.rope = type(model.rope)(model.rope.attention_head_dim, model.rope.patch_size, model.rope.max_seq_len)  # buffers off meta
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or ())
    for name, tensor in model.named_parameters():
        fp32 = bool(keep & set(name.split(".")))
        tensor.data = tensor.data.to(torch.float32 if fp32 else (dtype or torch.float32))
    return model.eval()


MAX_SEQUENCE_LENGTH = 512  # WanPipeline's max_sequence_length: prompts are padded (with zeros) or cut to this


class WanText:
    """A pipeline folder's tokenizer and UMT5 text encoder (`tokenizer/`, `text_encoder/`), encoding prompts as
    `WanPipeline._get_t5_prompt_embeds` does: cleaned text, 512 tokens, the encoder's states for the real tokens
    and zeros after them (Wan's cross-attention has no mask). A longer prompt is cut, with a warning."""

    def __init__(self, folder: Path, device: torch.device) -> None:
        import transformers

        for part in ("tokenizer", "text_encoder"):
            if not (folder / part).is_dir():
                raise VinError(f"wan pipeline {str(folder)!r} has no {part}/ folder: text prompts need it; give prompt "
                               "embeddings (--prompt-embeds) instead, or a complete pipeline folder")  # fmt: skip
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder / "tokenizer")
        self.encoder = transformers.UMT5EncoderModel.from_pretrained(folder / "text_encoder").to(device).eval()

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> torch.Tensor:
        import warnings

        from diffusers.pipelines.wan.pipeline_wan import prompt_clean

        texts = [prompt_clean(p) for p in prompts]
        full = self.tokenizer(texts, add_special_tokens=True).input_ids
        for text, ids in zip(texts, full):
            if len(ids) > MAX_SEQUENCE_LENGTH:
                warnings.warn(f"the prompt {text[:40]!r}... has {len(ids)} tokens; Wan reads the first {MAX_SEQUENCE_LENGTH}")
        inputs = self.tokenizer(texts, padding="max_length", max_length=MAX_SEQUENCE_LENGTH, truncation=True,
                                add_special_tokens=True, return_attention_mask=True, return_tensors="pt")  # fmt: skip
        device = next(self.encoder.parameters()).device
        states = self.encoder(inputs.input_ids.to(device), inputs.attention_mask.to(device)).last_hidden_state
        keep = inputs.attention_mask.to(device).bool()[:, :, None]  # (B, 512, 1): the real tokens
        return torch.where(keep, states, torch.zeros_like(states)).float()  # (B, 512, text_dim)
