"""Find the (original image, class mask, group) triples to analyse in the project's folder layouts.

Images: a raw tree (`originals/<condition>/<n>.tif`, grouped by condition folder), a prepared
split folder (`images/` plus `manifest.csv` beside it or one level up, grouped by a manifest
column), a folder of group sub-folders, or a plain folder of images (one group, the folder's name).
Masks: a folder holding, for image `<rel>/<stem>.<ext>`, one of `<rel>/<stem>.png`,
`<rel>/<stem>_mask.png` (predict's name), or the same names flat, optionally as
`<group folder>_<stem>...`; this covers prepare's `masks_axons/`, the raw tree's `truth/`
and predict's output. Painted label copies `<rel folder>/<prefix>_<stem>.jpg` (the raw tree's
`labels_axons/`) match too; they are RGB and decoded with the palette when read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neuroseg.data.split import natural_key
from neuroseg.errors import ChoiceError, InputError, MissingPathError
from neuroseg.io import IMAGE_SUFFIXES, list_images, read_csv

MASK_SUFFIXES = (".png", ".tif", ".tiff")
LABEL_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class ImageSource:
    """One image to analyse: its file, its mask file, its group and its name in the tables."""

    name: str
    image: Path
    mask: Path
    group: str


@dataclass(frozen=True)
class Layout:
    """Images found under an images folder: {relative path: group}, root, and default masks."""

    root: Path
    groups: dict[Path, str]
    default_masks: Path | None


def find_manifest(split_dir: Path) -> Path | None:
    """The manifest.csv of a prepared split folder (beside images/ or one level up), if any."""
    for candidate in (split_dir / "manifest.csv", split_dir.parent / "manifest.csv"):
        if candidate.is_file():
            return candidate
    return None


def images_in(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted; hidden (partly written) files are left out."""
    return [p for p in list_images(folder) if not p.name.startswith(".")]


def discover_images(images: Path, group_by: str = "condition") -> Layout:
    """Recognise the layout of `images` and group every image in it; errors name the fix."""
    images = Path(images)
    if not images.is_dir():
        raise MissingPathError(f"{images}: no such folder; set images=<raw tree or image folder>")
    if (images / "originals").is_dir():
        if group_by != "condition":
            raise ChoiceError(
                f"{images}: a raw tree groups only by condition; set group_by=condition"
            )
        root = images / "originals"
        groups = {
            p.relative_to(root): p.parent.name for d in subfolders(root) for p in images_in(d)
        }
        # Exact synthetic truth first, else the lab's hand-painted labels with axons.
        masks = [images / tree for tree in ("truth", "labels_axons") if (images / tree).is_dir()]
        return Layout(root, groups, masks[0] if masks else None)
    if (images / "images").is_dir():
        return prepared_layout(images, group_by)
    direct = images_in(images)
    if direct:
        return Layout(images, {p.relative_to(images): images.name for p in direct}, None)
    groups = {p.relative_to(images): d.name for d in subfolders(images) for p in images_in(d)}
    return Layout(images, groups, None)


def subfolders(folder: Path) -> list[Path]:
    """Visible sub-folders of `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def prepared_layout(split_dir: Path, group_by: str) -> Layout:
    """Tiles of a prepared split grouped by the manifest column `group_by` (keyed by tile name)."""
    manifest = find_manifest(split_dir)
    if manifest is None:
        raise MissingPathError(
            f"{split_dir}: has images/ but no manifest.csv beside it or one level up; "
            "point images= at a split folder written by prepare"
        )
    rows = read_csv(manifest)
    if rows and group_by not in rows[0]:
        raise ChoiceError(
            f"{manifest}: no column {group_by!r}; choose group_by from {sorted(rows[0])}"
        )
    by_tile = {row["tile"]: row[group_by] for row in rows}
    root = split_dir / "images"
    files = images_in(root)
    missing = [p.name for p in files if p.stem not in by_tile]
    if missing:
        raise ChoiceError(
            f"{manifest}: no row for {len(missing)} tile(s) in {root}: {missing[:10]}; "
            "re-run prepare or remove the stray files"
        )
    masks = split_dir / "masks_axons"
    return Layout(root, {p.relative_to(root): by_tile[p.stem] for p in files}, masks)


def mask_candidates(masks: Path, relative: Path) -> list[Path]:
    """Mask files that may belong to the image at `relative` (under the images root), in order."""
    stem, parent = relative.stem, relative.parent
    names = [f"{stem}{tag}{suffix}" for tag in ("", "_mask") for suffix in MASK_SUFFIXES]
    nested = [masks / parent / name for name in names]
    flat = [masks / name for name in names]
    if parent != Path("."):
        flat += [masks / f"{parent.as_posix().replace('/', '_')}_{name}" for name in names]
    # Painted labels pair by the number after the last underscore (label_7.jpg -> 7.tif).
    painted = sorted(
        p for p in (masks / parent).glob(f"*_{stem}.*") if p.suffix.lower() in LABEL_SUFFIXES
    )
    return (nested + flat if parent != Path(".") else flat) + painted


def pair_masks(layout: Layout, masks: Path | None) -> list[ImageSource]:
    """Give every image its mask; all images without one are listed in a single error."""
    masks = Path(masks) if masks is not None else layout.default_masks
    if masks is None:
        raise MissingPathError(
            f"{layout.root}: no masks folder given; "
            "set masks=<masks_axons/, truth/ or predict output>"
        )
    if not masks.is_dir():
        raise MissingPathError(f"{masks}: no such masks folder; set masks=<folder of class masks>")
    sources, missing = [], []
    claimed: dict[Path, Path] = {}
    # Natural order (9 before 10), so a repeated image is reported against the lower number.
    for relative, group in sorted(
        layout.groups.items(), key=lambda i: natural_key(i[0].as_posix())
    ):
        found = next((c for c in mask_candidates(masks, relative) if c.is_file()), None)
        if found is None:
            missing.append(relative.as_posix())
            continue
        if found in claimed:
            raise InputError(
                f"{found}: mask matches both {claimed[found]} and {relative}; "
                "keep masks in per-group sub-folders or prefix them with the group"
            )
        claimed[found] = relative
        sources.append(ImageSource(relative.as_posix(), layout.root / relative, found, group))
    if missing:
        raise MissingPathError(
            f"{masks}: no mask for {len(missing)} image(s) of {layout.root}: {missing[:20]}; "
            "expected <name>.png, <name>_mask.png or <prefix>_<name>.jpg per image"
        )
    return sources


def unused_masks(masks: Path, sources: list[ImageSource]) -> list[Path]:
    """Mask-like files under `masks` that no image claimed (reported, so nothing goes unseen)."""
    used = {source.mask.resolve() for source in sources}
    suffixes = MASK_SUFFIXES + LABEL_SUFFIXES
    files = (p for p in Path(masks).rglob("*") if p.suffix.lower() in suffixes)
    if (Path(masks) / "images.csv").is_file():  # a sample tree's truth/: grid/ holds coverage
        files = (p for p in files if not p.is_relative_to(Path(masks) / "grid"))
    # predict writes overlays and probabilities beside its masks; they are not masks.
    side_files = ("_overlay", "_probs")
    return sorted(
        p
        for p in files
        if p.resolve() not in used
        and not p.name.startswith(".")
        and not p.stem.endswith(side_files)
    )


def find_sources(
    images: Path, masks: Path | None, group_by: str = "condition"
) -> tuple[list[ImageSource], list[Path]]:
    """Images with masks and groups, plus the mask files nobody claimed; raises when empty."""
    layout = discover_images(images, group_by)
    if not layout.groups:
        raise MissingPathError(f"{images}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    sources = pair_masks(layout, masks)
    mask_dir = Path(masks) if masks is not None else layout.default_masks
    return sources, unused_masks(mask_dir, sources)
