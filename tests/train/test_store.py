"""Claims: exclusive, stale ones taken over, finished cells never claimed."""
import json
import os
import socket
import subprocess
import sys
import time

from scalefit.train import store


def test_claims(tmp_path):
    d = tmp_path / "c1"
    assert store.try_claim(d, lease_s=60)
    assert not store.try_claim(d, lease_s=60)  # held by a live process (us)
    assert store.status(d) == "running"
    store.release(d)
    # a claim by a dead pid on this host is stale
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (d / "claim").write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead), "time": 0}))
    assert store.status(d) == "stale"
    assert store.try_claim(d, lease_s=60)
    assert json.loads((d / "claim").read_text())["pid"] == os.getpid()
    # another host's claim: stale only once its heartbeat is older than the lease
    (d / "claim").write_text(json.dumps({"host": "elsewhere", "pid": 1, "time": 0}))
    assert not store.try_claim(d, lease_s=60)
    old = time.time() - 120
    os.utime(d / "claim", (old, old))
    assert store.try_claim(d, lease_s=60)
    store.release(d)
    store.write_json_atomic(d / "result.json", {"status": "ok"})
    assert not store.try_claim(d, lease_s=60) and store.status(d) == "ok"
    assert not list(d.glob(".*.tmp"))  # atomic writes leave no temp files
