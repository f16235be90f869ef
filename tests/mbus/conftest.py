from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # libmbus_compare helper

DATA = Path(__file__).parent.parent / "data" / "libmbus"


