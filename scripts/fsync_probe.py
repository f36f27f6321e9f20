#!/usr/bin/env python3
"""What a small durable append costs on this file system, by how the space it lands in was made.

Usage: python3 scripts/fsync_probe.py {sparse|falloc|zero}

Makes a 64 MiB file under ./target: with holes (`ftruncate`), with unwritten extents
(`posix_fallocate`), or with zeros written and synced. Then, for record sizes of 168, 2,016 and
4,096 bytes (a lone commit's WAL frame, a 12-commit group's, a page), appends 1,500 records one
`pwrite` + `fdatasync` at a time, and prints the median time per append in microseconds, for
four rounds. RESULTS.md quotes it (issue 3, zero-filled WAL segments).
"""
import os
import statistics
import sys
import time

SIZES = (168, 2016, 4096)
ROUNDS = 4
APPENDS = 1500
FILE_BYTES = 64 << 20


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in ("sparse", "falloc", "zero"):
        sys.exit("usage: fsync_probe.py {sparse|falloc|zero}")
    os.makedirs("target", exist_ok=True)
    path = os.path.join("target", "fsync-probe.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if mode == "sparse":
            os.ftruncate(fd, FILE_BYTES)
        elif mode == "falloc":
            os.posix_fallocate(fd, 0, FILE_BYTES)
        else:
            chunk = b"\0" * (1 << 20)
            for i in range(FILE_BYTES >> 20):
                os.pwrite(fd, chunk, i << 20)
        os.fsync(fd)
        offset = 0
        medians = {size: [] for size in SIZES}
        for _ in range(ROUNDS):
            for size in SIZES:
                record = b"x" * size
                times = []
                for _ in range(APPENDS):
                    start = time.perf_counter_ns()
                    os.pwrite(fd, record, offset)
                    os.fdatasync(fd)
                    times.append(time.perf_counter_ns() - start)
                    offset += size
                medians[size].append(statistics.median(times) / 1000)
        for size in SIZES:
            print(f"{mode} {size:5} B: median us per round " + " ".join(f"{m:.0f}" for m in medians[size]))
    finally:
        os.close(fd)
        os.unlink(path)


if __name__ == "__main__":
    main()
