"""Entry point: `python -m neuroseg.prepare raw_dir=... out_dir=...` (config conf/prepare.yaml)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from neuroseg.cli import command
from neuroseg.data.build import prepare_dataset
from neuroseg.data.labels import check_palette


@command("prepare")
def main(cfg: DictConfig) -> None:
    prepare(cfg)


def prepare(cfg: DictConfig) -> dict:
    """Prepare cfg.raw_dir into cfg.out_dir; returns the report written to report.json."""
    return prepare_dataset(
        raw_dir=Path(cfg.raw_dir),
        out_dir=Path(cfg.out_dir),
        fractions=OmegaConf.to_container(cfg.split, resolve=True),
        seed=cfg.seed,
        rows=cfg.tiles.rows,
        cols=cfg.tiles.cols,
        palette=check_palette(cfg.palette),
        overwrite=cfg.overwrite,
        strict=cfg.strict,
        workers=cfg.workers,
        prefer_label=cfg.prefer_label,
        progress=cfg.progress,
    )


if __name__ == "__main__":
    main()
