from __future__ import annotations

import sys
from pathlib import Path

# Shared test helpers live in tests/support.py.
sys.path.insert(0, str(Path(__file__).parent))
