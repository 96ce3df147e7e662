"""Model files: damaged, inconsistent, too new, and pickles that would run code if loaded."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from wavegms.core.errors import ModelFileError
from wavegms.inference.segmenter import Segmenter
from wavegms.net.model import ModelConfig, WaveGMS
from wavegms.store.catalogue import list_models, model_paths, resolve_model
from wavegms.store.model_files import load_model, save_model

from .cases import case
from .payloads import write_payload


@pytest.fixture
def model_file(tmp_path):
    """A valid random-weight model at <tmp>/m.safetensors + m.json."""
    torch.manual_seed(0)
    return save_model(WaveGMS(ModelConfig(image_size=32)), tmp_path / "m")


def edit_config(path, **changes) -> None:
    config_path = model_paths(path)[1]
    config = json.loads(config_path.read_text())
    for key, value in changes.items():
        if key in ModelConfig.__dataclass_fields__:
            config["model"][key] = value
        else:
            config[key] = value
    config_path.write_text(json.dumps(config))


@case(
    "MODEL-TRUNCATED",
    "A model's .safetensors file cut off halfway",
    "ModelFileError 'not a readable safetensors file' naming it, from load_model and "
    "Segmenter.load",
)
def test_truncated_weights(model_file):
    data = model_file.read_bytes()
    model_file.write_bytes(data[: len(data) // 2])
    for load in (load_model, Segmenter.load):
        with pytest.raises(ModelFileError, match=r"m\.safetensors is not a readable safetensors"):
            load(model_file)


@case(
    "MODEL-CONFIG-MISMATCH",
    "A config whose latent width does not match the weights",
    "ModelFileError 'does not match its config' counting missing/unexpected/wrong-shape tensors",
)
def test_config_does_not_match_weights(model_file):
    edit_config(model_file, latent_channels=4)
    with pytest.raises(ModelFileError, match=r"does not match its config .* wrong-shape"):
        load_model(model_file)


@case(
    "MODEL-BAD-CONFIG",
    "Configs that are not JSON, not an object, name an unknown backend, or give a size that "
    "is not a positive multiple of 8",
    "ModelFileError naming the .json file and the problem (not a TypeError deep in torch)",
)
def test_bad_configs(model_file):
    config_path = model_paths(model_file)[1]
    good = config_path.read_text()
    for changes, message in (
        ({"backend": "mystery"}, "unknown backend 'mystery'"),
        ({"image_size": "big"}, "image_size must be a positive whole number"),
        ({"image_size": 30}, "multiple of 8"),
        ({"model": ["not", "an", "object"]}, "bad model section"),
    ):
        config_path.write_text(good)
        edit_config(model_file, **changes)
        with pytest.raises(ModelFileError, match=rf"m\.json: .*{message}"):
            load_model(model_file)
    config_path.write_text("{ not json")
    with pytest.raises(ModelFileError, match=r"m\.json is not valid JSON"):
        load_model(model_file)
    config_path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ModelFileError, match=r"cannot read model config .*m\.json"):
        load_model(model_file)


@case(
    "MODEL-NONFINITE-WEIGHTS",
    "A model file with one NaN, +Inf or -Inf weight (a diverged or damaged model; the traced "
    "CPU graph used to turn NaN into plausible masks)",
    "ModelFileError naming the file and the first non-finite tensor, from load_model, "
    "Segmenter.load and `wavegms segment` (exit code 2, one line, nothing written)",
)
def test_non_finite_weights(tmp_path, tiny_dataset, capsys):
    from wavegms.cli import main

    for i, value in enumerate((float("nan"), float("inf"), float("-inf"))):
        torch.manual_seed(0)
        model = WaveGMS(ModelConfig(image_size=32))
        name, weight = next(iter(model.lmm.named_parameters()))
        with torch.no_grad():
            weight.view(-1)[3] = value
        path = save_model(model, tmp_path / f"bad{i}")
        first = rf"lmm\.{name}"
        for load in (load_model, Segmenter.load):
            with pytest.raises(ModelFileError, match=rf"bad{i}\.safetensors .*not finite.*{first}"):
                load(path)
    out = tmp_path / "out"
    code = main(["segment", str(tiny_dataset / "images"), str(out), "--model", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "not finite" in err
    assert not out.exists()


@case(
    "MODEL-ABSURD-SIZES",
    "Model configs asking for 10^9 latent channels, a 800000000-pixel input or 2^63 (were: "
    "MemoryError or a 1 TB allocation inside torch)",
    "ModelFileError naming the .json file and the allowed range, before anything is allocated",
)
def test_absurd_sizes(model_file):
    for key, value, limit in (
        ("latent_channels", 10**9, 256),
        ("image_size", 8 * 10**8, 4096),
        ("image_size", 2**63, 4096),
    ):
        edit_config(model_file, **{key: value})
        with pytest.raises(ModelFileError, match=rf"m\.json: .*{key} must be .* 1 to {limit}"):
            load_model(model_file)
        edit_config(model_file, latent_channels=32, image_size=32)  # valid again


@case(
    "MODEL-NEWER-FORMAT",
    "A model file from a newer napari-wavegms (format_version 2)",
    "ModelFileError 'has format version 2; ... reads up to 1. Update napari-wavegms'",
)
def test_newer_format_version(model_file):
    edit_config(model_file, format_version=2)
    with pytest.raises(ModelFileError, match=r"format version 2; .* reads up to 1\. Update"):
        load_model(model_file)


@case(
    "MODEL-PICKLE-LOAD",
    "load_model on .pt/.pth/.ckpt/.pkl files whose pickle runs code (touches a marker file)",
    "ModelFileError 'pickle-based file ... not loaded'; the marker file is never created",
)
def test_pickle_refused_by_load_model(payload, tmp_path):
    path, marker = payload
    targets = [shutil.copy(path, tmp_path / f"model{suffix}") for suffix in (".pth", ".ckpt")]
    targets += [path, write_payload(tmp_path / "model.pkl", marker, torch_format=False)]
    for target in targets:
        with pytest.raises(ModelFileError, match=r"pickle-based file .* not loaded"):
            load_model(target)
    assert not marker.exists()


@case(
    "MODEL-PICKLE-REGISTRY",
    "A malicious .pt/.pth passed to resolve_model and Segmenter.load, or dropped into the "
    "user model folder",
    "Refused with ModelFileError before the file is opened; not listed as a model; the marker "
    "file is never created",
)
def test_pickle_refused_by_the_registry(payload, tmp_path):
    from wavegms.store.paths import user_models_dir

    path, marker = payload
    pth = shutil.copy(path, tmp_path / "evil.pth")
    for target in (path, pth):
        for load in (resolve_model, Segmenter.load):
            with pytest.raises(ModelFileError, match="pickle-based"):
                load(target)
    user_models_dir().mkdir(parents=True)
    shutil.copy(path, user_models_dir() / "evil.pt")
    assert "evil" not in list_models()
    with pytest.raises(ModelFileError, match="no model named"):
        resolve_model("evil")
    assert not marker.exists()


@case(
    "MODEL-PICKLE-CLI",
    "`wavegms evaluate --model evil.pt` with a malicious pickle",
    "Exit code 2 and one line naming the file; the marker file is never created",
)
def test_pickle_refused_by_the_command_line(payload, tiny_dataset, tmp_path, capsys):
    from wavegms.cli import main

    path, marker = payload
    args = ["evaluate", "--model", str(path), "--data", str(tiny_dataset)]
    code = main([*args, "--out", str(tmp_path / "eval"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "evil.pt is a pickle-based file" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "eval").exists()


@case(
    "MODEL-PICKLE-DISGUISED",
    "A malicious torch pickle renamed to .safetensors beside a valid config",
    "ModelFileError 'not a readable safetensors file' (safetensors never unpickles); the "
    "marker file is never created",
)
def test_pickle_disguised_as_safetensors(model_file, tmp_path):
    marker = tmp_path / "PWNED"
    write_payload(model_file, marker)
    for load in (load_model, Segmenter.load):
        with pytest.raises(ModelFileError, match="not a readable safetensors"):
            load(model_file)
    assert not marker.exists()


def swapped_taef2(folder, marker):
    folder.mkdir()
    for name in ("taef2_encoder.pth", "taef2_decoder.pth"):
        write_payload(folder / name, marker)
    return folder


@case(
    "MODEL-TAEF2-SWAPPED",
    "TAEF2 weight files (.pth pickles) replaced by malicious ones",
    "ModelFileError 'not the pinned TAEF2 file (sha256 differs)'; the marker file is never created",
)
def test_swapped_taef2_weights(tmp_path):
    from wavegms.net.autoencoders import load_autoencoder

    marker = tmp_path / "PWNED"
    folder = swapped_taef2(tmp_path / "taef2", marker)
    with pytest.raises(ModelFileError, match=r"taef2_encoder\.pth is not the pinned TAEF2"):
        load_autoencoder("taef2", folder)
    assert not marker.exists()


@case(
    "MODEL-TAEF2-WEIGHTS-ONLY",
    "A malicious TAEF2 .pth whose sha256 is (pretend) pinned: the second lock",
    "torch.load(weights_only=True) refuses it: ModelFileError 'not a plain TAEF2 weights "
    "file'; the marker file is never created",
)
def test_taef2_loader_never_unpickles_code(tmp_path, monkeypatch):
    from wavegms.net.autoencoders import load_autoencoder, taef2

    marker = tmp_path / "PWNED"
    folder = swapped_taef2(tmp_path / "taef2", marker)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    monkeypatch.setattr(taef2, "SHA256", digests)
    with pytest.raises(ModelFileError, match="not a plain TAEF2 weights file"):
        load_autoencoder("taef2", folder)
    assert not marker.exists()


@case(
    "MODEL-WEIGHTS-DIGEST",
    "A model whose weights file was changed after it was saved (weights rounded to int8 and "
    "written back over its .safetensors; one byte flipped), loaded by name and by path, and "
    "by `wavegms segment`; the two shipped models",
    "ModelFileError 'is not the weights file its config records (sha256 differs)'; the "
    "command exits 2 with that one line; nothing is segmented (was: loaded and segmented, "
    "mask area 277 px where the real model gives 1,728). Every saved model's JSON records "
    "the sha256 of its weights, and the shipped models' match theirs",
)
def test_changed_weights_are_refused(model_file, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    from wavegms.cli import main
    from wavegms.store.model_files import WEIGHTS_SHA256

    config = json.loads(model_paths(model_file)[1].read_text())
    assert config[WEIGHTS_SHA256] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    state = load_file(model_file)
    rounded = {k: (v * 127).round() / 127 if v.is_floating_point() else v for k, v in state.items()}
    save_file(rounded, model_file)
    with pytest.raises(ModelFileError, match="sha256 differs"):
        load_model(model_file)
    images = tmp_path / "images"
    images.mkdir()
    from skimage.io import imsave

    imsave(images / "a.png", (torch.rand(20, 20) * 255).byte().numpy(), check_contrast=False)
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["segment", str(images), str(out), "--model", str(model_file)]) == 2
    err = capsys.readouterr().err
    assert "sha256 differs" in err and err.count("\n") == 1 and not (out / "masks").exists()
    data = bytearray(model_file.read_bytes())
    data[-1] ^= 1
    model_file.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256 differs"):
        load_model(model_file)


@case(
    "MODEL-SHIPPED-DIGEST",
    "The shipped models (busi, kvasir-seg, busi-box) loaded with the weights digest check",
    "Their JSON files record the sha256 of their weights, which matches; each loads",
)
@pytest.mark.shipped
def test_shipped_model_digests():
    from wavegms.store.catalogue import shipped_models
    from wavegms.store.model_files import WEIGHTS_SHA256

    models = shipped_models()
    assert {"busi", "kvasir-seg", "busi-box"} <= set(models)
    for path in models.values():
        weights, config = model_paths(path)
        recorded = json.loads(config.read_text())[WEIGHTS_SHA256]
        assert recorded == hashlib.sha256(weights.read_bytes()).hexdigest()
        load_model(path)
