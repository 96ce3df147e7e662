"""What holds heavy things holds them for a lifetime: a Segmenter owns its graph's runtime
session (reused by every call, freed by close), a dock's model slot owns its segmenter, and a
project's lock lives as long as someone has the project open. Nothing is kept module-wide."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
import torch

from wavegms.core.errors import Cancelled
from wavegms.inference.segmenter import Segmenter

IMAGE = np.random.default_rng(0).random((40, 30, 3)).astype(np.float32)


def mean_graph(path):
    """A small ONNX graph shaped like the soft-mask path, (N, 3, H, W) -> (N, 1, H, W) (the
    channel mean): sessions to own without exporting a model (a minute on a busy machine)."""
    import onnx
    from onnx import TensorProto, helper

    dims = ["n", 3, "h", "w"]
    node = helper.make_node("ReduceMean", ["images"], ["mask"], axes=[1], keepdims=1)
    graph = helper.make_graph(
        [node], "mean", [helper.make_tensor_value_info("images", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["n", 1, "h", "w"])],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.fixture
def sessions(monkeypatch, tmp_path) -> list:
    """Segmenters run the mean graph of their model file (one per file version, as the real
    graphs are named); returns every ONNX Runtime session made while the test runs."""
    pytest.importorskip("onnxruntime")
    from wavegms.core.files import known_sha256
    from wavegms.runtime import onnx_session

    made, real = [], onnx_session.load_session

    def counting(path, threads=None):
        made.append(real(path, threads))
        return made[-1]

    def build(backend, model, model_file, calibration=None):
        path = tmp_path / f"{known_sha256(model_file)[:16]}.onnx"
        return onnx_session.OnnxSoftMask(path if path.is_file() else mean_graph(path))

    monkeypatch.setattr(onnx_session, "load_session", counting)
    monkeypatch.setattr("wavegms.inference.segmenter.build_graph", build)
    return made


def test_a_segmenter_reuses_its_session_until_closed(tiny_network, tmp_path, sessions):
    model_file = tmp_path / "m.safetensors"
    model_file.write_bytes(b"weights")
    with Segmenter(tiny_network, "cpu", batch_size=1, model_file=model_file) as segmenter:
        first = segmenter.predict_soft([IMAGE])
        graph = segmenter._graph
        assert segmenter.graph_backend == "onnx" and len(sessions) == 1
        again = segmenter.predict_soft([IMAGE])  # a second click: the prepared session
        assert segmenter._graph is graph and len(sessions) == 1
        np.testing.assert_array_equal(first, again)
    assert segmenter._graph is None and graph.session is None  # closed with the block
    with pytest.raises(RuntimeError, match="has been closed"):
        graph(torch.zeros(1, 3, 32, 32))
    np.testing.assert_array_equal(segmenter.predict_soft([IMAGE]), first)  # built again
    assert len(sessions) == 2 and segmenter.graph_backend == "onnx"
    segmenter.close()


def test_two_segmenters_never_share_a_session_of_an_old_model_file(
    tiny_network, tmp_path, sessions
):
    model_file = tmp_path / "m.safetensors"
    model_file.write_bytes(b"old weights")
    old = Segmenter(tiny_network, "cpu", model_file=model_file)
    old.predict_soft([IMAGE])
    model_file.write_bytes(b"the new weights")  # the same file written again
    new = Segmenter(tiny_network, "cpu", model_file=model_file)
    new.predict_soft([IMAGE])
    assert len(sessions) == 2 and new._graph.session is not old._graph.session
    assert new._graph.path != old._graph.path  # the new file's own graph
    old.close()
    assert new._graph.session is not None  # closing one leaves the other
    assert new.predict_soft([IMAGE]).shape == (1, 32, 32) and len(sessions) == 2
    new.close()


def test_an_openvino_graph_is_freed_with_its_owner(tmp_path):
    pytest.importorskip("openvino")
    from wavegms.runtime.openvino_session import OpenVinoSoftMask

    with OpenVinoSoftMask(mean_graph(tmp_path / "mean.onnx")) as graph:
        images = torch.rand(1, 3, 16, 16)
        torch.testing.assert_close(graph(images), images.mean(1, keepdim=True))
    assert graph.request is None
    with pytest.raises(RuntimeError, match="has been closed"):
        graph(images)


def test_a_model_slot_owns_its_segmenter(tiny_model_file, sessions):
    import shutil

    from wavegms.napari.jobs import ModelSlot

    for suffix in (".safetensors", ".json"):  # a second model: the same weights, another name
        shutil.copyfile(
            tiny_model_file.with_suffix(suffix), tiny_model_file.with_name(f"two{suffix}")
        )
    slot = ModelSlot()
    with slot.hold("tiny", "cpu") as first:
        first.predict_soft([IMAGE])
    with slot.hold("tiny", "cpu") as again:
        assert again is first and again._graph is not None  # reused, graph and all
    with slot.hold("two", "cpu") as second:
        assert second is not first
    assert first._graph is None  # the replaced model was closed
    with slot.hold("two", "cpu") as held:
        second.predict_soft([IMAGE])
        closer = threading.Thread(target=slot.close)
        closer.start()
        closer.join(5)
        assert not closer.is_alive()  # close never waits for the job that holds the slot
        assert held._graph is not None  # still the job's until it ends
    assert held._graph is None and slot.loaded is None  # freed when the job let go
    with pytest.raises(Cancelled), slot.hold("tiny", "cpu"):
        pass


def test_a_project_lock_lives_while_the_project_is_open(tmp_path):
    from wavegms.training import training_set
    from wavegms.training.training_set import TrainingSet

    one, two = TrainingSet("p"), TrainingSet("p")
    assert one.lock is two.lock  # two docks on one project: one lock
    assert TrainingSet("q").lock is not one.lock
    root = one.root.resolve()
    del one, two
    gc.collect()
    assert root not in training_set._LOCKS  # no one has it open: nothing kept


def test_a_known_digest_follows_the_file(tmp_path):
    import hashlib

    from wavegms.core.files import known_sha256

    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    assert known_sha256(path) == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"three")  # another version of the file
    assert known_sha256(path) == hashlib.sha256(b"three").hexdigest()
