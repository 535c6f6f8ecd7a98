"""Does the lab's answer survive predicted masks? Sample -> prepare -> train -> predict -> analyze.

Run from the repo root:
  python -m benchmarks.end_to_end            # CPU minutes: 4 images/condition, 384x512, 12 epochs
  python -m benchmarks.end_to_end --quick    # a smoke run for the test (192x256, 1 epoch)
  python -m benchmarks.end_to_end --full     # GPU: 9 images/condition at 1536x2048, 100 epochs
  ... --style clean                          # the clean sample world (0.2 um/px) instead
Writes benchmarks/results/end_to_end.json (--out to change).

The sample tree is the lab style by default (docs/sample-data.md: the lab's scale, clutter,
dense thin axons, labels painted as sparse thick strokes, the full thin truth beside them). The
axons model (task=axons) is trained on the tree's train split; its test originals are segmented
with `neuroseg.predict`, then `neuroseg.analyze` runs on the predicted masks, on the hand-painted
labels and (lab style) on the full truth of the same images, with the plate design (pixel size,
conditions) on. Per image the alignment C of predicted vs hand (and vs truth) masks gives
Pearson r and the mean bias; per claim (conclusions.csv where the analysis writes it, else the
per-group mean C's sign) whether both say the same. Grid plates without any axons, segmented the
same way, show what the model draws on pillars alone: any axon it predicts there should not run
along the pillar rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from benchmarks.common import format_table, machine_info, write_results
from benchmarks.epoch import CONF_DIR, compose_train
from neuroseg import io
from neuroseg.analysis.orientation import alignment_index, measure_axons
from neuroseg.analysis.report import run_analysis
from neuroseg.analysis.settings import analyze_settings
from neuroseg.data.lab_image import make_lab_image
from neuroseg.data.lab_settings import LabStyle
from neuroseg.data.sample import ensure_sample
from neuroseg.data.sample_image import illumination, lattice, place_cells, rasterize_cells
from neuroseg.data.settings import read_group_file
from neuroseg.inference import folder
from neuroseg.inference.settings import inference_settings, prediction_settings
from neuroseg.synth import lab_style, synth_config
from neuroseg.train import train

SIZES = {  # per_condition, source (H, W), crop (H, W), epochs, accelerator
    "quick": (1, (192, 256), (96, 128), 1, "cpu"),
    "default": (4, (384, 512), (192, 256), 12, "cpu"),
    "full": (9, (1536, 2048), (512, 768), 100, "gpu"),
}
CLEAN_PIXEL_SIZE_UM = 0.2  # the clean sample generator's (conf/synth.yaml pixel_size_um)


def world(style: str) -> LabStyle | None:
    """The lab style's settings (conf/synth.yaml lab:) for style "lab", None for "clean"."""
    return lab_style(synth_config(["style=lab"])) if style == "lab" else None


def pixel_size_um(lab: LabStyle | None) -> float:
    """The pixel size the sample tree was drawn at."""
    return CLEAN_PIXEL_SIZE_UM if lab is None else lab.pixel_size_um


def compose_entry(name: str, overrides: list[str]) -> DictConfig:
    """The shipped config of entry point `name` with `overrides`."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(name, overrides=overrides)


def prepared_sample(
    work: Path, per_condition: int, hw: tuple[int, int], seed: int, lab: LabStyle | None = None
) -> Path:
    """The sample raw tree (lab style with `lab`, else clean) prepared into whole-image tiles
    (1x1), made once and reused."""
    synth = {"per_condition": per_condition, "height": hw[0], "width": hw[1]}
    synth |= {"seed": seed, "duplicates": 0}
    if lab is not None:
        synth |= {"style": "lab", "lab": lab}
    palette = OmegaConf.to_container(read_group_file(CONF_DIR / "palette" / "qlab.yaml"))
    prepare = {"fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 42}
    prepare |= {"rows": 1, "cols": 1, "palette": palette, "workers": 1}
    return ensure_sample(work / "raw", work / "prepared", synth, prepare)


def train_axons(prepared: Path, run_dir: Path, crop_hw: tuple[int, int], epochs: int,
                accelerator: str) -> Path:  # fmt: skip
    """Train task=axons from random weights; returns the best checkpoint's path."""
    overrides = [
        f"trainer={accelerator}", "task=axons", "encoder=vgg11", "encoder.weights=null",
        f"data.dir={prepared}", f"data.crop_hw=[{crop_hw[0]},{crop_hw[1]}]",
        "data.num_workers=0", "data.cache=true", f"trainer.max_epochs={epochs}",
        "trainer.log_every_n_steps=1", "test=false", f"paths.output_dir={run_dir}",
    ]  # fmt: skip
    if accelerator == "gpu":
        overrides += ["data=gpu", "trainer.precision=bf16-mixed", "model.channels_last=true"]
    train(compose_train(overrides))
    best = sorted(p for p in (run_dir / "checkpoints").glob("*.ckpt") if p.stem != "last")
    return best[-1] if best else run_dir / "checkpoints" / "last.ckpt"


def test_originals(raw: Path, prepared: Path, out: Path) -> Path:
    """Copies of the test split's originals as `<condition>/<n>.tif` (inputs stay untouched)."""
    rows = io.read_csv(prepared / "manifest.csv")
    sources = sorted(
        {(r["condition"], Path(r["source"]).name) for r in rows if r["split"] == "test"}
    )
    for condition, name in sources:
        (out / condition).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raw / "originals" / condition / name, out / condition / name)
    return out


def grid_without_axons(rng: np.random.Generator, hw: tuple[int, int], spacing_px: float,
                       contrast: float) -> tuple[np.ndarray, float]:  # fmt: skip
    """(uint8 image, lattice angle): a pillar plate with cells but no axons, as make_image draws."""
    angle = float(rng.uniform(0, 90))
    scale = min(hw[0] / 1536, hw[1] / 2048)
    cells = place_cells(rng, hw, radius_px=30 * max(scale, 0.35), clusters=2, isolated=3)
    _, _, body = rasterize_cells(cells, hw)
    gray = 0.45 + contrast * lattice(hw, angle, spacing_px, rng.uniform(0, 1, size=2))
    gray = (gray * (1 - body) + 0.75 * body) * illumination(hw, rng)
    gray += rng.normal(0, 0.02, hw)
    return np.round(np.clip(gray, 0, 1) * 255).astype(np.uint8), angle


def predict_folder(ckpt: Path, images: Path, out: Path, hw: tuple[int, int], device: str) -> Path:
    """`neuroseg.predict` on a folder, windows the size of the images."""
    overrides = [f"ckpt_path={ckpt}", f"input={images}", f"output={out}", f"device={device}"]
    overrides.append(f"window=[{min(hw[0], 768)},{min(hw[1], 1024)}]")
    cfg = compose_entry("predict", overrides)
    folder.predict_folder(inference_settings(cfg, "predict"), prediction_settings(cfg))
    return out


def analyze_masks(images: Path, masks: Path, out: Path, pixel_size: float) -> Path:
    """`neuroseg.analyze` with the sample's pixel size, so the plate design is used."""
    overrides = [f"images={images}", f"masks={masks}", f"output={out}"]
    cfg = compose_entry("analyze", [*overrides, f"pixel_size_um={pixel_size}"])
    return run_analysis(*analyze_settings(cfg))


def per_image_agreement(hand: Path, predicted: Path) -> dict[str, object]:
    """Pearson r and mean bias of predicted vs hand C over images included in both analyses."""
    rows = {r["image"]: r for r in io.read_csv(hand / "per_image.csv")}
    pairs = [
        (float(rows[r["image"]]["axon_alignment"]), float(r["axon_alignment"]), r["image"])
        for r in io.read_csv(predicted / "per_image.csv")
        if r["axon_alignment"] != "" and rows[r["image"]]["axon_alignment"] != ""
    ]
    hand_c = np.array([p[0] for p in pairs])
    pred_c = np.array([p[1] for p in pairs])
    enough = len(pairs) >= 3 and hand_c.std() > 0 and pred_c.std() > 0
    return {
        "n_images": len(rows),
        "n_compared": len(pairs),
        "pearson_r": float(np.corrcoef(hand_c, pred_c)[0, 1]) if enough else None,
        "mean_bias": float((pred_c - hand_c).mean()) if pairs else None,
        "images": [{"image": i, "hand_c": h, "predicted_c": p} for h, p, i in pairs],
    }


def conclusions_agree(hand: Path, predicted: Path) -> dict[str, object]:
    """Claims of both analyses side by side: conclusions.csv if written, else group mean C."""
    if (hand / "conclusions.csv").is_file() and (predicted / "conclusions.csv").is_file():
        a, b = claims(hand), claims(predicted)
        source = "conclusions.csv"
    else:
        a, b = group_signs(hand), group_signs(predicted)
        source = "sign of per-group mean C (no conclusions.csv)"
    rows = [
        {"claim": k, "hand": a[k], "predicted": b.get(k, ""), "agree": a[k] == b.get(k)}
        for k in sorted(a)
    ]
    return {"source": source, "claims": rows, "n_agree": sum(r["agree"] for r in rows)}


def claims(folder: Path) -> dict[str, str]:
    """{"question group reference": significant} from an analysis' conclusions.csv."""
    rows = io.read_csv(folder / "conclusions.csv")
    return {
        f"{r['question']} {r['group']} {r['reference']}".strip(): r["significant"] for r in rows
    }


def group_signs(folder: Path) -> dict[str, str]:
    """{"<group> mean C": "axes" | "diagonals"}: the sign of each group's mean C."""
    rows = [r for r in io.read_csv(folder / "per_image.csv") if r["axon_alignment"] != ""]
    signs = {}
    for group in sorted({r["group"] for r in rows}):
        mean = np.mean([float(r["axon_alignment"]) for r in rows if r["group"] == group])
        signs[f"{group} mean C"] = "axes" if mean > 0 else "diagonals"
    return signs


def lab_without_axons(rng: np.random.Generator, hw: tuple[int, int], condition: str,
                      lab: LabStyle) -> tuple[np.ndarray, float]:  # fmt: skip
    """(uint8 image, lattice angle): a lab-style field of `condition` with cells, clutter and
    the lattice (whole) but no axon at all."""
    none = [0.0, 0.0]
    axons = dataclasses.replace(
        lab.axons, mesh_per_mm2=none, per_cell=[0, 0], fascicles_per_mm2=none, bridge_share=0.0
    )
    lattice_look = dataclasses.replace(lab.lattice, partial_share=0.0)
    field = make_lab_image(
        rng, *hw, condition, dataclasses.replace(lab, axons=axons, lattice=lattice_look)
    )
    return field.image, field.grid_angle_deg


def axonless_grids(ckpt: Path, work: Path, hw: tuple[int, int], n: int, device: str,
                   seed: int, lab: LabStyle | None = None) -> dict[str, object]:  # fmt: skip
    """What the model predicts as axons on `n` pillar plates per spacing without any axon."""
    rng = np.random.default_rng([seed, 99])
    images, truth = work / "axonless", {}
    for spacing_um in (2.0, 4.0):
        for index in range(n):
            if lab is None:
                spacing_px = spacing_um / CLEAN_PIXEL_SIZE_UM
                image, angle = grid_without_axons(rng, hw, spacing_px, 0.07)
            else:
                image, angle = lab_without_axons(rng, hw, f"400_{spacing_um:g}", lab)
            name = f"{spacing_um:g}um_{index}"
            io.write_tiff(images / f"{name}.tif", image)
            truth[name] = angle
    out = predict_folder(ckpt, images, work / "axonless_pred", hw, device)
    rows = []
    for name, angle in truth.items():
        axons = measure_axons(io.read_image(out / f"{name}_mask.png"))
        c = alignment_index(axons.directions_deg, angle, axons.weights_px)
        rows.append({"image": name, "axon_px": round(axons.length_px, 1), "alignment": c})
    total = sum(r["axon_px"] for r in rows)
    weighted = [r["alignment"] * r["axon_px"] for r in rows if r["alignment"] is not None]
    return {
        "images": rows,
        "axon_px_per_image": total / len(rows),
        "alignment_length_weighted": sum(weighted) / total if total else None,
    }


def run(size: str, work: Path, seed: int, epochs: int | None,
        style: str = "lab") -> dict[str, object]:  # fmt: skip
    """The whole chain at one of SIZES on the `style` sample world; returns the figures."""
    per_condition, hw, crop_hw, default_epochs, accelerator = SIZES[size]
    device = "cuda" if accelerator == "gpu" else "cpu"
    lab = world(style)
    pixel_size = pixel_size_um(lab)
    start = time.perf_counter()
    prepared = prepared_sample(work, per_condition, hw, seed, lab)
    ckpt = train_axons(prepared, work / "run", crop_hw, epochs or default_epochs, accelerator)
    trained = time.perf_counter()
    originals = test_originals(work / "raw", prepared, work / "test_originals")
    masks = predict_folder(ckpt, originals, work / "predicted", hw, device)
    raw = work / "raw"
    hand = analyze_masks(originals, raw / "labels_axons", work / "analysis_hand", pixel_size)
    predicted = analyze_masks(originals, masks, work / "analysis_predicted", pixel_size)
    truth = analyze_masks(originals, raw / "truth", work / "analysis_truth", pixel_size)
    n_axonless = max(per_condition // 2, 1)
    return {
        "style": style, "pixel_size_um": pixel_size,
        "size": size, "per_condition": per_condition, "source_hw": list(hw),
        "epochs": epochs or default_epochs, "checkpoint": ckpt.name,
        "train_s": trained - start,
        "per_image": per_image_agreement(hand, predicted),
        "per_image_vs_truth": per_image_agreement(truth, predicted),
        "conclusions": conclusions_agree(hand, predicted),
        "conclusions_vs_truth": conclusions_agree(truth, predicted),
        "axonless_grids": axonless_grids(ckpt, work, hw, n_axonless, device, seed, lab),
        "wall_s": time.perf_counter() - start,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (192x256, 1 epoch)")
    parser.add_argument("--full", action="store_true", help="GPU: lab size, 100 epochs")
    parser.add_argument("--epochs", type=int, help="override the size's epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--style", choices=("lab", "clean"), default="lab", help="sample world")
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/benchmarks/end_to_end"))
    parser.add_argument("--out", default="end_to_end", help="results name or .json path")
    args = parser.parse_args()
    size = "quick" if args.quick else "full" if args.full else "default"
    work = args.work_dir / size
    if work.exists():
        shutil.rmtree(work)  # the benchmark's own scratch folder: each run starts clean
    result = run(size, work, args.seed, args.epochs, args.style)
    for key, against in (("per_image", "hand"), ("per_image_vs_truth", "truth")):
        agreement = result[key]
        print(f"per-image C, predicted vs {against}: r = {agreement['pearson_r']}, "
              f"bias = {agreement['mean_bias']} over {agreement['n_compared']} images")  # fmt: skip
    print(format_table(result["conclusions"]["claims"], ["claim", "hand", "predicted", "agree"]))
    grids = result["axonless_grids"]
    print(f"grids without axons: {grids['axon_px_per_image']:.0f} px of predicted axon per image, "
          f"alignment {grids['alignment_length_weighted']}")  # fmt: skip
    print("wrote", write_results(args.out, {"machine": machine_info(), **result}))


if __name__ == "__main__":
    main()
