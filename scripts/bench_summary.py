#!/usr/bin/env python3
"""Summarise criterion results (target/criterion) as the ratios RESULTS.md quotes.

Usage: cargo bench --bench <name>; scripts/bench_summary.py <name>
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def median_ns(group, bench):
    path = ROOT / group / bench / "new" / "estimates.json"
    return json.loads(path.read_text())["median"]["point_estimate"]


def point_read():
    base = median_ns("point_read", "dashmap_get_arc_clone")
    for bench in ["snapbase_snapshot_get", "snapbase_snapshot_per_read", "snapbase_collection_get",
                  "dashmap_get_arc_clone", "rwlock_hashmap_get_arc_clone"]:
        ns = median_ns("point_read", bench)
        print(f"point_read {bench:32} {ns:8.1f} ns  {ns / base:5.2f}x dashmap")


def read_under_write():
    for engine in ["snapbase", "rwlock_hashmap", "dashmap"]:
        for readers in [1, 2]:
            rate = {}
            for writer in ["off", "on"]:
                ns = median_ns(f"read_under_write/{engine}", f"readers={readers}_writer={writer}")
                rate[writer] = readers * 10_000 / ns * 1e3  # M reads/s; 10,000 reads per reader
            print(f"read_under_write {engine:15} readers={readers}: off {rate['off']:6.2f} M/s, "
                  f"on {rate['on']:6.2f} M/s, kept {100 * rate['on'] / rate['off']:5.1f}%")


def simple(group):
    for bench in sorted(p.name for p in (ROOT / group).iterdir() if (p / "new").is_dir()):
        print(f"{group} {bench:40} {median_ns(group, bench):14.1f} ns")


if __name__ == "__main__":
    for name in sys.argv[1:] or ["point_read", "read_under_write", "commit", "gc"]:
        {"point_read": point_read, "read_under_write": read_under_write}.get(name, lambda: simple(name))()
