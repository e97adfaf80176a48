"""Where the bundled data files live (assets/ at the project root)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"


@cache
def load_json(name: str) -> dict:
    with open(ASSETS_DIR / name, encoding="utf-8") as f:
        return json.load(f)
