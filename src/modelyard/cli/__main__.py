"""``python -m modelyard.cli`` runs ``yard``."""

from __future__ import annotations

from modelyard.cli import main

if __name__ == "__main__":
    main()
