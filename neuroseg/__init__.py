"""Segment neurons and axons in brightfield images of neurons grown on nanostructured diamond."""

__version__ = "0.1.0"
