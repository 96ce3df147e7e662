"""The child process of :mod:`wavegms.runtime.export_child`:
``python -m wavegms.runtime.export_main MODEL_FILE TARGET`` writes the ONNX export of the model
file to TARGET (:func:`wavegms.runtime.onnx_graph.export_onnx`, atomically).

A module of its own because it imports the exporter, and the exporter imports
``export_child`` to decide where an export runs.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Export ``MODEL_FILE`` to ``TARGET`` (``argv``, else the command line)."""
    model_file, target = argv if argv is not None else sys.argv[1:]
    from wavegms.runtime.onnx_graph import export_onnx
    from wavegms.store.model_files import load_segmentation_model

    export_onnx(load_segmentation_model(model_file, "cpu"), Path(target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
