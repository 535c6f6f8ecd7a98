"""How high must a grid's confidence be? Flat plates against faint 2 and 4 um lattices.

Run from the repo root:
  python -m benchmarks.grid_calibration            # 768x1024, 64 flat plates, 16 per lattice case
  python -m benchmarks.grid_calibration --quick    # a few images, for the test
  python -m benchmarks.grid_calibration --hw 1536x2048 --flat 24 --faint 6   # the lab's size
Writes benchmarks/results/grid_calibration.json.

Flat plates (noise, dust blobs, JPEG-compressed, strongly uneven light, all with the sample
generator's cells and axons) give the confidence a false grid reaches: the wide search (any
spacing, conf/analyze.yaml grid.min_confidence) and the narrow search around the plate's
expected spacing (grid.expected_min_confidence) each get their maximum and 99th percentile.
Faint lattices (low contrast, much of the plate under cells, smooth dots or the generator's
rimmed pillars) give the recall of the old rule (wide search, threshold 50) and of the new one
(the configured thresholds, narrow search when the spacing is known). A detection counts only
if its angle is within 2 deg of the truth.
"""

from __future__ import annotations

import argparse
import io as bytes_io
import time

import numpy as np
from hydra import compose, initialize_config_dir
from PIL import Image
from scipy import ndimage

from benchmarks.common import format_table, machine_info, parse_hw, write_results
from benchmarks.epoch import CONF_DIR
from neuroseg.analysis.grid import narrow_search, wide_search
from neuroseg.analysis.spectrum import flat_field, power_spectrum
from neuroseg.data.sample_image import lattice, make_image

FLAT_KINDS = ("plain", "blobs", "jpeg", "uneven")
OLD_MIN_CONFIDENCE = 50.0  # the threshold before this calibration


def to_uint8(gray: np.ndarray) -> np.ndarray:
    """(H, W) float in [0, 1] -> uint8."""
    return np.round(np.clip(gray, 0, 1) * 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int = 75) -> np.ndarray:
    """The image after a JPEG round trip in memory (8x8 blocks add their own periodic edges)."""
    buffer = bytes_io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def flat_plate(rng: np.random.Generator, hw: tuple[int, int], kind: str) -> np.ndarray:
    """(H, W) uint8 flat plate of one `kind` in FLAT_KINDS, with cells and axons."""
    gray = make_image(rng, *hw, "empty").image / 255.0
    if kind == "blobs":  # dust and debris: dark and bright blobs of many sizes
        spots = np.zeros(hw)
        for _ in range(40):
            r, c = rng.integers(0, hw[0]), rng.integers(0, hw[1])
            spots[r, c] = rng.choice([-1.0, 1.0]) * rng.uniform(50, 400)
        gray += ndimage.gaussian_filter(spots, rng.uniform(3, 8))
    elif kind == "uneven":  # a strong vignette and a lamp gradient on top of the generator's
        rows, cols = np.mgrid[0 : hw[0], 0 : hw[1]] / max(hw)
        gray *= 0.6 + 0.6 * cols - 0.8 * (rows - 0.4) ** 2
    image = to_uint8(gray)
    return jpeg(image) if kind == "jpeg" else image


def cell_cover(rng: np.random.Generator, hw: tuple[int, int], fraction: float) -> np.ndarray:
    """(H, W) float in [0, 1]: soft disks of cell size added until `fraction` is covered."""
    cover = np.zeros(hw, bool)
    radius = 30.0 * min(hw) / 1536
    rows, cols = np.ogrid[0 : hw[0], 0 : hw[1]]
    while cover.mean() < fraction:
        r, c = rng.uniform(0, hw[0]), rng.uniform(0, hw[1])
        cover |= (rows - r) ** 2 + (cols - c) ** 2 < (radius * rng.uniform(0.6, 1.6)) ** 2
    return ndimage.gaussian_filter(cover.astype(np.float64), 2.0)


def faint_lattice(
    rng: np.random.Generator,
    hw: tuple[int, int],
    spacing_px: float,
    contrast: float,
    cover: float,
    smooth: bool,
) -> tuple[np.ndarray, float]:
    """(uint8 image, true angle): a flat plate with a faint lattice, partly hidden by cells.

    smooth=True draws plain Gaussian dots (no rims) blurred by the optics, so the detector is
    not tuned to the generator's pillar shape.
    """
    angle = float(rng.uniform(0, 90))
    gray = make_image(rng, *hw, "empty").image / 255.0
    pattern = lattice(hw, angle, spacing_px, rng.uniform(0, 1, size=2))
    if smooth:
        pattern = ndimage.gaussian_filter(np.clip(pattern, 0, None), spacing_px / 8)
        pattern /= max(pattern.max(), 1e-9)
    hidden = cell_cover(rng, hw, cover)
    gray = gray * (1 - hidden) + 0.72 * hidden + contrast * pattern * (1 - hidden)
    return to_uint8(gray + rng.normal(0, 0.02, hw)), angle


def scores(image: np.ndarray, expected_px: float, grid: dict) -> dict[str, float]:
    """Confidence of the wide and narrow searches, thresholds off, with their angles."""
    power = power_spectrum(flat_field(image, grid["highpass_sigma_px"]))
    radius = grid["peak_radius_bins"]
    wide = wide_search(
        power, grid["min_spacing_px"], grid["max_spacing_px"], 0.0,
        grid["harmonic_confidence"], grid["harmonic_ratio"], radius,
    )  # fmt: skip
    narrow = narrow_search(power, expected_px, grid["spacing_tolerance"], 0.0, radius)
    return {
        "wide": wide.confidence,
        "wide_angle": wide.angle_deg,
        "narrow": narrow.confidence,
        "narrow_angle": narrow.angle_deg,
    }


def angle_ok(found: float | None, truth: float, tolerance_deg: float = 2.0) -> bool:
    """Whether a lattice angle lies within `tolerance_deg` of the truth on the 90-deg circle."""
    return found is not None and abs((found - truth + 45.0) % 90.0 - 45.0) < tolerance_deg


def calibrate(
    hw: tuple[int, int], n_flat: int, n_faint: int, pixel_size_um: float, seed: int
) -> dict[str, object]:
    """Flat-plate confidences and faint-lattice recall under the old and the configured rule."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        grid = dict(compose("analyze", overrides=["images=."]).grid)
    rng = np.random.default_rng(seed)
    flat = []
    for index in range(n_flat):
        image = flat_plate(rng, hw, FLAT_KINDS[index % len(FLAT_KINDS)])
        # A flat plate filed under a grid condition is searched near 10 px and near 20 px.
        flat.append({**scores(image, 10.0, grid), "narrow_20": scores(image, 20.0, grid)["narrow"]})
    wide = np.array([f["wide"] for f in flat])
    narrow_10 = [f["narrow"] for f in flat]
    narrow = np.array([f["narrow"] for f in flat] + [f["narrow_20"] for f in flat])
    flat_summary = {
        "n": n_flat, "kinds": FLAT_KINDS,
        "wide_max": float(wide.max()), "wide_p99": float(np.percentile(wide, 99)),
        "narrow_max": float(narrow.max()), "narrow_p99": float(np.percentile(narrow, 99)),
        "narrow_10": narrow_10, "narrow_20": [f["narrow_20"] for f in flat],
        "wide_all": wide.tolist(),
        "by_kind_wide_max": {
            k: float(wide[i :: len(FLAT_KINDS)].max()) for i, k in enumerate(FLAT_KINDS)
        },
    }  # fmt: skip
    cases = []
    for spacing_um in (4.0, 2.0):
        for contrast, cover in ((0.02, 0.3), (0.01, 0.3), (0.02, 0.6)):
            for smooth in (True, False):
                cases.append(
                    lattice_case(
                        rng, hw, spacing_um / pixel_size_um, contrast, cover, smooth, n_faint, grid
                    )  # fmt: skip
                )
    return {"grid": grid, "flat": flat_summary, "lattices": cases}


def lattice_case(
    rng: np.random.Generator,
    hw: tuple[int, int],
    spacing_px: float,
    contrast: float,
    cover: float,
    smooth: bool,
    n: int,
    grid: dict,
) -> dict[str, object]:
    """Recall on `n` faint lattices of one kind: old rule, wide at the new threshold, new rule."""
    old = wide_new = new = 0
    confidences, angles_ok = [], []
    for _ in range(n):
        image, angle = faint_lattice(rng, hw, spacing_px, contrast, cover, smooth)
        s = scores(image, spacing_px, grid)
        confidences.append((s["wide"], s["narrow"]))
        wide_ok = angle_ok(s["wide_angle"], angle)
        old += wide_ok and s["wide"] >= OLD_MIN_CONFIDENCE
        wide_new += wide_ok and s["wide"] >= grid["min_confidence"]
        narrow_ok = angle_ok(s["narrow_angle"], angle)
        angles_ok.append((wide_ok, narrow_ok))
        new += (wide_ok and s["wide"] >= grid["min_confidence"]) or (
            narrow_ok and s["narrow"] >= grid["expected_min_confidence"]
        )
    wide_conf, narrow_conf = np.array(confidences).T
    return {
        "spacing_px": spacing_px, "contrast": contrast, "cover": cover,
        "dots": "smooth" if smooth else "rimmed", "n": n,
        "old_rate": old / n, "wide_rate": wide_new / n, "new_rate": new / n,
        "wide_median": float(np.median(wide_conf)), "narrow_median": float(np.median(narrow_conf)),
        "confidences": confidences, "angles_ok": angles_ok,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", type=parse_hw, default=(768, 1024), help="image size, HxW")
    parser.add_argument("--flat", type=int, default=64, help="flat plates")
    parser.add_argument("--faint", type=int, default=16, help="images per faint-lattice case")
    parser.add_argument("--pixel-size-um", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="256x320, 4 flat, 1 per case")
    parser.add_argument("--out", default="grid_calibration", help="results name or .json path")
    args = parser.parse_args()
    if args.quick:
        args.hw, args.flat, args.faint = (256, 320), 4, 1
    start = time.perf_counter()
    result = calibrate(args.hw, args.flat, args.faint, args.pixel_size_um, args.seed)
    flat = result["flat"]
    print(f"flat plates ({flat['n']}): wide max {flat['wide_max']:.1f}, 99th percentile "
          f"{flat['wide_p99']:.1f}; narrow max {flat['narrow_max']:.1f}, "
          f"99th {flat['narrow_p99']:.1f}")  # fmt: skip
    columns = ["spacing_px", "contrast", "cover", "dots", "n", "old_rate", "wide_rate",
               "new_rate", "wide_median", "narrow_median"]  # fmt: skip
    print(format_table(result["lattices"], columns))
    payload = {"machine": machine_info(), "hw": list(args.hw), "seed": args.seed, **result}
    payload["wall_s"] = time.perf_counter() - start
    print(f"wrote {write_results(args.out, payload)}")


if __name__ == "__main__":
    main()
