"""napari widget: segment the current image with a checkpoint and show the classes as Labels.

The model is loaded and run by neuroseg.inference.predictor (load_settings_model, segment), with
the predict config's settings, in a worker thread so the viewer stays live; a progress bar shows
the step.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error

from neuroseg.inference.predictor import load_settings_model, segment
from neuroseg.inference.settings import inference_settings
from neuroseg.napari.reader import neuroseg_meta, palette_colormap
from neuroseg.napari.settings import predict_config
from neuroseg.runtime import set_threads
from neuroseg.task import Task

SAVED = "as saved"  # encoder/task choice: the checkpoint's own (legacy files name neither)
STEPS = ("loading the checkpoint", "segmenting", "done")


def segment_steps(
    settings: dict[str, str], image: np.ndarray
) -> Generator[str, None, tuple[np.ndarray, Task]]:
    """Yield each step's name while loading the model and segmenting `image` (H, W[, 3]) uint8 or
    uint16; return its (H, W) uint8 class map and the model's task.

    `settings` replace predict config values (ckpt_path, device, encoder, task) as they are, so a
    path with spaces or commas needs no override quoting.
    """
    yield STEPS[0]
    cfg = predict_config()
    for key, value in settings.items():
        cfg[key] = value
    inference = inference_settings(cfg, stage="napari")
    set_threads(inference.threads)
    loaded, task, threshold, device = load_settings_model(inference)
    yield STEPS[1]
    _, mask = segment(loaded.model, image, task, threshold, inference, device)
    return mask, task


def layer_source(layer: napari.layers.Image) -> Path | None:
    """The file an image layer came from: the neuroseg reader's record, else napari's."""
    recorded = (layer.metadata.get("neuroseg") or {}).get("image")
    found = recorded or layer.source.path
    return None if found is None else Path(found)


class SegmentWidget(Container):
    """Image, checkpoint, encoder/task (for original .pth files), device; Segment; progress."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.viewer = viewer
        self.image = ComboBox(label="image", choices=self.image_layers)
        self.checkpoint = FileEdit(label="checkpoint", mode="r", filter="*.ckpt *.pth")
        self.encoder = ComboBox(label="encoder", choices=(SAVED, "vgg11", "vgg16"), value=SAVED)
        self.task = ComboBox(label="task", choices=(SAVED, "binary", "axons"), value=SAVED)
        self.device = ComboBox(label="device", choices=("auto", "cpu", "cuda"), value="auto")
        self.run_button = PushButton(text="Segment")
        self.progress = ProgressBar(label="progress", min=0, max=len(STEPS) - 1, value=0)
        self.status = Label(value="choose an image and a checkpoint")
        super().__init__(
            widgets=[
                self.image,
                self.checkpoint,
                self.encoder,
                self.task,
                self.device,
                self.run_button,
                self.progress,
                self.status,
            ]
        )
        self.run_button.changed.connect(self.start)
        viewer.layers.events.inserted.connect(self.reset_choices)
        viewer.layers.events.removed.connect(self.reset_choices)

    def image_layers(self, _widget: object = None) -> list[tuple[str, napari.layers.Image]]:
        """The viewer's image layers, by name (the choices of the image box)."""
        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if layer.ndim == 2 and isinstance(layer, napari.layers.Image)
        ]

    def settings(self) -> dict[str, str]:
        """predict config values for the chosen checkpoint, device, encoder and task."""
        chosen = {"ckpt_path": str(self.checkpoint.value), "device": self.device.value}
        for key, box in (("encoder", self.encoder), ("task", self.task)):
            if box.value != SAVED:
                chosen[key] = box.value
        return chosen

    def start(self) -> None:
        """Run the model on the chosen image in a worker thread; the result arrives as Labels."""
        layer = self.image.value
        checkpoint = Path(self.checkpoint.value)
        if layer is None or not checkpoint.is_file():
            self.status.value = "choose an image layer and a checkpoint file (.ckpt or .pth)"
            return
        self.run_button.enabled = False
        self.progress.value = 0
        worker = thread_worker(segment_steps)(self.settings(), np.asarray(layer.data))
        worker.yielded.connect(self.show_step)
        worker.returned.connect(lambda result: self.show_result(layer, *result))
        worker.errored.connect(self.show_failure)
        worker.finished.connect(lambda: setattr(self.run_button, "enabled", True))
        worker.start()

    def show_step(self, step: str) -> None:
        self.progress.value = STEPS.index(step)
        self.status.value = f"{step} ..."

    def show_result(self, layer: napari.layers.Image, mask: np.ndarray, task: Task) -> None:
        """Add (or refresh) `<image> prediction`, a Labels layer the writer can save."""
        name = f"{layer.name} prediction"
        meta = neuroseg_meta(layer_source(layer), task.num_classes == 3)
        if name in self.viewer.layers:
            self.viewer.layers[name].data = mask
            self.viewer.layers[name].metadata.update(meta)
        else:
            self.viewer.add_labels(mask, name=name, metadata=meta, colormap=palette_colormap())
        self.progress.value = len(STEPS) - 1
        counts = np.bincount(mask.ravel(), minlength=task.num_classes)
        shares = ", ".join(
            f"{cls} {100 * n / mask.size:.1f}%"
            for cls, n in zip(task.foreground, counts[1:], strict=True)
        )
        self.status.value = f"done: {shares}"

    def show_failure(self, error: Exception) -> None:
        self.progress.value = 0
        self.status.value = f"failed: {error}"
        show_error(str(error))
