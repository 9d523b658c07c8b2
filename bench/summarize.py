#!/usr/bin/env python3
"""Turns the JSON lines of bench/run.sh into a Markdown table and a JSON document:
median requests/s over the runs, median p50/p99 latency, total errors, peak RSS."""
import json
import platform
import statistics
import sys
from collections import defaultdict


def main():
    src, md_out, json_out = sys.argv[1:4]
    rows = [json.loads(line) for line in open(src) if line.strip()]
    startup = [r for r in rows if r["load"] == "startup"]
    logins = [r for r in rows if r["load"] in ("login", "login_during_token_load")]
    groups = defaultdict(list)
    for r in rows:
        if r["load"] not in ("startup", "login", "login_during_token_load"):
            groups[(r["load"], r["backend"], r["connections"])].append(r)
    table = []
    for (load, backend, conns), runs in sorted(groups.items()):
        res = [r["result"] for r in runs if r.get("result")]
        if not res:
            continue
        table.append({
            "load": load, "backend": backend, "connections": conns, "runs": len(res),
            "rps_median": round(statistics.median(x["rps"] for x in res), 1),
            "p50_ms_median": round(statistics.median(x["p50_ms"] for x in res), 3),
            "p99_ms_median": round(statistics.median(x["p99_ms"] for x in res), 3),
            "errors": sum(x["errors"] for x in res) + sum(r.get("non2xx", 0) for r in runs),
            "rss_peak_mb": round(max(r["rss_peak_kb"] for r in runs) / 1024, 1),
        })
    machine = {"cpus": __import__("os").cpu_count(), "platform": platform.platform()}
    json.dump({"machine": machine, "startup": startup, "logins": logins, "loads": table}, open(json_out, "w"), indent=2)
    with open(md_out, "w") as f:
        f.write(f"Machine: {machine['cpus']} CPUs, {machine['platform']}; wrk on the same machine (2 threads).\n\n")
        for s in startup:
            f.write(f"- {s['backend']}: start to ready {s['ready_ms']} ms, idle RSS {s['rss_idle_kb'] / 1024:.1f} MB\n")
        for r in logins:
            x = r["result"]
            during = " during the client_credentials_during_login_flood load" if r["load"] != "login" else ""
            f.write(
                f"- {r['backend']}: password logins (argon2id, 16 workers){during} "
                f"{x['logins_per_s']}/s, {x['failed']} failed\n"
            )
        f.write("\n| load | store | conns | runs | req/s (median) | p50 ms | p99 ms | errors | peak RSS MB |\n")
        f.write("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
        for t in table:
            f.write(f"| {t['load']} | {t['backend']} | {t['connections']} | {t['runs']} | {t['rps_median']:,} | "
                    f"{t['p50_ms_median']} | {t['p99_ms_median']} | {t['errors']} | {t['rss_peak_mb']} |\n")


if __name__ == "__main__":
    main()
