#!/usr/bin/env python3
"""Medians, spread and the README's ratios from a bench_cache JSON report.

    bench_cache --benchmark_out=cache.json --benchmark_out_format=json ...
    python3 bench/summarize_cache.py cache.json

Needs the per-repetition runs in the file (do not pass
--benchmark_report_aggregates_only=true). Ratios are of median time per get (a / b);
the bracket pairs the quartiles the optimistic and the pessimistic way round
(q1/q3 .. q3/q1), a rough spread rather than a confidence interval.
"""
import json
import sys
from collections import defaultdict

from summarize import quartiles  # bench/summarize.py, next to this file


def main(path):
    with open(path) as f:
        report = json.load(f)
    runs = defaultdict(list)
    paired = defaultdict(list)  # get_hit_paired: each repetition's median block ratio
    for b in report["benchmarks"]:
        if b.get("run_type") != "iteration" or b.get("error_occurred"):
            continue
        if "cache_over_tier" in b:
            paired[b["run_name"]].append(b["cache_over_tier"])
            continue
        runs[b["run_name"]].append(1e9 / b["items_per_second"])  # ns per get
    stats = {name: quartiles(v) for name, v in runs.items()}

    ctx = report["context"]
    print(f"{ctx.get('date')}  {ctx.get('host_name')}  {ctx.get('num_cpus')} cpus  load {ctx.get('load_avg')}")
    print(f"{'benchmark':42} {'reps':>4} {'ns q1':>8} {'median':>8} {'q3':>8}")
    for name in sorted(stats):
        q1, med, q3 = stats[name]
        print(f"{name:42} {len(runs[name]):4d} {q1:8.1f} {med:8.1f} {q3:8.1f}")

    def ratio(a, b, label):
        if a not in stats or b not in stats:
            return
        (a1, am, a3), (b1, bm, b3) = stats[a], stats[b]
        print(f"{label:66} {am/bm:5.2f}x  [{a1/b3:.2f} .. {a3/b1:.2f}]")

    print()
    print("ratios of median time per get (a / b):")
    for name in sorted(paired):
        q1, med, q3 = quartiles(paired[name])
        target = "   (target <= 1.10)" if name.endswith("memory_storage") else ""
        print(f"{name + ': cache / its own memory tier, paired blocks' + target:66} {med:5.2f}x  [{q1:.2f} .. {q3:.2f}]")
    for scenario in ("get_hit", "get_hit_chained"):
        ref = f"{scenario}/memory_tier"
        ratio(f"{scenario}/cache/memory_storage", f"{scenario}/cache/memory_storage/own_memory_tier",
              f"{scenario}: cache/memory_storage / its own memory tier")
        ratio(f"{scenario}/cache/memory_storage", ref, f"{scenario}: cache/memory_storage / memory_tier")
        ratio(f"{scenario}/cache/no_storage", f"{scenario}/cache/no_storage/own_memory_tier",
              f"{scenario}: cache/no_storage / its own memory tier")
        ratio(f"{scenario}/cache/no_storage", ref, f"{scenario}: cache/no_storage / memory_tier")
        previous = ref
        for step in ("1_hit", "2_sampled"):
            ratio(f"{scenario}/steps/{step}", previous, f"{scenario}: steps/{step} / {previous.split('/', 1)[1]}")
            previous = f"{scenario}/steps/{step}"
        ratio(f"{scenario}/cache/no_storage", previous, f"{scenario}: cache/no_storage / steps/2_sampled")
    ref = "get_miss/memory_tier"
    for impl in ("open/memory_only", "open/fail_fast", "open/bypass"):
        target = "   (target <= 2.00)" if impl == "open/memory_only" else ""
        ratio(f"get_miss/{impl}", ref, f"get_miss: {impl} / memory_tier{target}")
    ratio("get_miss/cache/no_storage", ref, "get_miss: cache/no_storage / memory_tier")
    ratio("get_miss/cache/memory_storage", ref, "get_miss: cache/memory_storage (breaker closed) / memory_tier")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "cache.json")
