"""Nanopillar lattice orientation and spacing from the Fourier power spectrum of an original image.

A square lattice of pillars puts sharp peaks into the power spectrum at its reciprocal lattice:
the fundamental peaks lie at 1 / spacing along the two lattice axes. Unlike edge + Hough line
detection, this uses every pillar in the image at once, so it also works on the fine 2 um grids.

Angles follow the project's convention (also the sample generator's truth): degrees CCW from
the image x axis *as displayed*, i.e. with the row axis pointing down a direction of angle a is
the step (row, col) = (-sin a, cos a). A square lattice has axes a and a + 90, so the grid angle
is reported in [0, 90).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from neuroseg.analysis.spectrum import (
    axis_angle_deg,
    flat_field,
    frequencies,
    normalized_power,
    peak_near,
    power_spectrum,
    refine_peak,
    rotate90,
)

# (m, n) of the lattice peaks m a + n b that the strongest peak may be instead of an axis a:
# second order, diagonals, and the (2, 1) family; repeated steps reach higher orders.
HARMONICS = ((2, 0), (1, 1), (1, -1), (2, 1), (2, -1), (1, 2), (1, -2))
# (m, n) of the peaks m a + n b whose evidence the narrow search sums: axes, diagonals, 2nd order.
LATTICE_ORDERS = ((1, 0), (1, 1), (2, 0))


@dataclass(frozen=True)
class GridEstimate:
    """A lattice estimate: axis angle in [0, 90) deg CCW from image x, spacing in px.

    angle_deg and spacing_px are None when no lattice was found (flat plates). confidence is the
    power of the strongest peak pair 90 deg apart (the weaker of the two) over the median power
    at the same frequency: a few for noise, thousands for a clear lattice; reported for flat
    plates too. expected_spacing_px is the plate's spacing when it was known;
    disagreeing_spacing_px the spacing of a lattice found far from it (None if none).
    """

    angle_deg: float | None
    spacing_px: float | None
    confidence: float
    expected_spacing_px: float | None = None
    disagreeing_spacing_px: float | None = None

    @property
    def found(self) -> bool:
        """True when a lattice was detected."""
        return self.angle_deg is not None

    @property
    def spacing_mismatch(self) -> bool | None:
        """True when a lattice was found off the expected spacing; None without expectation."""
        if self.expected_spacing_px is None:
            return None
        return self.disagreeing_spacing_px is not None


def spacing_agrees(spacing_px: float, expected_px: float, tolerance: float) -> bool:
    """Whether a lattice period lies within a relative `tolerance` of the expected one."""
    return abs(spacing_px / expected_px - 1.0) <= tolerance


def grid_angle_deg(
    image: np.ndarray,
    expected_spacing_px: float | None = None,
    min_spacing_px: float = 4.0,
    max_spacing_px: float = 60.0,
    highpass_sigma_px: float = 8.0,
    min_confidence: float = 50.0,
    expected_min_confidence: float = 30.0,
    spacing_tolerance: float = 0.15,
    harmonic_confidence: float = 10.0,
    harmonic_ratio: float = 0.01,
    peak_radius_bins: int = 2,
) -> GridEstimate:
    """Lattice axis angle, spacing and confidence of an original image (H, W) uint8/uint16.

    Searches the whole band of spacings (`wide_search`); with the plate's `expected_spacing_px`
    it also searches a narrow band around it (`narrow_search`), whose few candidate frequencies
    let a fainter lattice pass `expected_min_confidence` at the same false-alarm rate. A lattice
    the wide search finds at a spacing off the expected one by more than `spacing_tolerance` is
    kept in `disagreeing_spacing_px`: the plate may be filed under the wrong condition (a 2 um
    lattice filed as 4 um is not caught: its axes are the 4 um lattice's second order).
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"image of shape {image.shape}; expected (H, W) gray or (H, W, 3)")
    power = power_spectrum(flat_field(image, highpass_sigma_px))
    wide = wide_search(
        power, min_spacing_px, max_spacing_px, min_confidence,
        harmonic_confidence, harmonic_ratio, peak_radius_bins,
    )  # fmt: skip
    if expected_spacing_px is None:
        return wide
    narrow = narrow_search(
        power, expected_spacing_px, spacing_tolerance, expected_min_confidence, peak_radius_bins
    )
    # A faint fundamental can leave the wide search on the lattice's own diagonal or second
    # order; only a spacing that is none of these disagrees with the plate.
    off = wide.found and not any(
        spacing_agrees(wide.spacing_px, expected_spacing_px / ratio, spacing_tolerance)
        for ratio in (1.0, np.sqrt(2.0), 2.0)
    )
    chosen = narrow if narrow.found or not wide.found else wide
    return replace(
        chosen,
        expected_spacing_px=round(expected_spacing_px, 3),
        disagreeing_spacing_px=wide.spacing_px if off else None,
    )


def wide_search(
    power: np.ndarray,
    min_spacing_px: float,
    max_spacing_px: float,
    min_confidence: float,
    harmonic_confidence: float,
    harmonic_ratio: float,
    peak_radius_bins: int,
) -> GridEstimate:
    """The strongest lattice with any spacing in the band, from the power spectrum (H, W).

    Takes the strongest normalised peak, keeps it only if the peak 90 deg away is also strong
    (a square lattice; a straight axon or scratch gives a single streak), then steps down to a
    lower harmonic while one exists (p / 2, (p +/- q) / 2, ..., with its own diagonal, at least
    `harmonic_ratio` of the current peak's power: leakage of a strong peak is weaker; and at
    least `harmonic_confidence` over background), so the diagonal or second-order peaks of the
    lattice are not mistaken for its axes. confidence is that of the strongest peak pair.
    min_spacing_px must stay below spacing / sqrt(2) so the diagonal peak is inside the band.
    """
    shape = power.shape
    norm = normalized_power(power, shape, min_spacing_px, max_spacing_px)
    row, col = np.unravel_index(int(np.argmax(norm)), norm.shape)
    p = np.array([(row - shape[0] // 2) / shape[0], (col - shape[1] // 2) / shape[1]])

    def strength(f: np.ndarray, spectrum: np.ndarray = norm) -> float:
        return pair_strength(spectrum, f, peak_radius_bins)

    def lattice_strength(f: np.ndarray) -> float:
        # A true axis pair also has its diagonal peak; axons along the axes only add streaks
        # through the origin, so a spurious sub-harmonic on such a streak has no diagonal.
        return min(strength(f), strength(f + rotate90(f)))

    confidence = strength(p)
    if confidence < min_confidence:
        return GridEstimate(None, None, round(confidence, 1))
    for _ in range(6):  # each step shrinks |p| by at least sqrt(2); the band bounds it anyway
        q = rotate90(p)
        # If p = m c + n rot90(c) for a shorter axis vector c, then c = (m p - n q) / (m^2 + n^2).
        candidates = [(m * p - n * q) / (m * m + n * n) for m, n in HARMONICS]
        floor = harmonic_ratio * strength(p, power)
        lower = [
            c
            for c in candidates
            if lattice_strength(c) >= harmonic_confidence and strength(c, power) >= floor
        ]
        if not lower:
            break
        p = max(lower, key=strength)
    return lattice_estimate(power, p, confidence)


def narrow_search(
    power: np.ndarray,
    expected_spacing_px: float,
    tolerance: float,
    min_confidence: float,
    peak_radius_bins: int,
    candidates: int = 32,
) -> GridEstimate:
    """The best lattice whose spacing is within `tolerance` of the expected one.

    Confidence sums the evidence of the lattice's first three orders (LATTICE_ORDERS: axes,
    diagonals, second order), each the weaker peak of its pair 90 deg apart: pillars whose
    fundamental is weak (small dots, dark rims, blur) still show in their harmonics, and the
    known spacing says where to look. Candidates come from the strongest bins of every order's
    ring, mapped back to the axis; the angle is read from the order with the most power.
    """
    shape, radius = power.shape, peak_radius_bins
    low, high = expected_spacing_px / (1 + tolerance), expected_spacing_px * (1 + tolerance)
    norm = normalized_power(power, shape, low / 2.2, high)
    found = [
        order_to_axis(peak, order)
        for order in LATTICE_ORDERS
        for peak in top_bins(norm, low / np.hypot(*order), high / np.hypot(*order), candidates)
    ]
    scores = [
        capped([pair_strength(norm, axis_to_order(p, order), radius) for order in LATTICE_ORDERS])
        for p in found
    ]
    best = int(np.argmax([sum(score) for score in scores]))
    confidence = float(sum(scores[best]))
    if confidence < min_confidence:
        return GridEstimate(None, None, round(confidence, 1))
    order = LATTICE_ORDERS[int(np.argmax(scores[best]))]
    return lattice_estimate(power, axis_to_order(found[best], order), confidence, order)


def capped(evidence: list[float]) -> list[float]:
    """Axis, diagonal and second-order evidence, the last capped at the larger of the first two.

    The second-order ring also holds the (2, 1) peaks of a lattice sqrt(5) / 2 times coarser
    (26.6 deg off): second-order evidence alone must not make a lattice.
    """
    axis, diagonal, second = evidence
    return [axis, diagonal, min(second, max(axis, diagonal))]


def top_bins(norm: np.ndarray, low_px: float, high_px: float, count: int) -> np.ndarray:
    """(count, 2) frequencies (fy, fx) of the strongest bins with periods in [low_px, high_px]."""
    shape = norm.shape
    fy, fx = frequencies(shape)
    radius = np.hypot(fy[:, None], fx[None, :])
    ring = np.where((radius >= 1.0 / high_px) & (radius <= 1.0 / low_px), norm, 0.0)
    rows, cols = np.unravel_index(np.argsort(ring, axis=None)[-count:], shape)
    return np.stack([fy[rows], fx[cols]], axis=1)


def axis_to_order(p: np.ndarray, order: tuple[int, int]) -> np.ndarray:
    """The lattice peak m p + n q of order (m, n), q = p turned by 90 deg."""
    return order[0] * p + order[1] * rotate90(p)


def order_to_axis(h: np.ndarray, order: tuple[int, int]) -> np.ndarray:
    """The axis vector p whose order-(m, n) peak is h: p = (m h - n rot90(h)) / (m^2 + n^2)."""
    m, n = order
    return (m * h - n * rotate90(h)) / (m * m + n * n)


def pair_strength(spectrum: np.ndarray, f: np.ndarray, radius_bins: int) -> float:
    """The weaker of the peaks near f and near f turned by 90 deg: a square lattice has both."""
    shape = spectrum.shape
    return min(
        peak_near(spectrum, shape, f, radius_bins),
        peak_near(spectrum, shape, rotate90(f), radius_bins),
    )


def lattice_estimate(
    power: np.ndarray, h: np.ndarray, confidence: float, order: tuple[int, int] = (1, 0)
) -> GridEstimate:
    """Angle and spacing of the lattice whose order-(m, n) peak lies near h, to a sub-bin.

    The peak m p + n q lies atan2(n, m) counter-clockwise of the axis p, sqrt(m^2 + n^2) times
    as far from the origin.
    """
    shape = power.shape
    h = refine_peak(power, shape, h)
    k = refine_peak(power, shape, rotate90(h))
    turn = float(np.degrees(np.arctan2(order[1], order[0])))
    # Average the two peaks' angles on the 90-deg circle (4 x angle on the unit circle).
    angles = np.radians([axis_angle_deg(h) - turn, axis_angle_deg(k) - turn]) * 4
    angle = float(np.degrees(np.arctan2(np.sin(angles).sum(), np.cos(angles).sum())) / 4) % 90.0
    spacing = float(np.hypot(*order) * np.mean([1.0 / np.hypot(*h), 1.0 / np.hypot(*k)]))
    return GridEstimate(round(angle, 3) % 90.0, round(spacing, 3), round(float(confidence), 1))
