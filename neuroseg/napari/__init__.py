"""napari plugin: open the lab's images, labels and predict outputs; segment the current image
with a checkpoint; save corrected labels in the lab's palette (manifest: napari.yaml)."""
