"""Cost of a file fingerprint (radiograph.provenance.file_fingerprint) against hashing the file.

Makes a sparse 2 GB file (``truncate`` plus 64 written 1 MiB blocks of random bytes, like a
slide whose tiles are spread over the file) and a 200 MB file of random bytes, then times the
fingerprint with the file's pages in the page cache (warm) and evicted with
``posix_fadvise(DONTNEED)`` (cold: read from disk; only this file's pages are dropped), next
to SHA-256 of the whole file (what a full content hash costs).

    .venv/bin/python benchmarks/provenance.py [--dir /tmp]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

from radiograph.provenance import file_fingerprint

GB = 1024**3
MB = 1024**2


def make_sparse(path: Path, size: int, blocks: int = 64) -> None:
    with open(path, "wb") as fh:
        fh.truncate(size)
        for i in range(blocks):
            fh.seek(i * (size // blocks))
            fh.write(os.urandom(MB))


def make_dense(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        for _ in range(size // (16 * MB)):
            fh.write(os.urandom(16 * MB))


def evict(path: Path) -> None:
    with open(path, "rb") as fh:
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def sha256_whole(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(4 * MB):
            h.update(block)
    return h.hexdigest()


def timed(fn, path: Path, *, cold: bool, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        if cold:
            evict(path)
        start = time.perf_counter()
        fn(path)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", default=None, help="folder for the test files (default: a temp dir)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        files = {
            "sparse 2 GB": Path(folder) / "sparse.bin",
            "random 200 MB": Path(folder) / "dense.bin",
        }
        make_sparse(files["sparse 2 GB"], 2 * GB)
        make_dense(files["random 200 MB"], 200 * MB)
        print(
            f"{'file':<15}{'fingerprint warm':>18}{'fingerprint cold':>18}"
            f"{'sha256 whole, warm':>20}"
        )
        for name, path in files.items():
            warm = timed(file_fingerprint, path, cold=False, repeats=5)
            cold = timed(file_fingerprint, path, cold=True, repeats=5)
            full = timed(sha256_whole, path, cold=False, repeats=1)
            print(f"{name:<15}{warm * 1e3:>15.2f} ms{cold * 1e3:>15.2f} ms{full:>18.2f} s")


if __name__ == "__main__":
    main()
