"""Supervision and resume, end to end: SIGKILL a download actor mid-sync, SIGSTOP one past the
heartbeat timeout, SIGKILL edgesyncd itself mid-sync and start it again. Each time the sync must
finish with the local store equal to the server record by record, the dead or stopped actor must
be replaced, and the download must resume from its last committed batch (at most one batch per
kill fetched again)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

from eslib import Env, Sync, busy_download, actors, check, finish, same_records, served

bindir = sys.argv[1]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]
OPTS = '{"syncType":"downloadOnly","downloadBatchSize":500,"getSyncStats":true}'


def compare(env, what):
    for o in OBJS:
        check(same_records(env.local_records(SVC, o), env.server_records(SVC, o)),
              f"{what}: {o} local == server")


conf = "heartbeat.interval_ms = 200\nheartbeat.timeout_ms = 1500\n"
env = Env(bindir, generate="20000", extra_conf=conf)
try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    env.admin_post("/admin/faults", {"seed": 1, "rules": [{"kind": "latency_ms", "ms": 40,
                                                           "path": "/objects/"}]})
    # 1. SIGKILL the busy download actor after a few batches.
    s = Sync(env, SVC, "--options", OPTS)
    check(s.wait_batches(6), "batches committed before the kill")
    victim = busy_download(env)
    check(victim is not None, "a download actor is busy")
    if victim:
        os.kill(victim["pid"], signal.SIGKILL)
    rc, out = s.result()
    check(rc == 0, f"sync after actor kill: rc {rc} {out[:300]}")
    res = json.loads(out) if out.strip() else {}
    total = sum(len(env.server_records(SVC, o)) for o in OBJS)
    check(res.get("syncStats", {}).get("totalDownloadedRecords") == total,
          f"downloaded {res.get('syncStats', {}).get('totalDownloadedRecords')} == {total}")
    compare(env, "after actor SIGKILL")
    if victim:
        after = [a for a in actors(env) if a["actor"] == victim["actor"]]
        check(after and after[0]["restarts"] >= 1 and after[0]["pid"] != victim["pid"],
              f"{victim['actor']} replaced: {after}")
    # Resumption, not restart: every batch fetched once, plus at most the two in flight (the
    # actor requests batch N+1 before batch N commits).
    want = sum((len(env.server_records(SVC, o)) + 499) // 500 for o in OBJS)
    got = served(env)["requests"]["download"]
    check(want <= got <= want + 2, f"download requests {got}, expected {want} (+2 for the kill)")

    # 2. SIGSTOP a busy actor past the heartbeat timeout: it is killed and replaced.
    env.admin_post(f"/admin/records/{SVC}/Customer", {"op": "update", "record": dict(
        env.server_records(SVC, "Customer")[0], city="Stopped City")})
    s = Sync(env, SVC, "--options", '{"syncType":"downloadOnly","filter":{"OrderLine":"qty ge 1"},'
             '"downloadBatchSize":300}')
    check(s.wait_batches(3), "batches before SIGSTOP")
    victim = busy_download(env)
    if victim:
        os.kill(victim["pid"], signal.SIGSTOP)
    rc, out = s.result()
    check(rc == 0, f"sync after SIGSTOP: rc {rc} {out[:300]}")
    if victim:
        after = [a for a in actors(env) if a["actor"] == victim["actor"]]
        check(after and after[0]["pid"] != victim["pid"], f"stopped actor replaced: {after}")
        try:
            os.kill(victim["pid"], 0)
            alive = True
        except ProcessLookupError:
            alive = False
        check(not alive, "the stopped actor was killed")
    compare(env, "after SIGSTOP")

    # 3. SIGKILL edgesyncd mid-sync, start it again: the session resumes and the CLI gets the
    #    result (it asks the restarted daemon for the session's state).
    #    A new filter has no delta yet: a full download of Customer.
    start = served(env)["requests"]["download"]
    s = Sync(env, SVC, "Customer", "--options", '{"syncType":"downloadOnly",'
             '"downloadBatchSize":500,"filter":"tier ge 0"}')
    check(s.wait_batches(5), "batches before daemon kill")
    env.daemon.send_signal(signal.SIGKILL)
    env.daemon.wait()
    time.sleep(0.5)
    env.start_daemon()
    rc, out = s.result()
    check(rc == 0, f"sync across a daemon restart: rc {rc} {out[:300]}")
    check(same_records(env.local_records(SVC, "Customer"), env.server_records(SVC, "Customer")),
          "Customer equal after daemon restart")
    got = served(env)["requests"]["download"] - start
    n = len([c for c in env.server_records(SVC, "Customer") if c["tier"] >= 0])
    check(got <= (n + 499) // 500 + 2, f"{got} Customer batches fetched for {n} records: resumed")
finally:
    env.close()
finish()
