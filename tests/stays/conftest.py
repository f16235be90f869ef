import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from campsite import camp, db, db_path, enter, migrated, read_camp  # noqa: E402,F401
