"""Render a report template to one self-contained HTML file: Jinja2 with autoescaping, and every
image as a base64 data URI, so nothing the page shows lives outside it."""

from __future__ import annotations

import base64
import functools
import io as bytes_io
from collections.abc import Mapping
from pathlib import Path

import jinja2
import numpy as np
from PIL import Image

from neuroseg.io import atomic_path

REPORT_NAME = "report.html"


@functools.cache
def environment() -> jinja2.Environment:
    """The templates shipped in neuroseg/report/templates; every value is HTML-escaped (image
    and condition names come from folder names), and an undefined name fails instead of
    rendering empty."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("neuroseg.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, context: Mapping[str, object]) -> str:
    """The page `template` (a file of neuroseg/report/templates) filled with `context`."""
    return environment().get_template(template).render(**context)


def write_page(path: Path, text: str) -> None:
    """Write the page atomically (whole or absent), UTF-8."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def png_uri(data: bytes) -> str:
    """A `data:image/png;base64,...` URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def array_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an (H, W) or (H, W, 3) uint8 array (lossless, as the run's own PNGs)."""
    buffer = bytes_io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG")
    return buffer.getvalue()


def file_uri(path: Path, max_px: int | None = None) -> str:
    """A PNG file as a data URI; with `max_px`, shrunk to that longest side first."""
    path = Path(path)
    if max_px is None:
        return png_uri(path.read_bytes())
    with Image.open(path) as image:
        image.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
        return png_uri(array_png(np.asarray(image.convert("RGB"))))
