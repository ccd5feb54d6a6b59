"""The startSync contract end to end (what exists so far): app-level results, 2461 for an
overlapping sync, cancel (2478) with the batch in flight committed, preserveBatchContext true
(a new sync continues after the last committed batch) and false (it starts again from the
stored delta), and the "<generic message>: <details>" failure text."""
import json
import sys
import time

from eslib import Env, Sync, check, finish, same_records, served

bindir = sys.argv[1]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]

env = Env(bindir, generate="6000")
try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")

    # App level: every set-up service, result per service.
    rc, out, err = env.cli("sync", "--options",
                           '{"objectServicesOptions":{"SampleSvc":{"syncType":"downloadOnly",'
                           '"getSyncStats":true}}}')
    check(rc == 0, f"app sync rc {rc}: {err[-500:]}")
    res = json.loads(out) if out.strip() else {}
    svc_res = res.get("successResponse", {}).get(SVC, {})
    check(res.get("status") == 0 and svc_res.get("status") == 0 and
          svc_res.get("objectServiceName") == SVC, f"app result shape: {out[:300]}")
    total = sum(len(env.server_records(SVC, o)) for o in OBJS)
    check(svc_res.get("syncStats", {}).get("totalDownloadedRecords") == total,
          "app-level service stats count every record")
    rc, out, err = env.cli("sync", "--options", '{"objectServicesOptions":{"NoSvc":{}}}')
    check(rc == 1 and "2482" in out and "NoSvc" in out, f"unknown service in app options: {out}")

    # Overlap: a second sync of the same service while one runs -> 2461 at once.
    env.admin_post("/admin/faults", {"seed": 2, "rules": [{"kind": "latency_ms", "ms": 60,
                                                           "path": "/objects/"}]})
    s = Sync(env, SVC, "Customer", "--options",
             '{"syncType":"downloadOnly","downloadBatchSize":100,"filter":"tier ge 0"}')
    check(s.wait_batches(2), "first sync running")
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"downloadOnly"}')
    check(rc == 1 and '"code":2461' in out.replace(" ", ""), f"overlap refused: {rc} {out[:200]}")
    rc, out, err = env.cli("sync", SVC, "Product", "--options", '{"syncType":"downloadOnly"}')
    check(rc == 0, f"a different object of the service syncs in parallel (D12): {rc} {out[:200]}")

    # Cancel: the batch in flight is committed, the rest skipped, result 2478.
    sid = s.events[0]["session"] if s.events else ""
    rc, out, err = env.cli("cancel", sid)
    check(rc == 0, f"cancel {sid}: {rc} {err}")
    rc, out = s.result()
    res = json.loads(out) if out.strip() else {}
    check(rc == 1 and res.get("code") == 2478, f"cancelled sync: rc {rc} {out[:200]}")
    ended = [e for e in s.events if e["phase"] == "Download" and e["state"] == "Ended"]
    n_local = len(env.local_records(SVC, "Customer"))
    # Customer was fully synced at app level before; count committed batches via the server.
    check(len(ended) >= 2, f"{len(ended)} batches committed before the cancel")

    # preserveBatchContext true: a new sync continues after the cancelled one's last batch.
    before = served(env)["requests"]["download"]
    rc, out, err = env.cli("sync", SVC, "Customer", "--options",
                           '{"syncType":"downloadOnly","downloadBatchSize":100,'
                           '"filter":"tier ge 0","preserveBatchContext":true,"getSyncStats":true}')
    check(rc == 0, f"resumed sync rc {rc}: {err[-300:]}")
    fetched = served(env)["requests"]["download"] - before
    n = len([c for c in env.server_records(SVC, "Customer") if c["tier"] >= 0])
    full = (n + 99) // 100
    check(fetched <= full - len(ended) + 1,
          f"preserveBatchContext: {fetched} batches fetched, full download is {full}, "
          f"{len(ended)} were already committed")
    check(same_records(env.local_records(SVC, "Customer"), env.server_records(SVC, "Customer")),
          "Customer equal after the resumed sync")

    # preserveBatchContext false: a cancelled download starts again from the stored delta.
    s = Sync(env, SVC, "Product", "--options",
             '{"syncType":"downloadOnly","downloadBatchSize":100,"filter":"stock ge 0"}')
    check(s.wait_batches(2), "product sync running")
    sid = s.events[0]["session"] if s.events else ""
    env.cli("cancel", sid)
    rc, out = s.result()
    check(rc == 1, "product sync cancelled")
    before = served(env)["requests"]["download"]
    rc, out, err = env.cli("sync", SVC, "Product", "--options",
                           '{"syncType":"downloadOnly","downloadBatchSize":100,'
                           '"filter":"stock ge 0"}')
    check(rc == 0, f"restarted sync rc {rc}")
    fetched = served(env)["requests"]["download"] - before
    n = len([p for p in env.server_records(SVC, "Product") if p["stock"] >= 0])
    check(fetched == (n + 99) // 100, f"without preserveBatchContext: full download ({fetched})")
    env.admin_post("/admin/faults", {"rules": []})

    # A failing download: HTTP 500 on every Product request, retries exhausted.
    env.admin_post("/admin/faults", {"seed": 3, "rules": [{"kind": "http_500",
                                                           "path": "/objects/Product"}]})
    rc, out, err = env.cli("sync", SVC, "Product", "--options",
                           '{"syncType":"downloadOnly","filter":"stock ge 1"}')
    res = json.loads(out) if out.strip() else {}
    check(rc == 1 and res.get("code") == 2474 and
          res.get("message", "").startswith("Sync download failed with an error: ") and
          "HTTP 500" in res.get("message", ""), f"download failure: {out[:300]}")
    env.admin_post("/admin/faults", {"rules": []})
    rc, out, err = env.cli("status")
    check(rc == 0, "daemon alive after a failed sync")
finally:
    env.close()
finish()
