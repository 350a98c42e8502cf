import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vin.cli import main
from vin.videos import read_video

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny.yaml")


@pytest.fixture(scope="module")
def checkpoint(cli_checkpoint) -> Path:
    return cli_checkpoint


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def one_error_line(result, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert pattern in lines[0], lines[0]


def test_train_writes_a_checkpoint_and_logs(checkpoint):
    names = {p.name for p in checkpoint.iterdir()}
    assert {"config.json", "diffusion_pytorch_model.safetensors", "train.yaml", "log.jsonl", "summary.json"} <= names
    assert len((checkpoint / "log.jsonl").read_text().splitlines()) >= 2



def test_training_logs_whether_the_vin_is_read(checkpoint):
    """The last save logs the loss gap at sigma 0.85 on held-out clips: the probe's figure for the exported model."""
    from vin.config import load_config
    from vin.checkpoint import load_model
    from vin.train import make_data, probe_clips, probe_row

    rows = [json.loads(line) for line in (checkpoint / "log.jsonl").read_text().splitlines()]
    logged = [r for r in rows if "loss_gap" in r]
    assert [r["step"] for r in logged] == [6] and logged[0]["loss_gap_sigma"] == 0.85
    config = load_config(checkpoint / "train.yaml")
    again = probe_row(load_model(checkpoint), probe_clips(config, make_data(config, torch.device("cpu"))[0]), 6)
    assert again == pytest.approx(logged[0], rel=1e-5)


def test_end_to_end_console_script(checkpoint, tmp_path):
    """The installed entry point: train (fixture), generate an mp4, read it back with PyAV."""
    out = tmp_path / "video.mp4"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "vin", "generate", "--checkpoint", str(checkpoint), "--frames", "24",
           "--steps", "3", "--seed", "1", "--out", str(out), "--quiet", "--json"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    video = read_video(out)
    assert video.shape == (24, 16, 16, 3)
    import json

    info = json.loads(proc.stdout)
    assert info["path"] == str(out) and info["frames"] == 24 and info["height"] == 16
    assert info["strategy"] == "vin" and info["model_calls"] == 3 and info["window_calls"] == 18


@pytest.mark.parametrize("suffix", [".gif", ".npy"])
def test_generate_other_formats(checkpoint, tmp_path, suffix):
    out = tmp_path / f"v{suffix}"
    result = run("generate", "--checkpoint", str(checkpoint), "--frames", "8", "--steps", "2", "--out", str(out),
                 "--upscale", "2", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    video = read_video(out)
    assert video.shape == ((8, 16, 16, 3) if suffix == ".npy" else (8, 32, 32, 3))
    if suffix == ".npy":
        assert video.dtype == np.uint8


def test_missing_checkpoint(tmp_path):
    result = run("generate", "--checkpoint", str(tmp_path / "nope"), "--frames", "8", "--out", str(tmp_path / "v.mp4"))
    one_error_line(result, "does not exist")
    assert not (tmp_path / "v.mp4").exists()


def test_corrupt_checkpoint(checkpoint, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        (bad / name).write_bytes((checkpoint / name).read_bytes())
    (bad / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 64)
    result = run("generate", "--checkpoint", str(bad), "--frames", "8", "--out", str(tmp_path / "v.mp4"))
    one_error_line(result, "could not be loaded")
    assert [p.name for p in tmp_path.iterdir()] == ["bad"]


def test_frames_that_cannot_be_chunked(checkpoint, tmp_path):
    result = run("generate", "--checkpoint", str(checkpoint), "--frames", "10", "--out", str(tmp_path / "v.mp4"))
    one_error_line(result, "10 frames cannot be cut into chunks of 4 frames")
    assert list(tmp_path.iterdir()) == []


def test_output_in_missing_folder(checkpoint, tmp_path):
    result = run("generate", "--checkpoint", str(checkpoint), "--frames", "8", "--out", str(tmp_path / "no" / "v.mp4"))
    one_error_line(result, "does not exist; create it first")


def test_unknown_config_key(tmp_path):
    result = run("train", TINY, "train.stepz=3", f"train.out_dir={tmp_path / 'run'}")
    one_error_line(result, "train.stepz")
    assert not (tmp_path / "run").exists()


def test_bad_generation_options(checkpoint, tmp_path):
    out = str(tmp_path / "v.mp4")
    one_error_line(run("generate", "--checkpoint", str(checkpoint), "--frames", "8", "--out", out, "--label", "1"),
                   "unconditional")  # fmt: skip
    one_error_line(run("generate", "--checkpoint", str(checkpoint), "--frames", "8", "--out", out, "--steps", "0"),
                   "steps must be a whole number of at least 1, got 0")  # fmt: skip
    one_error_line(run("generate", "--checkpoint", str(checkpoint), "--frames", "8", "--out", str(tmp_path / "v.avi")),
                   "must end in one of")  # fmt: skip
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("strategy", ["autoregressive", "overlap", "spectral"])
def test_generate_with_a_strategy(checkpoint, tmp_path, strategy):
    out = tmp_path / "v.npy"
    result = run("generate", "--checkpoint", str(checkpoint), "--strategy", strategy, "--frames", "12", "--steps", "2",
                 "--out", str(out), "--quiet", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    import json

    info = json.loads(result.stdout)
    assert info["strategy"] == strategy and info["model_calls"] == (6 if strategy == "autoregressive" else 2)
    assert read_video(out).shape == (12, 16, 16, 3)


def test_strategy_that_cannot_run_says_so(checkpoint, tmp_path):
    result = run("generate", "--checkpoint", str(checkpoint), "--strategy", "overlap", "--frames", "10",
                 "--overlap-frames", "0", "--out", str(tmp_path / "v.mp4"))  # fmt: skip
    one_error_line(result, "overlap: 10 frames do not tile into windows of 4 frames every 4 frames; use 12")
    assert list(tmp_path.iterdir()) == []


REQUIRED_EVAL_FIELDS = {"video", "strategy", "frames", "seed", "mawe", "scene_cuts", "subject_consistency",
                        "background_consistency", "dynamic_degree", "temporal_flickering", "boundary_jump", "flops"}  # fmt: skip


def test_eval_generates_and_reports(checkpoint, tmp_path):
    j, m, p = tmp_path / "e.json", tmp_path / "e.md", tmp_path / "e.png"
    result = run("eval", "--checkpoint", str(checkpoint), "--strategies", "data,vin,independent", "--frames", "8,16",
                 "--seeds", "0,1", "--steps", "2", "--features", "pixels", "--json", str(j), "--markdown", str(m),
                 "--plot", str(p), "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(j.read_text())
    assert report["schema"] == "vin.eval/1" and len(report["rows"]) == 12
    assert all(REQUIRED_EVAL_FIELDS <= set(row) for row in report["rows"])
    assert {(s["strategy"], s["frames"]) for s in report["summary"]} == {(s, f) for s in ("data", "vin", "independent") for f in (8, 16)}
    assert "| 16 | vin | 2 |" in m.read_text() and "| 16 | vin | 2 |" in result.output
    assert p.read_bytes()[:4] == b"\x89PNG"


def test_eval_video_files(tmp_path):
    from vin.data.synthetic import SyntheticVideos
    from vin.videos import write_video

    folder = tmp_path / "videos"
    folder.mkdir()
    for seed in range(2):
        write_video(SyntheticVideos().video(seed, 16).frames, folder / f"v{seed}.npy")
    (folder / "notes.txt").write_text("not a video")
    (folder / "w_broken.mp4").write_text("not a video either")
    result = run("eval", str(folder), "--features", "pixels", "--chunk-frames", "8", "--json", str(tmp_path / "e.json"))
    assert result.exit_code == 0, result.output
    assert "warning: skipped" in result.stderr and "w_broken.mp4" in result.stderr
    rows = json.loads((tmp_path / "e.json").read_text())["rows"]
    assert [Path(r["video"]).name for r in rows] == ["v0.npy", "v1.npy"]
    assert all(r["strategy"] == "file" and r["flops"] is None and r["background_drift"] is None for r in rows)


def test_eval_bad_input(checkpoint, tmp_path):
    one_error_line(run("eval"), "either video files")
    one_error_line(run("eval", str(tmp_path / "missing.mp4")), "does not exist")
    (tmp_path / "bad.mp4").write_text("text")
    result = run("eval", str(tmp_path / "bad.mp4"))
    assert result.exit_code == 2 and "none of the 1 videos could be evaluated" in result.stderr
    (tmp_path / "bad.mp4").unlink()
    one_error_line(run("eval", "--checkpoint", str(checkpoint), "--strategies", "vin,best"), "unknown strategy 'best'")
    one_error_line(run("eval", "--checkpoint", str(checkpoint), "--frames", "8", "--seeds", str(2**21)), "training seeds")
    one_error_line(run("eval", "--checkpoint", str(checkpoint), "--frames", "eight"), "comma-separated integers")
    one_error_line(run("eval", "--checkpoint", str(checkpoint), "--frames", "10"), "chunks")
    one_error_line(run("eval", "--checkpoint", str(checkpoint), "--json", str(tmp_path / "no" / "e.json")), "does not exist")
    one_error_line(run("eval", "--checkpoint", str(checkpoint), "--plot", str(tmp_path / "e.jpg")), "should end in .png")
    one_error_line(run("eval", "--checkpoint", str(checkpoint), "--feature-size", "8"), "--feature-size")
    assert list(tmp_path.iterdir()) == []


def test_full_attention_baseline_trains_and_samples_the_full_rows(checkpoint, tmp_path):
    full = tmp_path / "full"
    args = ["train", TINY, f"train.out_dir={full}", "train.steps=3", "model.vin_tokens=0", "model.context_frames=0",
            "model.full_frames=16", "--quiet"]  # fmt: skip
    assert run(*args).exit_code == 0
    one_error_line(run(*args[:-2], "model.full_frames=8", "--quiet"), "shorter than the longest training clip")
    out = tmp_path / "e.json"
    result = run("eval", "--checkpoint", str(checkpoint), "--full-checkpoint", str(full), "--strategies", "vin,full",
                 "--frames", "16", "--seeds", "0", "--steps", "2", "--features", "pixels", "--json", str(out), "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {r["strategy"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["full"]["chunk_frames"] == rows["vin"]["chunk_frames"] == 4  # chunk figures in the VIN model's chunks
    assert rows["full"]["flops"] != rows["vin"]["flops"]
    one_error_line(run("generate", "--checkpoint", str(full), "--frames", "16", "--out", str(tmp_path / "v.mp4")),
                   "sample it with the full strategy")  # fmt: skip
    one_error_line(run("eval", "--checkpoint", str(checkpoint), "--full-checkpoint", str(checkpoint), "--frames", "16"),
                   "not a full-attention model")  # fmt: skip
    one_error_line(run("eval", str(out), "--full-checkpoint", str(full)), "use it with --checkpoint")
    assert run("generate", "--checkpoint", str(full), "--strategy", "full", "--frames", "16", "--steps", "2",
               "--out", str(tmp_path / "v.mp4"), "--quiet").exit_code == 0  # fmt: skip


def test_report_combines_parallel_evaluations(checkpoint, tmp_path):
    parts = []
    for i, strategies in enumerate(("data,vin", "independent")):
        parts.append(tmp_path / f"part{i}.json")
        result = run("eval", "--checkpoint", str(checkpoint), "--strategies", strategies, "--frames", "8", "--seeds", "0,1",
                     "--steps", "2", "--features", "pixels", "--json", str(parts[-1]), "--quiet")  # fmt: skip
        assert result.exit_code == 0, result.output
    out, md = tmp_path / "all.json", tmp_path / "all.md"
    result = run("report", *map(str, parts), "--json", str(out), "--markdown", str(md), "--title", "both halves")
    assert result.exit_code == 0, result.output
    merged = json.loads(out.read_text())
    assert len(merged["rows"]) == 6 and {s["strategy"] for s in merged["summary"]} == {"data", "vin", "independent"}
    separate = [json.loads(p.read_text())["summary"] for p in parts]
    assert [s for s in merged["summary"] if s["strategy"] == "vin"] == [s for s in separate[0] if s["strategy"] == "vin"]
    assert md.read_text().startswith("# both halves") and "| 8 | independent | 2 |" in md.read_text()
    one_error_line(run("report", str(tmp_path / "missing.json")), "does not exist")
    (tmp_path / "x.json").write_text("{}")
    one_error_line(run("report", str(tmp_path / "x.json")), "not a vin eval JSON report")
    other = json.loads(parts[1].read_text())
    other["feature_model"] = "efficientnet-lite0@224"
    (tmp_path / "other.json").write_text(json.dumps(other))
    one_error_line(run("report", str(parts[0]), str(tmp_path / "other.json")), "do not compare")
    one_error_line(run("report"), "at least one report")
    png = tmp_path / "mawe.png"
    assert run("report", str(parts[0]), "--plot", str(png), "--plot-metrics", "mawe").exit_code == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    one_error_line(run("report", str(parts[0]), "--plot-metrics", "beauty"), "unknown metric 'beauty'")
    narrow = run("report", *map(str, parts), "--frames", "8", "--table-metrics", "mawe,background_drift")
    assert narrow.exit_code == 0 and "| frames | strategy | n | mawe | background_drift |" in narrow.output
    one_error_line(run("report", str(parts[0]), "--frames", "16"), "no videos of 16 frames")


BAD_GENERATE = [  # (arguments, what the one error line says); every one fails before any sampling
    (["--seed", "99999999999999999999"], "seed must be a whole number in [0, 9223372036854775807]"),
    (["--seed", "-1"], "seed must be a whole number in [0, 9223372036854775807], got -1"),
    (["--device", "tpu"], "device 'tpu' is not one vin runs on; use cpu, cuda or cuda:N"),
    (["--device", "mps"], "device 'mps' is not one vin runs on"),
    (["--device", "meta"], "device 'meta' is not one vin runs on"),
    (["--fps", "0"], "fps must be a whole number of frames per second in [1, 240], got 0"),
    (["--fps", "-5"], "fps must be a whole number of frames per second in [1, 240], got -5"),
    (["--fps", "0", "--out-suffix", ".gif"], "fps must be a whole number of frames per second in [1, 240], got 0"),
    (["--upscale", "0"], "upscale must be a whole number in [1, 64], got 0"),
    (["--nproc", "2", "--timeout", "0"], "Invalid value for '--timeout': 0 is not in the range x>=1."),
    (["--nproc", "0"], "Invalid value for '--nproc'"),
    (["--frames", str(2**24)], "need about"),
    (["--keyframe-stride", "0"], "keyframe_stride must be a whole number of at least 1, got 0"),
    (["--chunk-frames", "0"], "chunk_frames must be a whole number of at least 1, got 0"),
    (["--context-frames", "-2"], "context_frames must be a whole number of at least 0, got -2"),
    (["--threads", "0"], "--threads must be a whole number of at least 1, got 0"),
    (["--threads", "-1"], "--threads must be a whole number of at least 1, got -1"),
    (["--threads", "10000"], "--threads 10000 is more than the"),
    (["--steps", "0"], "steps must be a whole number of at least 1, got 0"),
    (["--guidance", "nan"], "guidance must be a number in [0, 100]"),
    (["--fusion-fraction", "1.5"], "fusion_fraction must be a number in [0, 1], got 1.5"),
    (["--strategy", "fifo", "--queue", "0"], "queue must be a whole number of at least 1, got 0"),
    (["--label", "-1"], "label must be a whole number of at least 0, got -1"),
    (["--frames", "10"], "10 frames cannot be cut into chunks of 4 frames"),
    (["--strategy", "best"], "Invalid value for '--strategy'"),
    (["--bogus"], "No such option '--bogus'"),
]


@pytest.mark.parametrize("args, message", BAD_GENERATE, ids=[" ".join(a) for a, _ in BAD_GENERATE])
def test_bad_generate_input_is_one_line_and_leaves_nothing(checkpoint, tmp_path, args, message):
    suffix = ".mp4"
    if "--out-suffix" in args:
        suffix, args = args[args.index("--out-suffix") + 1], args[: args.index("--out-suffix")]
    result = run("generate", "--checkpoint", str(checkpoint), "--frames", "8", "--steps", "2", "--quiet",
                 "--out", str(tmp_path / f"v{suffix}"), *args)  # fmt: skip
    one_error_line(result, message)
    assert list(tmp_path.iterdir()) == []


BAD_TRAIN = [
    ("train.timestep_sampling=bogus", "train.timestep_sampling must be one of logit_normal, uniform, got 'bogus'"),
    ("train.lr=-1", "train.lr must be a number in [0, inf), got -1.0"),
    ("train.ema_decay=1.5", "train.ema_decay must be a number in [0, 1], got 1.5"),
    ("train.chunk_counts=[0]", "train.chunk_counts must be a non-empty list of positive integers"),
    ("train.device=tpu", "train.device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    ("train.threads=10000", "train.threads 10000 is more than the"),
    ("model.heads=3", "model.heads=3 must divide model.width=32 (e.g. heads=4)"),
    ("model.depth=0", "model.depth must be a whole number of at least 1, got 0"),
    ("model.coupling=sideways", "model.coupling must be one of concat, cross, got 'sideways'"),
]


@pytest.mark.parametrize("override, message", BAD_TRAIN, ids=[o for o, _ in BAD_TRAIN])
def test_bad_train_config_is_one_line_and_starts_nothing(tmp_path, override, message):
    result = run("train", TINY, override, f"train.out_dir={tmp_path / 'run'}", "--quiet")
    one_error_line(result, message)
    assert list(tmp_path.iterdir()) == []


def test_a_config_json_of_another_model_is_refused(checkpoint, tmp_path):
    """A config.json beside weights of another shape (depth, classes) is refused, not loaded half-random."""
    for key, value, pattern in (("depth", 3, "no tensor 'blocks.2."), ("num_classes", 4, "no tensor 'y_embedder.")):
        bad = tmp_path / key
        bad.mkdir()
        meta = json.loads((checkpoint / "config.json").read_text())
        (bad / "config.json").write_text(json.dumps({**meta, key: value}))
        (bad / "diffusion_pytorch_model.safetensors").write_bytes((checkpoint / "diffusion_pytorch_model.safetensors").read_bytes())
        result = run("generate", "--checkpoint", str(bad), "--frames", "8", "--out", str(tmp_path / "v.mp4"))
        one_error_line(result, "does not match its config.json")
        assert pattern in result.stderr
    assert not (tmp_path / "v.mp4").exists()


def test_help_does_not_import_torch():
    code = ("import sys\nfrom vin.cli import main\nfor args in (['--help'], ['generate', '--help'], ['eval', '--help']):\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code == 0, e.code\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'numpy', 'omegaconf') if m in sys.modules))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_sigterm_while_writing_leaves_no_file_and_exits_143(checkpoint, tmp_path):
    """SIGTERM in the middle of writing the mp4: the temporary file is removed, nothing is left, exit 143."""
    out = tmp_path / "v.mp4"
    code = ("import sys, time\nimport vin.videos as v\n"
            "def slow(frames, path, fps):\n    open(path, 'wb').write(b'partial')\n    time.sleep(60)\n"
            "v._write_mp4 = slow\nfrom vin.cli import main\n"
            f"main(['generate', '--checkpoint', {str(checkpoint)!r}, '--frames', '8', '--steps', '1', '--quiet', '--out', {str(out)!r}])")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".v-*.mp4")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert list(tmp_path.glob(".v-*.mp4")), "the writer never started"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert "Traceback" not in proc.stderr.read()
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_start_up_exits_130_quietly(checkpoint, tmp_path):
    cmd = [sys.executable, "-m", "vin", "generate", "--checkpoint", str(checkpoint), "--frames", "8", "--out", str(tmp_path / "v.mp4")]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    maps, deadline = Path(f"/proc/{proc.pid}/maps"), time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # wait until torch's library is loading: vin's code runs
        try:
            if "libtorch" in maps.read_text():
                break
        except OSError:  # no /proc (not Linux), or the process just ended
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert "Traceback" not in proc.stderr.read()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("then", ["time.sleep(20)", "pass"])  # the command goes on after the import, or ends there
def test_a_signal_during_an_import_is_held_until_the_import_finishes(tmp_path, signum, code, then):
    """A signal inside an import stops the command once the import is over: numpy and torch break if cut half-way."""
    marker = tmp_path / "imported"
    (tmp_path / "slow_module.py").write_text(
        "import os, time\n"
        f"os.kill(os.getpid(), {int(signum)})\n"
        "for _ in range(50):\n    time.sleep(0.002)  # Python runs between the sleeps: a signal not held lands here\n"
        f"open({str(marker)!r}, 'w').write('done')\n")  # fmt: skip
    script = ("import sys, time\n"
              f"sys.path.insert(0, {str(tmp_path)!r})\n"
              "from vin.cli import main\n"
              "@main.command('slow')\n"
              f"def slow():\n    import slow_module\n    {then}\n    print('the command ended')\n"
              "main(['slow'])\n")  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert marker.read_text() == "done"  # the import finished
    assert time.monotonic() - start < 15  # and the signal then stopped the 20 s sleep
    assert "Traceback" not in proc.stderr
