"""`wavegms export MODEL OUT --format bioimageio`: the package passes bioimageio.core's own
test, its ONNX weights give the project's soft mask, and bad requests fail before any work."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bioimageio.core", reason="needs the bioimageio extra")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")


class NoNetwork:
    """Refuses the HTTP requests bioimageio.spec makes to check the URLs a description
    names (as an offline machine would), and records them."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, method, url, *args, **kwargs):
        import httpx

        self.urls.append(str(url))
        raise httpx.ConnectError("tests never use the network")

    def install(self, monkeypatch) -> NoNetwork:
        monkeypatch.setattr("httpx.request", self)
        monkeypatch.setattr("httpx.stream", self)
        return self


@pytest.fixture(scope="module")
def package(tmp_path_factory, tiny_network):
    """The package of the tiny random-weight model (32 pixels, real TAEF2), built once
    offline, the progress reports of that build and the URLs it tried to check."""
    from wavegms.export.bioimageio import export_bioimageio
    from wavegms.store.model_files import save_model

    folder = tmp_path_factory.mktemp("export")
    model_file = save_model(tiny_network, folder / "tiny.v1")  # a dot: no bioimage.io name
    reports = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        network = NoNetwork().install(monkeypatch)
        path = export_bioimageio(model_file, folder / "tiny.zip", progress=reports.append)
    return path, reports, network.urls


def test_package_passes_bioimageio_core_test(package, monkeypatch):
    """bioimageio.core validates the zip and runs its ONNX weights on the test tensors (the
    TorchScript weights are run the same way by the export itself, see the next tests, and by
    bioimageio.core in the full check of ``busi`` the README gives; both here cost ~10 s)."""
    from bioimageio.core import test_model

    from wavegms.export.bioimageio import KNOWN_URLS

    path, reports, urls = package
    assert reports[-1].done == reports[-1].total  # the last report says it is finished
    network = NoNetwork().install(monkeypatch)
    summary = test_model(path, weight_format="onnx", devices=["cpu"])
    # offline, as here, only the citation's link cannot be checked: the package needs nothing
    # from outside the zip
    assert set(urls + network.urls) <= set(KNOWN_URLS)
    failed = [d.name for d in summary.details if d.status != "passed"]
    assert summary.status == "passed", failed
    assert "Reproduce test outputs from test inputs (onnx)" in {d.name for d in summary.details}


def test_onnx_weights_give_the_projects_soft_mask(package, tiny_segmenter, tmp_path):
    """On the BUSI-like sample image, the packaged ONNX graph (fed as the package's README
    says) equals the soft mask the project's own Segmenter makes."""
    import onnxruntime
    import yaml

    from wavegms.data.preprocess import model_input
    from wavegms.export.package_files import example_image
    from wavegms.package_data import sample_file

    path, _, _ = package
    with zipfile.ZipFile(path) as z:
        rdf = yaml.safe_load(z.read("rdf.yaml"))
        (tmp_path / "weights.onnx").write_bytes(z.read(rdf["weights"]["onnx"]["source"]))
        readme = z.read(rdf["documentation"]["source"]).decode()
        script = z.read(rdf["weights"]["torchscript"]["source"])
    # no source paths of the exporting machine (a home folder) travel in the package
    assert b".debug_pkl" not in script and str(Path(__file__).parents[1]).encode() not in script
    image = example_image(None)
    assert sample_file().is_file() and image.ndim == 2  # grey, as ultrasound comes
    x = model_input(image, 32).transpose(2, 0, 1)[None]
    session = onnxruntime.InferenceSession(str(tmp_path / "weights.onnx"))
    onnx_soft = session.run(None, {session.get_inputs()[0].name: x})[0]
    ours = tiny_segmenter.predict_soft([image])
    assert onnx_soft.shape == (1, 1, 32, 32)
    assert np.abs(onnx_soft[0, 0] - ours[0]).max() < 1e-4
    assert ours.std() > 0.05  # a soft mask with structure, not a constant that agrees trivially
    # what a consumer needs to know is in the description
    assert rdf["format_version"].startswith("0.5") and rdf["license"] == "MIT"
    assert rdf["name"] == "Wave-GMS tiny-v1"
    dois = {c.get("doi") for c in rdf["cite"]}
    assert {"10.48550/arXiv.2510.03216", "10.48550/arXiv.2403.18198"} <= dois
    assert any("taesd" in str(c.get("url")) for c in rdf["cite"])
    assert "## Validation" in readme and "resized" in readme
    assert (
        f"Model file sha256: `{rdf['config']['wavegms']['provenance']['model_sha256']}`" in readme
    )
    assert rdf["config"]["wavegms"]["provenance"]["precision"] == "fp32"
    assert "not a shipped model" in readme
    assert [a["size"] for a in rdf["inputs"][0]["axes"][2:]] == [32, 32]


def test_weights_that_disagree_are_refused(monkeypatch, tmp_path):
    from wavegms.core.errors import WaveGMSError
    from wavegms.export import bioimageio

    y = np.full((1, 1, 8, 8), 0.5, np.float32)
    monkeypatch.setattr(
        bioimageio, "_run_weights", lambda folder, x: {"onnx": y + 0.01, "torchscript": y}
    )
    with pytest.raises(WaveGMSError, match="onnx weights differ"):
        bioimageio.check_weights(tmp_path, y, y)
    monkeypatch.setattr(
        bioimageio, "_run_weights", lambda folder, x: {"onnx": y, "torchscript": y * np.nan}
    )
    with pytest.raises(WaveGMSError, match="torchscript"):
        bioimageio.check_weights(tmp_path, y, y)


def test_bad_requests_fail_before_any_work(tmp_path, tiny_model_file):
    from wavegms.cli import main
    from wavegms.core.errors import Cancelled
    from wavegms.core.progress import CancelToken
    from wavegms.export.bioimageio import export_bioimageio

    existing = tmp_path / "shared.zip"
    existing.write_bytes(b"the user's file")
    assert main(["export", str(tiny_model_file), str(existing)]) == 2
    assert existing.read_bytes() == b"the user's file"  # never overwritten unasked
    assert main(["export", str(tiny_model_file), str(tmp_path / "model.tar")]) == 2
    assert main(["export", "nosuch", str(tmp_path / "n.zip")]) == 2
    assert main(["export", "tiny", str(tmp_path / "n.zip"), "--image", "nope.png"]) == 2
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        export_bioimageio(tiny_model_file, tmp_path / "c.zip", cancel=token)
    assert not (tmp_path / "n.zip").exists() and not (tmp_path / "c.zip").exists()


def test_documentation_is_the_model_card_plus_how_to_feed_and_validate(tiny_network):
    from wavegms.export.package_files import documentation
    from wavegms.package_data import model_card

    card = model_card("busi")  # inside the package: an installed wheel has it too
    assert card is not None and card.startswith("# Model card: `busi`")
    text = documentation("busi", tiny_network, card)
    assert text.startswith(card.rstrip()) and "## Validation" in text
    assert "(1, 3, 32, 32)" in text  # the input shape of this model, not a fixed 224
    assert model_card("no-such-model") is None
    assert documentation("mine", tiny_network, None).startswith("# Wave-GMS model `mine`")


@pytest.mark.shipped
def test_the_shipped_card_goes_only_with_the_shipped_bytes(tiny_network, tmp_path):
    """A model saved as ``busi.safetensors`` elsewhere, with other weights, is not packaged
    as the shipped busi with its card and published scores (issue 23, item 9)."""
    import shutil

    from wavegms.export.card import identify
    from wavegms.store.catalogue import resolve_model
    from wavegms.store.model_files import load_model, save_model

    shipped = resolve_model("busi")
    copy = tmp_path / "copy" / "busi.safetensors"
    copy.parent.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(shipped.with_suffix(suffix), copy.with_suffix(suffix))
    same = identify(load_model(copy), copy, "busi")
    assert same.shipped and same.name == "busi" and "## Test scores" in same.card
    metadata = {"name": "busi", "epoch": 3, "val_dice": 0.5, "train_images": 10}
    mine = save_model(tiny_network, tmp_path / "mine" / "busi", metadata=metadata)
    other = identify(load_model(mine), mine, "busi")
    assert not other.shipped and other.name == "busi (modified)"
    assert "## Test scores" not in other.card and "no published score" in other.card
    assert "Validation Dice (its own validation images): 0.5000" in other.card
    assert other.sha256 != same.sha256


def test_a_killed_exports_temporary_is_removed_by_the_next(tmp_path):
    """A hidden temporary of the same package, left by an export killed while writing, goes
    with the next export of that package; other files stay."""
    from wavegms.export.package_files import write_package

    out = tmp_path / "pkg.zip"
    leftover = tmp_path / ".pkg.zip.0123456789ab.tmp.zip"
    leftover.write_bytes(b"x" * 1000)
    unrelated = tmp_path / ".other.zip.0123456789ab.tmp.zip"
    unrelated.write_bytes(b"keep")
    write_package(out, lambda tmp: tmp.write_bytes(b"zip"))
    assert out.read_bytes() == b"zip" and not leftover.exists() and unrelated.exists()
    assert not (tmp_path / ".wavegms-run.lock").exists()
