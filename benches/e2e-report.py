"""Medians, ratios and the issue-6 targets from benches/e2e.sh's raw rows.

usage: e2e-report.py RAW.tsv STAGES.tsv SQL_BYTES RANDOM_BYTES TREE_BYTES FILES VERSIONS [NOTE...]
"""
import statistics
import sys
from collections import defaultdict

raw, stages_tsv = sys.argv[1], sys.argv[2]
sql_bytes, random_bytes, tree_bytes = (int(x) for x in sys.argv[3:6])
files, versions, notes = sys.argv[6], sys.argv[7], sys.argv[8:]
bytes_of = {"sql": sql_bytes, "random": random_bytes, "tree": tree_bytes}

rows = defaultdict(list)
with open(raw) as f:
    next(f)
    for line in f:
        tool, ds, op, _rep, wall, cpu, rss, repo = line.rstrip("\n").split("\t")
        rows[(tool, ds, op)].append((float(wall), float(cpu), int(rss), int(repo)))


def med(tool, ds, op, i):
    v = rows.get((tool, ds, op))
    return statistics.median(r[i] for r in v) if v else None


tools = []
for tool, _, _ in rows:
    if tool not in tools:
        tools.append(tool)
peers = [t for t in tools if t != "cairn"]
reps = max((len(v) for v in rows.values()), default=0)
GB = 1e9
MiB = 1 << 20

print(f"# End-to-end benchmark ({versions})")
print()
print(f"Medians of {reps} repetitions on {open('/proc/cpuinfo').read().count('processor')} cores; "
      f"streams of {sql_bytes / MiB:.0f} MiB (sql) and {random_bytes / MiB:.0f} MiB (random), "
      f"a tree of {files} files / {tree_bytes / MiB:.0f} MiB. Local repositories, encryption on, "
      "every restore compared with its input. Produced by `bash benches/e2e.sh`.")
print()
for n in notes:
    print(f"- {n}")
if notes:
    print()

OPS = {
    "sql": ["first", "unchanged", "edited", "restore"],
    "random": ["first", "unchanged", "restore"],
    "tree": ["first", "unchanged", "changed", "restore"],
}
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
    for op in ops[:-1]:
        print(f"| {op} | " + " | ".join(
            "—" if med(t, ds, op, 3) is None else f"{med(t, ds, op, 3) / MiB:.1f} MiB" for t in tools) + " |")
    print()

# Single-core stage rates, measured on the same sql dataset in this run.
stages = {}
try:
    with open(stages_tsv) as f:
        for line in f:
            name, rate = line.split("\t")
            stages[name] = float(rate)
except FileNotFoundError:
    pass
if stages:
    print("## Single-core stage rates on the sql dataset (this run)")
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
    limit = stages.get("two-core limit")
    if limit:
        thr = sql_bytes / w / GB
        check("sql first backup ≥ 70 % of the two cores' limit", thr >= 0.7 * limit,
              f"{thr:.2f} GB/s = {100 * thr / limit:.0f} % of {limit:.2f} GB/s")
    w = med("cairn", "sql", "unchanged", 0)
    check("all-duplicate re-backup ≥ 1.2 GB/s", sql_bytes / w / GB >= 1.2, f"{sql_bytes / w / GB:.2f} GB/s")
    w = med("cairn", "sql", "restore", 0)
    best, who = fastest("sql", "restore")
    check("restore to stdout ≥ 1 GB/s", sql_bytes / w / GB >= 1.0, f"{sql_bytes / w / GB:.2f} GB/s")
    if best:
        check("restore ≥ 2× fastest peer", best / w >= 2, f"{w:.2f} s vs {who} {best:.2f} s: {best / w:.2f}×")
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

print("## Targets (issue 6)")
print()
print("| target | measured | met |")
print("|---|---|---|")
print("\n".join(checks))
