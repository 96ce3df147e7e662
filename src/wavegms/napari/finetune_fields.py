"""The fine-tune dock's words and defaults: its fine-tuning fields (those of
:class:`~wavegms.training.finetune.FinetuneRequest`), the free model name it fills in, and the
line that says what a run made and why that epoch."""

from __future__ import annotations

from collections.abc import Collection

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, SpinBox
from magicgui.widgets.bases import ValueWidget

from wavegms.napari.fields import device_choices, model_choices
from wavegms.training.training_set import safe_name


def request_fields() -> dict[str, ValueWidget]:
    """The form's fine-tuning fields, each named after the :class:`FinetuneRequest` field it
    sets (the request is the one list of fine-tune settings and their defaults)."""
    fields: dict[str, ValueWidget] = {
        "base_model": ComboBox(label="base model", choices=model_choices),
        "device": ComboBox(label="device", choices=device_choices),
        "epochs": SpinBox(label="epochs", min=1, max=10_000),
        "lr": FloatSpinBox(label="learn rate", min=1e-6, max=1.0, step=1e-4),
        "batch_size": SpinBox(label="batch size", min=1, max=256),
        "val_fraction": FloatSpinBox(label="validation", min=0.05, max=0.9, step=0.05),
        "augment": CheckBox(text="augmentation"),
        "fast_cpu": CheckBox(text="fast CPU schedule"),
        "new_name": LineEdit(label="new name"),
    }
    fields["lr"].native.setDecimals(6)
    fields[
        "val_fraction"
    ].tooltip = "fraction of the pairs held out to choose the best epoch (3 at least)"
    fields["new_name"].tooltip = "the name of the new model (filled in with a free one)"
    fields["fast_cpu"].tooltip = "on CPU: training images encoded once, no decoder in the loss"
    for name, widget in fields.items():
        widget.name = name
    return fields


def default_model_name(project: str, taken: Collection[str] = ()) -> str:
    """``<project>-ft<n>`` with the first ``n`` that names no model yet (nor one in
    ``taken``: being made in the background)."""
    from wavegms.store.reservations import check_new_model_name

    stem = (safe_name(project) or "model")[:48]
    for n in range(1, 10_000):
        name = f"{stem}-ft{n}"
        if name in taken:
            continue
        try:
            check_new_model_name(name)
            return name
        except Exception:
            continue
    return ""


def free_model_name(typed: str, project: str, taken: Collection[str] = ()) -> str:
    """``typed`` if it names no model yet (nor one in ``taken``), else
    :func:`default_model_name`."""
    from wavegms.store.reservations import check_new_model_name

    if typed and typed not in taken:
        try:
            check_new_model_name(typed)
            return typed
        except Exception:
            pass
    return default_model_name(project, taken)


def outcome_text(name: str, outcome: dict) -> str:
    """What a fine-tune made and why that epoch, in one status line."""
    how = "stopped; kept the best completed epoch" if outcome["cancelled"] else "done"
    planned = outcome.get("epochs_planned") or outcome["epochs_done"]
    return (
        f"{how}: new model {name!r} from epoch {outcome['best_epoch']} of "
        f"{outcome['epochs_done']} (of {planned} planned), the best validation Dice "
        f"{outcome['best_val_dice']:.3f} on {outcome['val_images']} image(s) held out of "
        f"{outcome['train_images'] + outcome['val_images']}"
    )
