"""The folder run on a dask.distributed LocalCluster (2 worker processes): the same masks, soft
masks and table as the single-process run, byte for byte; a worker killed mid-run costs no
mask; --resume keeps what was finished."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from skimage.io import imsave

pytest.importorskip("distributed", reason="the distributed extra is not installed")

from wavegms.core.progress import Progress
from wavegms.inference.folder import segment_folder
from wavegms.inference.folder_dask import dask_client, run_folder_dask
from wavegms.inference.folder_items import folder_items
from wavegms.inference.segmenter import Segmenter


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import torch

    from wavegms.net.model import ModelConfig, WaveGMS
    from wavegms.store.model_files import save_model

    torch.manual_seed(3)
    return save_model(WaveGMS(ModelConfig(image_size=32)), tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2) as client:
        client.wait_for_workers(2, timeout=60)
        yield client


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """12 small images of varied sizes and kinds, and one file that is no image."""
    src = tmp_path_factory.mktemp("in")
    rng = np.random.default_rng(7)
    for i in range(12):
        shape = (20 + 3 * i, 26 + 2 * i) + ((3,) if i % 3 == 0 else ())
        imsave(src / f"img{i:02d}.png", (rng.random(shape) * 255).astype(np.uint8))
    (src / "broken.png").write_text("not an image")
    return src


@pytest.fixture(scope="module")
def local_run(images, model_file, tmp_path_factory):
    """The single-process run the distributed ones must match."""
    import torch

    out = tmp_path_factory.mktemp("local") / "out"
    # eager, not the traced graph: tracing costs each process seconds a test need not spend
    segmenter = Segmenter.load(model_file, "cpu", batch_size=4, backend="eager")
    report = segment_folder(segmenter, images, out)
    return out, report, torch.get_num_threads()


def _files(out) -> dict[str, bytes]:
    paths = [*out.glob("masks/*.png"), *out.glob("soft/*.png"), out / "results.csv"]
    return {str(p.relative_to(out)): p.read_bytes() for p in paths}


def _assert_same_outputs(out, expected) -> None:
    """Masks and table byte for byte; soft masks within one grey level. A soft mask is the
    model's float output stored as 8 bits: the same eager model in another process may round
    one pixel to the next level (seen once, after the napari tests ran in the same process),
    while every binary mask and every figure of the table stay the same."""
    from wavegms.data.images import read_image

    got, want = _files(out), _files(expected)
    assert got.keys() == want.keys()
    for name in got:
        if name.startswith("soft/") and got[name] != want[name]:
            a, b = (read_image(d / name).astype(int) for d in (out, expected))
            assert np.abs(a - b).max() <= 1, name
        else:
            assert got[name] == want[name], name


def _run(client, images, model_file, out, threads, **kw):
    return run_folder_dask(
        model_file, folder_items(images), out, client, device="cpu", batch_size=4,
        torch_threads=threads, backend="eager", **kw,
    )  # fmt: skip


def test_two_workers_write_what_one_process_writes(client, images, model_file, local_run, tmp_path):
    expected, local, threads = local_run
    seen: list[Progress] = []
    out = tmp_path / "out"
    report = _run(client, images, model_file, out, threads, share_size=4, progress=seen.append)
    _assert_same_outputs(out, expected)
    assert len(_files(out)) == 2 * 12 + 1
    assert report.rows == local.rows and report.skipped == local.skipped
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert seen[-1].done == seen[-1].total == 13
    # each worker loaded the model once and segmented a share
    assert len(client.has_what()) == 2


def test_progress_counts_each_finished_image_not_each_share(client, images, model_file, tmp_path):
    seen: list[Progress] = []
    out = tmp_path / "out"
    run_folder_dask(
        model_file, folder_items(images), out, client, device="cpu", batch_size=1,
        share_size=6, backend="eager", progress=seen.append,
    )  # fmt: skip
    done = [p.done for p in seen]
    assert done == sorted(done) and done[-1] == seen[-1].total == 13
    # shares of 6, 6 and 1 images: a count per share would show at most 0, 6, 12, 13 (or 7)
    assert len(set(done)) > 6, done


def test_resume_keeps_finished_masks_and_redoes_the_rest(
    client, images, model_file, local_run, tmp_path
):
    expected, _, threads = local_run
    out = tmp_path / "out"
    _run(client, images, model_file, out, threads, share_size=4)
    for name in ("img03", "img10"):
        (out / "masks" / f"{name}.png").unlink()
    (out / "results.csv").unlink()
    report = _run(client, images, model_file, out, threads, share_size=4, resume=True)
    assert report.kept == 10 and report.written == 12
    _assert_same_outputs(out, expected)


def test_a_worker_killed_mid_run_costs_no_mask(client, images, model_file, local_run, tmp_path):
    expected, _, threads = local_run
    pids = client.run(os.getpid)
    victim = next(iter(pids.values()))
    killed = []

    def kill_one_worker(p: Progress) -> None:
        if p.done >= 1 and not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(p.done)

    out = tmp_path / "out"
    # last in this module: the run goes on without waiting for the nanny's new worker
    report = _run(client, images, model_file, out, threads, share_size=4, progress=kill_one_worker)
    assert killed and killed[0] < 13  # killed while shares were left
    assert report.written == 12 and not report.cancelled
    _assert_same_outputs(out, expected)


def test_cluster_options_are_checked_before_any_work(images, tmp_path, capsys, monkeypatch):
    from wavegms.cli import main

    out = str(tmp_path / "out")
    assert main(["segment", str(images), out, "--workers", "2", "--scheduler", "x:1"]) == 2
    assert main(["segment", str(images), out, "--workers", "0"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert "not allowed with argument --workers" in errors[0]
    assert "--workers" in errors[1] and "[1, 1024]" in errors[1]
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # the extra missing
    assert main(["segment", str(images), out, "--workers", "2", "--device", "cpu"]) == 2
    assert "pip install 'napari-wavegms[distributed]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _loaded_models(dask_worker) -> set[tuple[str, int]] | None:
    """The models a worker keeps loaded, as (file, id of its segmenter); None: it keeps none."""
    from wavegms.inference.worker_models import NAME

    plugin = dask_worker.plugins.get(NAME)
    if plugin is None:
        return None
    return {(model.path, id(plugin.segmenter(model)[0])) for model in plugin.loaded()}


def test_workers_keep_their_models_until_released(client, images, model_file, tmp_path):
    from wavegms.inference.worker_models import release_workers

    _run(client, images, model_file, tmp_path / "one", 1, share_size=4)
    kept = client.run(_loaded_models)
    path = str(model_file.resolve())
    assert any(path in {p for p, _ in models} for models in kept.values())  # loaded by a share
    _run(client, images, model_file, tmp_path / "two", 1, share_size=4)
    again = client.run(_loaded_models)
    assert all(models <= again[worker] for worker, models in kept.items())  # kept, not reloaded
    release_workers(client)  # the plugin's teardown closes each worker's segmenters
    assert all(models is None for models in client.run(_loaded_models).values())
