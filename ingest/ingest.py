#!/usr/bin/env python3
"""The design's entry point, ``python /app/ingest.py``: the same as ``wearables-ingest``.

The loader is the installed package ``wearables_ingest`` (``pip install .``).
Run from a source tree without installing, it is found beside this file.
"""

import sys
from pathlib import Path

try:
    from wearables_ingest.cli import main
except ModuleNotFoundError:  # a source tree that was not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from wearables_ingest.cli import main

if __name__ == "__main__":
    sys.exit(main())
