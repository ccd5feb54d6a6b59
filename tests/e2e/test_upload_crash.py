"""Crash safety of uploads, end to end: the upload actor is killed (SIGKILL) at each point of an
upload - before the request leaves, while it is in flight, after the answer arrived, and in the
middle of applying it - and edgesyncd itself is killed mid-upload, with the server also losing
answers after applying them. Every time the sync completes after the restart, nothing pending is
lost, and the server applied every change exactly once."""
import json
import os
import signal
import sys
import time

from eslib import Env, Sync, check, finish, same_records, served

bindir = sys.argv[1]
SVC = "SampleSvc"


def js(out):
    try:
        return json.loads(out)
    except ValueError:
        return {}


def pending_count(env):
    rc, out, err = env.cli("pending", SVC)
    d = js(out)
    return sum(len(v.get("pendingSyncRecords", [])) for v in d.values()) if rc == 0 else -1


env = Env(bindir, generate="100", extra_conf="retry.base_ms = 20\nretry.max_ms = 200\n")
try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc}")
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"downloadOnly"}')
    template = {k: v for k, v in env.local_records(SVC, "Customer")[0].items() if k != "id"}
    products = env.local_records(SVC, "Product")
    made = []
    points = ["before_send", "in_flight", "after_answer", "mid_apply"]
    for round_no, point in enumerate(points + ["daemon"]):
        # Local changes: creates with temporary keys and updates.
        names = [f"Crash {point} {i}" for i in range(5)]
        for n in names:
            rc, out, err = env.cli("create", SVC, "Customer", json.dumps(dict(template, name=n)))
            check(rc == 0, f"create {n}: {err}")
        p = products[round_no]
        rc, out, err = env.cli("partial-update", SVC, "Product", json.dumps(p["sku"]),
                               json.dumps({"stock": 1000 + round_no}))
        made += names
        marker = os.path.join(env.dir, f"crash-{point}")
        env.stop_daemon()
        env.start_daemon({"ES_TEST_CRASH_AT": f"{point}:{marker}"} if point != "daemon" else {})
        # The server applies, then loses every other answer; uploads go 2 records a batch.
        env.admin_post("/admin/faults", {"seed": 20 + round_no, "rules": [
            {"kind": "lost_response", "every": 2, "method": "UPLOAD"},
            {"kind": "latency_ms", "ms": 50, "method": "UPLOAD"}]})
        if point == "daemon":
            s = Sync(env, SVC, "--options", '{"syncType":"uploadOnly","uploadBatchSize":2}')
            deadline = time.time() + 30
            while time.time() < deadline and not any(e["phase"] == "Upload" and
                                                     e["state"] == "Ended" for e in s.events):
                time.sleep(0.01)
            env.daemon.send_signal(signal.SIGKILL)
            env.daemon.wait()
            time.sleep(0.3)
            env.start_daemon()
            rc, out = s.result()
        else:
            rc, out, err = env.cli("sync", SVC, "--options",
                                   '{"syncType":"uploadOnly","uploadBatchSize":2}')
            check(os.path.exists(marker), f"{point}: the crash hook fired")
        check(rc == 0, f"{point}: sync completes after the crash: {rc} {out[:300]}")
        env.admin_post("/admin/faults", {"rules": []})
        # Anything the crashed session left is uploaded by the next one.
        for _ in range(3):
            if pending_count(env) == 0:
                break
            env.cli("sync", SVC, "--options", '{"syncType":"uploadOnly"}')
        check(pending_count(env) == 0, f"{point}: nothing left pending")
        srv = env.server_records(SVC, "Customer")
        for n in made:
            got = sum(1 for c in srv if c["name"] == n)
            check(got == 1, f"{point}: '{n}' on the server {got} times")
        sp = [x for x in env.server_records(SVC, "Product") if x["sku"] == p["sku"]]
        check(sp and sp[0]["stock"] == 1000 + round_no, f"{point}: update applied")
    st = served(env)
    print("server:", json.dumps({k: st[k] for k in ("uploadCacheHits", "faultsFired")}),
          file=sys.stderr)
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"downloadOnly"}')
    for o in ("Customer", "Product", "OrderLine"):
        check(same_records(env.local_records(SVC, o), env.server_records(SVC, o)),
              f"{o}: local == server at the end")
finally:
    env.close()
finish()
