"""Workers sharing one stdout pipe: every progress line arrives whole, even unbuffered."""

import os
import re
import subprocess
import sys

CHILD = """
import sys
from scalefit.train.shard import say
for i in range(400):
    say(f"[p{sys.argv[1]}] {i:04d} " + "x" * 120)
"""


def test_lines_from_concurrent_workers_never_interleave():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = f"for r in 0 1 2 3; do {sys.executable} -c '{CHILD}' $r & done; wait"
    out = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == 1600
    assert all(re.fullmatch(r"\[p\d\] \d{4} x{120}", line) for line in lines)
