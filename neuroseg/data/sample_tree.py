"""The sample raw tree as the lab delivers it, plus truth/: exact answers for the demo and tests.

`originals/<condition>/<n>.tif`, painted JPEG label copies, byte-identical duplicates under new
numbers, and truth/ (class maps, lattice coverage in truth/grid/, images.csv), drawn in one of
two styles: clean (`neuroseg.data.sample_image.make_image`) or lab (`neuroseg.data.lab_image`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from neuroseg import io
from neuroseg.data.lab_image import make_lab_image
from neuroseg.data.lab_settings import STYLES, LabStyle
from neuroseg.data.lab_tree import write_lab_sample
from neuroseg.data.sample_image import CONDITIONS, SynthImage, condition_geometry, make_image
from neuroseg.errors import ChoiceError, PathTakenError, UsageError
from neuroseg.task import AXON, NEURON

PAINT_RGB = {"cluster": (255, 51, 255), "isolated": (30, 230, 255), "axon": (250, 77, 70)}
TRUTH_COLUMNS = (
    "image",
    "condition",
    "grid_angle_deg",
    "grid_spacing_px",
    "axon_mode",
    "duplicate_of",
    "style",  # clean | lab; the columns below the coverage are the lab style's (empty: clean)
    "pixel_size_um",
    "covered_share",  # share of the field on the lattice (truth/grid/): 1 whole, 0 flat plate
    "planted_alignment",  # the condition's lab.axons.alignment; empty on flat plates
    "alignment_c",  # true C of the centre lines vs the grid axis (flat plates: the image x axis)
    "c_covered",  # ... on the covered part, and on the flat part (empty without axon there)
    "c_flat",
    "axon_length_px",  # centre-line length in the field off cells, all / covered / flat
    "length_covered_px",
    "length_flat_px",
    "n_axons_drawn",  # axons with any part in the field, and how many of them are painted
    "n_axons_painted",
)


def paint_label(
    synth: SynthImage, with_axons: bool, paint_rgb: dict[str, tuple[int, int, int]] = PAINT_RGB
) -> np.ndarray:
    """(H, W, 3) uint8: an 8-bit RGB copy of the image with cells (and axons) painted solid."""
    gray = synth.image if synth.image.dtype == np.uint8 else np.round(synth.image / 257.0)
    rgb = np.repeat(gray.astype(np.uint8)[..., None], 3, axis=-1)
    if with_axons:
        rgb[synth.classes == AXON] = paint_rgb["axon"]
    neurons = synth.classes == NEURON
    rgb[neurons & ~synth.clustered] = paint_rgb["isolated"]
    rgb[neurons & synth.clustered] = paint_rgb["cluster"]
    return rgb


def write_sample(
    raw_dir: Path,
    image_path: str,
    synth: SynthImage,
    duplicate_of: str,
    jpeg_quality: int,
    paint_rgb: dict[str, tuple[int, int, int]],
    pixel_size_um: float,
) -> dict[str, object]:
    """Write one original (`originals/<condition>/<n>.tif`), its two painted label copies and
    its truth class map and coverage; return its truth/images.csv row (grid columns empty
    without grid, the lab style's columns empty)."""
    condition, number = Path(image_path).parent.name, Path(image_path).stem
    io.write_tiff(raw_dir / image_path, synth.image)
    for tree, with_axons in (("labels", False), ("labels_axons", True)):
        label = paint_label(synth, with_axons, paint_rgb)
        path = raw_dir / tree / condition / f"label_{number}.jpg"
        io.write_jpeg(path, label, quality=jpeg_quality)
    io.write_png(raw_dir / "truth" / condition / f"{number}.png", synth.classes)
    angle, spacing = synth.grid_angle_deg, synth.grid_spacing_px
    coverage = np.full(synth.classes.shape, angle is not None, np.uint8)  # clean: whole or none
    io.write_png(raw_dir / "truth" / "grid" / condition / f"{number}.png", coverage)
    return {
        "image": image_path,
        "condition": condition,
        "grid_angle_deg": "" if angle is None else angle,
        "grid_spacing_px": "" if spacing is None else spacing,
        "axon_mode": synth.axon_mode,
        "duplicate_of": duplicate_of,
        "style": "clean",
        "pixel_size_um": pixel_size_um,
        "covered_share": float(angle is not None),
    }


def make_dataset(
    out_dir: Path,
    per_condition: int = 9,
    height: int = 1536,
    width: int = 2048,
    bit_depth: int = 8,
    seed: int = 0,
    duplicates: int = 2,
    pixel_size_um: float = 0.2,
    jpeg_quality: int = 90,
    conditions: tuple[str, ...] = CONDITIONS,
    paint_rgb: dict[str, tuple[int, int, int]] | None = None,
    style: str = "clean",
    lab: LabStyle | None = None,
) -> Path:
    """Write a raw tree as the lab delivers it (plus truth/) to `out_dir`, whole or not at all.

    Numbers run from 1 per condition; `duplicates` extra images copy earlier ones byte for byte
    under the next free numbers (as in the lab's folders) and are listed in truth/images.csv.
    An earlier sample tree in `out_dir` is replaced; any other non-empty folder is refused, so a
    mistyped path can never wipe the lab's own data. style="lab" draws with `lab` (conf/synth.yaml
    lab:, its own pixel size); `pixel_size_um` is the clean style's.
    """
    out_dir = Path(out_dir)
    check_style(style, lab)
    check_sample_target(out_dir)
    if per_condition < 1 or duplicates < 0:
        raise UsageError(f"per_condition {per_condition}, duplicates {duplicates}: need >=1, >=0")
    for condition in conditions:
        condition_geometry(condition)  # unknown names fail before anything is written
    paints = {**PAINT_RGB, **(paint_rgb or {})}
    settings = dict(per_condition=per_condition, height=height, width=width)
    settings |= dict(bit_depth=bit_depth, seed=seed, duplicates=duplicates)
    settings |= dict(pixel_size_um=pixel_size_um, jpeg_quality=jpeg_quality)
    settings |= dict(conditions=list(conditions), paint_rgb=paints)
    if style == "lab":  # the clean style's record stays as it was, so old trees still match
        settings |= dict(style=style, lab=asdict(lab))
    with io.atomic_dir(out_dir) as tmp:
        rows = []
        for path, index, number, copy_of in image_plan(conditions, per_condition, duplicates, seed):
            # One generator per image: any image can be remade alone (duplicates are remade).
            rng = np.random.default_rng([seed, index, number])
            condition = conditions[index]
            if style == "lab":
                image = make_lab_image(rng, height, width, condition, lab, bit_depth)
                row = write_lab_sample(
                    tmp, path, image, copy_of, jpeg_quality, paints, lab.pixel_size_um
                )
            else:
                image = make_image(rng, height, width, condition, bit_depth, pixel_size_um)
                row = write_sample(tmp, path, image, copy_of, jpeg_quality, paints, pixel_size_um)
            rows.append(row)
        io.write_csv(tmp / "truth" / "images.csv", rows, TRUTH_COLUMNS)
        io.write_json(tmp / "truth" / "settings.json", settings)  # what reuse is checked against
    return Path(out_dir)


def check_style(style: str, lab: LabStyle | None) -> None:
    """Refuse an unknown style, and style=lab without its settings."""
    if style not in STYLES:
        raise ChoiceError(f"style={style!r}: not a sample style; choose one of {list(STYLES)}")
    if style == "lab" and lab is None:
        raise UsageError("style=lab needs the lab settings (conf/synth.yaml lab:); pass lab=...")


def check_sample_target(out_dir: Path) -> None:
    """Refuse a non-empty folder that is not an earlier sample tree: a mistyped path can never
    wipe the lab's own data (an earlier sample tree is replaced)."""
    if (
        out_dir.is_dir()
        and any(out_dir.iterdir())
        and not (out_dir / "truth" / "images.csv").is_file()
    ):
        raise PathTakenError(
            f"{out_dir}: not empty and not a sample tree written by neuroseg.synth; "
            "choose an empty or new out_dir"
        )


def image_plan(
    conditions: tuple[str, ...], per_condition: int, duplicates: int, seed: int
) -> list[tuple[str, int, int, str]]:
    """(path, condition index, number drawn, path it copies or "") of every image, in order.

    Duplicates take the next free numbers of a condition and redraw an earlier number of it
    (so their pixels match byte for byte), chosen by their own seeded generator.
    """
    plan = [
        (f"originals/{condition}/{number}.tif", index, number, "")
        for index, condition in enumerate(conditions)
        for number in range(1, per_condition + 1)
    ]
    copy_rng = np.random.default_rng([seed, len(conditions), 0])
    for copy in range(duplicates):
        index = copy % len(conditions)
        source = int(copy_rng.integers(1, per_condition + 1))
        number = per_condition + 1 + copy // len(conditions)
        folder = f"originals/{conditions[index]}"
        plan.append((f"{folder}/{number}.tif", index, source, f"{folder}/{source}.tif"))
    return plan
