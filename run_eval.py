"""``python run_eval.py ARGS`` is exactly ``omnieval ARGS``."""
import sys

from omnieval.cli import main

if __name__ == "__main__":
    sys.exit(main())
