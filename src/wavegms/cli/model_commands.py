"""``wavegms models`` and ``wavegms export``: the installed models, and one written as a
bioimage.io package (``export.bioimageio.export_bioimageio``)."""

from __future__ import annotations

import argparse

from wavegms.cli.options import add_overwrite_option


def add_models(p: argparse.ArgumentParser) -> None:
    p.set_defaults(func=run_models)


def run_models(args: argparse.Namespace) -> int:
    from wavegms.core.errors import WaveGMSError
    from wavegms.store.catalogue import list_models, read_config, shipped_models

    models = list_models()
    if not models:
        print("no models installed; train one with `wavegms train --config ...`")
    shipped = shipped_models()
    for name, path in models.items():
        kind = "shipped" if name in shipped else "user"
        try:
            meta = read_config(path).get("metadata", {})
        except WaveGMSError as err:  # one damaged model must not hide the others
            print(f"{name:<20} {kind:<8} damaged, not usable: {err}")
            continue
        score = meta.get("val_dice") if isinstance(meta, dict) else None
        extra = f" val Dice {100 * score:.1f}" if isinstance(score, float) else ""
        print(f"{name:<20} {kind:<8}{extra}  {path}")
    return 0


def add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model name (see `wavegms models`) or path to a .safetensors")
    p.add_argument("package", metavar="OUT", help="package file to write, ending in .zip")
    p.add_argument("--format", choices=["bioimageio"], default="bioimageio", help="format")
    p.add_argument(
        "--image",
        help="image the package's test tensors and cover are made of (default: the shipped "
        "synthetic ultrasound sample)",
    )
    add_overwrite_option(p, "an existing package")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from wavegms.core.progress import TextProgressBar
    from wavegms.export.bioimageio import export_bioimageio

    path = export_bioimageio(
        args.model, args.package, image=args.image, overwrite=args.overwrite,
        progress=TextProgressBar(),
    )  # fmt: skip
    print(f"wrote the bioimage.io package of model {args.model!r} to {path}")
    return 0
