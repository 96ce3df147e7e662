"""``python -m wavegms``: the command line, as torchrun starts it
(``torchrun --nproc_per_node N -m wavegms train --config ...``)."""

import sys

from wavegms.cli import main

if __name__ == "__main__":
    sys.exit(main())
