"""How the training package's commands end: exit 0, or one line on stderr with 1 (error) or 130 (interrupted)."""
from __future__ import annotations

import sys
from typing import Callable


def run_command(body: Callable[[], None]) -> int:
    """Run a command's body; no traceback on failure."""
    try:
        body()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0
