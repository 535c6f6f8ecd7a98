"""Image-level claims: exact p-values by hand, Holm by hand, a seeded null with shared
directions within images, planted effects at the lab's scale, plates as units, bad plate tables."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from neuroseg import io
from neuroseg.analysis.conclusions import (
    CONCLUSION_COLUMNS,
    INTERACTION,
    Claim,
    ImageRecord,
    conclude,
    image_record,
    unit_alignment,
)
from neuroseg.analysis.orientation import alignment_index
from neuroseg.analysis.plates import assign_plates, read_plates
from neuroseg.analysis.resampling import (
    bootstrap_ci,
    holm_adjust,
    sign_flip_test,
    stratified_test,
    two_sample_test,
)
from neuroseg.analysis.settings import Condition
from neuroseg.analysis.stats import summary_text

CONDITIONS = {
    "200_2": Condition(height_nm=200, spacing_um=2.0),
    "200_4": Condition(height_nm=200, spacing_um=4.0),
    "400_2": Condition(height_nm=400, spacing_um=2.0),
    "400_4": Condition(height_nm=400, spacing_um=4.0),
    "empty": Condition(height_nm=None, spacing_um=None),
}


def test_sign_flip_p_by_hand() -> None:
    values = np.array([0.1, 0.2, 0.3, 0.4])  # all 16 sign patterns; only +,+,+,+ reaches 1.0
    greater = sign_flip_test(values, "greater")
    assert greater.exact and greater.draws == 16 and greater.p == pytest.approx(1 / 16)
    assert sign_flip_test(values).p == pytest.approx(2 / 16)  # and -,-,-,- in absolute value
    assert sign_flip_test(values, "less").p == pytest.approx(1.0)
    sampled = sign_flip_test(np.full(20, 0.5), permutations=999, rng=np.random.default_rng(0))
    assert not sampled.exact and sampled.p == pytest.approx(1 / 1000)  # its resolution
    with pytest.raises(ValueError, match="alternative"):
        sign_flip_test(values, "up")


def test_two_sample_p_by_hand() -> None:
    test = two_sample_test(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]))
    assert test.exact and test.draws == 20  # comb(6, 3); |difference| 3 only for the two splits
    assert test.p == pytest.approx(2 / 20)


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04)
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_stratified_test_sees_only_its_factor() -> None:
    rng = np.random.default_rng(0)
    cells = np.repeat(np.arange(4), 8)  # (h0 s0, h0 s1, h1 s0, h1 s1)
    values = rng.normal(0, 0.05, 32) + 0.5 * (cells % 2)  # spacing effect only
    height, spacing = cells // 2, cells % 2
    weights = np.array([-0.5, -0.5, 0.5, 0.5])
    assert stratified_test(values, cells, weights, spacing, 999, rng).p > 0.05
    assert stratified_test(values, cells, weights[[0, 2, 1, 3]], height, 999, rng).p < 0.01


def test_bootstrap_interval_covers_near_95_percent() -> None:
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(300):
        sample = rng.normal(0.2, 0.3, 8)
        low, high = bootstrap_ci([sample], [1.0], 0.95, 1000, rng)
        hits += low <= 0.2 <= high
    assert 0.91 <= hits / 300 <= 0.99
    assert bootstrap_ci([np.full(5, 0.3)], [1.0]) == (0.3, 0.3)
    assert bootstrap_ci([np.array([0.3])], [1.0]) is None


def image(rng: np.random.Generator, name: str, group: str, pull: float) -> ImageRecord:
    """30 segments sharing one direction (doubled-angle kappa 3), pulled toward the axes by
    `pull` (4 mu ~ von Mises(0, pull); negative: toward the diagonals; 0: mu uniform)."""
    if pull == 0:
        mu = rng.uniform(0, np.pi)
    else:
        mu = rng.vonmises(0.0 if pull > 0 else np.pi, abs(pull)) / 4
    lengths = rng.lognormal(np.log(60), 0.7, 30) + 15
    theta = np.degrees(mu + rng.vonmises(0.0, 3.0, 30) / 2)
    return ImageRecord(name, group, alignment_index(theta, 0.0, lengths), lengths.sum(), 30)


def data_set(seed: int, pulls: dict[str, float], per_group: int = 8) -> list[ImageRecord]:
    rng = np.random.default_rng(seed)
    return [
        image(rng, f"{g}/{i}.tif", g, pulls.get(g, 0.0))
        for g in CONDITIONS
        for i in range(per_group)
    ]


def by_key(claims: list[Claim]) -> dict[tuple[str, str], Claim]:
    return {(c.group if c.family != "design" else "", c.reference): c for c in claims}


def test_shared_directions_without_a_grid_effect_claim_nothing() -> None:
    # every image's axons share a random direction: pooled segment tests called such data
    # aligned in most runs; per image, a data set with any claim is as rare as alpha allows
    claims = conclude(data_set(0, {}), CONDITIONS, permutations=1999, resamples=500)
    assert len(claims) == 5 + 4 + 3
    assert not [c.group for c in claims if c.significant]
    assert all(c.direction == "none" for c in claims)
    any_claim = [
        any(c.significant for c in conclude(data_set(seed, {}), CONDITIONS, permutations=999))
        for seed in range(1, 13)
    ]
    assert sum(any_claim) <= 3  # 3 families at 0.05: about 1.7 of 12 expected


def test_planted_alignment_is_found_with_its_direction() -> None:
    pulls = {"200_2": -20.0, "200_4": 20.0, "400_4": 20.0}  # 200_2: along the diagonals
    claims = by_key(conclude(data_set(4, pulls), CONDITIONS, permutations=1999, resamples=500))
    for group, direction in (("200_2", "diagonals"), ("200_4", "axes"), ("400_4", "axes")):
        assert claims[group, ""].significant and claims[group, ""].direction == direction
        assert claims[group, ""].p_value == pytest.approx(2 / 256)  # every image on one side
        low, high = claims[group, ""].ci
        assert low <= claims[group, ""].effect <= high
    assert not claims["400_2", ""].significant and not claims["empty", ""].significant
    assert claims["200_4", "empty"].significant and claims["200_4", "empty"].effect > 0
    assert claims["200_2", "empty"].direction == "diagonals"


def test_interaction_planted_only_in_400_4() -> None:
    rng = np.random.default_rng(5)
    records = [
        ImageRecord(f"{g}/{i}.tif", g, float(rng.normal(0.5 if g == "400_4" else 0, 0.1)), 1, 1)
        for g in CONDITIONS
        for i in range(8)
    ]
    claims = {c.reference: c for c in conclude(records, CONDITIONS, permutations=1999)}
    assert claims[INTERACTION].significant and claims[INTERACTION].effect > 0.3
    assert claims[INTERACTION].group == "(400_4 - 400_2) - (200_4 - 200_2)"
    assert claims["height"].effect == pytest.approx(claims["spacing"].effect, abs=0.1)
    text = summary_text([], list(claims.values()), 0.05, 0.95, 10.0, [])
    assert "spacing matters more on the taller pillars" in text
    assert "400 nm - 200 nm: +0." in text and "at 400 nm (toward the axes)" in text


def test_too_few_images_are_listed_not_tested() -> None:
    records = data_set(6, {}, per_group=2)
    claims = conclude(records, CONDITIONS)
    assert len(claims) == 12 and all(c.p_value is None and not c.significant for c in claims)
    assert all(c.row()["p_adjusted"] == "" for c in claims)
    assert "not tested: 2 images, too few" in summary_text([], claims, 0.05, 0.95, 10.0, [])


def test_images_without_axons_or_left_out_carry_no_c() -> None:
    records = [
        ImageRecord("a/1.tif", "a", 0.5, 10.0, 2),
        ImageRecord("a/2.tif", "a", None, 0.0, 0),
        ImageRecord("a/3.tif", "a", 0.9, 10.0, 2, included=False),
    ]
    values, images = unit_alignment(records)["a"]
    assert values.tolist() == [0.5] and images == 1
    row = {"image": "a/2.tif", "group": "a", "axon_alignment": "", "axon_length_px": "0",
           "n_segments": "0"}  # fmt: skip
    assert image_record(row).alignment is None and image_record(row).included


def test_plate_table_makes_the_plate_the_unit(tmp_path: Path) -> None:
    table = tmp_path / "plates.csv"
    rows = [{"image": f"a/{i}.tif", "plate": f"p{i % 2}"} for i in range(6)]
    io.write_csv(table, rows, ("image", "plate"))
    records = [ImageRecord(f"a/{i}.tif", "a", float(i), 1.0, 1) for i in range(6)]
    records = assign_plates(records, read_plates(table), table)
    values, images = unit_alignment(records)["a"]
    assert sorted(values.tolist()) == [2.0, 3.0] and images == 6  # (0+2+4)/3, (1+3+5)/3
    (claim,) = conclude(records, {}, min_units=2)
    assert claim.unit == "plate" and claim.n_units == 2 and claim.n_images == 6
    text = summary_text([], [claim], 0.05, 0.95, 10.0, [])
    assert "2 plates (6 images)" in text and "may not be independent" not in text


def test_bad_plate_tables_name_the_file(tmp_path: Path) -> None:
    table = tmp_path / "plates.csv"
    io.write_csv(table, [{"image": "a/1.tif", "dish": "p1"}], ("image", "dish"))
    with pytest.raises(
        ValueError, match=r"plates.csv: needs columns image,plate \(found image,dish"
    ):
        read_plates(table)
    io.write_csv(table, [{"image": "a/1.tif", "plate": "p1"}], ("image", "plate"))
    records = [ImageRecord("a/1.tif", "a", 0.1, 1, 1), ImageRecord("a/2.tif", "a", 0.1, 1, 1)]
    with pytest.raises(ValueError, match="plates.csv: image 'a/2.tif' not found"):
        assign_plates(records, read_plates(table), table)
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        read_plates(tmp_path / "nowhere.csv")


def test_conclusions_rows_and_summary_wording() -> None:
    pulls = {"200_2": -20.0, "400_4": 20.0}
    claims = conclude(data_set(4, pulls), CONDITIONS, permutations=999, resamples=300)
    assert all(tuple(c.row()) == CONCLUSION_COLUMNS for c in claims)
    assert {c.row()["significant"] for c in claims} == {"true", "false"}
    text = summary_text([], claims, 0.05, 0.95, 10.0, ["1 duplicate"])
    assert not re.findall(r"\b[A-Z]{3,}\b", text)  # no shouting
    assert "200_2: mean C -0." in text and "axons run along the diagonals" in text
    assert "400_4: mean C +0." in text and "axons run along the axes" in text
    assert "may not be independent" in text and "1 duplicate" in text
    assert "e-" not in text  # no p-values beyond what a permutation test can resolve
