"""The two segmentation tasks: which classes a mask holds and where a prepared split keeps it."""

from __future__ import annotations

from dataclasses import dataclass

from neuroseg.errors import ChoiceError

BACKGROUND, NEURON, AXON = 0, 1, 2
CLASS_NAMES = ("background", "neurons", "axons")
# Mask value of pixels no loss and no metric counts (nnU-Net's "ignore" label): the parts of a
# painted stroke around the thin axon inside it, uncertain borders. Above every class index, so a
# mask keeps it losslessly in 8-bit PNGs.
IGNORE = 255


@dataclass(frozen=True)
class Task:
    """A segmentation task: class names (background first) and the prepared mask folder."""

    name: str
    class_names: tuple[str, ...]
    mask_dir: str

    @property
    def num_classes(self) -> int:
        """Classes in the mask, background included (2 for binary, 3 for axons)."""
        return len(self.class_names)

    @property
    def out_channels(self) -> int:
        """Network output channels: one logit for binary, one per class otherwise."""
        return 1 if self.num_classes == 2 else self.num_classes

    @property
    def foreground(self) -> tuple[str, ...]:
        """Class names scored in tables and metrics (all but background)."""
        return self.class_names[1:]


TASKS: dict[str, Task] = {
    "binary": Task("binary", CLASS_NAMES[:2], "masks"),
    "axons": Task("axons", CLASS_NAMES, "masks_axons"),
}


def get_task(name: str) -> Task:
    """Look a task up by name; the error lists the choices."""
    if name not in TASKS:
        raise ChoiceError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]
