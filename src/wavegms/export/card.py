"""Which name and card an exported model carries, from the model itself, never its file name.

A shipped model's card (with its published scores) belongs to exactly the bytes it was written
for: it is used only when the model file is one of the shipped files, sha256 for sha256. Any
other model (fine-tuned, retrained, a copy renamed ``busi.safetensors``) gets a card written
from its own metadata (its name, the training it records, its sha256), which claims no score it
was not measured at, and a package name that cannot be taken for a shipped model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Identity:
    """What an exported model is: its package name, its card, the sha256 of its file and
    whether it is a shipped model (byte for byte)."""

    name: str
    card: str
    sha256: str
    shipped: bool


def shipped_name(sha256: str) -> str | None:
    """The shipped model whose weights file has this sha256, if any."""
    from wavegms.runtime.graph_cache import file_sha256
    from wavegms.store.catalogue import shipped_models

    for name, weights in shipped_models().items():
        if file_sha256(weights) == sha256:
            return name
    return None


def metadata_card(name: str, metadata: dict, sha256: str) -> str:
    """A card from what the model's JSON records about its training, and nothing else."""
    lines = [f"# Wave-GMS model `{name}`", ""]
    lines.append(
        "This model is not one of the models shipped with napari-wavegms (its weights differ "
        "from every shipped file), so no published score applies to it: validate it on "
        "labelled images of your own (see Validation below)."
    )
    facts = []
    config = metadata.get("config") if isinstance(metadata.get("config"), dict) else {}
    if config.get("init_model"):
        facts.append(f"- Trained from: `{Path(str(config['init_model'])).stem}`")
    if config.get("data_dir"):
        facts.append(f"- Training data: `{Path(str(config['data_dir'])).name}`")
    for key, label in (("train_images", "Training images"), ("val_images", "Validation images")):
        if isinstance(metadata.get(key), int):
            facts.append(f"- {label}: {metadata[key]}")
    if isinstance(metadata.get("epoch"), int):
        facts.append(f"- Selected epoch: {metadata['epoch']}")
    if isinstance(metadata.get("val_dice"), (int, float)):
        facts.append(f"- Validation Dice (its own validation images): {metadata['val_dice']:.4f}")
    if facts:
        lines += ["", "## What the model file records", "", *facts]
    return "\n".join(lines) + "\n"


def identify(model, model_file: Path, fallback_name: str) -> Identity:
    """The name and card of ``model`` loaded from ``model_file`` (see the module docstring).
    ``fallback_name``: the name when the model's metadata holds none (the file's stem)."""
    from wavegms.package_data import model_card
    from wavegms.runtime.graph_cache import file_sha256

    sha256 = file_sha256(model_file)
    shipped = shipped_name(sha256)
    if shipped is not None:
        card = model_card(shipped) or metadata_card(shipped, {}, sha256)
        return Identity(shipped, card, sha256, True)
    metadata = getattr(model, "metadata", None) or {}
    name = metadata.get("name") if isinstance(metadata.get("name"), str) else None
    name = name or fallback_name
    from wavegms.store.catalogue import shipped_models

    if name in shipped_models():  # own weights under a shipped name: never mistaken for it
        name = f"{name} (modified)"
    return Identity(name, metadata_card(name, metadata, sha256), sha256, False)


def provenance_record(identity: Identity) -> dict:
    """The package description's provenance (its ``config``): model, sha256, how it runs."""
    return {
        "model_name": identity.name,
        "model_sha256": identity.sha256,
        "shipped": identity.shipped,
        "backend": "torchscript, onnx",
        "precision": "fp32",
    }


def provenance_section(identity: Identity, formats: str) -> str:
    """The package README's provenance: the model, its file's sha256, how the packaged
    weights compute (``formats``) and their precision."""
    kind = "a model shipped with napari-wavegms" if identity.shipped else "not a shipped model"
    return f"""## Provenance

- Model: `{identity.name}` ({kind})
- Model file sha256: `{identity.sha256}`
- Weights: {formats}, exact fp32 (checked against napari-wavegms' eager soft mask)
"""
