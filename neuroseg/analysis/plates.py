"""Which images share a plate: the optional table (plates=<csv image,plate>) that makes the plate,
not the image, the unit of every claim (images of one plate share a culture)."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from neuroseg.analysis.conclusions import ImageRecord
from neuroseg.errors import InputError, MissingPathError


def read_plates(path: Path) -> dict[str, str]:
    """{image: plate} from a CSV with columns image,plate; one error line names the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"{path}: plate table not found; set plates= to a CSV image,plate")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"image", "plate"} <= set(reader.fieldnames or ()):
            found = ",".join(reader.fieldnames or ()) or "nothing"
            raise InputError(f"{path}: needs columns image,plate (found {found})")
        rows = list(reader)
    plates: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        image, plate = (row["image"] or "").strip(), (row["plate"] or "").strip()
        if not image or not plate or plates.setdefault(image, plate) != plate:
            raise InputError(f"{path}: line {number}: empty or conflicting image,plate {image!r}")
    return plates


def assign_plates(
    records: Sequence[ImageRecord], plates: Mapping[str, str], path: Path
) -> list[ImageRecord]:
    """Records with their plate; an image the table lacks is an error naming the table."""
    missing = [r.image for r in records if plate_of(r.image, plates) is None]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(
            f"{path}: image {missing[0]!r}{more} not found; list every image of per_image.csv"
        )
    return [replace(r, plate=str(plate_of(r.image, plates))) for r in records]


def plate_of(image: str, plates: Mapping[str, str]) -> str | None:
    """The plate of `image` as named in per_image.csv, or without its suffix (200_2/1)."""
    return plates.get(image, plates.get(str(Path(image).with_suffix(""))))
