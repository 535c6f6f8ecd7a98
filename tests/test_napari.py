"""The napari plugin, headless: open a raw-tree image, segment it with a tiny model, paint a
correction, save it in the lab's palette, and prepare reads the correction back."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

# CI installs .[napari] and runs under xvfb-run: there a missing piece fails instead of skipping.
IN_CI = os.environ.get("CI") == "true"
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt starts: no window system
if IN_CI:
    import napari
    import pytestqt  # noqa: F401
else:
    MISSING = "is not installed: pip install '.[napari]'"
    napari = pytest.importorskip("napari", reason=f"napari {MISSING}")
    pytest.importorskip("pytestqt", reason=f"pytest-qt {MISSING}")

from hydra import compose, initialize  # noqa: E402
from npe2 import PluginManager, PluginManifest  # noqa: E402

from neuroseg import io  # noqa: E402
from neuroseg.data.sample_tree import make_dataset  # noqa: E402
from neuroseg.models.ternausnet import build_model  # noqa: E402
from neuroseg.napari.reader import read_layers  # noqa: E402
from neuroseg.napari.widget import SegmentWidget  # noqa: E402
from neuroseg.napari.writer import write_labels  # noqa: E402
from neuroseg.prepare import prepare  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# napari's canvas needs OpenGL, which Qt's offscreen platform lacks; Xvfb (xcb) provides it.
needs_display = pytest.mark.skipif(
    not os.environ.get("DISPLAY") and not IN_CI,
    reason="the napari viewer needs OpenGL through an X display: run under xvfb-run -a",
)
MANIFEST = REPO / "neuroseg" / "napari" / "napari.yaml"
LegacyWriter = Callable[[torch.nn.Module, Path], Path]  # conftest's write_legacy_checkpoint


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two conditions x two 64x96 images with JPEG labels (labels/ and labels_axons/)."""
    out = tmp_path_factory.mktemp("napari") / "raw"
    conditions = ("200_2", "empty")
    return make_dataset(
        out, per_condition=2, height=64, width=96, duplicates=0, seed=7, conditions=conditions
    )


@pytest.fixture
def plugin() -> str:
    """The plugin registered from this checkout's manifest (an installed one is used as is)."""
    manager = PluginManager.instance()
    if "neuroseg" not in manager:
        manager.register(PluginManifest.from_file(MANIFEST))
    return "neuroseg"


def test_reader_opens_originals_labels_and_predict_outputs(raw: Path, tmp_path: Path) -> None:
    (image, labels) = read_layers(str(raw / "originals" / "200_2" / "1.tif"))
    assert image[2] == "image" and labels[2] == "labels"
    truth = io.read_image(raw / "truth" / "200_2" / "1.png")
    assert labels[0].shape == truth.shape and set(np.unique(labels[0])) <= {0, 1, 2}
    assert labels[1]["metadata"]["neuroseg"]["image"] == str(raw / "originals" / "200_2" / "1.tif")
    (shown, from_label) = read_layers(str(raw / "labels" / "empty" / "label_2.jpg"))
    np.testing.assert_array_equal(shown[0], io.read_image(raw / "originals" / "empty" / "2.tif"))
    assert from_label[0].max() <= 1  # labels/ holds neurons only
    io.write_png(tmp_path / "a_mask.png", truth)
    io.write_png(tmp_path / "a_overlay.png", np.zeros((*truth.shape, 3), np.uint8))
    (overlay, mask) = read_layers(str(tmp_path / "a_mask.png"))
    assert overlay[1]["rgb"] and mask[2] == "labels"
    np.testing.assert_array_equal(mask[0], truth)
    with pytest.raises(ValueError, match="no original image recorded"):
        write_labels(str(tmp_path / "out"), mask[0], mask[1])
    with pytest.raises(ValueError, match=r"labels \[7\]"):
        write_labels(str(tmp_path / "out"), np.full_like(truth, 7), labels[1])


@needs_display
def test_segment_edit_save_and_prepare_reads_it(
    make_napari_viewer: Callable,
    qtbot: object,
    plugin: str,
    raw: Path,
    tmp_path: Path,
    write_legacy_checkpoint: LegacyWriter,
) -> None:
    torch.manual_seed(0)
    checkpoint = write_legacy_checkpoint(build_model("vgg11", 3, None), tmp_path / "unet11.pth")
    viewer = make_napari_viewer()
    original = raw / "originals" / "200_2" / "1.tif"
    viewer.open(original, plugin=plugin)
    assert [layer.name for layer in viewer.layers] == ["1", "1 labels_axons"]

    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.value = viewer.layers["1"]
    widget.checkpoint.value = checkpoint
    widget.encoder.value, widget.task.value, widget.device.value = "vgg11", "axons", "cpu"
    widget.run_button.clicked.emit()
    qtbot.waitUntil(lambda: "1 prediction" in viewer.layers, timeout=60_000)
    assert widget.status.value.startswith("done") and widget.progress.value == 2
    prediction = viewer.layers["1 prediction"]
    assert prediction.data.shape == (64, 96) and prediction.data.max() <= 2

    # The correction: a neuron brushed in, and a band of axon across the image.
    prediction.brush_size = 9
    prediction.paint((20, 30), 1, refresh=True)
    prediction.data_setitem((np.full(96, 50), np.arange(96)), 2)
    edited = np.asarray(prediction.data).copy()
    assert edited[20, 30] == 1 and (edited[50] == 2).all()

    viewer.layers.selection = {prediction}
    saved = viewer.layers.save(str(tmp_path / "corrected"), selected=True, plugin=plugin)
    tree = tmp_path / "corrected"
    assert sorted(saved) == [
        str(tree / "labels" / "200_2" / "corrected_1.png"),
        str(tree / "labels_axons" / "200_2" / "corrected_1.png"),
    ]
    fixed_raw = tmp_path / "raw"
    shutil.copytree(raw, fixed_raw)
    shutil.copytree(tree, fixed_raw, dirs_exist_ok=True)
    out = tmp_path / "prepared"
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose(
            "prepare", [f"raw_dir={fixed_raw}", f"out_dir={out}", "tiles.rows=1", "tiles.cols=1"]
        )
    report = prepare(cfg)
    assert [c["path"] for c in report["labels_chosen"]["chosen"]] == [
        "labels/200_2/corrected_1.png",
        "labels_axons/200_2/corrected_1.png",
    ]
    (tile,) = out.glob("*/masks_axons/200_2_1_r0c0.png")
    np.testing.assert_array_equal(io.read_image(tile), edited)
