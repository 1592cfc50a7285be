"""``python -m wearables_ingest``: the same as the ``wearables-ingest`` command."""

import sys

from wearables_ingest.cli import main

sys.exit(main())
