#!/usr/bin/env python3
"""Turns the JSON lines of bench/run.sh into a Markdown table and a JSON document:
median requests/s over the runs, median p50/p99 latency, total errors, peak RSS."""
import json
import os
import platform
import statistics
import sys
from collections import defaultdict


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def rsa_sign_per_s():
    """Signs per second per core from the `openssl speed` output run.sh saved, if any."""
    path = __import__("os").environ.get("RSA_SPEED_FILE")
    if not path:
        return None
    try:
        for line in open(path):
            # "rsa 2048 bits 0.001139s 0.000034s    877.6  29120.0"
            parts = line.split()
            if parts[:3] == ["rsa", "2048", "bits"] and len(parts) >= 6:
                return float(parts[5])
    except (OSError, ValueError):
        pass
    return None


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
    machine = {"cpus": __import__("os").cpu_count(), "platform": platform.platform(), "cpu_model": cpu_model()}
    # What an RSA-2048 signature costs on this CPU (run.sh measures it before the loads):
    # the bound of every RS256 load, so figures from different machines can be compared.
    rsa = rsa_sign_per_s()
    if rsa:
        machine["rsa2048_signs_per_s_per_core"] = rsa
        machine["rsa2048_two_core_bound_per_s"] = round(2 * rsa)
    # run.sh seeds PostgreSQL's refresh_tokens before the refresh loads (0: near empty).
    seed = int(__import__("os").environ.get("SEED_REFRESH_TOKENS", "0"))
    machine["postgres_refresh_tokens_seeded"] = seed
    json.dump({"machine": machine, "startup": startup, "logins": logins, "loads": table}, open(json_out, "w"), indent=2)
    with open(md_out, "w") as f:
        f.write(
            f"Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), {machine['platform']}; "
            "wrk on the same machine (2 threads).\n"
        )
        if rsa:
            f.write(
                f"RSA-2048 signatures (`openssl speed rsa2048`): {rsa:,.0f}/s per core, "
                f"{2 * rsa:,.0f}/s on two cores, the bound of the RS256 loads (Portcullis signs "
                "with aws-lc-rs, which can differ from OpenSSL by CPU: compare `cargo bench "
                "-p portcullis-core --bench hot_paths -- jwt_sign`).\n"
            )
        f.write(
            f"PostgreSQL's `refresh_tokens` table is seeded with {seed:,} unusable tokens before the "
            "refresh loads (`SEED_REFRESH_TOKENS`), as a server in use holds.\n"
            if seed
            else "PostgreSQL's `refresh_tokens` table is not seeded (`SEED_REFRESH_TOKENS=0`): near empty.\n"
        )
        f.write("\n")
        for s in startup:
            f.write(f"- {s['backend']}: start to ready {s['ready_ms']} ms, idle RSS {s['rss_idle_kb'] / 1024:.1f} MB\n")
        workers = os.environ.get("FLOOD_WORKERS", "16")
        for r in logins:
            x = r["result"]
            during = " during the client_credentials_during_login_flood load" if r["load"] != "login" else ""
            f.write(
                f"- {r['backend']}: password logins (argon2id, {workers} workers, one account each){during} "
                f"{x['logins_per_s']}/s, {x['failed']} failed\n"
            )
        f.write("\n| load | store | conns | runs | req/s (median) | p50 ms | p99 ms | errors | peak RSS MB |\n")
        f.write("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
        for t in table:
            f.write(f"| {t['load']} | {t['backend']} | {t['connections']} | {t['runs']} | {t['rps_median']:,} | "
                    f"{t['p50_ms_median']} | {t['p99_ms_median']} | {t['errors']} | {t['rss_peak_mb']} |\n")


if __name__ == "__main__":
    main()
