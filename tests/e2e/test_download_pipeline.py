"""The download pipeline (issue 7): the request of batch N+1 leaves before batch N commits, so
the server prepares it meanwhile. Proven end to end: the download actor is stopped (SIGSTOP, test
hook) inside the write transaction of batch 3; by then the server has received the request of
batch 4, and no batch from 3 on has ended. The actor is then SIGKILLed: the sync resumes
from batch 2's context, fetches batches 3 and 4 again (and nothing else twice), commits every batch
exactly once, and the store equals the server record by record."""
import json
import os
import signal
import sys
import time

from eslib import Env, Sync, check, finish, same_records, served

bindir = sys.argv[1]
SVC = "SampleSvc"
RECORDS, BATCH, STOP_AT = 3000, 200, 3
NEED = (RECORDS + BATCH - 1) // BATCH


def stopped_download(env):
    """pid of a stopped es-download child of the daemon, found in /proc: the daemon itself may
    not answer while the actor holds the store's writer lock."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        fields = st.rsplit(")", 1)[1].split()
        if comm == "es-download" and int(fields[1]) == env.daemon.pid and fields[0] == "T":
            return int(d)
    return None


def downloads(env):
    return served(env)["requests"]["download"]


conf = "heartbeat.interval_ms = 200\nheartbeat.timeout_ms = 20000\nretry.base_ms = 20\n"
env = Env(bindir, generate=f"Customer={RECORDS},Product=0,OrderLine=0", extra_conf=conf)
try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    env.stop_daemon()
    marker = os.path.join(env.dir, "stop-in-txn")
    env.start_daemon({"ES_TEST_STOP_IN_TXN": marker, "ES_TEST_STOP_AT_BATCH": str(STOP_AT)})
    before = downloads(env)
    s = Sync(env, SVC, "Customer", "--options",
             json.dumps({"syncType": "downloadOnly", "downloadBatchSize": BATCH,
                         "getSyncStats": True}))
    deadline = time.time() + 30
    while time.time() < deadline and not os.path.exists(marker):
        time.sleep(0.01)
    check(os.path.exists(marker), "the stop hook fired in batch 3's transaction")
    victim = None
    deadline = time.time() + 10
    while time.time() < deadline and victim is None:
        victim = stopped_download(env)
        time.sleep(0.02)
    check(victim is not None, "the download actor is stopped")
    # The request of batch 4 reached the server while batch 3 was not yet committed.
    deadline = time.time() + 10
    while time.time() < deadline and downloads(env) - before < STOP_AT + 1:
        time.sleep(0.02)
    check(downloads(env) - before == STOP_AT + 1,
          f"batch {STOP_AT + 1} requested before batch {STOP_AT} committed: "
          f"{downloads(env) - before} requests")
    # Batch 3 is not committed (the actor is stopped inside its transaction): no Ended event for
    # it. The store is not read through the daemon here: a daemon write would wait for the
    # stopped actor's writer lock.
    ended = [e["batchNumber"] for e in list(s.events)
             if e.get("phase") == "Download" and e.get("state") == "Ended"]
    check(all(b < STOP_AT for b in ended), f"batches ended while batch {STOP_AT} is open: {ended}")
    if victim:
        os.kill(victim, signal.SIGKILL)
    rc, out = s.result(timeout=120)
    res = json.loads(out) if out.strip() else {}
    check(rc == 0 and res.get("status") == 0, f"the sync completes: {rc} {out[:300]}")
    got = res.get("syncStats", {}).get("totalDownloadedRecords")
    check(got == RECORDS, f"totalDownloadedRecords {got}, expected {RECORDS}")
    ended = sorted(e["batchNumber"] for e in s.events
                   if e.get("phase") == "Download" and e.get("state") == "Ended")
    check(ended == list(range(1, NEED + 1)), f"each batch committed once: {ended}")
    fetched = downloads(env) - before
    check(fetched == NEED + 2,
          f"resumed at batch {STOP_AT}: {fetched} requests for {NEED} batches (expected "
          f"{NEED + 2}: batches {STOP_AT} and {STOP_AT + 1} again)")
    log = open(os.path.join(env.dir, "daemon.log")).read()
    check(f"resuming at batch {STOP_AT} (same session)" in log, "resumed from batch 2's context")
    check(same_records(env.local_records(SVC, "Customer"), env.server_records(SVC, "Customer")),
          "local == server record by record")
finally:
    env.close()
finish()
