"""SIGSTOP of an actor for longer than heartbeat.timeout_ms, end to end, for each kind (download
worker, upload, reconcile, stats): the stopped process is SIGKILLed and replaced, the sync
completes, SIGCONT finds nothing to wake, and the store equals the server record by record with
every local change applied once. Then the hard cases: (a) a download actor stopped INSIDE a batch's
LMDB write transaction (holding the writer lock) while a client writes through the daemon - the
daemon's loop blocks on the lock, so a watchdog thread must kill the stopped actor; (b) an actor
stopped while edgesyncd is SIGKILLed and restarted: when continued it finds its orchestrator gone
and exits without doing more work. Each time: no stale LMDB reader slot (mdb_stat -rr)."""
import json
import os
import signal
import subprocess
import sys
import time

from eslib import Env, Sync, actors, check, finish, same_records, served

bindir = sys.argv[1]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]
TIMEOUT_MS = 1500
TMPL = {"name": "", "email": "s@example.com", "city": "Oslo", "country": "Norway", "balance": 1.5,
        "active": True, "created": "2024-01-01T00:00:00Z", "tier": 1, "notes": "stop test"}
conf = (f"heartbeat.interval_ms = 200\nheartbeat.timeout_ms = {TIMEOUT_MS}\n"
        "retry.base_ms = 20\nretry.max_ms = 200\nreconcile.page_size = 100\n")
made = []
compared = 0


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def readers_clean(env, what):
    db = os.path.join(env.dir, "data", "edgesync.mdb")
    p = subprocess.run(["mdb_stat", "-n", "-rr", db], capture_output=True, text=True, timeout=30)
    check("0 stale readers cleared" in p.stdout, f"{what}: no stale reader slot: {p.stdout}")


def converge(env, what):
    global compared
    rc, out, err = env.cli("pending", SVC)
    pend = json.loads(out) if rc == 0 else {}
    left = sum(len(v.get("pendingSyncRecords", [])) for v in pend.values())
    check(left == 0, f"{what}: {left} changes still pending")
    srv = env.server_records(SVC, "Customer")
    dup = [n for n in made if sum(1 for c in srv if c["name"] == n) != 1]
    check(not dup, f"{what}: changes not applied exactly once: {dup[:5]}")
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"downloadOnly"}')
    check(rc == 0, f"{what}: final download: {rc} {out[:200]}")
    for o in OBJS:
        server = env.server_records(SVC, o)
        check(same_records(env.local_records(SVC, o), server), f"{what}: {o} local == server")
        compared += len(server)
    readers_clean(env, what)


# x86-64 poll, epoll_wait, ppoll, epoll_pwait, epoll_pwait2: an actor's wait for the network or
# its socket, where it holds no LMDB transaction.
POLL_SYSCALLS = {"7", "232", "271", "281", "441"}


def in_poll(pid):
    """The stopped pid was stopped inside its poll (/proc/<pid>/syscall names the call)."""
    for _ in range(50):  # the stop takes effect asynchronously
        try:
            with open(f"/proc/{pid}/syscall") as f:
                nr = f.read().split()[0]
        except (OSError, IndexError):
            return False
        if nr != "running":
            return nr in POLL_SYSCALLS
        time.sleep(0.01)
    return False


def stop_busy(env, route, s, timeout=60, outside_txn=False):
    """SIGSTOP the actor at route once it has a job (stats: once it runs), keep it stopped past
    the heartbeat timeout; return its pid. outside_txn: only a stop inside its poll counts (else
    it is continued and stopped again later), so it cannot hold the store's writer lock."""
    deadline = time.time() + timeout
    while time.time() < deadline and s.p.poll() is None:
        a = [x for x in actors(env) if x["actor"] == route]
        if a and a[0]["pid"] and (a[0]["job"] or route.startswith("stats")):
            os.kill(a[0]["pid"], signal.SIGSTOP)
            if not outside_txn or in_poll(a[0]["pid"]):
                return a[0]
            os.kill(a[0]["pid"], signal.SIGCONT)
        time.sleep(0.01)
    return None


def create(env, n, tag):
    names = [f"Stop {tag} {i}" for i in range(n)]
    for nm in names:
        rc, out, err = env.cli("create", SVC, "Customer", json.dumps(dict(TMPL, name=nm)))
        check(rc == 0, f"create {nm}: {err}")
    made.extend(names)


GEN = "Customer=3000,Product=1500,OrderLine=1500"
# Every data request (downloads, key listings and the service-level upload, whose path has no
# /objects/) waits 30 ms: the actors stay busy long enough to be caught.
SLOW = {"seed": 3, "rules": [{"kind": "latency_ms", "ms": 30, "path": "/services/data/v1/"}]}
stopped = 0
# One environment per case: each starts from an empty store, so the whole download runs.
for route in ["download.0", "upload.0", "reconcile.0", "stats.0"]:
    kind = route.split(".")[0]
    made = []
    env = Env(bindir, generate=GEN, extra_conf=conf)
    try:
        rc, out, err = env.cli("setup")
        check(rc == 0, f"setup {rc} {err}")
        create(env, 30, kind)
        env.admin_post("/admin/faults", SLOW)  # slow enough to catch the actor busy
        s = Sync(env, SVC, "--options", json.dumps({"downloadBatchSize": 200,
                                                    "uploadBatchSize": 1}))
        victim = stop_busy(env, route, s)
        check(victim is not None, f"{route}: caught busy and stopped")
        if not victim:
            s.result()
            continue
        stopped += 1
        t0 = time.time()
        rc, out = s.result(timeout=300)
        check(rc == 0, f"{route}: sync completes with the actor stopped: {rc} {out[:300]}")
        # Replaced: a new pid, a restart counted; the stopped one is dead, not waiting.
        deadline = time.time() + 10
        while time.time() < deadline and alive(victim["pid"]):
            time.sleep(0.05)
        check(not alive(victim["pid"]), f"{route}: the stopped pid {victim['pid']} was killed")
        now = [a for a in actors(env) if a["actor"] == route]
        check(now and now[0]["pid"] != victim["pid"] and now[0]["restarts"] > victim["restarts"],
              f"{route}: replaced: {now}")
        try:
            os.kill(victim["pid"], signal.SIGCONT)
        except ProcessLookupError:
            pass
        env.admin_post("/admin/faults", {"rules": []})
        converge(env, f"{route} stopped")
        print(f"{route}: stopped pid {victim['pid']}, sync done after {time.time() - t0:.1f}s",
              file=sys.stderr)
    finally:
        env.close()

# (a) Stopped inside a write transaction, holding the writer lock, while a client writes
#     through the daemon (whose loop then blocks on the lock).
made = []
env = Env(bindir, generate=GEN, extra_conf=conf)
try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    env.stop_daemon()
    marker = os.path.join(env.dir, "stop-in-txn")
    env.start_daemon({"ES_TEST_STOP_IN_TXN": marker})
    s = Sync(env, SVC, "--options", json.dumps({"syncType": "downloadOnly",
                                                "downloadBatchSize": 200}))
    deadline = time.time() + 30
    while time.time() < deadline and not os.path.exists(marker):
        time.sleep(0.01)
    check(os.path.exists(marker), "in txn: the stop hook fired")
    time.sleep(0.2)
    t0 = time.time()
    name = "Stop in txn 0"
    rc, out, err = env.cli("create", SVC, "Customer", json.dumps(dict(TMPL, name=name)))
    took = time.time() - t0
    check(rc == 0, f"in txn: a client write completes although an actor held the lock: {err}")
    made.append(name)
    # Without the watchdog the write would wait for ever; the bound leaves room for a loaded
    # machine (the watchdog needs the heartbeat timeout plus a quarter of it).
    check(took < 60, f"in txn: the write waited {took:.1f}s")
    rc, out = s.result(timeout=120)
    check(rc == 0, f"in txn: the sync completes: {rc} {out[:300]}")
    log = open(os.path.join(env.dir, "daemon.log")).read()
    check("is stopped: SIGKILL" in log, "in txn: the watchdog killed the stopped actor")
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"uploadOnly"}')
    check(rc == 0, f"in txn: upload after: {rc} {out[:200]}")
    converge(env, "stopped in txn")
finally:
    env.close()

# (b) An actor stopped across a SIGKILL and restart of edgesyncd: continued afterwards, it must
#     see its orchestrator is gone and exit without doing more. Stopped in its poll: stopped
#     inside a write transaction it would hold the writer lock, and no daemon can kill a
#     process that is not its child, so nothing could write until it is continued (a load
#     dependent flake: the slower the commit, the likelier a stop lands in one).
made = []
env = Env(bindir, generate=GEN, extra_conf=conf)
try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    env.admin_post("/admin/faults", SLOW)
    s = Sync(env, SVC, "--options", json.dumps({"syncType": "downloadOnly",
                                                "downloadBatchSize": 200}))
    victim = (stop_busy(env, "download.0", s, outside_txn=True) or
              stop_busy(env, "download.1", s, outside_txn=True))
    check(victim is not None, "orphan: a download actor stopped")
    env.daemon.send_signal(signal.SIGKILL)
    env.daemon.wait()
    time.sleep(0.3)
    env.start_daemon()
    rc, out = s.result(timeout=120)
    check(rc == 0, f"orphan: the sync completes under the new daemon: {rc} {out[:300]}")
    if victim:
        check(alive(victim["pid"]), "orphan: still stopped before SIGCONT")
        os.kill(victim["pid"], signal.SIGCONT)
        deadline = time.time() + 10
        while time.time() < deadline and alive(victim["pid"]):
            time.sleep(0.05)
        check(not alive(victim["pid"]), "orphan: exits once continued")
        log = open(os.path.join(env.dir, "daemon.log")).read()
        check(f"download[{victim['pid']}]: the orchestrator" in log and "is gone" in log,
              "orphan: it noticed its orchestrator was gone")
    env.admin_post("/admin/faults", {"rules": []})
    converge(env, "orphan")
finally:
    env.close()
print(f"stop: {stopped} kinds stopped and replaced, {compared} records compared",
      file=sys.stderr)
finish()
