#!/usr/bin/env python3
"""Medians, spread and the README's ratios from a bench_memory_tier JSON report.

    bench_memory_tier --benchmark_out=run.json --benchmark_out_format=json ...
    python3 bench/summarize.py run.json

Needs the per-repetition runs in the file (do not pass
--benchmark_report_aggregates_only=true; --benchmark_display_aggregates_only=true is fine).
Ratios are of medians of items_per_second; the bracket is the ratio of the quartiles
taken the pessimistic and optimistic way round, a rough spread rather than a
confidence interval.
"""
import json
import statistics
import sys
from collections import defaultdict


def quartiles(xs):
    xs = sorted(xs)
    if len(xs) < 4:
        return xs[0], statistics.median(xs), xs[-1]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[1], q[2]


def main(path):
    with open(path) as f:
        report = json.load(f)
    runs = defaultdict(list)
    hit_ratio = {}
    for b in report["benchmarks"]:
        if b.get("run_type") != "iteration" or b.get("error_occurred"):
            continue
        name = b["run_name"]
        runs[name].append(b["items_per_second"])
        hit_ratio[name] = b.get("hit_ratio")
    stats = {name: quartiles(v) for name, v in runs.items()}

    ctx = report["context"]
    print(f"{ctx.get('date')}  {ctx.get('host_name')}  {ctx.get('num_cpus')} cpus  "
          f"load {ctx.get('load_avg')}")
    print(f"{'benchmark':42} {'reps':>4} {'Mops/s q1':>10} {'median':>8} {'q3':>8} {'ns/op':>7} {'hit':>6}")
    for name in sorted(stats):
        q1, med, q3 = stats[name]
        threads = int(name.rsplit("threads:", 1)[1]) if "threads:" in name else 1
        ns = 1e9 / med * threads  # per op of one thread
        hr = hit_ratio.get(name)
        print(f"{name:42} {len(runs[name]):4d} {q1/1e6:10.2f} {med/1e6:8.2f} {q3/1e6:8.2f} {ns:7.1f} "
              f"{'' if hr is None else f'{hr:.3f}':>6}")

    def ratio(a, b, label):
        if a not in stats or b not in stats:
            return
        (a1, am, a3), (b1, bm, b3) = stats[a], stats[b]
        print(f"{label:58} {am/bm:5.2f}x  [{a1/b3:.2f} .. {a3/b1:.2f}]")

    def time_ratio(a, b, label):
        if a not in stats or b not in stats:
            return
        (a1, am, a3), (b1, bm, b3) = stats[a], stats[b]
        print(f"{label:58} {bm/am:5.2f}x  [{b1/a3:.2f} .. {b3/a1:.2f}]")

    print()
    print("ratios of median time per get (a / b; issue 18's targets):")
    time_ratio("get_hit_1k/tierguard", "get_hit_1k/textbook_lru", "get_hit_1k: tierguard / textbook_lru (target <= 0.80)")
    time_ratio("get_hit_1k/tierguard", "get_hit_1k/bare_map", "get_hit_1k: tierguard / bare_map     (target <= 1.10)")
    time_ratio("get_hit/tierguard", "get_hit/bare_map", "get_hit: tierguard / bare_map        (target <= 0.60)")
    time_ratio("get_hit/tierguard", "get_hit/textbook_lru", "get_hit: tierguard / textbook_lru")
    time_ratio("get_hit_1k/tierguard_lru", "get_hit_1k/textbook_lru", "get_hit_1k: tierguard_lru / textbook_lru")
    time_ratio("get_hit_1k/tierguard_lru", "get_hit_1k/bare_map", "get_hit_1k: tierguard_lru / bare_map")

    print()
    print("ratios of median throughput (a / b):")
    ratio("get_hit/tierguard", "get_hit/textbook_lru", "get_hit: tierguard / textbook_lru   (target >= 1.30)")
    ratio("get_hit/tierguard", "get_hit/bare_map", "get_hit: tierguard / bare_map       (target >= 1.00)")
    ratio("get_hit/textbook_lru", "get_hit/bare_map", "get_hit: textbook_lru / bare_map")
    ratio("get_hit_chained/tierguard", "get_hit_chained/textbook_lru", "get_hit_chained: tierguard / textbook_lru")
    ratio("get_hit_chained/tierguard", "get_hit_chained/bare_map", "get_hit_chained: tierguard / bare_map")
    for impl in ("tierguard", "tierguard_lru", "textbook_lru", "bare_map"):
        one = f"mix/{impl}/real_time/threads:1"
        two = f"mix/{impl}/real_time/threads:2"
        target = "   (target >= 1.60)" if impl == "tierguard" else ""
        ratio(two, one, f"mix: {impl} 2 threads / 1 thread{target}")
    # What the machine gave the same work at that moment, nothing shared between threads.
    ratio("mix_unshared/tierguard/real_time/threads:2", "mix_unshared/tierguard/real_time/threads:1",
          "mix_unshared: tierguard 2 threads / 1 thread (the machine's reference)")
    ratio("mix/tierguard/real_time/threads:1", "mix/textbook_lru/real_time/threads:1",
          "mix 1 thread: tierguard / textbook_lru")
    ratio("mix/tierguard/real_time/threads:2", "mix/textbook_lru/real_time/threads:2",
          "mix 2 threads: tierguard / textbook_lru")
    transfer = "line_transfer/real_time/threads:2"
    if transfer in stats:
        q1, med, q3 = stats[transfer]
        print(f"{'line_transfer: one cache line handed between the two threads':58} "
              f"{1e9 / med:5.0f} ns  [{1e9 / q3:.0f} .. {1e9 / q1:.0f}]")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "run.json")
