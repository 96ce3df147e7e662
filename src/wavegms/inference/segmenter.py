"""Prediction: one image, a stack, or a folder -> binary and soft masks at the input's size.

Images of any size are resized to the model size (aspect ignored, as in training); the soft mask
is resized back bilinearly and then thresholded, so edges follow the soft mask, not a blocky
224-pixel grid.

Very large planes (more than :data:`LARGE_PLANE_PIXELS`) take memory-lean paths: they are
box-averaged band by band before a float copy is made, and the soft mask is interpolated
straight into its output array. The masks themselves must fit into memory: a stack whose masks
would not is refused with :class:`InputError` before anything is allocated.
"""

from __future__ import annotations

import copy
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from wavegms.core.checks import check_threshold
from wavegms.core.devices import is_out_of_memory
from wavegms.core.errors import NONFINITE_SOFT, InputError, ReducedBatchWarning, WaveGMSError
from wavegms.core.extras import one_line_reason
from wavegms.core.lifetime import Closable, close_if_owned
from wavegms.core.progress import CancelToken, ProgressCallback, check_cancel, report
from wavegms.data.intensities import check_numeric
from wavegms.data.preprocess import check_mask_memory, model_input, soft_to_shape, split_planes
from wavegms.runtime.backends import (  # noqa: F401  (BACKENDS, PRECISIONS: named here too)
    AUTO_ORDER,
    BACKENDS,
    PRECISIONS,
    backend_line,
    build_graph,
    choose,
    precision_of,
)
from wavegms.runtime.export_child import thread_exporting_in_child


def as_array(image: object) -> np.ndarray:
    """A torch tensor (any device, with or without grad, bf16 or fp16) as a NumPy array of
    the same values; anything else as it is (the image checks say what is wrong with it)."""
    if not isinstance(image, torch.Tensor):
        return image
    tensor = image.detach().cpu()
    try:
        return tensor.numpy()
    except TypeError:  # dtypes NumPy lacks (bfloat16, float8): float32 holds them exactly
        if tensor.is_floating_point():
            return tensor.float().numpy()
        raise InputError(
            f"a tensor of type {tensor.dtype} is no usable image; give float32 or uint8"
        ) from None


class Segmenter(Closable):
    """A loaded model plus the settings it runs with. Thread-compatible, not thread-safe:
    use one Segmenter per worker. It owns its compiled graph (a runtime session, built on
    first use and reused by every later call): :meth:`close`, or the end of a ``with``
    block, frees it."""

    def __init__(
        self,
        model,
        device: str = "auto",
        threshold: float = 0.5,
        batch_size: int = 8,
        backend: str = "auto",
        model_file: Path | None = None,
        calibration: Sequence[np.ndarray] | None = None,
        precision: str = "fp32",
    ):
        """``precision`` (see :data:`PRECISIONS`): ``"fp32"`` (default) gives the exact fp32
        answer of the eager model on every install; ``"int8"`` runs the quantised ONNX
        Runtime graph (faster, not exact) and is only ever the caller's choice.
        ``backend`` (see :data:`BACKENDS`): ``"auto"`` runs, on CPU, the first exact graph of
        :data:`AUTO_ORDER` that is installed and builds (ONNX Runtime), else the eager model;
        elsewhere the eager model. ``"traced"`` (TorchScript), ``"onnx"`` and ``"openvino"``
        (the exported graph compiled by OpenVINO) are exact fp32 too; ``"int8"`` means
        ``precision="int8"``. A graph that cannot be built, or whose check against the eager
        model fails, warns once and the next one in line runs instead (eager last): never a
        different answer.
        ``model_file``: the weights file, whose sha256 names its cached graphs; ``calibration``:
        images the int8 graph is calibrated on (default: the model's ranges, else the sample).
        A folder's batch runs side by side where the graph can (:attr:`side_by_side`)."""
        from wavegms.core.devices import resolve_device

        check_threshold(threshold)
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        self.device = resolve_device(device)
        backend, precision = choose(backend, precision, self.device.type)
        self.model = model.to(self.device).eval()
        self.threshold = threshold
        self.batch_size = batch_size
        self.model_file = model_file
        self.calibration = calibration
        self.backend = backend  # what was asked for; ``graph_backend`` says what runs
        #: What was asked for; :attr:`running_precision` says what runs.
        self.precision = precision
        self.graph_backend: str | None = None
        #: False: run the eager model batch by batch (tests and callers may set it).
        self.traced = backend != "eager"
        self._graph = None
        self._builder: threading.Thread | None = None  # see prepare_graph
        self.last_backend = ""  # what ran the last batch: the graph's backend, or "eager"
        #: Side by side where the graph can (``run_many``), else one at a time: same masks.
        self.side_by_side = True

    @classmethod
    def load(cls, name_or_path: str | Path, device: str = "auto", **kwargs) -> Segmenter:
        from wavegms.store.catalogue import model_paths, resolve_model
        from wavegms.store.model_files import load_segmentation_model

        weights, _ = model_paths(resolve_model(name_or_path))
        model = load_segmentation_model(name_or_path, device)
        return cls(model, device, model_file=weights, **kwargs)

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    def _run(self, images: Sequence[np.ndarray]) -> np.ndarray:
        chunk = [model_input(as_array(im), self.image_size) for im in images]
        batch = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).to(self.device)
        graph = self._graph_now() if self.traced else None
        self.last_backend = self.graph_backend if graph is not None else "eager"
        if graph is not None:
            with torch.no_grad():
                soft = torch.cat(
                    self._run_graph(graph, [batch[i : i + 1] for i in range(len(batch))])
                )
        else:
            soft = self.model.predict_soft(batch)
        return soft[:, 0].float().cpu().numpy()

    def _run_graph(self, graph, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each (1, 3, S, S) image through ``graph``: side by side when the graph can (its
        ``run_many``, for a batch of a folder), else one at a time. Side by side gives the
        one-at-a-time answer; a graph whose check of that fails warns once and runs one image
        at a time from then on."""
        run_many = getattr(graph, "run_many", None) if self.side_by_side else None
        if run_many is not None and len(images) > 1:
            try:
                return run_many(images)
            except ValueError as err:
                self.side_by_side = False
                warnings.warn(f"images are run one at a time: {err}", RuntimeWarning, stacklevel=5)
        return [graph(image) for image in images]

    def prepare_graph(self) -> bool:
        """Start building the compiled graph once, on a thread of its own (its ONNX export in a
        child process: ``export_child``), from a copy of the model (exporters trace, and swap
        the weights of, what they export); :meth:`segment` runs the eager model until it is
        ready (the same masks, exact fp32). Returns whether a graph is being built now."""
        if self.traced and self._graph is None and self._builder is None:
            own = copy.deepcopy(self.model)
            # Not a daemon, whoever starts it: one killed inside torch at exit aborts napari.
            self._builder = thread_exporting_in_child(self._soft_mask_graph, own, "wavegms-graph")
            self._builder.start()
        return self.building_graph

    building_graph = property(lambda self: self._builder is not None and self._builder.is_alive())

    def wait_for_graph(self, timeout: float | None = None) -> bool:  # whether it is done
        if self._builder is not None and self._builder is not threading.current_thread():
            self._builder.join(timeout)
        return not self.building_graph

    def _graph_now(self):  # None (the exact eager model) while the graph is being built
        return None if self.building_graph else self._soft_mask_graph()

    def _soft_mask_graph(self, model=None):
        """The compiled graph, built on first use (a build :meth:`prepare_graph` started is
        waited for): the first backend in line that builds and passes its check; None (eager
        from then on) if none does."""
        elsewhere = self._builder not in (None, threading.current_thread())
        if self._graph is not None or (elsewhere and self.wait_for_graph()):
            return self._graph
        model, line = model or self.model, backend_line(self.backend, self.precision)
        for backend in line:
            try:
                self._graph = build_graph(backend, model, self.model_file, self.calibration)
            except Exception as err:  # a speed-up must never cost the result
                if backend != "int8" and self.backend == "auto" and isinstance(err, ImportError):
                    continue  # an optional exact runtime that is not installed: eager is exact
                warnings.warn(
                    f"the {backend} graph could not be built ({one_line_reason(err)}); using "
                    f"{'the next backend' if backend != line[-1] else 'the exact eager model'}",
                    RuntimeWarning,
                    stacklevel=4,
                )
                continue
            self.graph_backend = backend
            return self._graph
        self.traced = False
        return None

    @property
    def running_precision(self) -> str:
        """``"int8"`` while the quantised graph runs, else ``"fp32"`` (also before the first
        image, and when int8 was asked for but could not be built)."""
        return precision_of(self.graph_backend or "eager")

    def provenance(self) -> dict[str, str]:
        """What makes this segmenter's masks, for results and model cards: the model's name
        (its file's stem, else the name in its metadata), the sha256 of its file (of its
        weights when it has no file), the backend and precision that ran the last batch (the
        eager model while a graph was being built); before any batch, of the graph that will
        run (built first)."""
        from wavegms.runtime.graph_cache import model_digest

        if self.traced and not self.last_backend:
            self._soft_mask_graph()
        name = Path(self.model_file).stem if self.model_file else None
        name = name or (getattr(self.model, "metadata", None) or {}).get("name") or "unnamed"
        ran = self.last_backend or self.graph_backend or "eager"
        return {"model": str(name), "model_sha256": model_digest(self.model, self.model_file),
                "backend": ran, "precision": precision_of(ran)}  # fmt: skip

    def close(self) -> None:
        """Free the compiled graph (its runtime session, threads and memory). The model stays:
        used again, the segmenter builds its graph again."""
        graph, self._graph, self.graph_backend = self._graph, None, None
        close_if_owned(graph)

    def _reduce_batch(self, err: BaseException) -> None:
        """After running out of memory: halve the batch size for good, or give up at 1."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch_size == 1:
            raise WaveGMSError(
                f"out of memory on {self.device} even for a single image; close other "
                "programs using it or choose the device 'cpu'"
            ) from err
        old, self.batch_size = self.batch_size, max(1, self.batch_size // 2)
        warnings.warn(
            f"out of memory on {self.device} at batch size {old}; going on with batch size "
            f"{self.batch_size}",
            ReducedBatchWarning,
            stacklevel=3,
        )

    def predict_soft(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """2D images (float32 HxWx3 in [0, 1], or anything :func:`model_input` takes) ->
        (B, S, S) soft masks at the model size. Running out of (GPU) memory halves the batch
        size, with a :class:`ReducedBatchWarning`, and tries again."""
        out: list[np.ndarray] = []
        start = 0
        while start < len(images):
            chunk = images[start : start + self.batch_size]
            try:
                out.append(self._run(chunk))
            except Exception as err:
                if not is_out_of_memory(err):
                    raise
                self._reduce_batch(err)
                continue
            start += len(chunk)
        return np.concatenate(out) if out else np.zeros((0, self.image_size, self.image_size))

    def segment(
        self,
        image: np.ndarray,
        rgb: bool | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        threshold: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Any 2D image or stack -> (binary mask bool, soft mask float32), both shaped like the
        input without its colour axis. Stacks are segmented plane by plane. ``threshold``
        (default: the segmenter's) is per call, so that callers sharing one segmenter never
        change each other's. Raises :class:`InputError` for input that is no real-valued image,
        or whose masks would not fit into the free memory, before the model runs; torch tensors
        are taken as their values. A soft mask that is not finite raises :class:`WaveGMSError`
        (never a mask)."""
        threshold = check_threshold(self.threshold if threshold is None else threshold)
        planes, lead, rgb = split_planes(as_array(image), rgb)
        check_numeric(planes, "image")  # before any allocation, e.g. complex values
        n_planes, height, width = planes.shape[:3]
        check_mask_memory(n_planes, height, width)
        binary = np.empty((n_planes, height, width), dtype=bool)
        soft = np.empty((n_planes, height, width), dtype=np.float32)
        for start in range(0, n_planes, self.batch_size):
            check_cancel(cancel)
            idx = range(start, min(start + self.batch_size, n_planes))
            small = self.predict_soft([planes[i] for i in idx])
            for i, s in zip(idx, small, strict=True):
                if not np.isfinite(s).all():  # thresholded, NaN would be an empty mask
                    raise WaveGMSError(f"plane {i}: {NONFINITE_SOFT}" if lead else NONFINITE_SOFT)
                soft_to_shape(s, (height, width), out=soft[i])
                np.greater(soft[i], threshold, out=binary[i])
            report(progress, "segment", idx[-1] + 1, n_planes)
        shape = (*lead, height, width)
        return binary.reshape(shape), soft.reshape(shape)
