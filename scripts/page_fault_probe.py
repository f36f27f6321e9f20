#!/usr/bin/env python3
"""What touching fresh memory costs on this machine, by how much the process already holds.

Usage: python3 scripts/page_fault_probe.py [GIB]   (default 4)

Maps GIB GiB of anonymous memory 256 MiB at a time, writes one byte per 4 KiB page of each
piece, and prints the time per page. On a VM whose guest reports freed memory back to the host
(free page reporting), pages the guest still holds fault quickly and pages the host must back
again fault slowly, so the figure jumps once the guest's pool is spent. RESULTS.md quotes it
(issue 3, where the time between syncs goes).
"""
import mmap
import sys
import time

PIECE = 256 << 20
PAGE = 4096


def main():
    gib = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    pieces = []
    for i in range(gib * (1 << 30) // PIECE):
        m = mmap.mmap(-1, PIECE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        started = time.perf_counter_ns()
        for off in range(0, PIECE, PAGE):
            m[off] = 1
        took = time.perf_counter_ns() - started
        pieces.append(m)
        print(f"{(i + 1) * PIECE >> 20:6} MiB: {took / (PIECE // PAGE) / 1000:.2f} us per page")


if __name__ == "__main__":
    main()
