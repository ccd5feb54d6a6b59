"""Crash-safe resume, proven (issue: orchestration): during a fullSync of 50,000 records over
three objects, with local changes to upload and a backend that loses some upload answers, one
process kind (download | upload | reconcile | stats | edgesyncd, argv[2]) is SIGKILLed at 20
seeded random points. The sync must complete; the local store must equal the server record by
record; no more batches than one per killed worker (two for a download worker, which requests
the next batch while committing one) may be fetched again (resumption, not restart); and every
local change must be applied by the server exactly once."""
import json
import os
import random
import signal
import sys
import time

from eslib import QUICK, Env, Sync, actors, check, finish, same_records, served

bindir, kind = sys.argv[1], sys.argv[2]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]
KILLS = 6 if QUICK else 20
BATCH = 100
seed = {"download": 101, "upload": 202, "reconcile": 303, "stats": 404, "daemon": 505}[kind]
rng = random.Random(seed)

conf = ("retry.base_ms = 20\nretry.max_ms = 300\nheartbeat.interval_ms = 200\n"
        "heartbeat.timeout_ms = 3000\nreconcile.page_size = 100\n")
env = Env(bindir, generate="Customer=20000,Product=15000,OrderLine=15000", extra_conf=conf)
try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    # Local changes to upload: creates (temporary keys) and updates of server rows.
    nchanges = 200 if kind == "upload" else 30
    names = [f"Kill {kind} {i}" for i in range(nchanges)]
    tmpl = {"name": "", "email": "k@example.com", "city": "Oslo", "country": "Norway",
            "balance": 1.5, "active": True, "created": "2024-01-01T00:00:00Z", "tier": 1,
            "notes": "created offline"}
    for n in names:
        rc, out, err = env.cli("create", SVC, "Customer", json.dumps(dict(tmpl, name=n)))
        check(rc == 0, f"create {n}: {err}")
    # Slow the backend down so the kills land mid-session; lose every third upload answer.
    ms = {"download": 40, "stats": 60, "daemon": 60}.get(kind, 25)
    env.admin_post("/admin/faults", {"seed": seed, "rules": [
        {"kind": "lost_response", "every": 3, "method": "UPLOAD"},
        {"kind": "latency_ms", "ms": ms, "path": "/services/data/"}]})
    before = served(env)
    s = Sync(env, SVC, "--options",
             json.dumps({"downloadBatchSize": BATCH, "uploadBatchSize": 1 if kind == "upload"
                         else 10, "getSyncStats": True}))
    kills = 0
    route = {"download": "download.", "upload": "upload.", "reconcile": "reconcile.",
             "stats": "stats."}.get(kind)
    deadline = time.time() + 240
    while kills < KILLS and s.p.poll() is None and time.time() < deadline:
        time.sleep(rng.uniform(0.15, 0.6))
        if kind == "daemon":
            env.daemon.send_signal(signal.SIGKILL)
            env.daemon.wait()
            kills += 1
            time.sleep(rng.uniform(0.05, 0.3))
            env.start_daemon()
            continue
        busy = [a for a in actors(env) if a["actor"].startswith(route) and a["pid"] and
                (a["job"] or kind == "stats")]
        if not busy:
            continue
        victim = rng.choice(busy)
        try:
            os.kill(victim["pid"], signal.SIGKILL)
            kills += 1
        except ProcessLookupError:
            pass
    rc, out = s.result(timeout=300)
    res = json.loads(out) if out.strip() else {}
    print(f"{kind}: {kills} kills, result {out[:160]}", file=sys.stderr)
    check(kills >= KILLS or kind in ("upload", "reconcile"),
          f"{kind}: {kills} kills landed (wanted {KILLS})")
    check(kills >= 5, f"{kind}: at least 5 kills landed ({kills})")
    check(rc == 0 and res.get("status") == 0, f"{kind}: the sync completed: {rc} {out[:300]}")
    env.admin_post("/admin/faults", {"rules": []})
    after = served(env)
    # Resumption, not restart: batches fetched <= batches needed + one per killed worker.
    counts = {o: len(env.server_records(SVC, o)) for o in OBJS}
    need = sum((n + BATCH - 1) // BATCH for n in counts.values())
    fetched = after["requests"]["download"] - before["requests"]["download"]
    # A download worker requests batch N+1 before batch N commits (the pipeline): killed in
    # that commit, both are fetched again.
    slack = kills * (2 if kind in ("daemon", "download") else 1)
    check(need <= fetched <= need + slack,
          f"{kind}: {fetched} download batches for {need} needed, {kills} kills")
    print(f"{kind}: batches needed {need}, fetched {fetched}", file=sys.stderr)
    # Every change applied exactly once; nothing left pending.
    srv = env.server_records(SVC, "Customer")
    dup = [n for n in names if sum(1 for c in srv if c["name"] == n) != 1]
    check(not dup, f"{kind}: changes not applied exactly once: {dup[:5]}")
    rc, out, err = env.cli("pending", SVC)
    pend = json.loads(out) if rc == 0 else {}
    left = sum(len(v.get("pendingSyncRecords", [])) for v in pend.values())
    check(left == 0, f"{kind}: {left} changes still pending")
    for o in OBJS:
        check(same_records(env.local_records(SVC, o), env.server_records(SVC, o)),
              f"{kind}: {o} local == server record by record")
finally:
    env.close()
finish()
