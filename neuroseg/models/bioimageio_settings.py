"""What a bioimage.io package says about itself and how it runs (conf/export.yaml), as plain
values, with the input sizes and channel names they imply, shared by the package's spec, its
documentation and its writer."""

from __future__ import annotations

from dataclasses import dataclass

from neuroseg.inference.window import SIZE_MULTIPLE
from neuroseg.task import Task


@dataclass(frozen=True)
class PackageInfo:
    """What the package says about itself: conf/export.yaml `package`, as plain values."""

    name: str
    description: str
    authors: list[dict[str, str]]
    license: str
    version: str
    tags: list[str]
    cite: list[dict[str, str]]
    training_data: str
    git_repo: str | None = None


@dataclass(frozen=True)
class PackageSettings:
    """How the package runs and how strictly it is checked (conf/export.yaml)."""

    input_bit_depth: int = 8
    halo_px: int = 64
    opset: int = 18
    tolerance: float = 1e-4
    overlay_colors: tuple[tuple[int, int, int], ...] = ((0, 255, 0), (255, 0, 0))


def input_dtype(bit_depth: int) -> str:
    """numpy/spec dtype of the package's raw input: uint8 or uint16."""
    if bit_depth not in (8, 16):
        raise ValueError(f"input_bit_depth={bit_depth}: choose 8 or 16")
    return f"uint{bit_depth}"


def min_input_px(halo_px: int) -> int:
    """Smallest input side: the first multiple of 32 that leaves output after cropping 2 halos."""
    return (2 * halo_px // SIZE_MULTIPLE + 1) * SIZE_MULTIPLE


def output_channels(task: Task) -> list[str]:
    """Names of the probability channels, as predict names its probability files."""
    return list(task.class_names[1:] if task.out_channels == 1 else task.class_names)
