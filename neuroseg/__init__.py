"""neuroseg: segment neurons and axons in brightfield images of neurons on nanostructured diamond."""

__version__ = "0.1.0"
