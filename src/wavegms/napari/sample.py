"""Sample data: a synthetic ultrasound-like image with its lesion mask (made by
``scripts/make_sample_data.py``; no patient data)."""

from __future__ import annotations

#: The reference mask's colour: not the first label colour that a predicted mask gets.
REFERENCE_COLOUR = "cyan"


def ultrasound() -> list[tuple]:
    """An image layer and a labels layer (1 = lesion)."""
    from wavegms.data.images import read_image
    from wavegms.data.masks import read_mask
    from wavegms.package_data import as_path, sample_file

    with as_path(sample_file("images")) as image_path, as_path(sample_file("masks")) as mask_path:
        image = read_image(image_path)
        mask = read_mask(mask_path).astype("uint8")
    return [
        (image, {"name": "ultrasound"}, "image"),
        (
            mask,
            {
                "name": "ultrasound lesion",
                "colormap": {0: "transparent", 1: REFERENCE_COLOUR, None: "transparent"},
                "opacity": 0.6,
            },
            "labels",
        ),
    ]
