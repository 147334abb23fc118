#!/usr/bin/env python3
"""Summarises several sittings of benches/load.rs recorded with FNGATE_BENCH_RECORD=FILE.

    benches/sittings.py FILE

A sitting is one run of the bench (one process id in the file). For each harness, shape and
target: the within-run req/s and p99 ratios to nginx's row of the same run, their median per
sitting, and the median over sittings (with the lowest and highest sitting), beside the
target's CPU time per request (median over all runs) and how busy each core was (in a middle
run).
"""
import collections
import statistics
import sys


def main(path):
    runs = collections.defaultdict(dict)  # (sitting, harness, shape, run) -> target -> row
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) < 12:
            continue
        sitting, harness, shape, target, run = f[0], f[1], f[2], f[3], f[4]
        runs[(sitting, harness, shape, run)][target] = {
            # pid, harness, shape, target, run, req/s, p50, p99, user, sys, errors, cores
            "rps": float(f[5]), "p99": float(f[7]), "user": float(f[8]),
            "sys": float(f[9]), "errors": int(f[10]), "cores": f[11],
        }
    # (harness, shape, target) -> sitting -> list of (rps ratio, p99 ratio, cpu, nginx cpu)
    ratios = collections.defaultdict(lambda: collections.defaultdict(list))
    for (sitting, harness, shape, _), rows in runs.items():
        nginx = rows.get("nginx proxy")
        if not nginx:
            continue
        for target, r in rows.items():
            if target in ("nginx proxy", "stub, direct"):
                continue
            if r["errors"]:
                print(f"sitting {sitting}: {target} answered {r['errors']} errors ({shape})")
            ratios[(harness, shape, target)][sitting].append((
                r["rps"] / nginx["rps"], r["p99"] / max(nginx["p99"], 1),
                r["user"] + r["sys"], nginx["user"] + nginx["sys"], r["cores"], nginx["cores"]))
    print("| harness | shape | target | sittings | req/s vs nginx: median [sittings' lowest - highest] "
          "| p99 vs nginx | CPU µs/req, target / nginx | cores busy %, target / nginx |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for (harness, shape, target), by_sitting in sorted(ratios.items()):
        per = [(statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
               for v in by_sitting.values()]
        rps = sorted(p[0] for p in per)
        p99 = sorted(p[1] for p in per)
        every = [x for v in by_sitting.values() for x in v]
        cpu = statistics.median(x[2] for x in every)
        ncpu = statistics.median(x[3] for x in every)
        print(f"| {harness} | {shape} | {target} | {len(per)} "
              f"| {statistics.median(rps):.2f}x [{rps[0]:.2f} - {rps[-1]:.2f}] "
              f"| {statistics.median(p99):.2f}x [{p99[0]:.2f} - {p99[-1]:.2f}] "
              f"| {cpu:.1f} / {ncpu:.1f} | {every[len(every) // 2][4]} / {every[len(every) // 2][5]} |")


if __name__ == "__main__":
    main(sys.argv[1])
