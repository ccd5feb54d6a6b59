"""Network faults at 10% of requests, one kind at a time (latency_ms, http_500, http_503, http_429,
hang, drop, truncate, malformed, lost_response, apply_delay), during multi-object syncs with
uploads: creates (a unique name or key each), updates and deletes across Customer, Product and
OrderLine, plus server-side changes to download. Every sync either succeeds through retries or
fails with a documented code; after the faults stop, the next sync converges to the server record
by record, and every pending change was applied exactly once (no duplicate create, no lost
change). Prints: kinds tried, faults injected, sessions run, records compared."""
import json
import sys
import time

from eslib import QUICK, Env, check, finish, same_records, served

bindir = sys.argv[1]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]
DOCUMENTED = {2030, 2031, 2032, 2033, 2034, 2035, 2036, 2037, 2038, 2043, 2044}
KINDS = [{"kind": "latency_ms", "ms": 200}, {"kind": "http_500"}, {"kind": "http_503"},
         {"kind": "http_429", "retry_after": 0}, {"kind": "hang", "ms": 3000}, {"kind": "drop"},
         {"kind": "truncate"}, {"kind": "malformed"}, {"kind": "lost_response"},
         {"kind": "apply_delay", "ms": 300}]
CUST = {"email": "f@example.com", "city": "Oslo", "country": "Norway", "balance": 2.5,
        "active": True, "created": "2024-01-01T00:00:00Z", "tier": 2, "notes": "fault test"}
conf = ("retry.base_ms = 20\nretry.max_ms = 200\nretry.max_attempts = 12\n"
        "http.timeout_ms = 1500\nstop.grace_ms = 1000\nreconcile.page_size = 100\n")
totals = {"kinds": 0, "fired": 0, "sessions": 0, "failed_sessions": 0, "compared": 0,
          "changes": 0, "dups": 0, "lost": 0}


def sync(env, opts, what):
    rc, out, err = env.cli("sync", SVC, "--options", json.dumps(opts))
    res = json.loads(out) if out.strip() else {}
    totals["sessions"] += 1
    if rc != 0:
        totals["failed_sessions"] += 1
    check(rc == 0 or (rc == 1 and res.get("code") in DOCUMENTED),
          f"{what}: succeeds or fails with a documented code: rc {rc} {out[:300]} {err[-200:]}")
    return rc


def pending(env):
    rc, out, err = env.cli("pending", SVC)
    d = json.loads(out) if rc == 0 and out.strip() else {}
    return sum(len(v.get("pendingSyncRecords", [])) for v in d.values()) if rc == 0 else -1


for n, rule in enumerate(KINDS):
    kind = rule["kind"]
    env = Env(bindir, generate="Customer=1500,Product=800,OrderLine=800", extra_conf=conf)
    try:
        rc, out, err = env.cli("setup")
        check(rc == 0, f"{kind}: setup {rc} {err}")
        faults = {"seed": 100 + n, "rules": [dict(rule, probability=0.1)]}
        env.admin_post("/admin/faults", faults)
        sync(env, {"syncType": "downloadOnly", "downloadBatchSize": 25}, f"{kind}: download")
        env.admin_post("/admin/faults", {"rules": []})
        # Local changes on all three objects (baseline read with the faults off).
        rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"downloadOnly"}')
        check(rc == 0, f"{kind}: baseline download {rc} {out[:200]}")
        names = [f"Fault {kind} {i}" for i in range(12)]
        for nm in names:
            check(env.cli("create", SVC, "Customer", json.dumps(dict(CUST, name=nm)))[0] == 0,
                  f"{kind}: create {nm}")
        prod = env.local_records(SVC, "Product")
        skus = [f"FAULT-{n}-{i}" for i in range(6)]
        for sku in skus:
            rec = {k: v for k, v in prod[0].items() if not k.startswith("_")}
            rec.update(sku=sku, name=f"Fault product {sku}")
            check(env.cli("create", SVC, "Product", json.dumps(rec))[0] == 0,
                  f"{kind}: create {sku}")
        upd = prod[1:9]
        for i, p in enumerate(upd):
            check(env.cli("partial-update", SVC, "Product", json.dumps(p["sku"]),
                          json.dumps({"stock": 7000 + i}))[0] == 0, f"{kind}: update {p['sku']}")
        lines = env.local_records(SVC, "OrderLine")
        gone = [{"orderId": ln["orderId"], "lineNo": ln["lineNo"]} for ln in lines[:6]]
        for key in gone:
            check(env.cli("delete", SVC, "OrderLine", json.dumps(key))[0] == 0,
                  f"{kind}: delete {key}")
        newlines = []
        for i in range(6):
            rec = {k: v for k, v in lines[10].items() if not k.startswith("_")}
            rec.update(orderId=900000 + n * 100 + i, lineNo=1, note=f"fault line {kind} {i}")
            newlines.append(rec)
            check(env.cli("create", SVC, "OrderLine", json.dumps(rec))[0] == 0,
                  f"{kind}: create line {i}")
        cdel = [c for c in env.local_records(SVC, "Customer") if c["id"] > 0][:4]
        for c in cdel:
            check(env.cli("delete", SVC, "Customer", json.dumps(c["id"]))[0] == 0,
                  f"{kind}: delete customer {c['id']}")
        changes = len(names) + len(skus) + len(upd) + len(gone) + len(newlines) + len(cdel)
        check(pending(env) == changes, f"{kind}: {changes} changes pending")
        totals["changes"] += changes
        # Server-side changes the next sync must download.
        srv = env.server_records(SVC, "Customer")
        for c in srv[100:160]:
            env.admin_post(f"/admin/records/{SVC}/Customer",
                           {"op": "update", "record": dict(c, city=f"City {kind}")})
        # Two full syncs (upload, download, reconcile) under the fault, small batches.
        env.admin_post("/admin/faults", faults)
        for r in range(1 if QUICK else 2):
            sync(env, {"downloadBatchSize": 10, "uploadBatchSize": 1}, f"{kind}: full sync {r}")
        fired = served(env)["faultsFired"]
        env.admin_post("/admin/faults", {"rules": []})
        check(fired > 0, f"{kind}: faults fired: {fired}")
        totals["fired"] += fired
        totals["kinds"] += 1
        # Faults off: the next sync converges.
        rc, out, err = env.cli("sync", SVC, "--options", '{"downloadBatchSize":500}')
        check(rc == 0, f"{kind}: sync after the faults: {rc} {out[:300]}")
        totals["sessions"] += 1
        check(pending(env) == 0, f"{kind}: nothing pending")
        cs = env.server_records(SVC, "Customer")
        ps = {p["sku"]: p for p in env.server_records(SVC, "Product")}
        ls = {(x["orderId"], x["lineNo"]) for x in env.server_records(SVC, "OrderLine")}
        dups = [nm for nm in names if sum(1 for c in cs if c["name"] == nm) > 1]
        lost = [nm for nm in names if not any(c["name"] == nm for c in cs)]
        lost += [s for s in skus if s not in ps]
        lost += [p["sku"] for i, p in enumerate(upd) if ps.get(p["sku"], {}).get("stock")
                 != 7000 + i]
        lost += [str(k) for k in gone if (k["orderId"], k["lineNo"]) in ls]
        lost += [str(r["orderId"]) for r in newlines if (r["orderId"], 1) not in ls]
        lost += [str(c["id"]) for c in cdel if any(x["id"] == c["id"] for x in cs)]
        totals["dups"] += len(dups)
        totals["lost"] += len(lost)
        check(not dups, f"{kind}: duplicate creates on the server: {dups}")
        check(not lost, f"{kind}: changes lost: {lost}")
        for o in OBJS:
            server = env.server_records(SVC, o)
            check(same_records(env.local_records(SVC, o), server),
                  f"{kind}: {o} local == server record by record")
            totals["compared"] += len(server)
        print(f"{kind}: {fired} faults fired", file=sys.stderr)
    finally:
        env.close()
print("faults2: " + json.dumps(totals), file=sys.stderr)
finish()
