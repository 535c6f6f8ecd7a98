"""Does the lab-style sample world look like the lab's fields? real-images.md's statistics,
measured the same way on generated fields and printed next to the real figures.

Run from the repo root:
  python -m benchmarks.realism                  # 2 full-size fields per condition (1536 x 2048)
  python -m benchmarks.realism --quick          # a smoke run (1 per condition, 384 x 512)
  python -m benchmarks.realism --images DIR [--labels DIR]   # measure the lab's own images too
Writes benchmarks/results/realism.json (--out to change) and, at full size, the figure
benchmarks/figures/lab_style.png (a generated 768 x 1024 crop | its lab-style label | its truth,
beside the real tile shared/reference/real-axon-labels.png, found in a folder above the checkout,
or --real-figure).

Measured per field (8-bit gray): mean and std; high-pass std (gray minus its Gaussian blur,
sigma 8 px); the lattice period and angle from the Fourier peaks (neuroseg.analysis.grid, with
the diagonal peak's period checked in the same spectrum); widths of the painted axon strokes
(2 x the distance to the stroke edge along each stroke's middle, from labels_axons/ read with
the palette); and, where the truth is known, the share of axons painted and the truth width.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from scipy import ndimage

from benchmarks.common import format_table, machine_info, write_results
from neuroseg import io
from neuroseg.analysis.grid import grid_angle_deg
from neuroseg.analysis.spectrum import flat_field, normalized_power, peak_near, power_spectrum
from neuroseg.data.labels import class_mask
from neuroseg.data.settings import read_group_file
from neuroseg.synth import lab_style, synth, synth_config

REPO = Path(__file__).resolve().parents[1]
# The real tile of the original report, in the shared reference folder beside the checkout.
REAL_FIGURE = next(
    (
        folder / "shared" / "reference" / "real-axon-labels.png"
        for folder in REPO.parents
        if (folder / "shared" / "reference" / "real-axon-labels.png").is_file()
    ),
    None,
)
FIGURE = Path(__file__).resolve().parent / "figures" / "lab_style.png"
# What shared/reference/real-images.md measured on the lab's real fields (low, high).
REAL = {
    "gray_mean": (96.0, 118.0),
    "gray_std": (12.0, 18.0),
    "highpass_std": (10.0, 16.0),
    "period_2um_px": (6.52, 6.52),
    "period_4um_px": (13.08, 13.08),
    "diagonal_4um_px": (9.26, 9.26),
    "stroke_width_px": (10.0, 30.0),
    "axon_width_px": (1.0, 2.0),
    "painted_share": (None, None),  # "a handful of the dozens visible"
    "axons_per_field": (24.0, 300.0),  # "dozens to hundreds per field"
}
SIZES = {"quick": (1, (384, 512)), "default": (2, (1536, 2048))}


def gray_stats(image: np.ndarray) -> dict[str, float]:
    """Mean, std and high-pass std (minus a sigma-8 Gaussian blur) of an 8-bit-scaled field."""
    gray = image.astype(np.float64) / (257.0 if image.dtype == np.uint16 else 1.0)
    highpass = gray - ndimage.gaussian_filter(gray, 8.0)
    return {"gray_mean": gray.mean(), "gray_std": gray.std(), "highpass_std": highpass.std()}


def lattice_stats(image: np.ndarray) -> dict[str, object]:
    """Lattice period (px), angle and confidence from the spectrum; the diagonal peak's power
    (over its ring's median) at period / sqrt(2), 45 deg from the axis."""
    grid = grid_angle_deg(image)
    row: dict[str, object] = {"period_px": grid.spacing_px, "angle_deg": grid.angle_deg}
    row["confidence"] = round(grid.confidence, 1)
    if grid.found:
        flat = flat_field(image, 8.0)
        norm = normalized_power(power_spectrum(flat), flat.shape, 3.0, 60.0)
        theta = np.radians(grid.angle_deg + 45.0)
        radius = np.sqrt(2) / grid.spacing_px
        f = np.array([-np.sin(theta), np.cos(theta)]) * radius
        row["diagonal_px"] = grid.spacing_px / np.sqrt(2)
        row["diagonal_power"] = round(peak_near(norm, flat.shape, f, 2), 1)
    return row


def stroke_widths(axon_paint: np.ndarray) -> np.ndarray:
    """Widths (px) of painted strokes at their middles: 2 x distance to the edge at the ridge."""
    if not axon_paint.any():
        return np.zeros(0)
    half = ndimage.distance_transform_edt(axon_paint)
    ridge = (half >= ndimage.maximum_filter(half, size=5)) & (half > 2)
    return 2 * half[ridge]


def painted_axons(label_path: Path, palette: dict) -> np.ndarray:
    """(H, W) bool: the axon paint of a labels_axons/ copy, read back with the palette."""
    return class_mask(io.read_rgb(label_path), palette) == 2


def measure_field(image: np.ndarray, label: Path | None, palette: dict) -> dict[str, object]:
    """Every statistic of one field (label: its labels_axons/ copy, if any)."""
    row: dict[str, object] = {**gray_stats(image), **lattice_stats(image)}
    if label is not None and label.is_file():
        widths = stroke_widths(painted_axons(label, palette))
        row["stroke_width_px"] = float(np.median(widths)) if widths.size else None
        row["stroke_width_p10_p90"] = (
            np.percentile(widths, [10, 90]).tolist() if widths.size else None
        )
    return row


def truth_stats(raw: Path, row: dict[str, str]) -> dict[str, object]:
    """Share of axons painted, axons in the field and the truth's axon width (area / length)."""
    classes = io.read_image(raw / "truth" / row["condition"] / f"{Path(row['image']).stem}.png")
    length = float(row["axon_length_px"] or 0)
    drawn, painted = int(row["n_axons_drawn"]), int(row["n_axons_painted"])
    return {
        "painted_share": painted / drawn if drawn else None,
        "axons_per_field": drawn,
        "axon_width_px": float((classes == 2).sum()) / length if length else None,
    }


def measure_tree(raw: Path, palette: dict) -> list[dict[str, object]]:
    """One row of statistics per original of a generated raw tree (truth columns beside)."""
    rows = []
    for row in io.read_csv(raw / "truth" / "images.csv"):
        condition, number = row["condition"], Path(row["image"]).stem
        label = raw / "labels_axons" / condition / f"label_{number}.jpg"
        stats = measure_field(io.read_image(raw / row["image"]), label, palette)
        spacing = condition.split("_")[1] if "_" in condition else ""
        stats |= {"image": row["image"], "spacing_um": spacing, **truth_stats(raw, row)}
        stats |= {"covered_share": float(row["covered_share"])}
        rows.append(stats)
    return rows


def measure_folder(images: Path, labels: Path | None, palette: dict) -> list[dict[str, object]]:
    """One row per image of a folder of real fields; labels: painted labels_axons/ copies in the
    same sub-folders, named <prefix>_<stem>.<ext> (the lab's layout)."""
    rows = []
    for path in io.list_images(images, recursive=True):
        relative = path.relative_to(images) if path != images else Path(path.name)
        label = None
        if labels is not None:
            found = sorted((labels / relative.parent).glob(f"*_{path.stem}.*"))
            label = found[0] if found else None
        stats = measure_field(io.to_gray(io.read_image(path)), label, palette)
        period = stats["period_px"]
        spacing = "" if period is None else ("2" if period < 9.8 else "4")  # 6.5 vs 13.1 px
        rows.append({"image": str(relative), "spacing_um": spacing, **stats})
    return rows


def spread(rows: list[dict[str, object]], key: str, where=None) -> dict[str, object]:
    """Median, min and max of `key` over the rows that have it (and pass `where`)."""
    values = [float(r[key]) for r in rows if r.get(key) is not None and (where is None or where(r))]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": float(np.median(values)),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def summary(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """{statistic: spread}, lattice periods split by the condition's (or found) spacing."""
    on = {s: (lambda r, s=s: r.get("spacing_um") == s) for s in ("2", "4")}
    return {
        "gray_mean": spread(rows, "gray_mean"),
        "gray_std": spread(rows, "gray_std"),
        "highpass_std": spread(rows, "highpass_std"),
        "period_2um_px": spread(rows, "period_px", on["2"]),
        "period_4um_px": spread(rows, "period_px", on["4"]),
        "diagonal_4um_px": spread(rows, "diagonal_px", on["4"]),
        "stroke_width_px": spread(rows, "stroke_width_px"),
        "axon_width_px": spread(rows, "axon_width_px"),
        "painted_share": spread(rows, "painted_share"),
        "axons_per_field": spread(rows, "axons_per_field"),
    }


def table(generated: dict, real_folder: dict | None) -> list[dict[str, object]]:
    """Rows for print and README: statistic, the real figure, the generated spread (and a
    measured real folder's)."""

    def text(s: dict) -> str:
        if s["median"] is None:
            return "-"
        return f"{s['median']:.3g} [{s['min']:.3g}-{s['max']:.3g}]"

    rows = []
    for key, (low, high) in REAL.items():
        real = "-" if low is None else (f"{low:g}" if low == high else f"{low:g}-{high:g}")
        row = {"statistic": key, "real (real-images.md)": real, "generated": text(generated[key])}
        if real_folder is not None:
            row["real folder"] = text(real_folder[key])
        rows.append(row)
    return rows


def figure_field(raw: Path, crop_hw: tuple[int, int]) -> tuple[Path, tuple[slice, slice]]:
    """(original, crop) the figure shows: a 4 um field whose lattice covers only part of it
    (400 nm first), else the first 4 um field; of its crops on a grid of crop_hw, the one with
    the most neuron truth pixels, preferring crops that show both sides of the boundary."""
    rows = [r for r in io.read_csv(raw / "truth" / "images.csv") if r["condition"].endswith("_4")]
    partial = [r for r in rows if 0 < float(r["covered_share"]) < 1]
    row = sorted(partial or rows, key=lambda r: not r["condition"].startswith("400"))[0]
    classes = io.read_image(raw / "truth" / row["condition"] / f"{Path(row['image']).stem}.png")
    crops = [
        (slice(r, r + crop_hw[0]), slice(c, c + crop_hw[1]))
        for r in range(0, classes.shape[0] - crop_hw[0] + 1, crop_hw[0])
        for c in range(0, classes.shape[1] - crop_hw[1] + 1, crop_hw[1])
    ]
    number = Path(row["image"]).stem
    covered = io.read_image(raw / "truth" / "grid" / row["condition"] / f"{number}.png")

    def score(box: tuple[slice, slice]) -> float:
        both = 0.2 < covered[box].mean() < 0.8  # the boundary in view, cells too
        return int((classes[box] == 1).sum()) * (1.0 if both else 0.1)

    return raw / row["image"], max(crops, key=score)


def display_stretch(gray: np.ndarray, like: np.ndarray) -> np.ndarray:
    """`gray` (H, W) mapped linearly so that its 5th and 95th percentiles land on those of the
    gray pixels of `like` (H', W', 3), a displayed figure (its coloured annotations and white
    boxes left out): shown as the report showed its tile, whose gray was stretched."""
    plain = (like.max(axis=-1) - like.min(axis=-1) < 12) & (like.max(axis=-1) < 250)
    target = np.percentile(like.mean(axis=-1)[plain], [5, 95])
    source = np.percentile(gray.astype(np.float64), [5, 95])
    scale = (target[1] - target[0]) / max(source[1] - source[0], 1e-9)
    return np.clip(np.round((gray - source[0]) * scale + target[0]), 0, 255).astype(np.uint8)


def panel(rgb: np.ndarray, title: str, scale: float):
    """A PIL image: `rgb` (H, W, 3) uint8 scaled by `scale`, with `title` on a strip above."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(rgb)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    framed = Image.new("RGB", (image.width, image.height + 18), "white")
    framed.paste(image, (0, 18))
    ImageDraw.Draw(framed).text((4, 3), title, fill="black")
    return framed


def compose_figure(
    raw: Path, out: Path, real_figure: Path | None, crop_hw: tuple[int, int] = (768, 1024)
) -> Path:
    """[real tile | generated crop] over [its lab-style label | its truth], half size, one PNG.

    The generated crop is shown with the real tile's display stretch (5-95 % percentiles; the
    report's tile is brighter and more contrasted than originals are); the label as written. The
    truth panel draws axons 1 px wider on each side than written, so they survive the halving;
    neurons magenta, axons white, on black.
    """
    from PIL import Image

    original, box = figure_field(raw, crop_hw)
    condition, number = original.parent.name, original.stem
    gray = io.read_image(original)[box]
    label = io.read_rgb(raw / "labels_axons" / condition / f"label_{number}.jpg")[box]
    classes = io.read_image(raw / "truth" / condition / f"{number}.png")[box]
    truth = np.zeros((*classes.shape, 3), np.uint8)
    truth[ndimage.binary_dilation(classes == 2)] = 255
    truth[classes == 1] = (255, 51, 255)
    shown = f"generated, style=lab ({condition}/{number} at {box[0].start},{box[1].start})"
    if real_figure is not None and real_figure.is_file():
        real = np.asarray(Image.open(real_figure).convert("RGB"))
        first = panel(real, "real tile (the original report), lab labels outlined in red", 0.5)
        gray = display_stretch(gray, real)
        shown += ", stretched as the real tile"
    else:
        first = panel(np.full((*crop_hw, 3), 255, np.uint8), "real tile: file not found", 0.5)
    panels = [
        first,
        panel(np.repeat(gray[..., None], 3, -1), shown, 0.5),
        panel(label, "its lab-style label (labels_axons/)", 0.5),
        panel(truth, "its full thin truth (truth/; axons drawn 2 px wider)", 0.5),
    ]
    width, height = panels[0].width, panels[0].height
    sheet = Image.new("RGB", (2 * width + 8, 2 * height + 8), "white")
    for index, item in enumerate(panels):
        sheet.paste(item, ((index % 2) * (width + 8), (index // 2) * (height + 8)))
    out.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
    return out


def generate(work: Path, per_condition: int, hw: tuple[int, int], seed: int) -> Path:
    """The lab-style raw tree, written by the synth command's own code path."""
    overrides = ["style=lab", f"out_dir={work / 'raw'}", f"per_condition={per_condition}"]
    overrides += [f"height={hw[0]}", f"width={hw[1]}", f"seed={seed}", "duplicates=0"]
    return synth(synth_config(overrides))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (384x512, 1 per condition)")
    parser.add_argument("--images", type=Path, help="also measure this folder of real fields")
    parser.add_argument("--labels", type=Path, help="painted labels_axons/ copies of --images")
    parser.add_argument("--real-figure", type=Path, default=REAL_FIGURE, help="real tile PNG")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/benchmarks/realism"))
    parser.add_argument("--out", help="results name or .json path (realism[_quick])")
    args = parser.parse_args()
    size = "quick" if args.quick else "default"
    per_condition, hw = SIZES[size]
    work = args.work_dir / size
    if work.exists():
        shutil.rmtree(work)  # the benchmark's own scratch folder: each run starts clean
    palette = OmegaConf.to_container(read_group_file(REPO / "conf" / "palette" / "qlab.yaml"))
    raw = generate(work, per_condition, hw, args.seed)
    rows = measure_tree(raw, palette)
    generated = summary(rows)
    real_rows = measure_folder(args.images, args.labels, palette) if args.images else None
    real = summary(real_rows) if real_rows is not None else None
    lines = table(generated, real)
    print(format_table(lines, list(lines[0])))
    payload = {"machine": machine_info(), "size": size, "per_condition": per_condition}
    pixel_size_um = lab_style(synth_config(["style=lab"])).pixel_size_um
    payload |= {"source_hw": list(hw), "seed": args.seed, "pixel_size_um": pixel_size_um}
    payload |= {"summary": generated, "table": lines, "fields": rows}
    if real_rows is not None:
        payload |= {"real_folder": str(args.images), "real_summary": real, "real_fields": real_rows}
    if size == "default":
        figure = compose_figure(raw, FIGURE, args.real_figure)
        payload["figure"] = str(figure.relative_to(REPO))
        payload["real_figure"] = None if args.real_figure is None else str(args.real_figure)
        print("figure", payload["figure"])
    out = args.out or ("realism_quick" if args.quick else "realism")
    print("wrote", write_results(out, payload))


if __name__ == "__main__":
    main()
