"""Shared fixtures: a tiny synthetic raw tree and the dataset prepared from it (once a session),
a writer of checkpoint files in the original project's format, and a reader of report.html."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize
from omegaconf import DictConfig

RAW_KWARGS = dict(per_condition=2, height=192, width=256, bit_depth=8, seed=0, duplicates=1)


def compose_prepare(overrides: list[str]) -> DictConfig:
    """The shipped prepare config with `overrides`, as `python -m neuroseg.prepare` would see it."""
    with initialize(version_base="1.3", config_path="../conf"):
        return compose("prepare", overrides=overrides)


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synth raw tree: 5 conditions x 2 images + 1 exact duplicate, 192x256 uint8, with axons."""
    # Imported here, not at the top: test files that use neither fixture still collect (and
    # point at the right culprit) while the data code is broken.
    from neuroseg.data.sample_tree import make_dataset

    return make_dataset(tmp_path_factory.mktemp("synth") / "raw", **RAW_KWARGS)


@pytest.fixture(scope="session")
def prepared_dir(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`raw_dir` prepared with the default config: 10 images (duplicate dropped), 7/1/2 in
    train/val/test, 2x2 tiles of 96x128 (28/4/8 tiles), masks/ and masks_axons/."""
    from neuroseg.prepare import prepare

    out_dir = tmp_path_factory.mktemp("prepared") / "prepared"
    prepare(compose_prepare([f"raw_dir={raw_dir}", f"out_dir={out_dir}", "workers=1"]))
    return out_dir


@pytest.fixture(scope="session")
def write_legacy_checkpoint() -> Callable[[torch.nn.Module, Path], Path]:
    """`write(model, path) -> path`: saves a UNet11/UNet16 as the original's training script did,
    so load, evaluate and predict tests read the very format users bring."""
    from neuroseg.models.legacy import legacy_state_dict

    def write(model: torch.nn.Module, path: Path) -> Path:
        """{epoch, model_state_dict (original layout), optimizer_state_dict (Adam)} at `path`."""
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        state = {
            "epoch": 99,
            "model_state_dict": legacy_state_dict(model),
            "optimizer_state_dict": optimizer.state_dict(),
        }
        torch.save(state, path)
        return path

    return write


class ReportPage(HTMLParser):
    """What a test reads back from a report: tables by data-table (rows of data-column cells),
    claims (their data-* attributes, sentence and detail), warnings, image cards, every tag,
    every address an attribute holds, inline styles and the settings block."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.addresses: list[str] = []
        self.styles: list[str] = []
        self.tables: dict[str, list[dict[str, str]]] = {}
        self.claims: list[dict[str, str]] = []
        self.warnings: list[str] = []
        self.cards: list[dict[str, str]] = []
        self.config = ""
        self._table: list[dict[str, str]] | None = None
        self._row: dict[str, str] | None = None
        self._capture: tuple[str, dict[str, str], str] | None = None  # (tag, into, key)
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        self.tags.add(tag)
        self.addresses += [a[k] for k in ("src", "href", "srcset", "poster", "action") if k in a]
        self.styles += [a["style"]] if "style" in a else []
        classes = a.get("class", "").split()
        if tag == "table":
            self._table = self.tables.setdefault(a.get("data-table", ""), [])
        elif tag == "tr" and self._table is not None:
            self._row = {}
        elif tag == "td" and self._row is not None and "data-column" in a:
            self._row[a["data-column"]] = ""  # an empty cell has no text
            self._capture = ("td", self._row, a["data-column"])
        elif tag == "li" and "claim" in classes:
            self.claims.append({k[5:]: v for k, v in a.items() if k.startswith("data-")})
        elif tag == "div" and self.claims and {"sentence", "detail"} & set(classes):
            self._capture = ("div", self.claims[-1], f"_{classes[0]}")
        elif tag == "li" and self._in_warnings:
            self.warnings.append("")
            self._capture = ("li", {}, "warning")
        elif tag == "ul":
            self._in_warnings = "warnings" in classes
        elif tag == "div" and "card" in classes:
            self.cards.append({"image": a["data-image"], "left_out": str("left-out" in classes)})
        elif tag == "img" and self.cards and "src" in a:
            self.cards[-1].setdefault("src", a["src"])
        elif tag == "pre" and "data-config" in a:
            self._capture = ("pre", {}, "config")

    _in_warnings = False

    def handle_data(self, data: str) -> None:
        if self._capture is None:
            return
        _, into, key = self._capture
        if key == "warning":
            self.warnings[-1] += data
        elif key == "config":
            self.config += data
        else:
            into[key] = into.get(key, "") + data

    def handle_endtag(self, tag: str) -> None:
        if self._capture is not None and self._capture[0] == tag:
            self._capture = None
        if tag == "tr" and self._row is not None and self._table is not None:
            if self._row:
                self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "ul":
            self._in_warnings = False


@pytest.fixture(scope="session")
def report_page() -> type[ReportPage]:
    """`report_page(html_text)`: a report.html read back (tables, claims, cards, addresses)."""
    return ReportPage
