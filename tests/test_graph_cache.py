"""Cached graphs: named by the model's sha256, the backend and the library versions; a damaged
file (truncated, garbled, its digest lost) is never handed to a runtime and is built again."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from wavegms.runtime.graph_cache import (
    DamagedCacheWarning,
    cache_path,
    cached_file,
    file_sha256,
    is_intact,
    library_versions,
)

# Tests of the graph cache itself: a cache of their own, not the session's shared one.
pytestmark = pytest.mark.own_graph_cache


def test_the_cache_name_holds_model_backend_graph_and_library_versions():
    import torch

    path = cache_path("ab" * 32, "onnx", library_versions("onnxruntime"), ".onnx")
    assert path.name.startswith("ab" * 32 + "-onnx-g")
    assert f"torch-{torch.__version__.replace('+', '.')}" in path.name
    assert "onnxruntime-" in path.name and path.suffix == ".onnx"
    assert "no-such-library-none" in library_versions("no-such-library")


@pytest.mark.parametrize("damage", ["truncate", "garble", "lose the digest"])
def test_a_damaged_entry_is_built_again_with_one_warning(tmp_path, damage):
    builds = []

    def build(path):
        builds.append(path)
        path.write_bytes(b"graph bytes " * 100)

    path = tmp_path / "g.onnx"
    assert cached_file(path, build) == path and len(builds) == 1 and is_intact(path)
    cached_file(path, build)
    assert len(builds) == 1  # intact: reused
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:50])
    elif damage == "garble":
        path.write_bytes(b"X" + path.read_bytes()[1:])
    else:
        path.with_name(path.name + ".sha256").unlink()
    assert not is_intact(path)
    with pytest.warns(DamagedCacheWarning, match="g.onnx was damaged; building it again"):
        cached_file(path, build)
    assert len(builds) == 2 and is_intact(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached_file(path, build)  # quiet from then on
    assert len(builds) == 2 and file_sha256(path)


def test_a_damaged_onnx_export_is_rebuilt_and_gives_the_same_masks(tiny_model_file):
    pytest.importorskip("onnxruntime")
    from wavegms.core.files import known_sha256
    from wavegms.inference.segmenter import Segmenter
    from wavegms.runtime.graph_cache import graph_dir

    image = np.random.default_rng(0).random((30, 20, 3)).astype(np.float32)
    first = Segmenter.load("tiny", device="cpu")
    soft = first.predict_soft([image])
    # this model's export only: the test session's graph cache holds other models' too
    (export,) = graph_dir().glob(f"{known_sha256(tiny_model_file)}-onnx-*.onnx")
    export.write_bytes(export.read_bytes()[:1000])  # as a full disk or a killed copy leaves it
    second = Segmenter.load("tiny", device="cpu")
    with pytest.warns(DamagedCacheWarning):
        again = second.predict_soft([image])
    assert second.graph_backend == "onnx"
    np.testing.assert_array_equal(soft, again)
