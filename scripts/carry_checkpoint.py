"""Write a run folder's carried checkpoint (the file committed in checkpoints/), for a run
started without ``wavegms train --carry`` (which rewrites it after every epoch itself).

    python scripts/carry_checkpoint.py /work/runs/busi-warm checkpoints/busi-warm.safetensors
"""

from __future__ import annotations

import sys
from pathlib import Path

from wavegms.training.carry import carried_summary, write_carried

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} RUN_DIR DEST.safetensors")
    run_dir, dest = Path(sys.argv[1]), Path(sys.argv[2])
    if write_carried(run_dir, dest) is None:
        sys.exit(f"error: {run_dir} holds no checkpoint yet")
    print(carried_summary(dest))
