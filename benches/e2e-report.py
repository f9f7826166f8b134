"""Medians, ratios and the issue-6 targets from benches/e2e.sh's raw rows.

usage: e2e-report.py RAW.tsv WORK_DIR SQL_BYTES RANDOM_BYTES TREE_BYTES FILES VERSIONS [NOTE...]

WORK_DIR holds stages-REP.tsv: cairn-stages' single-core rates, measured in
each repetition right after cairn's first backup of the sql dump.
"""
import glob
import os
import statistics
import sys
from collections import defaultdict

raw, work = sys.argv[1], sys.argv[2]
sql_bytes, random_bytes, tree_bytes = (int(x) for x in sys.argv[3:6])
files, versions, notes = sys.argv[6], sys.argv[7], sys.argv[8:]
bytes_of = {"sql": sql_bytes, "random": random_bytes, "tree": tree_bytes}

rows = defaultdict(list)
with open(raw) as f:
    next(f)
    for line in f:
        tool, ds, op, rep, wall, cpu, rss, repo = line.rstrip("\n").split("\t")
        rows[(tool, ds, op)].append((float(wall), float(cpu), int(rss), int(repo), int(rep)))


def med(tool, ds, op, i):
    v = rows.get((tool, ds, op))
    return statistics.median(r[i] for r in v) if v else None


tools = []
for tool, _, _ in rows:
    if tool not in tools:
        tools.append(tool)
# cairn-base is an earlier build of cairn (CAIRN_BASELINE): compared with
# cairn in its own section, not a peer.
peers = [t for t in tools if t not in ("cairn", "cairn-base")]
reps = max((len(v) for v in rows.values()), default=0)
GB = 1e9
MiB = 1 << 20

print(f"# End-to-end benchmark ({versions})")
print()
print(f"Medians of {reps} repetitions on {open('/proc/cpuinfo').read().count('processor')} cores; "
      f"streams of {sql_bytes / MiB:.0f} MiB (sql) and {random_bytes / MiB:.0f} MiB (random), "
      f"a tree of {files} files / {tree_bytes / MiB:.0f} MiB. Local repositories, encryption on, "
      "every restore compared with its input. `restore` writes a stream to a file, "
      "`piped` into a pipe whose reader compares it with the original. "
      "Produced by `bash benches/e2e.sh`.")
print()
for n in notes:
    print(f"- {n}")
if notes:
    print()

OPS = {
    "sql": ["first", "unchanged", "edited", "restore", "piped"],
    "random": ["first", "unchanged", "restore"],
    "tree": ["first", "unchanged", "changed", "restore"],
}
# Operations that leave the repository as it was.
RESTORES = ("restore", "piped")
for ds, ops in OPS.items():
    if not any(k[1] == ds for k in rows):
        continue
    print(f"## {ds}")
    print()
    print("| operation | " + " | ".join(f"{t} wall / CPU / RSS" for t in tools)
          + " | cairn throughput | cairn vs fastest peer |")
    print("|---|" + "---|" * (len(tools) + 2))
    for op in ops:
        cells = []
        for t in tools:
            w, c, r = (med(t, ds, op, i) for i in range(3))
            cells.append("—" if w is None else f"{w:.2f} s / {c:.2f} s / {r / 1024:.0f} MiB")
        w = med("cairn", ds, op, 0)
        thr = f"{bytes_of[ds] / w / GB:.2f} GB/s" if w else "—"
        best = min((med(p, ds, op, 0) for p in peers if med(p, ds, op, 0)), default=None)
        ratio = f"{best / w:.1f}× faster" if w and best else "—"
        print(f"| {op} | " + " | ".join(cells) + f" | {thr} | {ratio} |")
    print()
    print("| repository after | " + " | ".join(tools) + " |")
    print("|---|" + "---|" * len(tools))
    for op in (o for o in ops if o not in RESTORES):
        print(f"| {op} | " + " | ".join(
            "—" if med(t, ds, op, 3) is None else f"{med(t, ds, op, 3) / MiB:.1f} MiB" for t in tools) + " |")
    print()

# Single-core stage rates, measured on the same sql dataset in each repetition.
# Stage names carry the measured ratio, which can differ in the last digit
# between repetitions: lines are matched by position, named as in the first.
stages_by_rep = {}
for path in glob.glob(os.path.join(work, "stages-*.tsv")):
    rep = int(os.path.basename(path)[len("stages-"):-len(".tsv")])
    with open(path) as f:
        stages_by_rep[rep] = [(name, float(rate)) for name, rate in (line.split("\t") for line in f)]
stages = {}
if stages_by_rep:
    first = stages_by_rep[min(stages_by_rep)]
    for i, (name, _) in enumerate(first):
        stages[name] = statistics.median(r[i][1] for r in stages_by_rep.values() if len(r) > i)
limit_by_rep = {rep: rate for rep, r in stages_by_rep.items() for name, rate in r
                if name == "two-core limit"}
if stages:
    print("## Single-core stage rates on the sql dataset (medians of the repetitions)")
    print()
    print("| stage | GB/s of input |")
    print("|---|---|")
    for name, rate in stages.items():
        print(f"| {name} | {rate:.2f} |")
    print()

if "cairn" not in tools or not peers:
    sys.exit(0)


def fastest(ds, op):
    vals = [(med(p, ds, op, 0), p) for p in peers if med(p, ds, op, 0)]
    return min(vals) if vals else (None, None)


checks = []


def check(what, ok, detail):
    checks.append(f"| {what} | {detail} | {'yes' if ok else '**no**'} |")


if ("cairn", "sql", "first") in rows:
    w = med("cairn", "sql", "first", 0)
    best, who = fastest("sql", "first")
    if best:
        check("sql first backup ≥ 3× fastest peer", best / w >= 3,
              f"{w:.2f} s vs {who} {best:.2f} s: {best / w:.2f}×")
    # Each repetition's backup against the limit measured right after it.
    shares = [sql_bytes / r[0] / GB / limit_by_rep[r[4]]
              for r in rows[("cairn", "sql", "first")] if r[4] in limit_by_rep]
    if shares:
        share = statistics.median(shares)
        check("sql first backup ≥ 70 % of the two cores' limit", share >= 0.7,
              f"median of the repetitions {100 * share:.0f} % ("
              + ", ".join(f"{100 * x:.0f}" for x in shares) + f" %); limit {stages['two-core limit']:.2f} GB/s")
    w = med("cairn", "sql", "unchanged", 0)
    check("all-duplicate re-backup ≥ 1.2 GB/s", sql_bytes / w / GB >= 1.2, f"{sql_bytes / w / GB:.2f} GB/s")
    for op, into in (("restore", "a file"), ("piped", "a pipe")):
        w = med("cairn", "sql", op, 0)
        if w is None:
            continue
        best, who = fastest("sql", op)
        check(f"restore to stdout ≥ 1 GB/s, into {into}", sql_bytes / w / GB >= 1.0,
              f"{sql_bytes / w / GB:.2f} GB/s")
        if best:
            check(f"restore ≥ 2× fastest peer, into {into}", best / w >= 2,
                  f"{w:.2f} s vs {who} {best:.2f} s: {best / w:.2f}×")
    sizes = [(med(p, "sql", "first", 3), p) for p in peers if med(p, "sql", "first", 3)]
    if sizes:
        small, who = min(sizes)
        mine = med("cairn", "sql", "first", 3)
        check("sql repository within 5 % of the smallest peer's", mine <= 1.05 * small,
              f"{mine / MiB:.1f} MiB vs {who} {small / MiB:.1f} MiB: {mine / small:.3f}×")
    grow = {t: med(t, "sql", "edited", 3) - med(t, "sql", "unchanged", 3) for t in tools
            if med(t, "sql", "edited", 3)}
    best_peer = min((v, p) for p, v in grow.items() if p != "cairn")
    check("1,000 scattered edits: growth ≤ 25 % of the best peer's", grow["cairn"] <= 0.25 * best_peer[0],
          f"+{grow['cairn'] / MiB:.1f} MiB vs {best_peer[1]} +{best_peer[0] / MiB:.1f} MiB: "
          f"{100 * grow['cairn'] / best_peer[0]:.0f} %")
for op in ("first", "unchanged"):
    if ("cairn", "tree", op) in rows:
        w = med("cairn", "tree", op, 0)
        best, who = fastest("tree", op)
        if best:
            check(f"tree {op} backup ≥ 2× fastest peer", best / w >= 2,
                  f"{w:.2f} s vs {who} {best:.2f} s: {best / w:.2f}×")
if "restic" in tools:
    worst = []
    for (t, ds, op) in rows:
        if t == "cairn" and med("restic", ds, op, 2):
            mine, theirs = med("cairn", ds, op, 2), med("restic", ds, op, 2)
            if mine > theirs:
                worst.append(f"{ds} {op} {mine / 1024:.0f} vs {theirs / 1024:.0f} MiB")
    check("peak RSS ≤ restic's in every case", not worst, "; ".join(worst) or "all cases")

if "cairn-base" in tools and "cairn" in tools:
    print("## cairn against its baseline build")
    print()
    print("Ratios of medians, this build / the baseline (below 1: this build is faster or smaller).")
    print()
    print("| dataset | operation | wall | CPU | peak RSS |")
    print("|---|---|---|---|---|")
    for ds, ops in OPS.items():
        for op in ops:
            if ("cairn", ds, op) not in rows or ("cairn-base", ds, op) not in rows:
                continue
            cells = []
            for i in range(3):
                a, b = med("cairn", ds, op, i), med("cairn-base", ds, op, i)
                cells.append(f"{a / b:.2f}" if b else "–")
            print(f"| {ds} | {op} | " + " | ".join(cells) + " |")
    print()

print("## Targets (issue 6)")
print()
print("| target | measured | met |")
print("|---|---|---|")
print("\n".join(checks))
