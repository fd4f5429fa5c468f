"""``python -m omnieval ARGS`` is ``omnieval ARGS`` (so launchers can start it: ``torchrun -m omnieval run ...``,
``accelerate launch -m omnieval run ...``)."""
import sys

from omnieval.cli import main

if __name__ == "__main__":
    sys.exit(main())
