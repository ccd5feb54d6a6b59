"""End to end: real edgesync-server, edgesyncd with its actor processes, and the edgesync CLI.
Service-level and object-level downloadOnly syncs of 25,000 records, server-side creates,
updates and deletes, delta syncs, and a record-by-record comparison of the local store with the
server after each step."""
import json
import sys

from eslib import Env, check, finish, same_records

bindir = sys.argv[1]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]

env = Env(bindir, generate="10000")
try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup: rc {rc} {err}")
    services = json.loads(out)["services"] if rc == 0 else []
    check([s["name"] for s in services] == [SVC], f"setup services: {out}")

    # 1. Service level, several batches per object, stats requested.
    rc, out, err = env.cli("sync", SVC, "--options",
                           '{"syncType":"downloadOnly","downloadBatchSize":700,'
                           '"getSyncStats":true}', "--json")
    check(rc == 0, f"service sync rc {rc}: {err[-2000:]}")
    res = json.loads(out) if out.strip() else {}
    check(res.get("status") == 0 and res.get("objectServiceName") == SVC, f"result {out[:300]}")
    stats = res.get("syncStats", {})
    counts = {o: len(env.server_records(SVC, o)) for o in OBJS}
    total = sum(counts.values())
    check(total >= 25000, f"server has {total} records")
    check(stats.get("totalDownloadedRecords") == total,
          f"stats downloaded {stats.get('totalDownloadedRecords')} != {total}")
    batches = stats.get("downloadStats", [])
    want = sum((n + 699) // 700 for n in counts.values())
    check(len(batches) == want, f"{len(batches)} batches, expected {want}")
    check(all(b["numberOfRecords"] <= 700 for b in batches), "batch sizes bounded")
    events = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
    phases = [(e["phase"], e["state"]) for e in events]
    check(phases[0] == ("Sync", "Started") and phases[-1] == ("Sync", "Ended"),
          f"event order {phases[:2]} .. {phases[-2:]}")
    check(phases.count(("Download", "Ended")) == len(batches), "one Ended event per batch")
    for o in OBJS:
        check(same_records(env.local_records(SVC, o), env.server_records(SVC, o)),
              f"{o}: local == server after initial sync")

    # 2. Server-side changes, then a delta sync downloads only what changed.
    cust = env.server_records(SVC, "Customer")
    env.admin_post(f"/admin/records/{SVC}/Customer", {"op": "delete", "record": {"id": cust[0]["id"]}})
    upd = dict(cust[1]); upd["city"] = "Changed City"; upd["balance"] = 12.5
    env.admin_post(f"/admin/records/{SVC}/Customer", {"op": "update", "record": upd})
    new = dict(cust[2]); new["id"] = 99999999; new["name"] = "New Customer"
    env.admin_post(f"/admin/records/{SVC}/Customer", {"op": "create", "record": new})
    ol = env.server_records(SVC, "OrderLine")
    env.admin_post(f"/admin/records/{SVC}/OrderLine", {"op": "delete", "record":
                   {"orderId": ol[5]["orderId"], "lineNo": ol[5]["lineNo"]}})
    rc, out, err = env.cli("sync", SVC, "--options",
                           '{"syncType":"downloadOnly","getSyncStats":true}', "--json")
    check(rc == 0, f"delta sync rc {rc}: {err[-1000:]}")
    res = json.loads(out) if out.strip() else {}
    got = res.get("syncStats", {}).get("totalDownloadedRecords")
    check(got == 4, f"delta downloaded {got} records, expected 4 (create, update, 2 deletes)")
    for o in OBJS:
        check(same_records(env.local_records(SVC, o), env.server_records(SVC, o)),
              f"{o}: local == server after delta sync")
    loc = env.local_records(SVC, "Customer", json.dumps(upd["id"]))
    check(len(loc) == 1 and loc[0]["city"] == "Changed City", f"get by pk: {loc}")

    # 3. Object level with a filter: a new filter has no delta, so a full (filtered) download;
    #    then key-set reconciliation (D6) removes the local rows outside the filter, except a
    #    row with a pending local change.
    cheap = [p for p in env.server_records(SVC, "Product") if p["price"] <= 50]
    rc, out, err = env.cli("partial-update", SVC, "Product", json.dumps(cheap[0]["sku"]),
                           '{"stock":4242}')
    check(rc == 0, f"local edit of a row outside the filter: {err}")
    rc, out, err = env.cli("sync", SVC, "Product", "--options",
                           '{"syncType":"downloadOnly","filter":"price gt 50",'
                           '"getSyncStats":true,"downloadBatchSize":"300"}', "--json")
    check(rc == 0, f"object sync rc {rc}: {err[-1000:]}")
    res = json.loads(out) if out.strip() else {}
    check(res.get("name") == "Product", f"object result names the object: {out[:200]}")
    expect = [p for p in env.server_records(SVC, "Product") if p["price"] > 50]
    st = res.get("syncStats", {})
    check(st.get("totalDownloadedRecords") == len(expect),
          f"filtered download {st.get('totalDownloadedRecords')} != {len(expect)}")
    check(st.get("reconciledDeletes") == len(cheap) - 1,
          f"reconciledDeletes {st.get('reconciledDeletes')} == {len(cheap) - 1}")
    events = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
    rec = [(e["state"], e.get("reconciledDeletes")) for e in events if e["phase"] == "Reconcile"]
    check(rec == [("Started", None), ("Ended", len(cheap) - 1)], f"Reconcile events: {rec}")
    local = env.local_records(SVC, "Product")
    check(same_records([p for p in local if p["sku"] != cheap[0]["sku"]], expect),
          "Product: local == server's filtered view")
    kept = [p for p in local if p["sku"] == cheap[0]["sku"]]
    check(kept and kept[0]["stock"] == 4242, "the row with a pending change was kept")
    env.cli("rollback", SVC, "Product", json.dumps(cheap[0]["sku"]))
    rc, out, err = env.cli("get", SVC, "Product", "--filter", "price gt 50")
    check(rc == 0 and len(json.loads(out)["records"]) == len(expect), "local filtered get")

    # 3b. downloadBatchSize 0: everything in one response (10,000 records, several MB), which
    #     the download actor spills to a temp file before the one commit.
    rc, out, err = env.cli("sync", SVC, "OrderLine", "--options",
                           '{"syncType":"downloadOnly","filter":"qty ge 0",'
                           '"getSyncStats":true,"downloadBatchSize":0}', "--json")
    check(rc == 0, f"batch size 0 sync rc {rc}: {err[-1000:]}")
    res = json.loads(out) if out.strip() else {}
    ds = res.get("syncStats", {}).get("downloadStats", [])
    n = len([r for r in env.server_records(SVC, "OrderLine") if r["qty"] >= 0])
    check(len(ds) == 1 and ds[0]["numberOfRecords"] == n and ds[0]["bytes"] > 2 * 1024 * 1024,
          f"one batch of {n} records over 2 MB: {ds}")
    check(same_records(env.local_records(SVC, "OrderLine"), env.server_records(SVC, "OrderLine")),
          "OrderLine: equal after a one-batch download")

    # 4. Stats kept by the stats actor.
    rc, out, err = env.cli("stats", SVC)
    check(rc == 0 and json.loads(out).get("name") == SVC, f"stats {SVC}: {rc} {out[:200]} {err}")

    # 5. Bad input: unknown service, unknown object, invalid syncType, bad JSON.
    rc, out, err = env.cli("sync", "NoSuchSvc")
    check(rc == 1 and '"code":2483' in out.replace(" ", ""), f"unknown service: {rc} {out}")
    rc, out, err = env.cli("sync", SVC, "NoSuchObj")
    check(rc == 1 and "NoSuchObj" in out, f"unknown object: {rc} {out}")
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"fullsync"}')
    check(rc == 1 and "2477" in out and "fullsync" in out, f"bad syncType: {rc} {out}")
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":')
    check(rc == 2, f"bad options JSON is a usage error: {rc}")
    rc, out, err = env.cli("status")
    check(rc == 0 and '"ready"' in out, "daemon still serving after bad input")
finally:
    env.close()

# 6. Wrong token: the sync fails with a clear error, the daemon keeps running.
env = Env(bindir, generate="50", token="right-token")
try:
    with open(env.conf, "a") as f:
        f.write("auth_token = wrong-token\n")
    env.stop_daemon()
    env.start_daemon()
    rc, out, err = env.cli("setup")
    check(rc != 0 and "credentials" in (out + err), f"wrong token setup: {rc} {out} {err}")
    rc, out, err = env.cli("status")
    check(rc == 0, "daemon alive after refused setup")
finally:
    env.close()
finish()
