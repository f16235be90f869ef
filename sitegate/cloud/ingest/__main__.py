"""`python -m sitegate.cloud.ingest --db URL --broker URL`: same as `sitegate-cloud serve`."""

from __future__ import annotations

import sys

from sitegate.cloud.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
