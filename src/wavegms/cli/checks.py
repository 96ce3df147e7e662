"""Argument errors found before any model loads: paths, new model names, the input folder's
images, the device and the models named, each reported as one line."""

from __future__ import annotations

import argparse
from pathlib import Path

from wavegms.core.errors import InputError, WaveGMSError


def check_args(args: argparse.Namespace) -> None:
    """Argument errors found before any model is loaded or training starts (numbers were
    checked as they were parsed): the cheap ones first (paths, the name of a new model, the
    input folder's images), then the ones that need torch (the device, model names, last the
    whole model to train from), so a typo is reported at once rather than after torch and
    the model load, and a damaged base model before the data is loaded."""
    _check_paths(args)
    _check_command_inputs(args)
    _check_names_and_device(args)


def _check_paths(args: argparse.Namespace) -> None:
    """Path options: not blank, inputs that exist, an output that is not a file."""
    for key in ("input", "output", "out", "data", "config", "split_file", "finetune_data"):
        value = getattr(args, key, None)
        if value is None:
            continue
        flag = key if key in ("input", "output") else "--" + key.replace("_", "-")
        if not value.strip():  # "" would mean the current folder
            raise InputError(f"{flag} must name a file or folder, not {value!r}")
        if key in ("data", "split_file", "finetune_data") and not Path(value).exists():
            raise InputError(f"{flag} {value} does not exist")  # found now, not after a load
    out = getattr(args, "output", None) or getattr(args, "out", None)
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise WaveGMSError(f"output {out} is a file; name a folder (new or existing)")


def _check_command_inputs(args: argparse.Namespace) -> None:
    """What ``segment`` and ``export`` need before a load: cluster, input images, package."""
    if args.command == "segment":
        if (args.workers or args.scheduler) and (args.backend, args.precision) != ("auto", "fp32"):
            raise InputError("--backend and --precision are for this machine; workers run exact")
        if args.workers or args.scheduler:
            from wavegms.inference.dask_cluster import check_cluster

            check_cluster(args.workers, args.scheduler)
        check_input_images(Path(args.input))
    if args.command == "export":  # the package's name and the example image, before a load
        from wavegms.export.bioimageio import check_output_path

        check_output_path(args.package, args.overwrite)
        if args.image is not None and not Path(args.image).is_file():
            raise InputError(f"--image {args.image} is not a file")


def _check_names_and_device(args: argparse.Namespace) -> None:
    """A new model's name, then the checks that need torch: the device, the models named."""
    new_name = getattr(args, "name", None) or getattr(args, "export", None)
    if new_name is not None:  # refused now, not after minutes of training
        from wavegms.store.reservations import check_new_model_name

        check_new_model_name(new_name)
    device = getattr(args, "device", None)
    if device and device != "auto":
        from wavegms.core.devices import resolve_device

        resolve_device(device)
    for name in ("model", "base", "init_model"):
        model = getattr(args, name, None)
        if model is not None:  # "" too: an empty name is a mistake, not "the default"
            from wavegms.store.catalogue import resolve_model

            path = resolve_model(model)
            if name != "model":  # a damaged base is found now, not after the data is loaded
                from wavegms.store.model_files import load_model

                load_model(path)


def _holds_images(folder: Path) -> bool:
    from wavegms.data.images import list_images

    try:
        return bool(list_images(folder))
    except OSError:  # a folder we may not read is not the one the user meant
        return False


def check_input_images(folder: Path) -> None:
    """The input of ``segment`` holds at least one readable image; otherwise one line saying
    what it holds instead (a dataset root's ``images/`` folder, other files, nothing)."""
    from wavegms.data.clinical import CLINICAL_SUFFIXES
    from wavegms.data.images import IMAGE_SUFFIXES, list_images, read_image

    if not folder.exists():
        raise WaveGMSError(f"input {folder} does not exist")
    if not folder.is_dir():
        raise WaveGMSError(f"input {folder} is not a folder; segment takes a folder of images")
    try:
        images = list_images(folder)
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as err:
        raise WaveGMSError(f"cannot read input folder {folder}: {err.strerror}") from err
    first_reason = None
    for image in images:  # usually the first one reads: one decode, not the whole folder
        try:
            read_image(image)
            return
        except WaveGMSError as err:
            first_reason = first_reason or str(err)
    if images:
        raise WaveGMSError(
            f"none of the {len(images)} image files in {folder} is readable: {first_reason}"
        )
    with_images = [p for p in entries if p.is_dir() and _holds_images(p)]
    if with_images:
        guess = next((p for p in with_images if p.name == "images"), with_images[0])
        raise WaveGMSError(
            f"no images in {folder}; it holds a folder {guess.name}/ with images — "
            f"did you mean {guess}?"
        )
    held = ", ".join(p.name + ("/" if p.is_dir() else "") for p in entries[:5])
    more = f" and {len(entries) - 5} more" if len(entries) > 5 else ""
    kinds = " ".join(IMAGE_SUFFIXES + CLINICAL_SUFFIXES)
    what = f"it holds {held}{more}" if entries else "it is empty"
    raise WaveGMSError(f"no images ({kinds}) in {folder}; {what}")
