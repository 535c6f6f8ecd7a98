"""Write lab-like sample data (raw tree plus truth): python -m neuroseg.synth out_dir=/tmp/raw.

`style=clean` (default) draws the clean world of the tests and the demo; `style=lab` the lab's
fields as shared/reference/real-images.md measures them (docs/sample-data.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from neuroseg.cli import command
from neuroseg.configs import build, to_plain
from neuroseg.data.lab_settings import LabStyle
from neuroseg.data.sample_tree import make_dataset

_CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@command("synth")
def main(cfg: DictConfig) -> None:
    out_dir = synth(cfg)
    originals = sorted((out_dir / "originals").glob("*/*.tif"))
    conditions = sorted({path.parent.name for path in originals})
    print(
        f"wrote {len(originals)} originals ({cfg.duplicates} duplicates), "
        f"conditions {conditions}, {cfg.style} style, to {out_dir}"
    )


def synth(cfg: DictConfig) -> Path:
    """Write the sample raw tree the config describes; returns its folder."""
    return make_dataset(
        out_dir=Path(cfg.out_dir),
        per_condition=cfg.per_condition,
        height=cfg.height,
        width=cfg.width,
        bit_depth=cfg.bit_depth,
        seed=cfg.seed,
        duplicates=cfg.duplicates,
        pixel_size_um=cfg.pixel_size_um,
        jpeg_quality=cfg.jpeg_quality,
        paint_rgb={
            name: tuple(rgb)
            for name, rgb in OmegaConf.to_container(cfg.paint_rgb, resolve=True).items()
        },
        style=cfg.style,
        lab=lab_style(cfg) if cfg.style == "lab" else None,
    )


def lab_style(cfg: DictConfig) -> LabStyle:
    """The composed synth config's `lab` section as the lab-style generator takes it."""
    return build(LabStyle, to_plain(cfg.lab), "lab")


def synth_config(overrides: Sequence[str] = ()) -> DictConfig:
    """conf/synth.yaml composed with `overrides`, outside a Hydra app (benchmarks, tests):
    `lab_style(synth_config(["lab.paint.painted_share=[0.5,0.5]"]))`."""
    with initialize_config_dir(version_base="1.3", config_dir=str(_CONF_DIR)):
        return compose("synth", overrides=list(overrides))


if __name__ == "__main__":
    main()
