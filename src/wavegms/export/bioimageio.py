"""Export a model as a BioImage Model Zoo package (bioimage.io model spec 0.5, one zip file),
which bioimageio.core, deepImageJ, ilastik and napari model managers can run.

The package holds TorchScript and ONNX weights of the whole inference path (image in, soft
mask out), test tensors made by the project's own path, a cover, the documentation (the model
card where there is one), citations and the licence. Both weights are run on the test input
before the package is written, and a package whose weights disagree with the project's soft
mask is refused. The zip is validated by bioimageio.spec and written atomically.

Needs the ``bioimageio`` extra: ``pip install 'napari-wavegms[bioimageio]'``.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

from wavegms.core.errors import InputError, OutputExistsError, WaveGMSError
from wavegms.core.files import ensure_folder, write_png, write_text
from wavegms.core.progress import CancelToken, ProgressCallback, check_cancel, report

#: how far the packaged weights may stray from the project's soft mask (values in [0, 1])
TOLERANCE = 1e-3
TAESD_REPOSITORY = "https://github.com/madebyollin/taesd"
#: the only URLs the description names (everything else is inside the zip). Marked as known
#: while the description is built; bioimageio.spec's check of the written zip still sends one
#: HEAD request for each, and only warns when it fails (offline).
KNOWN_URLS = (TAESD_REPOSITORY,)
CITATIONS = (
    (
        "Wave-GMS: Lightweight Multi-Scale Generative Model for Medical Image Segmentation "
        "(ICASSP 2026)",
        "10.48550/arXiv.2510.03216",
        None,
    ),
    ("GMS: Generative Medical Segmentation (AAAI 2025)", "10.48550/arXiv.2403.18198", None),
    (
        "TAEF2, the tiny autoencoder for FLUX.2 latents, by Ollin Boer Bohan (MIT licence)",
        None,
        TAESD_REPOSITORY,
    ),
)
TAGS = ("2d", "semantic-segmentation", "pytorch", "other", "tissue", "medical-imaging", "wave-gms")
STEPS = 5


def _require_packages() -> None:
    from wavegms.core.extras import require

    for module in ("bioimageio.spec", "onnx", "onnxruntime"):  # all in the bioimageio extra
        try:
            require(module, "exporting to bioimage.io")
        except ImportError as err:
            raise type(err)(str(err).replace("[cpu-fast]", "[bioimageio]")) from None


def check_output_path(out: str | Path, overwrite: bool = False) -> Path:
    """The package path, checked before anything is built (torch-free, for the command
    line's early checks): a ``.zip`` name, not an existing file unless ``overwrite``, in a
    folder that can be written."""
    path = Path(out)
    if path.suffix.lower() != ".zip":
        raise InputError(f"{path}: a bioimage.io package is a .zip file; end the name in .zip")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the name of the .zip file to write")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; not overwriting it (--overwrite does)")
    ensure_folder(path.parent)
    return path


def _opset(onnx_path: Path) -> int:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False)
    versions = [op.version for op in graph.opset_import if op.domain in ("", "ai.onnx")]
    if not versions:
        raise WaveGMSError(f"{onnx_path.name} names no ONNX operator set")
    return int(versions[0])


def _run_weights(folder: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """The output of each packaged weights file on ``x``, run as a consumer would."""
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(
        str(folder / "weights.onnx"), providers=["CPUExecutionProvider"]
    )
    onnx_out = session.run(None, {session.get_inputs()[0].name: x})[0]
    graph = torch.jit.load(str(folder / "weights.torchscript.pt"), map_location="cpu")
    with torch.no_grad():
        script_out = graph(torch.from_numpy(x)).numpy()
    return {"onnx": np.asarray(onnx_out), "torchscript": script_out}


def check_weights(folder: Path, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Largest difference of each weights format's output from ``y``; raises if any is not
    finite, misshapen or further than :data:`TOLERANCE` (never a package that lies)."""
    worst = {}
    for fmt, out in _run_weights(folder, x).items():
        if out.shape != y.shape:
            raise WaveGMSError(
                f"the {fmt} weights give output of shape {out.shape}, not {y.shape}; the "
                "package was not written"
            )
        if not np.isfinite(out).all():
            raise WaveGMSError(f"the {fmt} weights give non-finite output; nothing was written")
        worst[fmt] = float(np.abs(out - y).max())
        if worst[fmt] > TOLERANCE:
            raise WaveGMSError(
                f"the {fmt} weights differ from the model's soft mask by {worst[fmt]:.2g} "
                f"(more than {TOLERANCE}); the package was not written"
            )
    return worst


def _tensor_axes(channels: list[str], size: int, output: bool) -> list:
    from bioimageio.spec.model.v0_5 import (
        AxisId,
        BatchAxis,
        ChannelAxis,
        SpaceInputAxis,
        SpaceOutputAxis,
    )

    space = SpaceOutputAxis if output else SpaceInputAxis
    # Batch of one: the traced graphs are recorded for exactly the shape (1, 3, S, S).
    return [
        BatchAxis(size=1),
        ChannelAxis(channel_names=channels),
        space(id=AxisId("y"), size=size),
        space(id=AxisId("x"), size=size),
    ]


def rdf_name(name: str) -> str:
    """``name`` in the characters a bioimage.io name may hold (a model file given by path
    may have others, such as dots), at most 64 of them."""
    return re.sub(r"[^A-Za-z0-9_+\- ()]", "-", name)[:64]


def _tensor_descrs(size: int, folder: Path) -> tuple:
    """The input (image) and output (soft mask) tensor descriptions of the staged files."""
    from bioimageio.spec.model import v0_5

    data = v0_5.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0))
    image = v0_5.InputTensorDescr(
        id=v0_5.TensorId("image"),
        description=f"RGB image, float32 in [0, 1], resized to {size}x{size} (see README)",
        axes=_tensor_axes(["r", "g", "b"], size, output=False),
        test_tensor=v0_5.FileDescr(source=folder / "test_input.npy"),
        sample_tensor=v0_5.FileDescr(source=folder / "sample_input.png"),
        data=data,
    )
    soft_mask = v0_5.OutputTensorDescr(
        id=v0_5.TensorId("soft_mask"),
        description="soft mask in [0, 1] at the model size; > 0.5 is the structure",
        axes=_tensor_axes(["soft_mask"], size, output=True),
        test_tensor=v0_5.FileDescr(source=folder / "test_output.npy"),
        sample_tensor=v0_5.FileDescr(source=folder / "sample_output.png"),
        data=data,
    )
    return image, soft_mask


def _weights_descr(folder: Path, opset: int):
    """The description of the staged TorchScript and ONNX weights."""
    import torch
    from bioimageio.spec.model import v0_5

    torch_version = v0_5.Version(torch.__version__.split("+")[0])
    return v0_5.WeightsDescr(
        torchscript=v0_5.TorchscriptWeightsDescr(
            source=folder / "weights.torchscript.pt", pytorch_version=torch_version
        ),
        onnx=v0_5.OnnxWeightsDescr(
            source=folder / "weights.onnx", opset_version=opset, parent="torchscript"
        ),
    )


def describe(identity, model, folder: Path, opset: int):
    """The bioimage.io model description (spec 0.5) of the files staged in ``folder``."""
    from bioimageio.spec.model.v0_5 import Author, CiteEntry, FileDescr, ModelDescr

    from wavegms import __version__
    from wavegms.export.card import provenance_record

    size = model.config.image_size
    image, soft_mask = _tensor_descrs(size, folder)
    trainable = sum(p.numel() for n, p in model.named_parameters() if "autoencoder" not in n)
    return ModelDescr(
        name=f"Wave-GMS {rdf_name(identity.name)}",
        description=(
            f"Wave-GMS 2D segmentation ({model.config.backend} backend, {trainable:,} trainable "
            f"parameters) exported by napari-wavegms {__version__}: RGB image in [0, 1] at "
            f"{size}x{size} in, soft mask out."
        ),
        authors=[Author(name="napari-wavegms developers")],
        cite=[CiteEntry(text=text, doi=doi, url=url) for text, doi, url in CITATIONS],
        license="MIT",
        documentation=FileDescr(source=folder / "README.md"),
        covers=[FileDescr(source=folder / "cover.png")],
        attachments=[FileDescr(source=folder / "LICENSE_TAEF2.txt")],
        tags=list(TAGS),
        inputs=[image],
        outputs=[soft_mask],
        weights=_weights_descr(folder, opset),
        config={
            "wavegms": {
                "model": model.config.to_dict(),
                "package_version": __version__,
                "provenance": provenance_record(identity),
            }
        },
    )


def _stage(identity, model, image: np.ndarray, folder: Path, step) -> tuple[int, dict]:
    """Write every file of the package into ``folder``; returns (ONNX opset, differences)."""
    from wavegms.export import package_files as files
    from wavegms.export.card import provenance_section
    from wavegms.net.autoencoders.taef2 import BUNDLED_DIR
    from wavegms.runtime.onnx_graph import export_onnx

    x, y = files.test_tensors(model, image)
    np.save(folder / "test_input.npy", x)
    np.save(folder / "test_output.npy", y)
    write_png(folder / "cover.png", files.cover(x, y))
    for which, picture in zip(("input", "output"), files.sample_images(x, y), strict=True):
        write_png(folder / f"sample_{which}.png", picture)
    readme = files.documentation(identity.name, model, identity.card)
    formats = "TorchScript and ONNX of the soft-mask path"
    write_text(folder / "README.md", f"{readme}\n{provenance_section(identity, formats)}")
    write_text(folder / "LICENSE_TAEF2.txt", (BUNDLED_DIR / "LICENSE").read_text("utf-8"))
    step("torchscript")
    files.write_torchscript(model, folder / "weights.torchscript.pt")
    step("onnx")
    onnx_path = Path(export_onnx(model, folder / "weights.onnx"))
    if onnx_path != folder / "weights.onnx":
        raise WaveGMSError(f"the ONNX export wrote {onnx_path}, not {folder / 'weights.onnx'}")
    step("check")
    return _opset(onnx_path), check_weights(folder, x, y)


def export_bioimageio(
    model_name_or_path: str | Path,
    out: str | Path,
    *,
    image: str | Path | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Path:
    """Write the bioimage.io package of a model (a name or a model file) to ``out`` (.zip).

    ``image``: the image the test tensors and cover are made of (default: the synthetic
    ultrasound sample shipped in the package). Returns the package path.
    """
    _require_packages()
    out = check_output_path(out, overwrite)
    from bioimageio.spec import ValidationContext, save_bioimageio_package

    from wavegms.export import package_files as files
    from wavegms.export.card import identify
    from wavegms.store.catalogue import resolve_model
    from wavegms.store.model_files import load_segmentation_model

    model_file = resolve_model(model_name_or_path)
    example = files.example_image(image)
    done = 0

    def step(message: str) -> None:
        nonlocal done
        check_cancel(cancel)
        report(progress, "export", done, STEPS, message)
        done += 1

    step("loading the model")
    model = load_segmentation_model(model_name_or_path, "cpu")
    identity = identify(model, model_file, model_file.stem)
    with tempfile.TemporaryDirectory(prefix="wavegms-bioimageio-") as tmp:
        opset, _ = _stage(identity, model, example, Path(tmp), step)
        step("writing the package")
        with ValidationContext(known_files=dict.fromkeys(KNOWN_URLS)), warnings.catch_warnings():
            # bioimageio.spec re-reads its own file entries while packaging and warns about
            # them; the zip it writes is validated as a whole by save_bioimageio_package.
            warnings.filterwarnings("ignore", category=UserWarning, module="bioimageio")
            descr = describe(identity, model, Path(tmp), opset)
            files.write_package(out, lambda t: save_bioimageio_package(descr, output_path=t))
    report(progress, "export", STEPS, STEPS, str(out))
    return out
