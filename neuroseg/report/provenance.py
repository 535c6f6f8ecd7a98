"""What a reader needs to trust or repeat a run: package versions, the settings the run was given
(all of them, as YAML), the command line, and every input file with its size and SHA-256."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.metadata
import platform
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from hydra.core.hydra_config import HydraConfig

# Distributions whose version changes what a run computes or draws.
DISTRIBUTIONS = (
    "neuroseg", "torch", "torchvision", "pytorch-lightning", "torchmetrics", "numpy", "scipy",
    "scikit-image", "matplotlib", "pillow", "tifffile", "hydra-core", "omegaconf", "jinja2",
)  # fmt: skip


@dataclass(frozen=True)
class InputFile:
    """One file a run read: its path as given, size in bytes and SHA-256 hex digest."""

    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Provenance:
    """The report's last section."""

    created: str
    command: str
    versions: dict[str, str]
    config_yaml: str
    inputs: list[InputFile]


def versions() -> dict[str, str]:
    """{name: version} for Python, the platform, the source commit and DISTRIBUTIONS."""
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    commit = source_commit()
    if commit:
        found["neuroseg source"] = commit
    for name in DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def source_commit() -> str:
    """The git commit of neuroseg's source tree ('+ local changes' when the package's files
    differ from it); "" when the package is not a git checkout (a wheel) or git is missing."""
    here = Path(__file__).resolve().parents[1]  # neuroseg/
    try:
        head = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + (" + local changes" if dirty else "")


def file_digest(path: Path) -> InputFile:
    """Size and SHA-256 of `path`, read in 1 MiB blocks (lab originals are tens of MB)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return InputFile(str(path), Path(path).stat().st_size, digest.hexdigest())


def yaml_ready(value: object) -> object:
    """Settings as YAML-safe values: dataclasses as dicts, paths as strings, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: yaml_ready(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(key): yaml_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [yaml_ready(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def command_line() -> str:
    """`python -m neuroseg.<tool> <overrides>` of the Hydra run underway; "" outside one."""
    if not HydraConfig.initialized():
        return ""
    hydra = HydraConfig.get()
    return " ".join(["python -m neuroseg." + hydra.job.name, *hydra.overrides.task])


def provenance(sections: Iterable[object], inputs: Iterable[Path]) -> Provenance:
    """The run's provenance; `sections` are its settings dataclasses, whose fields together
    are the command's config keys (so the YAML reads like conf/<command>.yaml)."""
    config: dict[str, object] = {}
    for section in sections:
        config |= yaml_ready(section)  # type: ignore[arg-type]
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    files = [file_digest(path) for path in dict.fromkeys(Path(p) for p in inputs)]
    return Provenance(now, command_line(), versions(), text, files)
