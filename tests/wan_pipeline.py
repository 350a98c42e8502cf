"""A tiny random Wan2.1 pipeline in the standard diffusers folder layout (model_index.json, transformer/, vae/,
text_encoder/, tokenizer/, scheduler/), built from configs and saved as `WanPipeline.save_pretrained` saves
it: nothing is downloaded. The tokenizer is a word-level `tokenizers` model wrapped as a PreTrainedTokenizerFast."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = "a red ball bounces on the green floor blue cat walks slowly in room".split()
TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4,
                   text_dim=16, freq_dim=32, ffn_dim=32, num_layers=2, rope_max_seq_len=64)  # fmt: skip
SPATIAL, TEMPORAL = 8, 4  # the tiny VAE compresses as Wan2.1's does


def tokenizer():
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])  # UMT5 ends with </s>
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def save_tiny_wan_pipeline(root: Path, seed: int = 0) -> Path:
    """Writes the pipeline to `root` and returns it."""
    import diffusers
    import transformers

    torch.manual_seed(seed)
    tok = tokenizer()
    encoder = transformers.UMT5EncoderModel(transformers.UMT5Config(
        vocab_size=len(tok), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, relative_attention_num_buckets=8))  # fmt: skip
    transformer = diffusers.WanTransformer3DModel(**TRANSFORMER)
    vae = diffusers.AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[],
                                     temperal_downsample=[False, True, True], latents_mean=[0.1, -0.2, 0.0, 0.3],
                                     latents_std=[1.5, 0.8, 1.0, 1.2])  # fmt: skip
    scheduler = diffusers.UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                                  num_train_timesteps=1000, flow_shift=3.0)  # as Wan2.1 at 480p
    pipe = diffusers.WanPipeline(tokenizer=tok, text_encoder=encoder, vae=vae, scheduler=scheduler, transformer=transformer)
    pipe.save_pretrained(root)
    return root
