"""Local changes and upload, end to end: CRUD through the CLI, the pending-change log, fullSync
and uploadOnly uploads in RSN order in batches, temporary keys replaced by the server's, record
errors kept pending and reported, removeAfterUpload, rollback, and the upload cache making a
lost answer harmless (the server applies every change exactly once)."""
import json
import sys

from eslib import Env, check, finish, same_records, served

bindir = sys.argv[1]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]


def js(out):
    try:
        return json.loads(out)
    except ValueError:
        return {}


env = Env(bindir, generate="300")
try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"downloadOnly"}')
    check(rc == 0, f"initial download {rc} {err[-300:]}")
    cust = env.local_records(SVC, "Customer")
    prod = env.local_records(SVC, "Product")
    line = env.local_records(SVC, "OrderLine")

    # 1. Local edits: create with an auto-generated key, update, partial update, delete.
    new = {k: v for k, v in cust[0].items() if k != "id"}
    new["name"] = "Created Offline"
    new["email"] = "offline@example.com"
    rc, out, err = env.cli("create", SVC, "Customer", json.dumps(new))
    check(rc == 0, f"create {rc} {err}")
    temp = js(out).get("pk", {}).get("id")
    check(isinstance(temp, int) and temp < 0, f"temporary negative key: {out}")
    upd = dict(prod[0], price=1.25, title="Updated Offline") if "title" in prod[0] else dict(prod[0], price=1.25)
    rc, out, err = env.cli("update", SVC, "Product", json.dumps(prod[0]["sku"]), json.dumps(upd))
    check(rc == 0, f"update {rc} {err}")
    pk_line = {"orderId": line[0]["orderId"], "lineNo": line[0]["lineNo"]}
    rc, out, err = env.cli("partial-update", SVC, "OrderLine", json.dumps(pk_line), '{"qty":77}')
    check(rc == 0, f"partial update {rc} {err}")
    rc, out, err = env.cli("delete", SVC, "Customer", str(cust[1]["id"]))
    check(rc == 0, f"delete {rc} {err}")
    rc, out, err = env.cli("pending", SVC)
    check(rc == 0, f"pending {rc} {err}")
    pend = js(out)
    npend = sum(len(v.get("pendingSyncRecords", [])) for v in pend.values()) if isinstance(pend, dict) else 0
    check(npend == 4, f"4 pending records: {out[:300]}")

    # Bad local input: each a clear error, nothing written.
    for args, want in [(("update", SVC, "Customer", "999999", '{"name":"x"}'), "999999"),
                       (("create", SVC, "Customer", '{"nme":"x"}'), "nme"),
                       (("update", SVC, "Product", json.dumps(prod[1]["sku"]), '{"stock":"many"}'), "stock"),
                       (("partial-update", SVC, "Product", json.dumps(prod[1]["sku"]), '{"sku":"OTHER"}'), "sku"),
                       (("delete", SVC, "NoSuchObject", "1"), "NoSuchObject")]:
        rc, out, err = env.cli(*args)
        check(rc == 1 and want in err, f"{args[0]} bad input rejected naming {want}: {rc} {err}")
    rc, out, err = env.cli("pending", SVC)
    pend2 = js(out)
    check(pend2 == pend, "nothing written by the rejected calls")

    # 2. fullSync: upload in batches of 2, then download.
    rc, out, err = env.cli("sync", SVC, "--options",
                           '{"uploadBatchSize":2,"getSyncStats":true}', "--json")
    check(rc == 0, f"fullSync {rc} {out[:300]} {err[-500:]}")
    res = js(out)
    st = res.get("syncStats", {})
    check(st.get("totalUploadedRecords") == 4, f"uploaded 4: {st.get('totalUploadedRecords')}")
    check(len(st.get("uploadStats", [])) == 2, f"2 upload batches: {st.get('uploadStats')}")
    events = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
    order = [(e["phase"], e["state"]) for e in events]
    first_down = next((i for i, p in enumerate(order) if p[0] == "Download"), len(order))
    last_up = max((i for i, p in enumerate(order) if p[0] == "Upload"), default=-1)
    check(last_up < first_down, "every Upload event precedes the downloads")
    rc, out, err = env.cli("pending", SVC)
    pend = js(out)
    check(sum(len(v.get("pendingSyncRecords", [])) for v in pend.values()) == 0,
          f"nothing pending after upload: {out[:200]}")
    srv_c = env.server_records(SVC, "Customer")
    created = [c for c in srv_c if c["name"] == "Created Offline"]
    check(len(created) == 1 and created[0]["id"] > 0, f"created once with a real key: {created}")
    local_created = [c for c in env.local_records(SVC, "Customer") if c["name"] == "Created Offline"]
    check(len(local_created) == 1 and local_created[0]["id"] == (created[0]["id"] if created else None),
          f"the temporary key was replaced locally: {local_created}")
    check(not any(c["id"] == cust[1]["id"] for c in srv_c), "delete reached the server")
    for o in OBJS:
        check(same_records(env.local_records(SVC, o), env.server_records(SVC, o)),
              f"{o}: local == server after fullSync")

    # 3. A record the server rejects stays pending and is reported; the sync still succeeds.
    sku = "SKU-CONFLICT-1"
    srv_p = dict(env.server_records(SVC, "Product")[0], sku=sku)
    env.admin_post(f"/admin/records/{SVC}/Product", {"op": "create", "record": srv_p})
    rc, out, err = env.cli("create", SVC, "Product", json.dumps(dict(srv_p, price=3.5)))
    check(rc == 0, f"local create of a key the server already has: {rc} {err}")
    rc, out, err = env.cli("sync", SVC, "Product", "--options", '{"syncType":"uploadOnly"}')
    res = js(out)
    errs = res.get("syncErrors", {}).get("upload", [])
    check(rc == 0 and res.get("status") == 0 and len(errs) == 1 and
          errs[0].get("object") == "Product" and errs[0].get("errmsg"),
          f"partial failure reported in syncErrors: {rc} {out[:400]}")
    rc, out, err = env.cli("pending", SVC, "Product")
    check(len(js(out).get("pendingSyncRecords", [])) == 1, f"the rejected change stays: {out}")
    rc, out, err = env.cli("rollback", SVC, "Product", json.dumps(sku))
    check(rc == 0, f"rollback of the rejected create {rc} {err}")
    rc, out, err = env.cli("pending", SVC, "Product")
    check(len(js(out).get("pendingSyncRecords", [])) == 0, "rollback removed it")
    check(not env.local_records(SVC, "Product", json.dumps(sku)), "rolled-back create is gone")

    # 3b. Pending-edit protection (SPEC 3.6.5): a download does not overwrite a row with a
    #     pending change; the server version becomes its baseline, which rollback restores.
    c = env.local_records(SVC, "Customer")[5]
    rc, out, err = env.cli("partial-update", SVC, "Customer", str(c["id"]), '{"city":"Mine"}')
    check(rc == 0, f"local edit {err}")
    env.admin_post(f"/admin/records/{SVC}/Customer", {"op": "update", "record":
                                                     {"id": c["id"], "city": "ServerCity"}})
    rc, out, err = env.cli("sync", SVC, "Customer", "--options", '{"syncType":"downloadOnly"}')
    check(rc == 0, f"download over a pending edit {rc} {out[:200]}")
    loc = env.local_records(SVC, "Customer", str(c["id"]))
    check(loc and loc[0]["city"] == "Mine", f"pending edit kept: {loc}")
    rc, out, err = env.cli("rollback", SVC, "Customer", str(c["id"]))
    loc = env.local_records(SVC, "Customer", str(c["id"]))
    check(rc == 0 and loc and loc[0]["city"] == "ServerCity",
          f"rollback restores the downloaded baseline: {loc}")

    # 4. The upload cache: the answer is lost after the server applied the batch; the same
    #    request id is sent again and the server answers from its cache.
    before = served(env)
    env.admin_post("/admin/faults", {"seed": 5, "rules": [{"kind": "lost_response", "count": 1,
                                                           "method": "UPLOAD"}]})
    names = []
    for i in range(3):
        rec = dict(new, name=f"Lost Answer {i}", email=f"lost{i}@example.com")
        rc, out, err = env.cli("create", SVC, "Customer", json.dumps(rec))
        names.append(rec["name"])
    rc, out, err = env.cli("sync", SVC, "Customer", "--options", '{"syncType":"uploadOnly"}')
    check(rc == 0, f"upload through a lost answer: {rc} {out[:300]}")
    after = served(env)
    env.admin_post("/admin/faults", {"rules": []})
    srv_c = env.server_records(SVC, "Customer")
    for n in names:
        check(sum(1 for c in srv_c if c["name"] == n) == 1, f"'{n}' applied exactly once")
    check(after["uploadCacheHits"] > before["uploadCacheHits"], "answered from the upload cache")

    # 5. removeAfterUpload with uploadOnly: uploaded rows leave the device.
    rec = dict(new, name="Remove After", email="remove@example.com")
    env.cli("create", SVC, "Customer", json.dumps(rec))
    rc, out, err = env.cli("sync", SVC, "--options",
                           '{"syncType":"uploadOnly","removeAfterUpload":["Customer"]}')
    check(rc == 0, f"uploadOnly with removeAfterUpload: {rc} {out[:300]}")
    check(any(c["name"] == "Remove After" for c in env.server_records(SVC, "Customer")),
          "uploaded")
    check(not any(c["name"] == "Remove After" for c in env.local_records(SVC, "Customer")),
          "removed from the device after upload")
finally:
    env.close()
finish()
