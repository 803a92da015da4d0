"""Training data: a default corpus that needs no download, token files, text files.

- ``stdlib``: the bytes of every ``.py`` file under ``sysconfig.get_paths()["stdlib"]`` (skipping
  ``site-packages``, ``dist-packages`` and ``__pycache__``), in sorted relative-path order,
  each followed by a NUL separator; byte-level (vocab 256). The last ``val_fraction`` of the
  stream is validation. Different Python builds ship different bytes, so the sha256 of the whole
  stream is recorded with every run (never hard-code it).
- ``tokens``: nanoGPT-style flat ``uint16`` files: ``path`` is a directory holding ``train.bin``
  and ``val.bin``, or a train file (then ``val_path``, or the last ``val_fraction`` of it).
  Memory-mapped; the hash covers the first 64 MiB of each file plus its size.
- ``text``: a UTF-8 text file, or a directory of ``*.txt`` files (sorted), byte-level.

Batches are random windows drawn with a generator seeded by (seed, step), so the data
position of a run is its step: a resumed run sees exactly the batches it would have seen.

To train on another machine with the same stdlib bytes, dump them once
(``python -m scalefit.train.corpus dump stdlib.bin.gz``) and point ``SCALEFIT_STDLIB_CORPUS``
at the file. No torch here (numpy only).

Examples
--------
>>> corpus = load_corpus({"kind": "stdlib", "val_fraction": 0.01})  # doctest: +SKIP
>>> x, y = corpus.batch(step=0, seed=0, batch_size=8, seq_len=128)  # doctest: +SKIP
>>> x.shape, corpus.vocab_size  # doctest: +SKIP
((8, 128), 256)
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Corpus", "load_corpus", "stdlib_files", "stdlib_bytes", "read_stream_file", "dump_stdlib",
           "STDLIB_ENV"]

HASH_HEAD = 64 << 20  # bytes of a token file that go into its hash


@dataclass
class Corpus:
    """A training corpus: train and validation token streams.

    Attributes
    ----------
    name : str
        ``stdlib``, ``tokens:<name>`` or ``text:<name>``.
    train : numpy.ndarray
        The training stream, 1-D uint8 (byte-level) or uint16 (token files, memory-mapped).
    val : numpy.ndarray
        The validation stream.
    vocab_size : int
        Vocabulary size (256 for byte-level corpora).
    sha256 : str
        Hash of the data (recorded with every run, see the module docstring).
    """
    name: str
    train: np.ndarray  # 1-D uint8 / uint16
    val: np.ndarray
    vocab_size: int
    sha256: str

    def batch(self, step: int, seed: int, batch_size: int, seq_len: int, rank: int = 0, world: int = 1):
        """Input and target windows (int64, [batch_size // world, seq_len]) of rank ``rank``: the
        global batch depends only on (seed, step), and each rank takes its contiguous slice, so a
        DDP run sees the same data as a single-process run of the same config.

        Parameters
        ----------
        step : int
            The step the batch is for.
        seed : int
            The run's seed.
        batch_size : int
            Global batch size, in sequences.
        seq_len : int
            Window length.
        rank : int, default 0
            This process's index.
        world : int, default 1
            Number of processes sharing the batch.

        Returns
        -------
        tuple of numpy.ndarray
            ``(inputs, targets)``, targets shifted by one token.
        """
        rng = np.random.default_rng([seed, step])
        starts = rng.integers(0, len(self.train) - seq_len - 1, size=batch_size)
        per = batch_size // world
        starts = starts[rank * per:(rank + 1) * per]
        idx = starts[:, None] + np.arange(seq_len + 1)
        w = self.train[idx].astype(np.int64)
        return np.ascontiguousarray(w[:, :-1]), np.ascontiguousarray(w[:, 1:])

    def eval_windows(self, n_tokens: int, seq_len: int):
        """The fixed held-out set: the first ``n_tokens`` of the validation split, cut into
        consecutive windows of ``seq_len`` (at least one window).

        Parameters
        ----------
        n_tokens : int
            Held-out tokens to use (capped by the validation split).
        seq_len : int
            Window length.

        Returns
        -------
        tuple of numpy.ndarray
            ``(inputs, targets)``, int64 [windows, seq_len].
        """
        n = max(1, min(n_tokens, len(self.val) - 1) // seq_len)
        w = self.val[: n * seq_len + 1].astype(np.int64)
        x = w[:-1].reshape(n, seq_len)
        y = w[1:].reshape(n, seq_len)
        return x, y


def stdlib_files(root: str | None = None) -> list[Path]:
    """The ``.py`` files of the stdlib corpus, in stream order.

    Parameters
    ----------
    root : str, optional
        A stdlib directory (default: this Python's).

    Returns
    -------
    list of Path
        Every ``.py`` file under ``root`` outside ``site-packages``, ``dist-packages`` and
        ``__pycache__``, sorted by relative path.
    """
    root = Path(root or sysconfig.get_paths()["stdlib"])
    out = []
    for dp, dn, fn in os.walk(root):
        dn[:] = [d for d in dn if d not in ("site-packages", "dist-packages", "__pycache__")]
        out += [Path(dp) / f for f in fn if f.endswith(".py")]
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def _split(stream: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    n_val = max(1, int(len(stream) * val_fraction))
    return stream[:-n_val], stream[-n_val:]


STDLIB_ENV = "SCALEFIT_STDLIB_CORPUS"  # a dumped stdlib stream to use instead of this Python's


def stdlib_bytes(root: str | None = None) -> bytes:
    """The stdlib stream of the running Python (or of the stdlib directory ``root``).

    Parameters
    ----------
    root : str, optional
        A stdlib directory (default: this Python's).

    Returns
    -------
    bytes
        Each file's bytes followed by a NUL, in :func:`stdlib_files` order.
    """
    return b"".join(p.read_bytes() + b"\0" for p in stdlib_files(root))


def read_stream_file(path: str | os.PathLike) -> bytes:
    """Bytes of a dumped stream: gzip (by magic number) or raw.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`dump_stdlib`.

    Returns
    -------
    bytes
        The stream.
    """
    raw = Path(path).read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def dump_stdlib(path: str | os.PathLike) -> str:
    """Write this Python's stdlib stream to ``path`` (gzip if it ends in .gz); returns its sha256.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write.

    Returns
    -------
    str
        The sha256 of the uncompressed stream (the ``corpus_sha256`` runs will record).
    """
    buf = stdlib_bytes()
    data = gzip.compress(buf, compresslevel=6, mtime=0) if str(path).endswith(".gz") else buf
    Path(path).write_bytes(data)
    return hashlib.sha256(buf).hexdigest()


@functools.lru_cache(maxsize=4)
def _stdlib_stream() -> tuple[np.ndarray, str]:
    src = os.environ.get(STDLIB_ENV)
    buf = read_stream_file(src) if src else stdlib_bytes()
    if not buf:
        raise ValueError(f"{STDLIB_ENV}={src!r}: empty corpus")
    return np.frombuffer(buf, dtype=np.uint8), hashlib.sha256(buf).hexdigest()


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(HASH_HEAD))
    h.update(str(path.stat().st_size).encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def _load(kind: str, path: str | None, val_path: str | None, vocab_size: int | None,
          val_fraction: float) -> Corpus:
    if kind == "stdlib":
        stream, sha = _stdlib_stream()
        train, val = _split(stream, val_fraction)
        return Corpus("stdlib", train, val, 256, sha)
    p = Path(path)
    if kind == "tokens":
        if p.is_dir():
            tr, va = p / "train.bin", p / "val.bin"
        else:
            tr, va = p, Path(val_path) if val_path else None
        train = np.memmap(tr, dtype=np.uint16, mode="r")
        h = hashlib.sha256(_file_hash(tr).encode())
        if va is not None:
            val = np.memmap(va, dtype=np.uint16, mode="r")
            h.update(_file_hash(va).encode())
        else:
            train, val = _split(train, val_fraction)
        return Corpus(f"tokens:{p.name}", train, val, int(vocab_size or 50304), h.hexdigest())
    if kind == "text":
        files = sorted(p.glob("*.txt")) if p.is_dir() else [p]
        buf = b"".join(f.read_bytes() for f in files)
        if not buf:
            raise ValueError(f"data.path {path!r}: no text found")
        stream = np.frombuffer(buf, dtype=np.uint8)
        if val_path:
            val = np.frombuffer(Path(val_path).read_bytes(), dtype=np.uint8)
            train = stream
        else:
            train, val = _split(stream, val_fraction)
        return Corpus(f"text:{p.name}", train, val, 256, hashlib.sha256(buf).hexdigest())
    raise ValueError(f"unknown data kind {kind!r}")


def load_corpus(data: dict) -> Corpus:
    """Corpus for a run's ``config['data']`` (cached per process).

    Parameters
    ----------
    data : dict
        ``kind`` (``stdlib``, ``tokens`` or ``text``), ``path``, ``val_path``, ``vocab_size``,
        ``val_fraction`` (default 0.01).

    Returns
    -------
    Corpus
        The corpus; the stdlib one reads ``SCALEFIT_STDLIB_CORPUS`` if set.

    Raises
    ------
    ValueError
        If the kind is unknown or the text or dumped corpus is empty.
    """
    return _load(data["kind"], data.get("path"), data.get("val_path"), data.get("vocab_size"),
                 float(data.get("val_fraction", 0.01)))


if __name__ == "__main__":  # python -m scalefit.train.corpus dump PATH
    if len(sys.argv) != 3 or sys.argv[1] != "dump":
        print("usage: python -m scalefit.train.corpus dump PATH[.gz]", file=sys.stderr)
        raise SystemExit(2)
    print(dump_stdlib(sys.argv[2]))
