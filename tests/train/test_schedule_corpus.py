"""Schedules (pure functions) and the corpus (deterministic, hashed, resumable batches)."""
import math

import numpy as np
import pytest

from scalefit.grids.schedule import lr_multiplier, mean_multiplier


def test_warmup_then_cosine_to_min_ratio():
    s = [lr_multiplier(t, 100, "cosine", warmup=10, min_ratio=0.1) for t in range(100)]
    assert s[0] == pytest.approx(0.1) and s[9] == pytest.approx(1.0)
    assert s[10] == pytest.approx(1.0) and s[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(s[10:], s[11:]))  # monotone decay
    assert s[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 89)))


def test_wsd_plateau_and_linear_decay():
    s = [lr_multiplier(t, 100, "wsd", warmup=5, decay=0.2, min_ratio=0.0) for t in range(100)]
    assert s[4] == 1.0 and all(v == 1.0 for v in s[5:80])
    assert s[80] == pytest.approx(1 - 1 / 20) and s[-1] == pytest.approx(0.0)
    assert np.allclose(np.diff(s[80:]), -1 / 20)
    assert mean_multiplier(100, kind="wsd", warmup=5, decay=0.2, min_ratio=0.0) == pytest.approx(np.mean(s))
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_multiplier(0, 10, "step")


def test_stdlib_corpus_is_deterministic_and_split():
    from scalefit.train import corpus as C

    a_stream, a_sha = C._stdlib_stream.__wrapped__()
    b_stream, b_sha = C._stdlib_stream.__wrapped__()
    assert a_sha == b_sha and len(a_sha) == 64 and np.array_equal(a_stream, b_stream)
    files = C.stdlib_files()
    assert len(files) > 100 and files == sorted(files, key=lambda p: p.as_posix())
    assert not any("site-packages" in p.parts for p in files)
    c = C.load_corpus({"kind": "stdlib", "val_fraction": 0.01})
    assert c.vocab_size == 256 and c.sha256 == a_sha
    assert len(c.train) + len(c.val) == len(a_stream)
    assert len(c.val) == int(len(a_stream) * 0.01)
    assert np.array_equal(c.val, a_stream[-len(c.val):])  # validation = the stream's tail
    x1, y1 = c.batch(step=7, seed=3, batch_size=4, seq_len=16)
    x2, y2 = c.batch(step=7, seed=3, batch_size=4, seq_len=16)
    x3, _ = c.batch(step=8, seed=3, batch_size=4, seq_len=16)
    r0, _ = c.batch(step=7, seed=3, batch_size=4, seq_len=16, rank=0, world=2)
    r1, _ = c.batch(step=7, seed=3, batch_size=4, seq_len=16, rank=1, world=2)
    assert np.array_equal(x1, x2) and not np.array_equal(x1, x3)
    assert np.array_equal(np.concatenate([r0, r1]), x1)  # DDP ranks split the same global batch
    assert np.array_equal(x1[:, 1:], y1[:, :-1])  # targets are inputs shifted by one
    ex, ey = c.eval_windows(1000, 16)
    assert ex.shape == (62, 16) and np.array_equal(ex.reshape(-1)[1:], ey.reshape(-1)[:-1])


def test_token_and_text_files(tmp_path):
    from scalefit.train.corpus import load_corpus

    rng = np.random.default_rng(0)
    (tmp_path / "tok").mkdir()
    rng.integers(0, 50000, 5000).astype(np.uint16).tofile(tmp_path / "tok" / "train.bin")
    rng.integers(0, 50000, 500).astype(np.uint16).tofile(tmp_path / "tok" / "val.bin")
    c = load_corpus({"kind": "tokens", "path": str(tmp_path / "tok"), "vocab_size": 50304})
    assert len(c.train) == 5000 and len(c.val) == 500 and c.vocab_size == 50304
    x, _ = c.batch(0, 0, 2, 8)
    assert x.max() < 50000 and x.dtype == np.int64
    (tmp_path / "a.txt").write_text("hello world " * 200)
    t = load_corpus({"kind": "text", "path": str(tmp_path / "a.txt"), "val_fraction": 0.1})
    assert t.vocab_size == 256 and len(t.val) == 240 and bytes(t.train[:5]) == b"hello"


def test_stdlib_corpus_from_a_dumped_file(tmp_path, monkeypatch):
    """SCALEFIT_STDLIB_CORPUS: a stream dumped here is read back byte for byte (gzip or raw), with
    the same hash and split as this Python's own stdlib; another file gives another hash."""
    from scalefit.train import corpus as C

    own, own_sha = C._stdlib_stream.__wrapped__()
    gz = tmp_path / "stdlib.bin.gz"
    assert C.dump_stdlib(gz) == own_sha
    assert gz.stat().st_size < len(own) / 2  # compressed
    raw = tmp_path / "stdlib.bin"
    raw.write_bytes(C.read_stream_file(gz))
    for path in (gz, raw):
        monkeypatch.setenv(C.STDLIB_ENV, str(path))
        stream, sha = C._stdlib_stream.__wrapped__()
        assert sha == own_sha and np.array_equal(stream, own)
    other = tmp_path / "other.bin"
    other.write_bytes(b"print('hello')\0" * 1000)
    monkeypatch.setenv(C.STDLIB_ENV, str(other))
    stream, sha = C._stdlib_stream.__wrapped__()
    assert len(stream) == 15000 and sha != own_sha
