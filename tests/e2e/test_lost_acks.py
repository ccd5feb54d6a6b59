"""Lost acknowledgements at scale, end to end: 1,200 local creates (a unique name each) plus updates
and deletes, uploaded one change per request while the server applies every request and then loses
60% of the answers (lost_response), across several sessions with SIGKILLs of es-upload and of
edgesyncd. At least 1,000 answers must be lost, and in the end: zero duplicates on the server, zero
changes lost, nothing pending, and the local store equal to the server record by record."""
import json
import os
import random
import signal
import subprocess
import sys
import time

from eslib import QUICK, Env, Sync, actors, check, finish, same_records, served

bindir = sys.argv[1]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]
CREATES = 300 if QUICK else 1200
LOST_MIN = 200 if QUICK else 1000
rng = random.Random(8)


def pending(env):
    rc, out, err = env.cli("pending", SVC)
    d = json.loads(out) if rc == 0 and out.strip() else {}
    return sum(len(v.get("pendingSyncRecords", [])) for v in d.values()) if rc == 0 else -1


def lost_fired(env):
    rules = json.loads(env.admin_get("/admin/faults"))["rules"]
    return sum(r["fired"] for r in rules if r["kind"] == "lost_response")


conf = ("retry.base_ms = 10\nretry.max_ms = 100\nretry.max_attempts = 40\n"
        "heartbeat.interval_ms = 200\nheartbeat.timeout_ms = 3000\n")
env = Env(bindir, generate="Customer=200,Product=200,OrderLine=200", extra_conf=conf)
try:
    t_start = time.time()
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"downloadOnly"}')
    check(rc == 0, f"first download {rc} {out[:200]}")
    # Creates through one client connection (bench's mkchanges): names "Bench User <i>".
    ep = f"ipc://{env.dir}/data/cmd.sock"
    p = subprocess.run([os.path.join(bindir, "bench_mkchanges"), ep, SVC, "Customer",
                        str(CREATES)], capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, f"mkchanges: {p.stdout} {p.stderr}")
    names = [f"Bench User {i}" for i in range(CREATES)]
    # Updates and deletes of server rows.
    products = env.local_records(SVC, "Product")[:30]
    for i, pr in enumerate(products):
        rc, out, err = env.cli("partial-update", SVC, "Product", json.dumps(pr["sku"]),
                               json.dumps({"stock": 5000 + i}))
        check(rc == 0, f"update {pr['sku']}: {err}")
    lines = env.local_records(SVC, "OrderLine")[:20]
    deleted = []
    for ln in lines:
        key = {"orderId": ln["orderId"], "lineNo": ln["lineNo"]}
        rc, out, err = env.cli("delete", SVC, "OrderLine", json.dumps(key))
        if rc == 0:
            deleted.append(key)
    check(len(deleted) == len(lines), f"deletes: {len(deleted)} of {len(lines)}")
    total_changes = pending(env)
    check(total_changes == CREATES + len(products) + len(deleted),
          f"pending before upload: {total_changes}")

    env.admin_post("/admin/faults", {"seed": 31, "rules": [
        {"kind": "lost_response", "probability": 0.6, "method": "UPLOAD"}]})
    sessions = kills_upload = kills_daemon = cancels = 0
    codes = set()
    deadline = time.time() + 150
    while pending(env) > 0 and time.time() < deadline:
        sessions += 1
        s = Sync(env, SVC, "--options", '{"syncType":"uploadOnly","uploadBatchSize":1}')
        # The first sessions are interrupted: es-upload or edgesyncd SIGKILLed at a random
        # point (the session goes on), then the session is cancelled (the next one resumes).
        if sessions <= 8:
            time.sleep(rng.uniform(0.5, 2.0))
            what = ["upload", "daemon"][sessions % 2] if sessions % 3 else "upload"
            if what == "upload" and s.p.poll() is None:
                a = [x for x in actors(env) if x["actor"] == "upload.0" and x["pid"]]
                if a:
                    try:
                        os.kill(a[0]["pid"], signal.SIGKILL)
                        kills_upload += 1
                    except ProcessLookupError:
                        pass
            elif what == "daemon" and s.p.poll() is None:
                env.daemon.send_signal(signal.SIGKILL)
                env.daemon.wait()
                kills_daemon += 1
                time.sleep(rng.uniform(0.05, 0.3))
                env.start_daemon()
            time.sleep(rng.uniform(1.0, 3.0))
            sid = next((e["session"] for e in s.events if "session" in e), None)
            if sid and s.p.poll() is None and env.cli("cancel", sid)[0] == 0:
                cancels += 1
        rc, out = s.result(timeout=300)
        res = json.loads(out) if out.strip() else {}
        codes.add(res.get("code", 0) if rc else 0)
        # A session ends well, cancelled (2478), or with a documented network failure code.
        check(rc == 0 or res.get("code") in (2030, 2031, 2032, 2033, 2034, 2035, 2036, 2037,
                                             2038, 2043, 2044, 2478),
              f"session {sessions}: rc {rc} {out[:200]}")
    lost = lost_fired(env)
    env.admin_post("/admin/faults", {"rules": []})
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"uploadOnly"}')
    check(rc == 0, f"upload with the faults off: {rc} {out[:200]}")
    left = pending(env)
    check(left == 0, f"{left} changes still pending")
    check(lost >= LOST_MIN, f"lost acknowledgements: {lost} (wanted >= {LOST_MIN})")
    check(kills_upload >= 2 and kills_daemon >= 1 and sessions >= 4,
          f"kills: upload {kills_upload}, daemon {kills_daemon}, sessions {sessions}")
    srv = env.server_records(SVC, "Customer")
    count = {}
    for c in srv:
        count[c["name"]] = count.get(c["name"], 0) + 1
    dups = [n for n in names if count.get(n, 0) > 1]
    missing = [n for n in names if count.get(n, 0) == 0]
    check(not dups, f"duplicates on the server: {len(dups)}, e.g. {dups[:3]}")
    check(not missing, f"creates lost: {len(missing)}, e.g. {missing[:3]}")
    sp = {x["sku"]: x for x in env.server_records(SVC, "Product")}
    bad = [pr["sku"] for i, pr in enumerate(products) if sp.get(pr["sku"], {}).get("stock")
           != 5000 + i]
    check(not bad, f"updates lost: {bad[:5]}")
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"downloadOnly"}')
    check(rc == 0, f"final download {rc}")
    compared = 0
    for o in OBJS:
        server = env.server_records(SVC, o)
        check(same_records(env.local_records(SVC, o), server), f"{o}: local == server")
        compared += len(server)
    st = served(env)
    print(f"lost acks: {lost} answers lost after the server applied them; {total_changes} "
          f"changes, {sessions} sessions (end codes {sorted(codes)}, {cancels} cancelled), "
          f"{kills_upload} es-upload and {kills_daemon} edgesyncd "
          f"SIGKILLs, upload cache hits {st.get('uploadCacheHits')}, {len(dups)} duplicates, "
          f"{len(missing)} lost, {compared} records compared, {time.time() - t_start:.0f}s",
          file=sys.stderr)
finally:
    env.close()
finish()
