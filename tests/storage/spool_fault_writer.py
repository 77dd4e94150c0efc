"""Child process for the spool fault test: writes numbered segments through a SpoolWriter.

It records each acknowledged segment number in a progress file *after* ``write()`` returned, and on
start continues after the last recorded one — like a recorder that resumes a stream. A segment acked
but not yet recorded when the process is killed is simply written again: same key, same bytes.
Exit status 0 once every segment is written and the spool has drained into the store.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from pathlib import Path

from senseops_common.layout import raw_segment_key
from senseops_common.storage import StoreConfig, open_store
from senseops_common.storage.spool import SpoolWriter

SEGMENT_BYTES = 16 * 1024
SESSION_TS = "20260101T000000Z"


def segment_key(n: int) -> str:
    """Deterministic key of segment ``n``."""
    return raw_segment_key("anchor-fault", SESSION_TS, f"seg-{n:05d}")


def segment_bytes(n: int) -> bytes:
    """Deterministic, distinct content of segment ``n``."""
    seed = hashlib.sha256(str(n).encode()).digest()
    return (seed * (SEGMENT_BYTES // len(seed) + 1))[:SEGMENT_BYTES]


def main() -> int:
    """Write segments [last recorded + 1, count) then wait for the spool to drain."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--progress", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--drain-timeout", type=float, default=240.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("senseops.storage").setLevel(logging.ERROR)  # retry chatter during the outage
    # Short per-call bounds: during the outage each attempt fails fast and the spool's own unbounded
    # backoff takes over.
    config = StoreConfig.from_env()
    config = StoreConfig(**{**config.__dict__, "request_timeout_s": 2.0, "deadline_s": 5.0, "max_attempts": 2})
    writer = SpoolWriter(open_store(args.store, config), args.spool, name="fault", max_backoff_s=2.0).start()
    progress = Path(args.progress)
    done = [int(line) for line in progress.read_text().split()] if progress.exists() else []
    start = max(done) + 1 if done else 0
    print(f"resuming at segment {start}, {writer.pending_files} entries pending in the spool", flush=True)
    with open(progress, "a") as log:
        for n in range(start, args.count):
            writer.write(segment_key(n), segment_bytes(n))
            log.write(f"{n}\n")
            log.flush()
            if args.delay:
                time.sleep(args.delay)
    drained = writer.drain(args.drain_timeout)
    writer.close()
    print(f"all {args.count} segments written; drained={drained}", flush=True)
    return 0 if drained else 1


if __name__ == "__main__":
    sys.exit(main())
