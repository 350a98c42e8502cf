"""Tables, JSON and plots of `vin eval` results.

JSON (`vin eval --json OUT`), schema "vin.eval/1":
    {"schema": "vin.eval/1", "feature_model": str, "flow_method": str,
     "rows": [VideoMetrics fields, one object per video],
     "summary": [{"strategy", "frames", "n", "<metric>_mean", "<metric>_std", "<metric>_ci95"} per group]}
Groups are (strategy, frames); a metric that does not apply is null. Field names only ever get added.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import fields
from pathlib import Path

import numpy as np

from vin.files import atomic_write_bytes
from vin.metrics.evaluate import LOWER_IS_BETTER, METRICS, VideoMetrics

SCHEMA = "vin.eval/1"
TABLE_METRICS = (
    "mawe", "scene_cuts", "subject_consistency", "background_consistency", "dynamic_degree", "temporal_flickering",
    "boundary_jump", "background_drift", "sprite_color_changes", "trajectory_acceleration", "flops", "seconds",
)  # fmt: skip
PLOT_METRICS = ("mawe", "scene_cuts", "subject_consistency", "background_consistency", "boundary_jump", "background_drift")


def summarize(rows: list[VideoMetrics]) -> list[dict]:
    """Mean, std and 95% interval half-width (normal approximation) of every metric per (strategy, frames)."""
    groups: dict[tuple[str, int], list[VideoMetrics]] = defaultdict(list)
    for r in rows:
        groups[(r.strategy, r.frames)].append(r)
    out = []
    for (strategy, frames), members in groups.items():
        entry: dict = {"strategy": strategy, "frames": frames, "n": len(members)}
        for m in METRICS:
            values = np.array([getattr(r, m) for r in members if getattr(r, m) is not None], dtype=np.float64)
            if len(values):
                std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
                entry[f"{m}_mean"], entry[f"{m}_std"] = float(values.mean()), std
                entry[f"{m}_ci95"] = 1.96 * std / math.sqrt(len(values))
            else:
                entry[f"{m}_mean"] = entry[f"{m}_std"] = entry[f"{m}_ci95"] = None
        out.append(entry)
    return out


def _fmt(value: float | None, std: float | None, metric: str) -> str:
    if value is None:
        return "–"
    if metric == "flops":
        return f"{value / 1e9:.1f} G"
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return f"{text} ± {std:.2g}" if std else text


def markdown_table(summary: list[dict], feature_model: str, metrics: tuple[str, ...] = TABLE_METRICS) -> str:
    """One line per (frames, strategy): mean ± std over seeds; the best value per length in bold."""
    present = [m for m in metrics if any(s.get(f"{m}_mean") is not None for s in summary)]
    head = "| frames | strategy | n | " + " | ".join(present) + " |"
    lines = [head, "|" + "---:|" * 3 + "---:|" * len(present)]
    for frames in sorted({s["frames"] for s in summary}):
        group = [s for s in summary if s["frames"] == frames]
        best = {}
        for m in present if len([s for s in group if s["strategy"] != "data"]) > 1 else ():
            if m in ("flops", "seconds", "dynamic_degree"):
                continue
            vals = [s[f"{m}_mean"] for s in group if s[f"{m}_mean"] is not None and s["strategy"] != "data"]
            if vals:
                best[m] = min(vals) if m in LOWER_IS_BETTER else max(vals)
        for s in group:
            cells = []
            for m in present:
                cell = _fmt(s[f"{m}_mean"], s[f"{m}_std"], m)
                cells.append(f"**{cell}**" if s["strategy"] != "data" and best.get(m) == s[f"{m}_mean"] else cell)
            lines.append(f"| {frames} | {s['strategy']} | {s['n']} | " + " | ".join(cells) + " |")
    note = (f"\nmean ± std over seeds; bold: best of the generated videos at each length (`data` = real procedural "
            f"videos, for reference). Features: {feature_model}. Lower is better for every metric but the two "
            f"consistencies and temporal flickering; dynamic degree is 1 for a moving video.\n")
    return "\n".join(lines) + "\n" + note


def report_json(rows: list[VideoMetrics], feature_model: str, flow_method: str) -> dict:
    return {"schema": SCHEMA, "feature_model": feature_model, "flow_method": flow_method,
            "rows": [r.to_dict() for r in rows], "summary": summarize(rows)}  # fmt: skip


def load_reports(paths: list[str | Path]) -> tuple[list[VideoMetrics], str, str]:
    """The rows of several `vin eval --json` reports (e.g. halves of one evaluation run in parallel), checked
    to be comparable: same schema, feature model and flow method. Returns (rows, feature_model, flow_method)."""
    from vin.errors import VinError

    rows: list[VideoMetrics] = []
    known = {f.name for f in fields(VideoMetrics)}
    setting = None
    for path in map(Path, paths):
        if not path.is_file():
            raise VinError(f"{path} does not exist")
        try:
            report = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise VinError(f"{path} is not a vin eval JSON report ({err})") from None
        if not isinstance(report, dict) or report.get("schema") != SCHEMA:
            raise VinError(f"{path} is not a vin eval JSON report (schema {SCHEMA}); write one with vin eval --json")
        this = (report["feature_model"], report["flow_method"])
        if setting is not None and this != setting:
            raise VinError(f"{path} was measured with {this[0]} features and {this[1]} flow, the others with "
                           f"{setting[0]} and {setting[1]}: their figures do not compare")  # fmt: skip
        setting = this
        rows += [VideoMetrics(**{k: v for k, v in row.items() if k in known}) for row in report["rows"]]
    if setting is None:
        raise VinError("give at least one report")
    return rows, setting[0], setting[1]


def write_json(report: dict, path: str | Path) -> Path:
    return atomic_write_bytes(path, (json.dumps(report, indent=1) + "\n").encode())


def write_text(text: str, path: str | Path) -> Path:
    return atomic_write_bytes(path, text.encode())


def plot(summary: list[dict], path: str | Path, metrics: tuple[str, ...] = PLOT_METRICS, title: str = "") -> Path:
    """Each metric against video length, one line per strategy with its std as error bars (a PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [m for m in metrics if any(s.get(f"{m}_mean") is not None for s in summary)]
    cols = min(3, len(present))
    rows = math.ceil(len(present) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    strategies = list(dict.fromkeys(s["strategy"] for s in summary))
    for ax, m in zip(axes.flat, present):
        for strategy in strategies:
            pts = sorted((s["frames"], s[f"{m}_mean"], s[f"{m}_std"] or 0.0) for s in summary
                         if s["strategy"] == strategy and s[f"{m}_mean"] is not None)  # fmt: skip
            if not pts:
                continue
            x, y, e = zip(*pts)
            style = dict(linestyle="--", color="gray") if strategy == "data" else {}
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=strategy, **style)
        ax.set_xscale("log", base=2)
        frames = sorted({s["frames"] for s in summary})
        ax.set_xticks(frames, [str(f) for f in frames])
        ax.set_xlabel("frames")
        ax.set_title(m + (" (lower is better)" if m in LOWER_IS_BETTER else ""), fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(present) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
