"""The run ledger records every finished session exactly once, even when es-stats missed its
result: results travel over PUB/SUB, which drops them while es-stats is down. es-stats is
SIGSTOPped while two syncs end (one ok, one failed), then SIGKILLed, so their result messages are
lost with the process; once the supervisor has restarted it, `edgesync history` has each of them
once with the right result, and the counters count each once. Then es-stats is SIGKILLed at
various moments right after syncs end (before, during, after recording), and the daemon is
restarted: still one ledger row and one count per session. Last, more sessions end than the
daemon keeps rows of (100): the markers of pruned sessions are swept, and nothing is recorded
twice, also when es-stats misses results after that and catches up."""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

from eslib import Env, actors, check, finish, free_port

bindir = sys.argv[1]
SVC = "SampleSvc"


def sessions_total(port):
    """{(level, result): value} of edgesync_sessions_total, and errors_total by code."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out, errs = {}, {}
    for line in text.splitlines():
        if line.startswith("edgesync_sessions_total{"):
            labels, v = line[len("edgesync_sessions_total{"):].split("} ")
            d = dict(kv.split("=", 1) for kv in labels.split(","))
            out[(d["level"].strip('"'), d["result"].strip('"'))] = float(v)
        elif line.startswith("edgesync_errors_total{code="):
            labels, v = line[len("edgesync_errors_total{code="):].split("} ")
            errs[labels.strip('"')] = float(v)
    return out, errs


def history(env):
    rc, out, err = env.cli("history", "--json", "--limit", "0")
    check(rc == 0, f"history: rc {rc} {err}")
    try:
        return json.loads(out)
    except ValueError:
        return []


def stats_pid(env):
    a = [a for a in actors(env) if a["actor"] == "stats.0"]
    return a[0]["pid"] if a and a[0]["state"] == "ready" else 0


def wait_stats_back(env, old_pid, port):
    """Until a new es-stats is ready and serves metrics; its pid or 0."""
    deadline = time.time() + 30
    while time.time() < deadline:
        pid = stats_pid(env)
        if pid and pid != old_pid:
            try:
                sessions_total(port)
                return pid
            except OSError:
                pass
        time.sleep(0.1)
    return 0


def wait_runs(env, n, timeout=15):
    deadline = time.time() + timeout
    runs = history(env)
    while len(runs) < n and time.time() < deadline:
        time.sleep(0.1)
        runs = history(env)
    return runs


def entries(env, table):
    """Entries of a table of the daemon's store (mdb_stat, lmdb-utils), -1 if unreadable."""
    p = subprocess.run(["mdb_stat", "-n", "-s", table,
                        os.path.join(env.dir, "data", "edgesync.mdb")],
                       capture_output=True, text=True)
    m = re.search(r"Entries: (\d+)", p.stdout)
    return int(m.group(1)) if p.returncode == 0 and m else -1


def swept(env):
    """(session rows, markers) once markers <= rows (the sweep follows each recording), or
    as they are after 10 s."""
    deadline = time.time() + 10
    while True:
        rows, marks = entries(env, "session"), entries(env, "hist_rec")
        if 0 <= marks <= rows or time.time() > deadline:
            return rows, marks
        time.sleep(0.1)


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the supervisor got there first (heartbeat timeout): the same loss


port = free_port()
# A long heartbeat timeout: the supervisor must not replace the stopped es-stats before the
# test kills it (a loaded machine would make that a race).
env = Env(bindir, generate="600", extra_conf=f"metrics.listen = 127.0.0.1:{port}\n"
          "retry.max_attempts = 1\nretry.max_ms = 50\nheartbeat.timeout_ms = 60000\n")
try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    # Customer is left for later: its records are what the missed sync brings.
    rc, out, err = env.cli("sync", SVC, "Product", "--options", '{"syncType":"downloadOnly"}')
    check(rc == 0, f"first sync {rc} {err[-300:]}")
    runs = wait_runs(env, 1)
    check(len(runs) == 1 and runs[0]["entity"] == "Product" and runs[0]["result"] == "ok",
          f"first sync recorded: {runs}")

    # 1. es-stats cannot read while two syncs end: their results are published to a stopped
    # process, then lost with it.
    pid = stats_pid(env)
    check(pid > 0, "es-stats ready")
    os.kill(pid, signal.SIGSTOP)
    rc, out, err = env.cli("sync", SVC, "Customer", "--options",
                           '{"syncType":"downloadOnly","getSyncStats":true}')
    t_ok = time.time() * 1000  # es-stats comes back after this: a run stamped then ends later
    check(rc == 0, f"Customer sync while es-stats is stopped: {rc} {err[-300:]}")
    ok = json.loads(out) if out.strip().startswith("{") else {}
    env.admin_post("/admin/faults", {"rules": [{"kind": "http_500", "path": "/objects/"}]})
    rc, out, err = env.cli("sync", SVC, "Product", "--options", '{"syncType":"downloadOnly"}')
    env.admin_post("/admin/faults", {"rules": []})
    check(rc == 1, f"Product sync through HTTP 500 fails: rc {rc}")
    failed = json.loads(out) if out.strip().startswith("{") else {}
    code = failed.get("code")
    check(bool(code), f"failure code in the result: {out[:200]}")
    check(stats_pid(env) == pid, "the stopped es-stats was not replaced meanwhile")
    check(len(history(env)) == 1, "nothing recorded while es-stats is stopped")
    kill(pid)
    new_pid = wait_stats_back(env, pid, port)
    check(new_pid > 0, "es-stats restarted after SIGKILL")
    runs = wait_runs(env, 3)
    check(len(runs) == 3, f"both missed sessions recorded once: {[r.get('entity') for r in runs]}")
    if len(runs) == 3:
        fr, cr = runs[0], runs[1]  # newest first: recorded in the order they ended
        check(cr["entity"] == "Customer" and cr["level"] == "object" and cr["result"] == "ok" and
              cr["code"] == 0, f"the ok sync: {cr}")
        st = ok.get("syncStats", {})
        check(cr["downloaded"] == st.get("totalDownloadedRecords") and cr["downloaded"] > 0,
              f"its records: {cr['downloaded']} vs {st.get('totalDownloadedRecords')}")
        # Its progress events were missed too: figures come from the stored syncStats.
        check(cr["batchesDownloaded"] == len(st.get("downloadStats", [])) and
              cr["bytesDownloaded"] == sum(b.get("bytes", 0) for b in st.get("downloadStats", [])),
              f"its batches and bytes from syncStats: {cr}")
        # Wall clock end vs monotonic elapsed time: close (two clocks read one after the other).
        check(cr["start"] == st.get("startTime") and
              abs(cr["end"] - cr["start"] - st.get("syncElapsedTime", 0)) <= 100 and
              cr["end"] <= t_ok,
              f"its end is when it ended, not when es-stats came back: {cr}")
        check(fr["entity"] == "Product" and fr["result"] == "failed" and fr["code"] == code and
              fr["message"] == failed.get("message"), f"the failed sync: {fr}")
        check(len({r["session"] for r in runs}) == 3, "three distinct sessions")
    counts, errs = sessions_total(port)
    check(counts == {("object", "ok"): 2, ("object", "failed"): 1}, f"each counted once: {counts}")
    check(errs.get(str(code)) == 1, f"its error code counted once: {errs}")
    with open(os.path.join(env.dir, "daemon.log")) as f:
        log = f.read()
    check(log.count("recorded from its stored row") == 2,
          f"es-stats says both came from the stored rows: {log.count('recorded from its stored row')}")

    # 2. Killed right after syncs end, at various moments: before, during or after recording;
    # "recorded": killed as soon as the run is in the ledger, so its marker is all that stops
    # the restarted es-stats from recording it again.
    n = 3
    for delay in ("recorded", 0, 0.005, 0.02, 0.05, "recorded"):
        pid = stats_pid(env) or pid
        rc, out, err = env.cli("sync", SVC, "Customer", "--options", '{"syncType":"downloadOnly"}')
        check(rc == 0, f"sync {rc}")
        n += 1
        if delay == "recorded":
            check(len(wait_runs(env, n)) == n, "run recorded before the kill")
        else:
            time.sleep(delay)
        kill(pid)
        check(wait_stats_back(env, pid, port) > 0, f"es-stats back after a kill {delay} s after a sync")
    wait_runs(env, n)
    time.sleep(6)  # past es-stats' periodic look (every 5 s): it must find nothing new
    runs = history(env)
    check(len(runs) == n and len({r["session"] for r in runs}) == n,
          f"{n} sessions, each recorded once: {len(runs)} rows, "
          f"{len({r['session'] for r in runs})} sessions")
    counts, _ = sessions_total(port)
    check(counts == {("object", "ok"): n - 1, ("object", "failed"): 1},
          f"counted once each: {counts}")

    # 3. A daemon restart (every actor restarted, es-stats looks again): nothing new.
    before = history(env)
    pid = stats_pid(env)
    env.stop_daemon()
    env.start_daemon()
    # es-stats answers /metrics only from its loop, after its first look at the store: once the
    # new one has answered, that look is done.
    check(wait_stats_back(env, pid, port) > 0, "es-stats back after the daemon restart")
    check(history(env) == before, "the ledger is unchanged after a daemon restart")
    counts2, _ = sessions_total(port)
    check(counts2 == counts, f"counters unchanged: {counts2} vs {counts}")

    # 4. 105 more sessions: the daemon keeps the rows of the newest 100 finished ones only.
    quick = '{"syncType":"downloadOnly","downloadReconciliationRequired":false}'
    for i in range(105):
        rc, out, err = env.cli("sync", SVC, "Customer", "--options", quick)
        check(rc == 0, f"quick sync {i}: {rc} {err[-200:]}")
        n += 1
    runs = wait_runs(env, n)
    check(len(runs) == n and len({r["session"] for r in runs}) == n,
          f"{n} sessions recorded once: {len(runs)} rows")
    rows, marks = swept(env)
    check(rows == 100, f"the daemon keeps 100 session rows: {rows}")
    check(0 < marks <= rows, f"markers of pruned sessions swept: {marks} markers, {rows} rows")
    # Results missed after pruning began: caught up once; pruned sessions not recorded again.
    pid = stats_pid(env)
    os.kill(pid, signal.SIGSTOP)
    for i in range(3):
        rc, out, err = env.cli("sync", SVC, "Customer", "--options", quick)
        check(rc == 0, f"sync {i} while es-stats is stopped: {rc}")
        n += 1
    kill(pid)
    check(wait_stats_back(env, pid, port) > 0, "es-stats back")
    runs = wait_runs(env, n)
    time.sleep(1)
    runs = history(env)
    check(len(runs) == n and len({r["session"] for r in runs}) == n,
          f"{n} sessions, each recorded once after pruning: {len(runs)} rows")
    counts, _ = sessions_total(port)
    check(counts == {("object", "ok"): n - 1, ("object", "failed"): 1},
          f"counted once each: {counts}")
    rows, marks = swept(env)
    check(0 < marks <= rows, f"markers still bounded: {marks} markers, {rows} rows")
finally:
    env.close()
finish()
