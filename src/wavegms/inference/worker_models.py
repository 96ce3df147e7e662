"""The models a dask worker keeps loaded for distributed folder runs (docs/scaling.md).

A worker plugin that the client registers with the cluster (:func:`prepare_workers`, done by
every distributed run: the first registration stays, with what it has loaded). A worker loads
each model on its first share and keeps it for its later shares and runs; its segmenters, and
their runtime sessions, are closed when the worker closes or the plugin is unregistered
(:func:`release_workers`). Imports dask's ``distributed``: imported only once a distributed run
starts.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
from distributed import WorkerPlugin, get_worker

if TYPE_CHECKING:
    from distributed import Client

    from wavegms.inference.dask_cluster import WorkerModel
    from wavegms.inference.segmenter import Segmenter

#: The plugin's name on every worker.
NAME = "wavegms-models"


class LoadedModels(WorkerPlugin):
    """One worker's loaded models: a segmenter per :class:`WorkerModel`, each with a lock
    (a Segmenter is not thread-safe, so the shares of a worker with several threads take
    turns; the model uses the cores through torch's own threads)."""

    idempotent = True  # registered again by a later run: the loaded models stay

    def setup(self, worker=None) -> None:
        self._models: dict[WorkerModel, tuple[Segmenter, threading.Lock]] = {}
        self._loading = threading.Lock()

    def teardown(self, worker=None) -> None:
        self.close()

    def segmenter(self, model: WorkerModel) -> tuple[Segmenter, threading.Lock]:
        """The segmenter for ``model`` with its lock, loaded on first use."""
        with self._loading:
            if model not in self._models:
                if model.torch_threads:
                    import torch

                    torch.set_num_threads(model.torch_threads)
                from wavegms.inference.segmenter import Segmenter

                segmenter = Segmenter.load(
                    model.path, model.device, batch_size=model.batch_size, backend=model.backend
                )
                self._models[model] = (segmenter, threading.Lock())
            return self._models[model]

    def loaded(self) -> list[WorkerModel]:
        return list(self._models)

    def close(self) -> None:
        """Close every segmenter (each once its running share is done) and forget them."""
        with self._loading:
            models, self._models = self._models, {}
        for segmenter, lock in models.values():
            with lock:
                segmenter.close()


def prepare_workers(client: Client) -> None:
    """Register :class:`LoadedModels` with every worker of ``client``'s cluster (and those
    that join later); a no-op where it is registered already."""
    client.register_plugin(LoadedModels(), name=NAME)


def release_workers(client: Client) -> None:
    """Close every worker's loaded models (the plugin is unregistered)."""
    client.unregister_worker_plugin(NAME)


def worker_models(dask_worker=None) -> LoadedModels:
    """This worker's :class:`LoadedModels` (``dask_worker``: given by ``client.run``)."""
    worker = dask_worker or get_worker()
    plugin = worker.plugins.get(NAME)
    if plugin is None:
        raise RuntimeError("no models on this worker: call prepare_workers(client) first")
    return plugin


def _warm_up_here(model: WorkerModel, dask_worker=None) -> None:
    segmenter, lock = worker_models(dask_worker).segmenter(model)
    with lock:
        segmenter.predict_soft([np.zeros((8, 8), np.uint8)])


def warm_up(client: Client, model: WorkerModel) -> None:
    """Load ``model`` on every worker of ``client`` and run it once (on CPU that builds its
    graph): readies every worker, e.g. before timing them."""
    prepare_workers(client)
    client.run(_warm_up_here, model)
