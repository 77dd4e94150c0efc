"""Upload/download throughput per storage backend for 1 MiB and 256 MiB objects; prints a table.

    .venv/bin/python tests/benchmarks/bench_storage.py [--repeat-small 20] [--repeat-large 2]

Backends: file:// (temp dir), s3:// on a local MinIO built from its Go module, cos:// through the real
COS SDK on the moto protocol stand-in (moto is a Python server: its numbers measure the stand-in, not
Tencent COS). Upload = ``store.put(path)`` (sha256 + single PUT or multipart), download =
``store.download`` (streamed, sha256-verified). Numbers are MiB/s, median over the repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / p) for p in ("runtime", ".")]

from senseops_common.storage import StoreBase, StoreConfig, open_store  # noqa: E402
from tests.servers.cos_standin import CosStandin  # noqa: E402
from tests.servers.minio import MinioServer  # noqa: E402

MIB = 1024 * 1024


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with open(path, "wb") as handle:
        for offset in range(0, size, MIB):
            handle.write(block[: min(MIB, size - offset)])


def _measure(store: StoreBase, source: Path, size: int, repeat: int, work: Path) -> tuple[float, float]:
    up, down = [], []
    for n in range(repeat):
        key = f"bench/{size}/{n}.bin"
        started = time.perf_counter()
        store.put(key, source)
        up.append(size / MIB / (time.perf_counter() - started))
        started = time.perf_counter()
        store.download(key, work / "down.bin")
        down.append(size / MIB / (time.perf_counter() - started))
        store.delete(key)
    return statistics.median(up), statistics.median(down)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat-small", type=int, default=20)
    parser.add_argument("--repeat-large", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        work = Path(tmp)
        minio = MinioServer(work / "minio" / "data").start()
        cos = CosStandin(work).start()
        try:
            minio.create_bucket("bench")
            cos.create_bucket("bench-1250000000")
            stores = {
                "file://": open_store(f"file://{work}/file-store", StoreConfig()),
                "s3:// (MinIO)": open_store("s3://bench/", StoreConfig.from_env(minio.store_env())),
                "cos:// (moto stand-in)": open_store("cos://bench-1250000000/", StoreConfig.from_env(cos.store_env())),
            }
            sizes = [(MIB, args.repeat_small), (256 * MIB, args.repeat_large)]
            sources = {}
            for size, _ in sizes:
                sources[size] = work / f"src-{size}.bin"
                _make_file(sources[size], size)
            rows = []
            for name, store in stores.items():
                for size, repeat in sizes:
                    up, down = _measure(store, sources[size], size, repeat, work)
                    rows.append((name, f"{size // MIB} MiB", repeat, up, down))
                    print(f"  measured {name} {size // MIB} MiB", file=sys.stderr, flush=True)
        finally:
            minio.stop()
            cos.stop()
    print(f"\n{'backend':<24} {'object':>8} {'runs':>5} {'upload MiB/s':>13} {'download MiB/s':>15}")
    print("-" * 69)
    for name, size_text, repeat, up, down in rows:
        print(f"{name:<24} {size_text:>8} {repeat:>5} {up:>13.1f} {down:>15.1f}")
    print(f"\n(cpu: {os.cpu_count()} cores; multipart threshold {StoreConfig().multipart_threshold // MIB} MiB, "
          f"part {StoreConfig().part_size // MIB} MiB x {StoreConfig().part_concurrency} in flight)")


if __name__ == "__main__":
    main()
