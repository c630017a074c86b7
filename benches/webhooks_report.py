# Helpers of scripts/bench-webhooks (Python 3 standard library only): reads wrk's result
# lines, splits fresh-request pools by what wrk sent, and prints and writes the results table.
"""Commands:

  wrk-result WRK_OUTPUT          the BENCH_RESULT json of a wrk run (exit 1 if absent)
  field JSON NAME                one field of a json object on the command line
  split POOL THREADS ISSUED USED LEFT
                                 POOL's lines as wrk's threads took them (thread t
                                 line i when i % THREADS == t); the first ISSUED[t]
                                 of each thread's go to USED, the rest to LEFT
  table RESULTS_JSONL OUT_BASE   median table on stdout, OUT_BASE.json and .md
"""

import json
import statistics
import sys


def wrk_result(path):
    with open(path) as f:
        for line in f:
            if line.startswith("BENCH_RESULT "):
                print(line[len("BENCH_RESULT "):].strip())
                return 0
    return 1


def split(pool, threads, issued, used, left):
    threads = int(threads)
    issued = [int(n) for n in issued.split(",")]
    with open(pool) as f:
        lines = [line for line in f if line.strip()]
    seen = [0] * threads
    with open(used, "a") as u, open(left, "a") as l:
        for i, line in enumerate(lines):
            t = i % threads
            (u if seen[t] < issued[t] else l).write(line)
            seen[t] += 1
    return 0


def fmt_rate(x):
    return "—" if x is None else f"{x:,.0f}".replace(",", " ")


def fmt_ms(us):
    return "—" if us is None else f"{us / 1000:.2f} ms"


def fmt_ratio(x):
    if x is None:
        return "—"
    return f"{x:.2f}×" if x >= 0.1 else f"{x:.3f}×"


SCENARIOS = {
    "transfer-fresh": "transfer URL, fresh call (new facts)",
    "transfer-replay": "transfer URL, same call again (no new fact)",
    "answer-fresh": "answer Digits=1, first time (new fact)",
    "answer-replay": "answer Digits=1, replayed (no new fact)",
    "fixed": "any POST, fixed TwiML",
    "transfer": "transfer URL: validate + TwiML, no state",
    "create-fsync": "300 B create + fsync (creates/s)",
}
SERVERS = ["store ceiling", "bare hyper", "callproof", "flask", "express"]
ORDER = ["create-fsync", "fixed", "transfer-fresh", "transfer-replay", "answer-fresh", "answer-replay", "transfer"]


def table(results, out_base):
    runs = [json.loads(line) for line in open(results) if line.strip()]
    groups = {}
    for r in runs:
        groups.setdefault((r["server"], r["scenario"], r["conns"]), []).append(r)
    rows = []
    for (server, scenario, conns), rs in groups.items():
        rate = statistics.median(r["rps"] for r in rs)
        p50 = statistics.median(r["p50_us"] for r in rs) if rs[0].get("p50_us") is not None else None
        p99 = statistics.median(r["p99_us"] for r in rs) if rs[0].get("p99_us") is not None else None
        issued = sum(r.get("issued", 0) for r in rs)
        files = sum(r.get("files", 0) for r in rs)
        facts = files / issued if server == "callproof" and issued else None
        rows.append({
            "server": server, "scenario": scenario, "conns": conns, "runs": len(rs),
            "rps": rate, "p50_us": p50, "p99_us": p99,
            "requests": sum(r.get("requests", 0) for r in rs), "issued": issued,
            "files_created": files if server == "callproof" else None, "facts_per_webhook": facts,
        })
    by = {(r["server"], r["scenario"], r["conns"]): r for r in rows}

    def ref(server, scenario, conns):
        r = by.get((server, scenario, conns))
        return r["rps"] if r else None

    for r in rows:
        c = r["conns"]
        bare = ref("bare hyper", "fixed", c)
        store = ref("store ceiling", "create-fsync", c)
        r["vs_bare"] = r["vs_store"] = r["store_over_facts"] = None
        writes = r["facts_per_webhook"] is not None and r["scenario"].endswith("fresh")
        if r["server"] in ("callproof", "flask", "express") and not writes and bare:
            r["vs_bare"] = r["rps"] / bare
        if writes and store and r["facts_per_webhook"]:
            r["store_over_facts"] = store / r["facts_per_webhook"]
            r["vs_store"] = r["rps"] / r["store_over_facts"]
        for peer in ("flask", "express"):
            p = ref(peer, "transfer", c)
            r[f"vs_{peer}"] = r["rps"] / p if p and r["server"] == "callproof" else None
    rows.sort(key=lambda r: (r["conns"], SERVERS.index(r["server"]), ORDER.index(r["scenario"])))

    head = ["server", "scenario", "conns", "req/s", "p50", "p99", "facts/webhook",
            "÷ bare hyper", "store ceiling ÷ facts", "÷ that", "÷ Flask", "÷ Express"]
    body = []
    for r in rows:
        body.append([
            r["server"], SCENARIOS.get(r["scenario"], r["scenario"]), str(r["conns"]),
            fmt_rate(r["rps"]), fmt_ms(r["p50_us"]), fmt_ms(r["p99_us"]),
            "—" if r["facts_per_webhook"] is None else f"{r['facts_per_webhook']:.2f}",
            fmt_ratio(r["vs_bare"]), fmt_rate(r["store_over_facts"]), fmt_ratio(r["vs_store"]),
            fmt_ratio(r["vs_flask"]), fmt_ratio(r["vs_express"]),
        ])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    right = set(range(2, len(head)))

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(head))
    print("  ".join("-" * w for w in widths))
    for b in body:
        print(line(b))
    md = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|"]
    md += ["| " + " | ".join(b) + " |" for b in body]
    with open(out_base + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    with open(out_base + ".json", "w") as f:
        json.dump({"rows": rows, "runs": runs}, f, indent=1)
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "wrk-result":
        return wrk_result(argv[1])
    if len(argv) == 3 and argv[0] == "field":
        value = json.loads(argv[1])
        for key in argv[2].split("."):
            value = value[key]
        print(",".join(map(str, value)) if isinstance(value, list) else value)
        return 0
    if len(argv) == 6 and argv[0] == "split":
        return split(*argv[1:])
    if len(argv) == 3 and argv[0] == "table":
        return table(argv[1], argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
