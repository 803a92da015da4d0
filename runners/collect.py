"""Deprecated name of runners/train_grid.py (it trains a grid; `scalefit collect` harvests one)."""
import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    print("runners/collect.py is now runners/train_grid.py", file=sys.stderr)
    sys.argv[0] = str(Path(__file__).with_name("train_grid.py"))
    runpy.run_path(sys.argv[0], run_name="__main__")
