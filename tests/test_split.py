"""Split of whole images: grouping, stratification, exact counts, determinism, bad fractions."""

from __future__ import annotations

from collections import Counter

import pytest

from neuroseg.data.split import extend_split, grouped_split, largest_remainder, natural_key

FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
CONDITIONS = ("200_2", "200_4", "400_2", "400_4", "empty")


def lab_ids(per_condition: dict[str, int]) -> tuple[list[str], list[str]]:
    """Image ids `<condition>_<n>` and their conditions."""
    ids = [f"{c}_{n}" for c, count in per_condition.items() for n in range(1, count + 1)]
    return ids, [image_id.rsplit("_", 1)[0] for image_id in ids]


@pytest.mark.parametrize(
    ("total", "fractions", "expected"),
    [
        (41, (0.7, 0.1, 0.2), [29, 4, 8]),  # 28.7, 4.1, 8.2: the .7 remainder wins the extra
        (10, (0.7, 0.1, 0.2), [7, 1, 2]),
        (164, (0.7, 0.1, 0.2), [115, 16, 33]),  # 114.8, 16.4, 32.8: tie goes to the first
        (3, (0.7, 0.1, 0.2), [1, 1, 1]),  # 2, 0, 1 would leave val empty
        (2, (0.7, 0.1, 0.2), [1, 0, 1]),  # too few for three sets: plain largest remainder
        (7, (1.0, 0.0, 0.0), [7, 0, 0]),
        (0, (0.7, 0.1, 0.2), [0, 0, 0]),
    ],
)
def test_largest_remainder(total: int, fractions: tuple[float, ...], expected: list[int]) -> None:
    assert largest_remainder(total, fractions) == expected


def test_lab_set_counts_per_split_and_condition() -> None:
    ids, groups = lab_ids({"200_2": 8, "200_4": 8, "400_2": 8, "400_4": 8, "empty": 9})
    split = grouped_split(ids, groups, FRACTIONS, seed=42)
    assert {name: len(members) for name, members in split.items()} == {
        "train": 29,
        "val": 4,
        "test": 8,
    }
    assert sorted(i for members in split.values() for i in members) == sorted(ids)
    for condition in CONDITIONS:
        size = 9 if condition == "empty" else 8
        per_split = {
            name: sum(i.rsplit("_", 1)[0] == condition for i in members)
            for name, members in split.items()
        }
        # Each condition gets the floor or the ceiling of its own quota in every split.
        for name, count in per_split.items():
            assert abs(count - size * FRACTIONS[name]) < 1, (condition, per_split)
        assert sum(per_split.values()) == size


def test_every_id_in_exactly_one_split() -> None:
    ids, groups = lab_ids({"200_2": 5, "400_4": 3, "empty": 13})
    split = grouped_split(ids, groups, FRACTIONS, seed=3)
    counted = Counter(i for members in split.values() for i in members)
    assert set(counted) == set(ids)
    assert set(counted.values()) == {1}


def test_tiny_synth_set_has_three_nonempty_splits() -> None:
    ids, groups = lab_ids(dict.fromkeys(CONDITIONS, 2))
    for seed in range(20):
        split = grouped_split(ids, groups, FRACTIONS, seed)
        assert [len(split[name]) for name in FRACTIONS] == [7, 1, 2]


def test_deterministic_and_independent_of_input_order() -> None:
    ids, groups = lab_ids({"200_2": 6, "200_4": 7, "empty": 4})
    first = grouped_split(ids, groups, FRACTIONS, seed=7)
    again = grouped_split(ids[::-1], groups[::-1], FRACTIONS, seed=7)
    assert first == again
    assert all(members == sorted(members, key=natural_key) for members in first.values())
    others = [grouped_split(ids, groups, FRACTIONS, seed=s) for s in range(8, 14)]
    assert any(other != first for other in others)


@pytest.mark.parametrize(
    ("fractions", "match"),
    [
        ({"train": 0.7, "val": 0.1, "test": 0.1}, "sum to 0.9"),
        ({"train": 1.1, "val": -0.1}, "negative"),
        ({}, "split.train"),
    ],
)
def test_bad_fractions(fractions: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        grouped_split(["a_1"], ["a"], fractions, seed=0)


def test_repeated_ids_are_an_error() -> None:
    with pytest.raises(ValueError, match="200_2_1"):
        grouped_split(["200_2_1", "200_2_1"], ["200_2", "200_2"], FRACTIONS, seed=0)


def test_extend_split_keeps_placed_images_and_splits_new_ones_alone() -> None:
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    previous = {"train": ["a1", "a2"], "val": ["a3"], "test": ["a4", "gone"]}
    ids = ["a1", "a2", "a3", "a4", "b1", "b2", "b3", "b4"]
    groups = ["a"] * 4 + ["b"] * 4
    split = extend_split(previous, ids, groups, fractions, seed=0)
    assert split["test"][:1] == ["a4"] and "gone" not in split["test"]
    for name, members in previous.items():  # nothing placed before moves
        assert {m for m in members if m != "gone"} <= set(split[name])
    fresh = grouped_split(["b1", "b2", "b3", "b4"], ["b"] * 4, fractions, seed=0)
    for name in fractions:
        assert [i for i in split[name] if i.startswith("b")] == fresh[name]
