"""Bad input from outside, end to end: transient faults (500, 503, 429, dropped connections,
truncated and malformed bodies) are retried and the sync converges; a backend that keeps failing
ends the sync with the documented code and leaves the store as it was; an unreachable server; a
bad config file; the command socket's mode; a stopped actor at shutdown is SIGKILLed after the
grace period."""
import json
import os
import signal
import stat
import subprocess
import sys
import time

from eslib import Env, Sync, busy_download, actors, check, finish, same_records, served

bindir = sys.argv[1]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]

env = Env(bindir, generate="4000", extra_conf="stop.grace_ms = 1000\nretry.max_attempts = 12\n"
          "retry.max_ms = 200\nhttp.timeout_ms = 3000\n")
try:
    mode = stat.S_IMODE(os.stat(os.path.join(env.dir, "data", "cmd.sock")).st_mode)
    check(mode == 0o600, f"command socket mode {oct(mode)}")
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")

    # 1. Every transient fault kind on a share of requests: retried, the sync converges.
    kinds = [{"kind": "http_500"}, {"kind": "http_503"}, {"kind": "http_429", "retry_after": 0},
             {"kind": "drop"}, {"kind": "truncate"}, {"kind": "malformed"},
             {"kind": "hang", "ms": 4000}]
    rules = [dict(k, probability=0.05, path="/objects/") for k in kinds]
    env.admin_post("/admin/faults", {"seed": 11, "rules": rules})
    rc, out, err = env.cli("sync", SVC, "--options",
                           '{"syncType":"downloadOnly","downloadBatchSize":200,"getSyncStats":true}')
    check(rc == 0, f"sync through faults: rc {rc} {out[:300]} {err[-300:]}")
    res = json.loads(out) if out.strip() else {}
    retries = sum(b.get("retries", 0) for b in res.get("syncStats", {}).get("downloadStats", []))
    fired = served(env)["faultsFired"]
    check(fired > 0 and retries > 0, f"faults fired {fired}, retries counted {retries}")
    print(f"faults fired: {fired}, retries: {retries}", file=sys.stderr)
    env.admin_post("/admin/faults", {"rules": []})
    for o in OBJS:
        check(same_records(env.local_records(SVC, o), env.server_records(SVC, o)),
              f"{o}: equal after a sync through faults")

    # 2. A backend that keeps answering garbage: 2037 after the retries, nothing half-written.
    before = env.local_records(SVC, "Product")
    env.admin_post("/admin/faults", {"seed": 12, "rules": [{"kind": "malformed",
                                                            "path": "/objects/Product"}]})
    rc, out, err = env.cli("sync", SVC, "Product", "--options",
                           '{"syncType":"downloadOnly","filter":"stock ge 2"}')
    res = json.loads(out) if out.strip() else {}
    check(rc == 1 and res.get("code") == 2037, f"malformed responses: {rc} {out[:300]}")
    env.admin_post("/admin/faults", {"rules": []})
    check(same_records(env.local_records(SVC, "Product"), before), "store unchanged by the failure")
    rc, out, err = env.cli("sync", SVC, "Product", "--options",
                           '{"syncType":"downloadOnly","filter":"stock ge 2"}')
    check(rc == 0, "the same sync works once the backend is healthy")

    # 3. A stopped actor at shutdown: STOP, grace, then SIGKILL; the daemon exits.
    pids = [a["pid"] for a in actors(env)]
    victim = [a for a in actors(env) if a["actor"] == "reconcile.0"][0]["pid"]
    os.kill(victim, signal.SIGSTOP)
    t0 = time.time()
    env.stop_daemon()
    took = time.time() - t0
    check(env.daemon.returncode == 0, f"daemon exit code {env.daemon.returncode}")
    check(took < 10, f"shutdown took {took:.1f}s")
    alive = []
    for p in pids:
        try:
            os.kill(p, 0)
            with open(f"/proc/{p}/stat") as f:
                if f.read().split()[2] != "Z":
                    alive.append(p)
        except (ProcessLookupError, FileNotFoundError):
            pass
    check(not alive, f"actors left running after shutdown: {alive}")
    log = open(os.path.join(env.dir, "daemon.log")).read()
    check("did not stop within" in log, "the stopped actor was SIGKILLed after the grace period")
finally:
    env.close()

# 4. Unreachable server: setup fails with a network code, the daemon keeps serving.
env = Env(bindir, generate="10")
try:
    with open(env.conf, "a") as f:
        f.write("server_url = http://127.0.0.1:9\nhttp.connect_timeout_ms = 500\n")
    env.stop_daemon()
    env.start_daemon()
    rc, out, err = env.cli("setup")
    check(rc == 1 and "appconfig" in err and "127.0.0.1:9" in err,
          f"unreachable server: {rc} {out} {err}")
    rc, out, err = env.cli("status")
    check(rc == 0, "daemon alive")
finally:
    env.close()

# 5. Bad config files: a clear error naming file and line, exit 2, nothing started.
import tempfile
d = tempfile.mkdtemp()
for text, want in [("download.workers = 0\n", "download.workers: must be 1..16, got 0"),
                   ("no_such_option = 1\n", "no_such_option: unknown option"),
                   ("just text\n", "expected 'key = value'")]:
    path = os.path.join(d, "bad.conf")
    with open(path, "w") as f:
        f.write("# comment\n" + text)
    p = subprocess.run([os.path.join(bindir, "edgesyncd"), "--config", path],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 2 and f"{path}:2: " in p.stderr and want in p.stderr,
          f"bad config {text!r}: rc {p.returncode} {p.stderr}")
p = subprocess.run([os.path.join(bindir, "edgesyncd"), "--config", os.path.join(d, "missing")],
                   capture_output=True, text=True, timeout=30)
check(p.returncode == 2 and "missing" in p.stderr, f"missing config: {p.stderr}")
finish()
