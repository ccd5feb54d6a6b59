"""Upload data safety, end to end against the reference server:
1. an edit made with trackChanges:false while the upload of that row is in flight (server
   apply_delay) survives the upload answer; the answer still clears the pending change and sets
   the real key; downloads keep protecting the row and rollback restores the server version;
2. a whole-batch failure answer (root opstatus 500400, body fault) that still carries
   per-record successes: those are applied (real keys, not pending), the rejected record stays
   pending, and the next sync creates no duplicate;
3. rollback/clear of a change carried by a cached request whose answer was lost are refused
   (code 2461, "Sync first"); other changes roll back and the cached row stays; the next sync replays
   it under the same request id: every change applied exactly once, the rolled-back one never."""
import json
import sys
import time

from eslib import Env, Sync, check, finish, served

bindir = sys.argv[1]
SVC = "SampleSvc"
UNTRACKED = '{"trackChanges":false}'


def js(out):
    try:
        return json.loads(out)
    except ValueError:
        return {}


def pending(env, obj="Customer"):
    rc, out, err = env.cli("pending", SVC, obj)
    return js(out).get("pendingSyncRecords", []) if rc == 0 else None


def by_name(recs, name):
    return [r for r in recs if r.get("name") == name]


def wait_event(sync, phase, state, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(e.get("phase") == phase and e.get("state") == state for e in sync.events):
            return True
        time.sleep(0.02)
    return False


env = Env(bindir, generate="50")
try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"downloadOnly"}')
    check(rc == 0, f"initial download {rc} {err[-300:]}")
    cust = env.local_records(SVC, "Customer")
    template = {k: v for k, v in cust[0].items() if k != "id"}

    # 1. Untracked edit while the upload of the same rows is in flight.
    c = cust[3]
    rc, out, err = env.cli("partial-update", SVC, "Customer", str(c["id"]), '{"name":"Sent Name"}')
    check(rc == 0, f"tracked edit {rc} {err}")
    rc, out, err = env.cli("create", SVC, "Customer",
                           json.dumps(dict(template, name="Temp Sent", city="SentCity")))
    temp = js(out).get("pk", {}).get("id")
    check(rc == 0 and isinstance(temp, int) and temp < 0, f"create with a temporary key: {out}")
    env.admin_post("/admin/faults", {"rules": [{"kind": "apply_delay", "ms": 2500, "count": 1,
                                                "method": "UPLOAD"}]})
    s = Sync(env, SVC, "Customer", "--options", '{"syncType":"uploadOnly"}')
    check(wait_event(s, "Upload", "InProgress"), "upload in flight")
    time.sleep(0.3)
    rc, out, err = env.cli("partial-update", SVC, "Customer", str(c["id"]),
                           '{"city":"LocalLater"}', "--options", UNTRACKED)
    check(rc == 0, f"untracked edit during the upload {rc} {err}")
    rc, out, err = env.cli("partial-update", SVC, "Customer", json.dumps({"id": temp}),
                           '{"city":"LocalTemp"}', "--options", UNTRACKED)
    check(rc == 0, f"untracked edit of the temporary key during the upload {rc} {err}")
    rc, out = s.result()
    env.admin_post("/admin/faults", {"rules": []})
    check(rc == 0, f"upload with the delay {rc} {out[:300]}")
    check(pending(env) == [], f"the answer cleared the pending changes: {pending(env)}")
    loc = env.local_records(SVC, "Customer", str(c["id"]))
    check(loc and loc[0]["name"] == "Sent Name" and loc[0]["city"] == "LocalLater",
          f"local: the uploaded change and the later untracked edit: {loc}")
    srv = [r for r in env.server_records(SVC, "Customer") if r["id"] == c["id"]]
    check(srv and srv[0]["name"] == "Sent Name" and srv[0]["city"] == c["city"],
          f"server: the uploaded change only: {srv}")
    made = by_name(env.server_records(SVC, "Customer"), "Temp Sent")
    check(len(made) == 1 and made[0]["id"] > 0 and made[0]["city"] == "SentCity",
          f"the create reached the server once: {made}")
    local_made = by_name(env.local_records(SVC, "Customer"), "Temp Sent")
    check(len(local_made) == 1 and made and local_made[0]["id"] == made[0]["id"] and
          local_made[0]["city"] == "LocalTemp",
          f"real key set locally, untracked edit kept: {local_made}")
    # A download does not overwrite the untracked edits; rollback restores the server version.
    rc, out, err = env.cli("sync", SVC, "Customer", "--options", '{"syncType":"downloadOnly"}')
    check(rc == 0, f"download {rc} {out[:200]}")
    loc = env.local_records(SVC, "Customer", str(c["id"]))
    check(loc and loc[0]["city"] == "LocalLater", f"download keeps the untracked edit: {loc}")
    rc, out, err = env.cli("rollback", SVC, "Customer", str(c["id"]))
    loc = env.local_records(SVC, "Customer", str(c["id"]))
    check(rc == 0 and loc and loc[0]["city"] == c["city"] and loc[0]["name"] == "Sent Name",
          f"rollback restores the server version: {rc} {err} {loc}")

    # 2. A whole-batch failure whose answer still carries per-record successes.
    prod = env.server_records(SVC, "Product")[0]
    dup = dict(prod, sku="SKU-SAFETY-DUP")
    env.admin_post(f"/admin/records/{SVC}/Product", {"op": "create", "record": dup})
    rc, out, err = env.cli("create", SVC, "Product", json.dumps(dict(dup, price=9.5)))
    check(rc == 0, f"local create of a key the server has {rc} {err}")
    names = [f"Batch Fail {i}" for i in range(3)]
    for n in names:
        rc, out, err = env.cli("create", SVC, "Customer", json.dumps(dict(template, name=n)))
        check(rc == 0, f"create {n} {rc} {err}")
    env.admin_post("/admin/faults", {"rules": [{
        "kind": "body", "method": "UPLOAD", "count": 1,
        "set": [{"path": "opstatus", "value": 500400},
                {"path": "errmsg", "value": "backend failed part way"}]}]})
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"uploadOnly"}', "--json")
    env.admin_post("/admin/faults", {"rules": []})
    res = js(out)
    check(rc != 0 and res.get("errorCode", res.get("code")) == 2038,
          f"the failed batch fails the sync with 2038: {rc} {out[:400]}")
    srv_c = env.server_records(SVC, "Customer")
    loc_c = env.local_records(SVC, "Customer")
    for n in names:
        s_ = by_name(srv_c, n)
        l_ = by_name(loc_c, n)
        check(len(s_) == 1 and len(l_) == 1 and l_[0]["id"] == s_[0]["id"] > 0,
              f"'{n}': applied by the server, its answer applied locally (real key): {s_} {l_}")
    check(pending(env) == [], f"the applied creates are not pending: {pending(env)}")
    check(len(pending(env, "Product")) == 1, "the rejected record stays pending")
    rc, out, err = env.cli("rollback", SVC, "Product", json.dumps("SKU-SAFETY-DUP"))
    check(rc == 0, f"rollback of the rejected create {rc} {err}")
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"uploadOnly"}')
    check(rc == 0, f"next sync {rc} {out[:300]}")
    srv_c = env.server_records(SVC, "Customer")
    for n in names:
        check(len(by_name(srv_c, n)) == 1, f"'{n}' not duplicated by the next sync")

    # 3. Rollback and clear against a cached request whose answer was lost.
    x, y = cust[6], cust[7]
    lost = [f"Lost {i}" for i in range(2)]
    temps = []
    for n in lost:
        rc, out, err = env.cli("create", SVC, "Customer", json.dumps(dict(template, name=n)))
        temps.append(js(out).get("pk", {}).get("id"))
    rc, out, err = env.cli("partial-update", SVC, "Customer", str(x["id"]), '{"city":"X Sent"}')
    check(rc == 0, f"tracked update {rc} {err}")
    env.admin_post("/admin/faults", {"rules": [{"kind": "lost_response", "method": "UPLOAD"}]})
    rc, out, err = env.cli("sync", SVC, "Customer", "--options", '{"syncType":"uploadOnly"}')
    check(rc != 0, f"every answer lost: the sync fails {rc} {out[:200]}")
    env.admin_post("/admin/faults", {"rules": []})
    check(all(len(by_name(env.server_records(SVC, "Customer"), n)) == 1 for n in lost),
          "the server applied the request whose answers were lost")
    rc, out, err = env.cli("partial-update", SVC, "Customer", str(y["id"]), '{"city":"Y Later"}')
    check(rc == 0, f"a change made after the failed sync {rc} {err}")
    before = json.dumps(env.local_records(SVC, "Customer"), sort_keys=True)
    for args in [("rollback", SVC, "Customer", json.dumps({"id": temps[0]})),
                 ("rollback", SVC, "Customer", str(x["id"])),
                 ("rollback", SVC, "Customer"), ("rollback", SVC),
                 ("clear", SVC, "Customer", json.dumps({"id": temps[1]})), ("clear", SVC)]:
        rc, out, err = env.cli(*args)
        check(rc != 0 and "Sync first" in err and "whose answer never arrived" in err,
              f"{' '.join(args[:3])}: refused, naming why: {rc} {out[:200]} {err[:300]}")
    check(json.dumps(env.local_records(SVC, "Customer"), sort_keys=True) == before,
          "the refused calls changed nothing")
    rc, out, err = env.cli("rollback", SVC, "Customer", str(y["id"]))
    check(rc == 0, f"a change outside the cached request rolls back {rc} {err}")
    hits = served(env)["uploadCacheHits"]
    rc, out, err = env.cli("sync", SVC, "Customer", "--options", '{"syncType":"uploadOnly"}')
    check(rc == 0, f"the next sync replays the cached request {rc} {out[:300]}")
    check(served(env)["uploadCacheHits"] > hits, "answered from the server's upload cache")
    srv_c = env.server_records(SVC, "Customer")
    loc_c = env.local_records(SVC, "Customer")
    for n in lost:
        s_, l_ = by_name(srv_c, n), by_name(loc_c, n)
        check(len(s_) == 1 and len(l_) == 1 and l_[0]["id"] == s_[0]["id"] > 0,
              f"'{n}' exactly once, real key locally: {s_} {l_}")
    sx = [r for r in srv_c if r["id"] == x["id"]]
    check(sx and sx[0]["city"] == "X Sent", f"the cached update applied: {sx}")
    sy = [r for r in srv_c if r["id"] == y["id"]]
    check(sy and sy[0]["city"] == y["city"], f"the rolled-back change never reached the server: {sy}")
    check(pending(env) == [], f"nothing pending: {pending(env)}")
finally:
    env.close()
finish()
