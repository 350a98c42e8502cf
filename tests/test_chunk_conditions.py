"""A condition per chunk (prompt travel): a label or prompt per chunk reaches only its own chunks' windows,
the same condition everywhere is the single-condition video, and what cannot work is refused in one line."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from vin.cli import main
from vin.diffusion.sampling import ChunkConditions
from vin.errors import VinError
from vin.generation import GenerationOptions, generate, run_strategy
from vin.generation.conditions import per_chunk, read_prompt_file

from .conftest import tiny_model

F = 4  # the tiny model's chunk frames
CHUNKED = ("vin", "independent", "autoregressive", "fifo")


@pytest.fixture(scope="module")
def model():
    return tiny_model(num_classes=3)


def sample(model, strategy, label, guidance=1.0, frames=4 * F, seed=0) -> torch.Tensor:
    o = GenerationOptions(frames=frames, steps=3, seed=seed, label=label, guidance=guidance, progress=False)
    return run_strategy(model, strategy, o).sample


@pytest.mark.parametrize("strategy", CHUNKED)
def test_the_same_label_for_every_chunk_is_the_videos_label(model, strategy):
    for guidance in (1.0, 3.0):
        torch.testing.assert_close(sample(model, strategy, (2, 2, 2, 2), guidance), sample(model, strategy, 2, guidance),
                                   rtol=0, atol=1e-6)  # fmt: skip


def test_independent_chunks_take_their_own_label(model):
    travel = sample(model, "independent", (0, 0, 1, 2), guidance=3.0)
    for label, chunks in ((0, slice(0, 2 * F)), (1, slice(2 * F, 3 * F)), (2, slice(3 * F, 4 * F))):
        alone = sample(model, "independent", label, guidance=3.0)
        torch.testing.assert_close(travel[:, :, chunks], alone[:, :, chunks], rtol=0, atol=1e-5)  # batched otherwise


def test_autoregressive_chunks_before_a_change_are_the_first_labels_video(model):
    travel, first = sample(model, "autoregressive", (1, 1, 0, 0)), sample(model, "autoregressive", 1)
    torch.testing.assert_close(travel[:, :, : 2 * F], first[:, :, : 2 * F], rtol=0, atol=1e-6)
    assert (travel[:, :, 2 * F :] - first[:, :, 2 * F :]).abs().max() > 1e-3


def test_vin_chunks_take_their_own_label_and_the_video_stays_one(model):
    travel = sample(model, "vin", (1, 1, 0, 0))
    first, second = sample(model, "vin", 1), sample(model, "vin", 0)
    assert (travel - first).abs().max() > 1e-3 and (travel - second).abs().max() > 1e-3
    # the change is in the chunks that were given the new label, not at the start of the video
    early, late = (travel - first)[:, :, :F].abs().mean(), (travel - first)[:, :, 3 * F :].abs().mean()
    assert late > 3 * early


def test_a_span_runs_as_one_pass_over_its_windows(model):
    """vin with labels (0, 0, 1, 1): each span's windows are the model's windows under that label, read whole."""
    from vin.diffusion.sampling import GuidedModel

    x, t = torch.randn(1, 3, 4 * F, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([700.0])
    spans = ChunkConditions.of([torch.tensor([0]), None, torch.tensor([1]), None])
    assert spans.spans == ((0, 1), (1, 2), (2, 3), (3, 4))
    a, b = torch.tensor([0]), torch.tensor([1])
    conditions = ChunkConditions.of([a, a, b, b])
    assert conditions.spans == ((0, 2), (2, 4)) and conditions.at(3) is b
    assert conditions.within(1, 3).spans == ((0, 1), (1, 2))
    o = GenerationOptions(frames=4 * F, steps=2, label=(0, 0, 1, 1), progress=False)
    from vin.generation.strategies import plan, vin_tokens

    p = plan(model, "vin", o)
    with torch.no_grad():
        whole = {y: model.denoise_chunks(x, t, torch.tensor([y]), vin_tokens(model, p, "global", x, t, torch.tensor([y])),
                                         F, p.context_frames) for y in (0, 1)}  # fmt: skip
        call = GuidedModel(model, conditions, 1.0)
        from vin.diffusion.sampling import per_span

        out = call(lambda xx, tt, yy: per_span(yy, lambda lab, ch: model.denoise_chunks(
            xx, tt, lab, vin_tokens(model, p, "global", xx, tt, lab), F, p.context_frames, chunks=ch)), x, t, 4)
    torch.testing.assert_close(out[:, :2], whole[0][:, :2], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[:, 2:], whole[1][:, 2:], rtol=0, atol=1e-6)


@pytest.mark.parametrize("strategy, label, message", [
    ("overlap", (0, 1, 1, 1), "a condition per chunk needs windows that are whole chunks: use vin, autoregressive"),
    ("full", (0, 1, 1, 1), "not full"),
    ("vin", (0, 1, 1), "3 conditions .* for 4 chunks of 4 frames: give one, or one per chunk"),
    ("vin", (0, 3, 1, 1), r"label must be in \[0, 2\], got 3"),
])  # fmt: skip
def test_what_cannot_take_a_label_per_chunk_is_refused(model, strategy, label, message):
    with pytest.raises(VinError, match=message):
        generate(model, frames=4 * F, steps=2, strategy=strategy, label=label)


def test_labels_must_be_whole_numbers_and_an_unconditional_model_takes_none():
    with pytest.raises(VinError, match="label must be a whole number of at least 0, got -1"):
        GenerationOptions(label=(1, -1))
    assert GenerationOptions(label=[4]).label == 4 and GenerationOptions(label=[4, 5]).label == (4, 5)
    with pytest.raises(VinError, match="this model is unconditional: drop the label"):
        generate(tiny_model(), frames=4 * F, steps=2, label=(0, 1, 1, 1))


def test_a_schedule_gives_each_chunk_the_prompt_it_starts_under():
    assert per_chunk({0: "a", 2: "b"}, 4, "prompt") == ["a", "a", "b", "b"]
    assert per_chunk(["a", "b", "c"], 3, "prompt") == ["a", "b", "c"]
    assert per_chunk("a", 4, "prompt") is None and per_chunk({0: "a"}, 4, "prompt") is None
    with pytest.raises(VinError, match="a schedule starts at chunk 0 and its chunks are in \\[0, 3\\]"):
        per_chunk({1: "a"}, 4, "prompt")
    with pytest.raises(VinError, match="starts at chunk 0 and its chunks are in \\[0, 3\\] \\(4 chunks\\), got 0..5"):
        per_chunk({0: "a", 5: "b"}, 4, "prompt")


@pytest.mark.parametrize("text, message", [
    ("0: a cat\n2 a dog\n", "line 2: expected `CHUNK: prompt`"),
    ("0: a cat\n0: a dog\n", "line 2: chunk 0 does not come after chunk 0"),
    ("# nothing\n\n", "holds no `CHUNK: prompt` line"),
])  # fmt: skip
def test_a_prompt_file_is_chunk_colon_prompt_lines(tmp_path, text, message):
    path = tmp_path / "prompts.txt"
    path.write_text("# a schedule\n0: a red car\n\n3: a blue car on a road\n")
    assert read_prompt_file(path) == {0: "a red car", 3: "a blue car on a road"}
    path.write_text(text)
    with pytest.raises(VinError, match=message):
        read_prompt_file(path)


def test_vin_generate_takes_a_label_per_chunk(tmp_path, cli_checkpoint):
    out = tmp_path / "v.npy"
    result = CliRunner().invoke(main, ["generate", "--checkpoint", str(cli_checkpoint), "--frames", "8", "--steps", "2",
                                       "--label", "1,2", "--out", str(out)])  # fmt: skip
    assert result.exit_code != 0 and "this model is unconditional: drop the label" in result.output
    result = CliRunner().invoke(main, ["generate", "--checkpoint", str(cli_checkpoint), "--frames", "8", "--label", "1,x",
                                       "--out", str(out)])  # fmt: skip
    assert result.exit_code != 0 and "--label takes comma-separated integers, got '1,x'" in result.output
    assert not out.exists()
