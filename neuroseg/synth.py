"""Write lab-like sample data (raw tree plus truth): python -m neuroseg.synth out_dir=/tmp/raw."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from neuroseg.cli import command
from neuroseg.data.sample_tree import make_dataset


@command("synth")
def main(cfg: DictConfig) -> None:
    out_dir = synth(cfg)
    originals = sorted((out_dir / "originals").glob("*/*.tif"))
    conditions = sorted({path.parent.name for path in originals})
    print(
        f"wrote {len(originals)} originals ({cfg.duplicates} duplicates), conditions {conditions}, "
        f"to {out_dir}"
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
        paint_rgb={name: tuple(rgb) for name, rgb in OmegaConf.to_container(cfg.paint_rgb).items()},
    )


if __name__ == "__main__":
    main()
