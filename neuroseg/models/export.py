"""A trained network as one self-contained file (TorchScript, ONNX, or Python source for its
state dict) that any runtime can call: a gray image in [0, 1] goes in, class probabilities come
out. Each file is read back and checked against PyTorch before it is kept.

The encoder's ImageNet normalisation, the gray-to-RGB repeat and the final sigmoid/softmax live in
the wrapper, so the files need neither neuroseg's preprocessing nor its post-processing.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neuroseg.errors import UsageError
from neuroseg.inference.window import SIZE_MULTIPLE, probabilities
from neuroseg.io import atomic_path
from neuroseg.models import ternausnet

# The exported graph's names, which ONNX and bioimage.io users see.
INPUT_NAME = "input"
OUTPUT_NAME = "output"


class GrayToProbabilities(nn.Module):
    """(N, 1, H, W) float32 gray in [0, 1] -> (N, C, H, W) float32 probabilities in [0, 1].

    H and W are multiples of 32. C is 1 (sigmoid: neuron probability) for a binary network and
    the class count (softmax) otherwise, as `neuroseg.predict` writes them.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = net
        # Not persistent: fixed by the encoder's pretraining, so the state dict stays the net's.
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        rgb = gray.expand(-1, self.mean.shape[1], -1, -1)  # the encoders were pretrained on RGB
        return probabilities(self.net((rgb - self.mean) / self.std))


# The packaged network's callable and the architecture file that defines it for consumers.
ARCHITECTURE_CALLABLE = "packaged_model"
ARCHITECTURE_FILE = "neuroseg_architecture.py"


def packaged_model(
    encoder: str, num_classes: int, mean: Sequence[float], std: Sequence[float]
) -> nn.Module:
    """A random-weight GrayToProbabilities(UNet11|UNet16): what the package's state dict fills.

    The architecture file defines it without neuroseg installed; keep its body to names that file
    holds (`ENCODERS`, `GrayToProbabilities`).
    """
    return GrayToProbabilities(ternausnet.ENCODERS[encoder](num_classes), mean, std)


def standalone_source(obj: object) -> str:
    """Source of a module, class or function without its `__future__` and neuroseg imports."""
    source = inspect.getsource(obj)
    drop: set[int] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
            "__future__",
            "neuroseg",
        ):
            drop.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return "\n".join(line for i, line in enumerate(source.splitlines(), 1) if i not in drop)


def architecture_source() -> str:
    """Python source defining `packaged_model` with torch and torchvision only: TernausNet's
    module, the probabilities and wrapper of neuroseg, and the factory, copied from the code."""
    # `ternausnet.build_model` names neuroseg's weight loader, which this file lacks; consumers
    # only call `packaged_model`, which never reaches it.
    parts = [
        '"""neuroseg\'s network for bioimage.io consumers; generated from neuroseg\'s source."""',
        "from __future__ import annotations",
        standalone_source(ternausnet),
        standalone_source(probabilities),
        "from collections.abc import Sequence",
        standalone_source(GrayToProbabilities),
        standalone_source(packaged_model).replace("ternausnet.ENCODERS", "ENCODERS"),
    ]
    source = "\n\n\n".join(parts) + "\n"
    compile(source, ARCHITECTURE_FILE, "exec")  # a syntax error here is ours, not the user's
    return source


@dataclass(frozen=True)
class ExportCheck:
    """How closely an exported file reproduces PyTorch on the same input (max |difference|)."""

    path: Path
    format: str
    max_abs_diff: float
    input_shape: tuple[int, ...]


def write_torchscript(model: GrayToProbabilities, path: Path, example: torch.Tensor) -> Path:
    """Trace `model` on `example` (N, 1, H, W) and save it at `path`; any H, W multiple of 32 runs.

    Tracing, not scripting: the network is fully convolutional, so the traced graph holds for every
    size; only TernausNet's input-shape checks, which the traced example passes, are left out.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # torch deprecates TorchScript, but it is the format deepImageJ and bioimage.io run.
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(model.eval(), example, check_trace=False)
    with atomic_path(path) as tmp:
        traced.save(str(tmp))
    return path


def write_onnx(model: GrayToProbabilities, path: Path, example: torch.Tensor, opset: int) -> Path:
    """Export `model` to one ONNX file (weights inside) with dynamic batch, height and width.

    Height and width are declared as 32 x a symbol, so the graph accepts every multiple of 32.
    """
    blocks_h = torch.export.Dim("blocks_h", min=1)
    blocks_w = torch.export.Dim("blocks_w", min=1)
    dynamic = {0: torch.export.Dim("batch"), 2: 32 * blocks_h, 3: 32 * blocks_w}
    # The exporter's graph passes log every step at INFO, which Hydra's run log would keep.
    for name in ("onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with atomic_path(path) as tmp:
        torch.onnx.export(
            model.eval(),
            (example,),
            str(tmp),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"gray": dynamic},
            external_data=False,  # one file: bioimage.io packages and users move it as one
            verbose=False,
        )
    return path


def torchscript_runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """(N, 1, H, W) float32 -> probabilities, through the saved TorchScript file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation, as above
        loaded = torch.jit.load(str(path), map_location="cpu")

    def run(gray: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return loaded(torch.from_numpy(gray)).numpy()

    return run


def onnx_runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """(N, 1, H, W) float32 -> probabilities, through onnxruntime on the CPU."""
    import onnxruntime  # the [export] extra

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda gray: session.run([OUTPUT_NAME], {INPUT_NAME: gray})[0]


RUNNERS: dict[str, Callable[[Path], Callable[[np.ndarray], np.ndarray]]] = {
    "torchscript": torchscript_runner,
    "onnx": onnx_runner,
}


def probe_inputs(unit_gray: np.ndarray) -> list[np.ndarray]:
    """(1, 1, H, W) of a gray (H, W) in [0, 1], and a batch of 2 half-size crops: a second size
    and batch catch a file frozen to the traced shape."""
    if unit_gray.ndim != 2 or any(side % SIZE_MULTIPLE for side in unit_gray.shape):
        raise UsageError(
            f"sample image of shape {unit_gray.shape}: expected gray (H, W), sides multiples of "
            f"{SIZE_MULTIPLE}; set sample.height and sample.width"
        )
    height, width = (
        max(SIZE_MULTIPLE, side // 2 // SIZE_MULTIPLE * SIZE_MULTIPLE) for side in unit_gray.shape
    )
    crops = [unit_gray[:height, :width], unit_gray[-height:, -width:]]
    return [unit_gray[None, None], np.stack(crops)[:, None]]


def check_export(
    path: Path,
    fmt: str,
    model: GrayToProbabilities,
    inputs: Sequence[np.ndarray],
    tolerance: float,
) -> ExportCheck:
    """Run the file at `path` and `model` on each (N, 1, H, W) float32 input; ValueError when
    they differ by more than `tolerance` anywhere. The inputs should include a size other than
    the traced one, so a graph frozen to one size is caught."""
    if fmt not in RUNNERS:
        raise KeyError(f"unknown export format {fmt!r}; choose one of {sorted(RUNNERS)}")
    run = RUNNERS[fmt](path)
    worst, worst_shape = 0.0, tuple(inputs[0].shape)
    for gray in inputs:
        with torch.inference_mode():
            expected = model(torch.from_numpy(gray)).numpy()
        got = run(gray)
        if got.shape != expected.shape:
            raise ValueError(
                f"{path}: output {got.shape} for input {gray.shape}, PyTorch gives "
                f"{expected.shape}; the export lost its dynamic sizes"
            )
        diff = float(np.abs(got - expected).max())
        if diff >= worst:
            worst, worst_shape = diff, tuple(gray.shape)
    if not worst <= tolerance:
        raise ValueError(
            f"{path}: {fmt} differs from PyTorch by {worst:.2e} (> tolerance {tolerance:.0e}) "
            f"on input {worst_shape}; do not use this file"
        )
    return ExportCheck(path=path, format=fmt, max_abs_diff=worst, input_shape=worst_shape)


def write_checked(
    fmt: str,
    model: GrayToProbabilities,
    unit_gray: np.ndarray,
    output: Path,
    opset: int,
    tolerance: float,
) -> ExportCheck:
    """Write `fmt` ("torchscript" or "onnx") of `model` traced on a gray (H, W) image in [0, 1];
    the file reaches `output` only once it reproduces PyTorch within `tolerance`."""
    inputs = probe_inputs(unit_gray)
    with atomic_path(output) as tmp:
        if fmt == "onnx":
            write_onnx(model, tmp, torch.from_numpy(inputs[0]), opset)
        else:
            write_torchscript(model, tmp, torch.from_numpy(inputs[0]))
        check = check_export(tmp, fmt, model, inputs, tolerance)
    return dataclasses.replace(check, path=output)
