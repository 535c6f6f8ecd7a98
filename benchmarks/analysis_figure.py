"""README figure: axon rose plot per condition on the sample data, plus grid-angle accuracy.

Run: .venv/bin/python benchmarks/analysis_figure.py [--raw data/synth/raw]
Writes benchmarks/figures/rose_by_condition.png. The sample raw tree is made with the shipped
synth config if it does not exist yet; masks are its truth class maps (as hand labels would be).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from neuroseg import io
from neuroseg.analysis import plots
from neuroseg.analysis.measure import measure_all, pool
from neuroseg.analysis.report import rose_title
from neuroseg.analysis.settings import analyze_settings
from neuroseg.analysis.sources import find_sources
from neuroseg.data.sample_tree import make_dataset

ROOT = Path(__file__).resolve().parents[1]
FIGURE = ROOT / "benchmarks" / "figures" / "rose_by_condition.png"


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """A shipped primary config with overrides, as its entry point would see it."""
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose(name, overrides=overrides)


def grid_errors(rows: list[dict[str, object]], truth_csv: Path) -> dict[str, list[float]]:
    """Absolute grid angle errors (deg, on the 90-deg circle) per true spacing; 'missed' counts."""
    truth = {t["image"].removeprefix("originals/"): t for t in io.read_csv(truth_csv)}
    errors: dict[str, list[float]] = {}
    for row in rows:
        true = truth[str(row["image"])]
        key = f"{float(true['grid_spacing_px']):g} px" if true["grid_spacing_px"] else "no grid"
        if not true["grid_angle_deg"]:
            errors.setdefault(key, []).append(0.0 if row["grid_angle"] == "" else np.inf)
        elif row["grid_angle"] == "":
            errors.setdefault(key, []).append(np.inf)
        else:
            diff = float(row["grid_angle"]) - float(true["grid_angle_deg"])
            errors.setdefault(key, []).append(abs((diff + 45.0) % 90.0 - 45.0))
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=ROOT / "data" / "synth" / "raw")
    parser.add_argument("--dpi", type=int, default=80)
    args = parser.parse_args()
    if not (args.raw / "originals").is_dir():
        synth = compose_config("synth", [f"out_dir={args.raw}"])
        keys = ("per_condition", "height", "width", "bit_depth", "seed", "duplicates")
        make_dataset(args.raw, **{key: synth[key] for key in keys})
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config("analyze", [f"images={args.raw}", f"output={tmp}"])
    settings, run = analyze_settings(cfg)
    sources, _ = find_sources(args.raw, None, run.group_by)
    results = measure_all(sources, settings)
    groups = pool(results)
    directions = {g: (a["pixel_offsets"], a["pixel_weights"]) for g, a in groups.items()}
    titles = {g: rose_title(g, a["grid_found"]) for g, a in groups.items()}
    plots.save(plots.rose_panel(directions, settings.plots.bins, titles), FIGURE, args.dpi)
    print(f"wrote {FIGURE} ({FIGURE.stat().st_size / 1024:.0f} KB) from {len(sources)} images")
    truth_csv = args.raw / "truth" / "images.csv"
    if truth_csv.is_file():
        for key, errs in sorted(grid_errors([r.row for r in results], truth_csv).items()):
            errs = np.array(errs)
            ok = errs[np.isfinite(errs)]
            wrong = f"grid {key}: {errs.size} images, {np.isinf(errs).sum()} wrong detections"
            if key == "no grid" or ok.size == 0:
                print(wrong)
            else:
                print(f"{wrong}, angle error mean {ok.mean():.3f} max {ok.max():.3f} deg")


if __name__ == "__main__":
    main()
