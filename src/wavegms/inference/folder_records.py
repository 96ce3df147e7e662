"""What made each mask of a folder run, and what ``--resume`` may keep.

Every row of ``results.csv`` records the model (name and sha256 of its weights file), the
backend that ran and its precision, the threshold, and the sha256 of the input file. The
binary mask PNG carries the same record in a text chunk, written with the mask, so that a run
killed before its table still leaves each finished mask saying what made it. A resumed run
keeps a mask only when its record matches this run (the same model and threshold: else the
resume is refused) and the input file is still the one it was made from (else it is made
again).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wavegms.core.errors import InputError
from wavegms.core.files import known_sha256
from wavegms.data.clinical import file_stem
from wavegms.runtime.backends import precision_of

#: the provenance columns of results.csv, in order
RECORD_COLUMNS = ("model", "model_sha256", "backend", "precision", "threshold", "input_sha256")

#: the PNG text chunk of a binary mask that holds its record (JSON)
PNG_KEY = "wavegms"


@dataclass(frozen=True)
class ModelRecord:
    """The model a run uses: its name (the file's stem) and the sha256 of its weights file;
    empty for a model that came from no file (built in memory, a test's fake)."""

    name: str = ""
    sha256: str = ""


def digest(path: Path) -> str:
    """The sha256 of ``path`` as it is now (remembered per size and modification time)."""
    return known_sha256(path)


def model_record(predictor: Any) -> ModelRecord:
    """Name and digest of the model file ``predictor`` runs (its ``model_file``), if any."""
    path = getattr(predictor, "model_file", None)
    if path is None:
        return ModelRecord()
    return ModelRecord(file_stem(path), digest(Path(path)))


def joined_record(predictors: list) -> ModelRecord:
    """One record for masks that several models made together (box mode: the crops' model,
    then the whole image's): names and digests joined with ``+``, in that order, so that a
    resume with another model, another partner or none refuses to mix the runs."""
    records = [model_record(p) for p in predictors]
    return ModelRecord("+".join(r.name for r in records), "+".join(r.sha256 for r in records))


def backend_of(predictor: Any) -> str:
    """What actually ran the last batch: a Segmenter's ``last_backend`` (the eager model while
    its graph is still being built, ``Segmenter.prepare_graph``), else its ``graph_backend``
    once it has run (``eager`` when no graph does); empty for a predictor that does not say
    (a test's fake)."""
    if not hasattr(predictor, "graph_backend"):
        return ""
    return getattr(predictor, "last_backend", "") or predictor.graph_backend or "eager"


def record(model: ModelRecord, backend: str, threshold: float, input_sha256: str) -> dict:
    """One mask's record: the values of :data:`RECORD_COLUMNS`. ``backend`` may name several
    models' backends joined with ``+`` (:func:`joined_record`); each one's precision is then
    said, once each (``fp32``, ``int8+fp32``)."""
    precisions = dict.fromkeys(precision_of(b) for b in backend.split("+")) if backend else {}
    return {
        "model": model.name,
        "model_sha256": model.sha256,
        "backend": backend,
        "precision": "+".join(precisions),
        "threshold": float(threshold),
        "input_sha256": input_sha256,
    }


def png_text(row: dict) -> dict[str, str]:
    """The PNG text chunk that carries ``row``'s record."""
    return {PNG_KEY: json.dumps({k: row[k] for k in RECORD_COLUMNS})}


def read_png_record(mask_path: Path) -> dict | None:
    """The record a mask PNG carries, or None (written by an older version, or damaged)."""
    from PIL import Image

    try:
        with Image.open(mask_path) as im:
            text = getattr(im, "text", {}).get(PNG_KEY)
        found = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict) or set(found) != set(RECORD_COLUMNS):
        return None
    return found


def check_same_run(found: dict, model: ModelRecord, threshold: float, out_dir: Path) -> None:
    """Refuse to resume into ``out_dir`` when its masks were made by another model or at
    another threshold: kept beside new ones, they would make one table of two runs."""
    if found["model_sha256"] == model.sha256 and float(found["threshold"]) == float(threshold):
        return
    then = f"model {found['model'] or '?'} ({found['model_sha256'][:12] or 'no file'})"
    now = f"model {model.name or '?'} ({model.sha256[:12] or 'no file'})"
    raise InputError(
        f"cannot resume into {out_dir}: its masks were made by {then} at threshold "
        f"{float(found['threshold']):g}, this run uses {now} at threshold {threshold:g}; "
        "resume with the same model and threshold, or segment into another folder "
        "(or replace them: --overwrite)"
    )
