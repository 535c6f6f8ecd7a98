"""Power spectrum of an original image and the lattice peaks in it (used by `grid.py`).

Frequencies are (fy, fx) in cycles per px with rows pointing down; `power_spectrum` puts zero
frequency at (H // 2, W // 2). Angles follow the project's convention: degrees CCW from the image
x axis as displayed.
"""

from __future__ import annotations

import numpy as np
from scipy import fft, ndimage

from neuroseg.io import scale_to_unit, to_gray


def flat_field(image: np.ndarray, highpass_sigma_px: float) -> np.ndarray:
    """(H, W) float64 around 0 from (H, W[, 3]) uint8/uint16/float: image / its blur - 1.

    Dividing out the blur removes uneven lamp light (multiplicative) and the low frequencies
    whose window leakage would otherwise bury the lattice peaks.
    """
    if np.issubdtype(image.dtype, np.floating):
        unit = (image.mean(axis=-1) if image.ndim == 3 else image).astype(np.float64)
    else:
        unit = scale_to_unit(to_gray(image)).astype(np.float64)
    background = ndimage.gaussian_filter(unit, highpass_sigma_px, mode="reflect")
    return unit / np.maximum(background, 1e-3) - 1.0


def power_spectrum(flat: np.ndarray) -> np.ndarray:
    """Power (H, W) float64 of the Hann-windowed image, zero frequency at (H // 2, W // 2).

    Bin (r, c) holds frequency ((r - H // 2) / H, (c - W // 2) / W) in cycles per px. The full
    plane (not the real-input half) keeps peaks near the fx = 0 line whole for refinement.
    """
    height, width = flat.shape
    window = np.hanning(height)[:, None] * np.hanning(width)[None, :]
    return np.fft.fftshift(np.abs(fft.fft2((flat - flat.mean()) * window)) ** 2)


def normalized_power(
    power: np.ndarray, shape: tuple[int, int], min_spacing_px: float, max_spacing_px: float
) -> np.ndarray:
    """Power over the median power of its frequency ring, 0 outside the searched ring band.

    Noise and cell edges fall smoothly with frequency; dividing by the ring median makes a
    lattice peak stand out equally at 10 px and 20 px spacings.
    """
    fy, fx = frequencies(shape)
    radius = np.hypot(fy[:, None], fx[None, :])
    band = (radius >= 1.0 / max_spacing_px) & (radius <= 1.0 / min_spacing_px)
    ring = np.round(radius * max(shape)).astype(np.int64)
    labels = np.where(band, ring, 0)
    index = np.unique(labels[band])
    if index.size == 0:
        raise ValueError(
            f"image {shape[0]}x{shape[1]} too small for grid spacings "
            f"{min_spacing_px}-{max_spacing_px} px; lower max_spacing_px"
        )
    medians = np.zeros(int(index.max()) + 1)
    medians[index] = ndimage.median(power, labels=labels, index=index)
    norm = np.zeros_like(power)
    norm[band] = power[band] / np.maximum(medians[labels[band]], 1e-30)
    return norm


def frequencies(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(fy per row, fx per column) in cycles/px for the layout of `power_spectrum`."""
    height, width = shape
    return (np.arange(height) - height // 2) / height, (np.arange(width) - width // 2) / width


def bin_of(f: np.ndarray, shape: tuple[int, int]) -> tuple[int, int]:
    """(row, col) of the spectrum bin nearest frequency f = (fy, fx)."""
    return int(round(f[0] * shape[0])) + shape[0] // 2, int(round(f[1] * shape[1])) + shape[1] // 2


def peak_near(norm: np.ndarray, shape: tuple[int, int], f: np.ndarray, radius_bins: int) -> float:
    """Largest normalised power within `radius_bins` of frequency f = (fy, fx); 0 if off-grid."""
    row, col = bin_of(f, shape)
    r0, r1 = max(row - radius_bins, 0), min(row + radius_bins + 1, norm.shape[0])
    c0, c1 = max(col - radius_bins, 0), min(col + radius_bins + 1, norm.shape[1])
    if r0 >= r1 or c0 >= c1:
        return 0.0
    return float(norm[r0:r1, c0:c1].max())


def refine_peak(power: np.ndarray, shape: tuple[int, int], f: np.ndarray) -> np.ndarray:
    """Sub-bin frequency (fy, fx) of the peak nearest f: local max, then Gaussian interpolation.

    A Hann-windowed peak is close to a Gaussian, so a parabola through the log power of the
    three bins around the maximum, per axis, recovers its centre to a small fraction of a bin.
    """
    row, col = bin_of(f, shape)
    r0, c0 = max(row - 2, 1), max(col - 2, 1)
    patch = power[r0 : min(row + 3, power.shape[0] - 1), c0 : min(col + 3, power.shape[1] - 1)]
    dr, dc = np.unravel_index(int(np.argmax(patch)), patch.shape)
    row, col = r0 + int(dr), c0 + int(dc)
    log = np.log(np.maximum(power[row - 1 : row + 2, col - 1 : col + 2], 1e-300))

    def offset(left: float, centre: float, right: float) -> float:
        curvature = left - 2 * centre + right
        return 0.0 if curvature >= 0 else float(np.clip(0.5 * (left - right) / curvature, -1, 1))

    row_f = row + offset(log[0, 1], log[1, 1], log[2, 1]) - shape[0] // 2
    col_f = col + offset(log[1, 0], log[1, 1], log[1, 2]) - shape[1] // 2
    return np.array([row_f / shape[0], col_f / shape[1]])


def rotate90(f: np.ndarray) -> np.ndarray:
    """The frequency (fy, fx) of the lattice axis 90 deg counter-clockwise (on screen) of f."""
    return np.array([-f[1], f[0]])


def axis_angle_deg(f: np.ndarray) -> float:
    """Axis angle in [0, 90) of a reciprocal vector (fy, fx); rows point down, hence -fy."""
    return float(np.degrees(np.arctan2(-f[0], f[1])) % 90.0)
