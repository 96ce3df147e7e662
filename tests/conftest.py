"""Shared pytest fixtures."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def research_data_root() -> Path:
    """The research datasets (``$WAVEGMS_DATA``, else ``<repo>/../shared/data``)."""
    return Path(os.environ.get("WAVEGMS_DATA") or SHARED / "data")


def pytest_configure(config: pytest.Config) -> None:
    """The cores shared out among the test processes: each pytest-xdist worker runs torch (and
    ONNX Runtime, which takes torch's count) on ``cores // workers`` threads. torch is imported
    before any conftest (pyproject's warning filter names a torch warning), so setting
    OMP_NUM_THREADS here would come too late; two workers with two threads each on two cores
    spent their time waiting on each other's spinning threads."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 0:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


#: The test files that take longest, longest first (about 100 s down to 20 s each on a quiet
#: 2-core machine). pytest-xdist gives whole files to its workers in the order collected
#: (``--dist loadfile --no-loadscope-reorder``): a long file dealt out last kept one worker busy
#: while the other idled. Order only: a file not named here runs after them, files with more
#: tests first (xdist's own order), and the tests within a file keep theirs.
SLOWEST_FILES = (
    "tests/test_train.py",
    "tests/test_runtime_calibration.py",
    "tests/test_wheel.py",
    "tests/test_exact_default.py",
    "tests/test_train_carry.py",
    "tests/napari/test_review_dock.py",
    "tests/test_shipped_model.py",
    "tests/test_bench.py",
    "tests/napari/test_correction_gui.py",
    "tests/test_export_bioimageio.py",
    "tests/test_ddp.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def file_of(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    tests_in = Counter(map(file_of, items))
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}

    def place(item: pytest.Item) -> tuple[int, int]:
        return rank.get(file_of(item), len(rank)), -tests_in[file_of(item)]

    items.sort(key=place)  # a stable sort: each file's tests stay together, in their order


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``data`` read BUSI or Kvasir-SEG, which are never shipped: without them
    they are skipped with the reason, and every other test runs on a fresh clone alone."""
    if item.get_closest_marker("data") is not None and not research_data_root().is_dir():
        pytest.skip(
            f"research data not found at {research_data_root()}: set WAVEGMS_DATA to the folder "
            "holding busi/ and kvasir_seg/ (see README, Datasets)"
        )


@pytest.fixture
def data_root(request) -> Path:
    """The research data folder, for tests marked ``data`` (checked, so none is forgotten)."""
    assert request.node.get_closest_marker("data"), "a test using data_root must be marked data"
    return research_data_root()


@pytest.fixture(scope="session")
def taef2_dir() -> Path:
    """The original TAEF2 .pth files (``$WAVEGMS_TAEF2``, else ``<repo>/../shared/weights/taef2``),
    for the tests that compare them with the weights shipped in the package."""
    path = Path(os.environ.get("WAVEGMS_TAEF2") or SHARED / "weights" / "taef2")
    if not all((path / f"taef2_{half}.pth").is_file() for half in ("encoder", "decoder")):
        pytest.skip(f"original TAEF2 .pth files not found in {path}: set WAVEGMS_TAEF2")
    return path


@pytest.fixture(scope="session")
def session_graphs(tmp_path_factory) -> Path:
    """The compiled graphs of this test session (one folder per xdist worker)."""
    return tmp_path_factory.mktemp("graphs")


@pytest.fixture
def share_graphs(request, session_graphs):
    """``share_graphs(home)`` points ``home``'s graph cache at the session's, unless the test
    is marked ``own_graph_cache``. A cached graph is named by the sha256 of its model and its
    libraries and checked against the eager model whenever it is loaded, so sharing changes no
    answer; it saves each test that runs a model the seconds of exporting its graph again."""

    def link(home: Path) -> None:
        if request.node.get_closest_marker("own_graph_cache") is None:
            (home / "cache").mkdir(parents=True, exist_ok=True)
            (home / "cache" / "graphs").symlink_to(session_graphs, target_is_directory=True)

    return link


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory, monkeypatch, share_graphs) -> Path:
    """Every test gets its own user data/cache folders, so no test reads or writes the real
    user's models, settings or cache (compiled graphs excepted: see ``share_graphs``). TAEF2
    comes from the package (or ``$WAVEGMS_TAEF2``)."""
    home = tmp_path_factory.mktemp("wavegms_home")
    monkeypatch.setenv("WAVEGMS_HOME", str(home))
    share_graphs(home)
    return home


@pytest.fixture(autouse=True)
def graph_builds_end_with_their_test():
    """A graph build that a test started (``Segmenter.prepare_graph``: a thread) ends before
    the next test begins: else it would run that test's monkeypatched graph builder."""
    yield
    for thread in threading.enumerate():
        if thread.name == "wavegms-graph":
            thread.join(timeout=300)


@pytest.fixture(scope="session")
def taef2():
    """The frozen TAEF2 shipped in the package, loaded (and hashed) once per session."""
    from wavegms.net.autoencoders.taef2 import BUNDLED_DIR, load_taef2

    return load_taef2(BUNDLED_DIR)


@pytest.fixture(scope="session")
def tiny_network(taef2):
    """A random-weight WaveGMS at 32 pixels with the real frozen TAEF2, built once. For tests
    that need a working model, not tests of loading one."""
    import torch

    from wavegms.net.model import ModelConfig, WaveGMS

    torch.manual_seed(0)
    return WaveGMS(ModelConfig(image_size=32)).attach(taef2).eval()


@pytest.fixture(scope="session")
def tiny_segmenter(tiny_network, tmp_path_factory):
    """A CPU Segmenter around :func:`tiny_network`, shared by the session, its graph (the
    automatic backend's) built once here. Do not change its settings: ``copy.copy`` it (the
    copy shares the model and the graph, not the settings)."""
    import numpy as np

    from wavegms.inference.segmenter import Segmenter

    segmenter = Segmenter(tiny_network, device="cpu", batch_size=4)
    # Session fixtures run before the per-test user folders exist: the graph's export cache
    # goes to a folder of the session's own, never to the real user's cache.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WAVEGMS_HOME", str(tmp_path_factory.mktemp("session_home")))
        segmenter.predict_soft([np.zeros((32, 32), np.uint8)])  # builds the graph
    return segmenter


@pytest.fixture
def segmenter(tiny_segmenter):
    """A Segmenter of its own (its settings, such as ``batch_size``, may be changed) that
    shares the session's tiny network and traced graph, so no test pays for tracing again."""
    import copy

    return copy.copy(tiny_segmenter)


@pytest.fixture(autouse=True)
def no_shipped_models(request, tmp_path_factory, monkeypatch) -> None:
    """Tests see only the models they make (small and fast), unless marked ``shipped``: the
    shipped 224-pixel model would otherwise be the default everywhere."""
    if request.node.get_closest_marker("shipped") is None:
        monkeypatch.setattr(
            "wavegms.store.catalogue.SHIPPED_DIR", tmp_path_factory.mktemp("shipped")
        )


def make_disk_pair(rng, size=(40, 48)):
    """A noisy grey image with a dark disk and the disk's 0/255 mask."""
    import numpy as np

    h, w = size
    cy, cx = rng.integers(h // 3, 2 * h // 3), rng.integers(w // 3, 2 * w // 3)
    r = rng.integers(min(h, w) // 6, min(h, w) // 3)
    yy, xx = np.mgrid[:h, :w]
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    image = np.clip(0.6 + 0.1 * rng.standard_normal((h, w)) - 0.4 * mask, 0, 1)
    return (image * 255).astype("uint8"), (mask * 255).astype("uint8")


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """<tmp>/data with images/, masks/ (8 pairs) and split.json (6 train, 2 test)."""
    import json

    import numpy as np
    from skimage.io import imsave

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    names = [f"case_{i}" for i in range(8)]
    for name in names:
        image, mask = make_disk_pair(rng)
        imsave(root / "images" / f"{name}.png", image, check_contrast=False)
        imsave(root / "masks" / f"{name}.png", mask, check_contrast=False)
    (root / "split.json").write_text(json.dumps({"train": names[:6], "test": names[6:]}))
    return root


@pytest.fixture
def tiny_model_file(tmp_path) -> Path:
    """A valid model file (random weights, 32-pixel input) in the user models folder."""
    import torch

    from wavegms.net.model import ModelConfig, WaveGMS
    from wavegms.store.model_files import save_model
    from wavegms.store.paths import user_models_dir

    torch.manual_seed(0)
    return save_model(WaveGMS(ModelConfig(image_size=32)), user_models_dir() / "tiny")
