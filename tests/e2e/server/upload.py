#!/usr/bin/env python3
"""edgesync-server end to end: upload (rowId order, auto keys, rejects, service level), the three
conflict policies, and the upload cache (repeat, in progress, X-Kony- header, persistence)."""
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srvlib import Server, run, strip_meta  # noqa: E402


def rec(obj, action, row_id, checksum="", **cols):
    r = dict(cols)
    r["_metadata"] = {"object": obj, "action": action, "checksum": checksum, "rowId": row_id,
                      "ignore_duplicate": "false"}
    return r


def cust(cid, row_id, action="create", checksum="", **extra):
    cols = {"id": cid, "name": "N%d" % cid, "active": True}
    cols.update(extra)
    return rec("Customer", action, row_id, checksum, **cols)


def answers(js):
    out = []
    for o in js["objects"]:
        for r in o["records"]:
            out.append((o["name"], r))
    return out


def by_id(s, obj="Customer"):
    return {r["id"]: r for r in s.admin_list(obj)}


def test_upload(s, c, n):
    # two temp keys, sent out of rowId order: applied and answered in rowId order
    st, js, _ = s.upload([cust(-1, 7, city="A"), cust(-2, 3, city="B"),
                          rec("Customer", "update", 9, "", id=-1, name="N-1 upd", active=False)],
                         "Customer")
    c.eq("upload status", (st, js["opstatus"], js["httpStatusCode"]), (200, 0, 200))
    a = answers(js)
    c.eq("answer count", len(a), 3)
    c.eq("answer rowIds in order", [r["_metadata"]["rowId"] for _, r in a], [3, 7, 9])
    c.eq("real keys", [r["id"] for _, r in a], [n + 1, n + 2, n + 2])
    c.eq("temp keys echoed", [r.get("_id") for _, r in a], [-2, -1, -1])
    c.eq("actions", [r["_metadata"]["action"] for _, r in a], ["create", "create", "update"])
    c.true("checksums fresh", all(re.fullmatch("[0-9a-f]{16}", r["_metadata"]["checksum"])
                                  for _, r in a) and a[1][1]["_metadata"]["checksum"] !=
           a[2][1]["_metadata"]["checksum"], a)
    c.eq("opstatus per record", [r["_metadata"]["opstatus"] for _, r in a], [0, 0, 0])
    c.eq("full record answered", sorted(strip_meta(a[0][1])),
         sorted(["id", "name", "active", "city"]))
    c.eq("counts", (js["_metadata"]["recordCount"], js["_metadata"]["successCount"],
                    js["_metadata"]["failureCount"]), (3, 3, 0))
    db = by_id(s)
    c.eq("stored B", (db[n + 1]["city"], db[n + 1]["name"]), ("B", "N%d" % -2))
    c.eq("update via temp key", (db[n + 2]["name"], db[n + 2]["active"]), ("N-1 upd", False))
    c.eq("answer = stored", strip_meta(a[2][1]), db[n + 2])
    # the key counter, held in memory during a request, is raised by an explicit key and
    # written back: the next temporary key of the same request and of the next one go above it
    st, js, _ = s.upload([cust(n + 10, 30), cust(-5, 31)], "Customer")
    c.eq("explicit key, then temp", [r["id"] for _, r in answers(js)], [n + 10, n + 11])
    st, js, _ = s.upload([cust(-6, 40), cust(-7, 41)], "Customer")
    c.eq("next request continues", [r["id"] for _, r in answers(js)], [n + 12, n + 13])
    recs, _, _ = s.download_all("Customer", 0, delta=str(n + n // 2 + n))
    c.eq("each row its own sequence", sorted(r["id"] for r in recs if r["id"] > n + 9),
         [n + 10, n + 11, n + 12, n + 13])
    # full update, partial update, delete
    st, js, _ = s.upload([
        rec("Customer", "update", 20, "", id=1, name="Full", active=True, tier=2),
        rec("Customer", "partialupdate", 21, "", id=2, city="Partial"),
        rec("Customer", "delete", 22, "", id=3)], "Customer")
    a = answers(js)
    db = by_id(s)
    c.eq("full update replaces", db[1], {"id": 1, "name": "Full", "active": True, "tier": 2})
    c.eq("partial keeps others", (db[2]["city"], "email" in db[2]), ("Partial", True))
    c.eq("delete applied", 3 in db, False)
    c.eq("delete answer", (a[2][1]["id"], a[2][1]["_metadata"]["action"], "name" in a[2][1]),
         (3, "delete", True))
    # the changes show up in a delta download with the same checksums
    recs, _, _ = s.download_all("Customer", 0, delta=str(n + n // 2 + n))
    got = {r["id"]: r["_metadata"] for r in recs}
    c.eq("delta sees upload checksum", got[1]["checksum"], a[0][1]["_metadata"]["checksum"])
    c.eq("delta sees delete", got[3]["action"], "delete")


def test_rejects(s, c, n):
    before = {o: s.admin_list(o) for o in ("Customer", "Product", "OrderLine")}
    st, js, _ = s.upload([
        rec("Customer", "create", 1, "", id=-5, active=True),                     # no name
        rec("Customer", "create", 2, "", id=-6, name="x", active=True, tier="abc"),  # type
        rec("Nope", "create", 3, "", id=1),                                       # object
        rec("Customer", "create", 4, "", id=-7, name="x", active=True, shoe=9),   # field
        rec("Customer", "create", 5, "", id=4, name="x", active=True),            # exists
        rec("Customer", "update", 6, "", id=99999, name="x", active=True),        # missing
        rec("Customer", "delete", 7, "", id=99998),                               # missing
        rec("Customer", "frobnicate", 8, "", id=4),                               # action
        rec("Customer", "update", 9, "", id=4, name=None, active=True),           # null
        rec("Customer", "update", 10, "", id=4, name="x" * 101, active=True),     # length
        rec("Customer", "create", 11, "", id=-8, name="x", active=True,
            created="yesterday"),                                                 # datetime
        rec("Customer", "update", 12, "", id=4, name="x", active=True, tier={"a": 1}),
        rec("Customer", "update", 13, "", id=4, active=True),                     # update
    ], None)
    c.eq("rejects status", (st, js["opstatus"]), (200, 0))
    a = answers(js)
    c.eq("one answer each", len(a), 13)
    c.eq("rejects rowIds", sorted(r["_metadata"]["rowId"] for _, r in a), list(range(1, 14)))
    c.eq("rejects counts", (js["_metadata"]["successCount"], js["_metadata"]["failureCount"]),
         (0, 13))
    m = {r["_metadata"]["rowId"]: (o, r) for o, r in a}
    expect = {1: (400, "missing required field 'name'"), 2: (400, "tier"),
              3: (404, "unknown object 'Nope'"), 4: (400, "unknown field 'shoe'"),
              5: (409, "exists"), 6: (404, "no record"), 7: (404, "no record"),
              8: (400, "frobnicate"), 9: (400, "name"), 10: (400, "name"),
              11: (400, "created"), 12: (400, "tier"), 13: (400, "missing required field")}
    for rid, (op, needle) in expect.items():
        o, r = m[rid]
        md = r["_metadata"]
        c.eq("reject %d opstatus" % rid, md["opstatus"], op)
        c.true("reject %d errmsg" % rid, needle in md.get("errmsg", ""), md)
        c.true("reject %d has no checksum" % rid, "checksum" not in md, md)
    c.eq("reject echoes key", m[5][1]["id"], 4)
    c.eq("reject unknown object grouped", m[3][0], "Nope")
    after = {o: s.admin_list(o) for o in ("Customer", "Product", "OrderLine")}
    c.eq("rejects changed nothing", after, before)
    # object endpoint with a record of another object
    st, js, _ = s.upload([rec("Product", "create", 1, "", sku="Z", name="z", price=1)],
                         "Customer")
    c.true("wrong endpoint object", "endpoint" in answers(js)[0][1]["_metadata"]["errmsg"], js)
    # service level: several objects, grouped by object
    st, js, _ = s.upload([
        rec("Product", "create", 2, "", sku="NEW-1", name="p", price=2.5),
        rec("OrderLine", "create", 1, "", orderId=777, lineNo=1, sku="NEW-1", qty=3),
        rec("Product", "update", 3, "", sku="NEW-1", name="p2", price=3)], None)
    c.eq("svc upload groups", [(o["name"], [r["_metadata"]["rowId"] for r in o["records"]])
                               for o in js["objects"]], [("OrderLine", [1]), ("Product", [2, 3])])
    c.eq("svc upload applied", [r["name"] for r in s.admin_list("Product") if r["sku"] == "NEW-1"],
         ["p2"])
    # envelope errors: whole request refused, nothing applied
    for body, needle in (({}, "records: expected an array"),
                         ({"records": {}}, "records: expected an array"),
                         ({"records": [1]}, "records[0]: expected an object"),
                         ({"records": [{"id": 1}]}, "records[0]._metadata"),
                         ({"records": [{"id": 1, "_metadata": {"action": "create"}}]},
                          "rowId"),
                         ({"records": [{"_metadata": {"rowId": "x1"}}]}, "rowId")):
        st, js, _ = s.call("POST", s.obj_path("Customer"), body,
                           {"X-Http-Method-Override": "UPLOAD"})
        c.true("envelope %s" % needle, st == 400 and js["opstatus"] == 400 and
               needle in js["errmsg"], (st, js))
    valid = json.dumps({"records": [cust(-9, 1)]})
    ok = 0
    for i in range(1, len(valid)):
        st, js, _ = s.call("POST", s.obj_path("Customer"), valid[:i],
                           {"X-Http-Method-Override": "UPLOAD"})
        ok += st == 400 and "malformed JSON" in js["errmsg"]
    c.eq("every upload prefix refused", ok, len(valid) - 1)
    c.eq("prefixes applied nothing", len(s.admin_list("Customer")), len(after["Customer"]))
    st = s.stats()
    c.true("stats applied", st["uploadApplied"]["Customer"] >= 6 and
           st["uploadApplied"]["Product"] >= 2, st)
    c.true("stats rejected", st["uploadRejected"]["Customer"] >= 12, st)


def test_policy(binary, c, policy, applied):
    s = Server(binary, "--generate", "10", "--policy", policy)
    try:
        meta = s.call("GET", "/services/metadata/v1/SampleSvc")[1]
        name = {"none": "None", "client": "Client Wins", "server": "Server Wins"}[policy]
        c.eq("%s metadata" % policy, meta["syncConflictResolutionPolicy"], name)
        st, js, _ = s.download("Customer")
        cs1 = {r["id"]: r["_metadata"]["checksum"] for r in js["records"]}
        s.edit("Customer", "update", {"id": 1, "city": "ServerCity"})
        s.edit("Customer", "update", {"id": 2, "city": "ServerCity"})
        server1 = by_id(s)[1]
        st, js, _ = s.upload([
            rec("Customer", "update", 1, cs1[1], id=1, name="Client", active=True,
                city="ClientCity"),
            rec("Customer", "delete", 2, cs1[2], id=2),
            rec("Customer", "update", 3, cs1[3], id=3, name="Fresh", active=True),
            rec("Customer", "update", 4, "", id=4, name="NoChecksum", active=True)], "Customer")
        a = answers(js)
        db = by_id(s)
        if applied:
            c.eq("%s stale update applied" % policy, db[1]["city"], "ClientCity")
            c.eq("%s stale delete applied" % policy, 2 in db, False)
        else:
            c.eq("%s stale update refused" % policy, db[1], server1)
            c.eq("%s server record returned" % policy, strip_meta(a[0][1]), server1)
            c.eq("%s no errmsg" % policy, "errmsg" in a[0][1]["_metadata"], False)
            c.eq("%s answer action" % policy, (a[0][1]["_metadata"]["action"],
                                               a[0][1]["_metadata"]["rowId"]), ("update", 1))
            c.eq("%s stale delete refused" % policy, db[2]["city"], "ServerCity")
            c.eq("%s delete answer is server record" % policy,
                 (a[1][1]["_metadata"]["action"], a[1][1]["city"]), ("update", "ServerCity"))
            cur = s.download("Customer")[1]["records"]
            c.eq("%s answer checksum is current" % policy, a[0][1]["_metadata"]["checksum"],
                 [r["_metadata"]["checksum"] for r in cur if r["id"] == 1][0])
        c.eq("%s fresh checksum applied" % policy, db[3]["name"], "Fresh")
        c.eq("%s empty checksum applied" % policy, db[4]["name"], "NoChecksum")
        c.eq("%s successCount" % policy, js["_metadata"]["successCount"], 4)
        conflicts = s.stats()["conflicts"]
        c.eq("%s conflicts counted" % policy, conflicts, 0 if policy == "none" else 2)
    finally:
        c.eq("%s exit" % policy, s.stop(), 0)


def test_cache(binary, c):
    s = Server(binary, "--generate", "10")
    try:
        h = {"X-Voltmx-RequestCacheId": "req-1"}
        st, js1, _ = s.upload([cust(-1, 1), cust(-2, 2)], "Customer", h)
        c.eq("cache first", (st, js1["_metadata"]["successCount"]), (200, 2))
        st, raw1_h, raw1 = s.raw("POST", s.obj_path("Customer"),
                                 {"records": [cust(-1, 1), cust(-2, 2)]},
                                 {"X-Http-Method-Override": "UPLOAD",
                                  "X-Voltmx-RequestCacheId": "req-1"})
        c.eq("cache repeat identical", json.loads(raw1), js1)
        c.eq("cache applied once", len(s.admin_list("Customer")), 12)
        st, js, _ = s.upload([cust(-1, 1)], "Customer", {"X-Kony-RequestCacheId": "req-1"})
        c.eq("kony header same id", js, js1)
        c.eq("cache hits", s.stats()["uploadCacheHits"], 2)
        st, js, _ = s.upload([cust(-1, 1)], "Customer", {"X-Voltmx-RequestCacheId": "req-2"})
        c.eq("new id applies", len(s.admin_list("Customer")), 13)
        # in progress: the first request is slowed after it is marked
        s.faults([{"kind": "apply_delay", "ms": 1500, "path": "/objects/Customer",
                   "method": "UPLOAD", "count": 1}])
        result = {}

        def first():
            result["first"] = s.upload([cust(-1, 1)], "Customer",
                                       {"X-Voltmx-RequestCacheId": "req-3"})

        t = threading.Thread(target=first)
        t.start()
        time.sleep(0.4)
        st, js, _ = s.upload([cust(-1, 1)], "Customer", {"X-Voltmx-RequestCacheId": "req-3"})
        c.eq("in progress", (st, js["opstatus"], js["errmsg"]),
             (200, 500210, "request already in progress"))
        t.join()
        st, js, _ = result["first"]
        c.eq("slow first completes", (st, js["_metadata"]["successCount"]), (200, 1))
        st, js2, _ = s.upload([cust(-1, 1)], "Customer", {"X-Voltmx-RequestCacheId": "req-3"})
        c.eq("after in progress: stored", js2, js)
        c.eq("applied once in all", len(s.admin_list("Customer")), 14)
        c.eq("in progress counted", s.stats()["uploadCacheInProgress"], 1)
        # the cache survives a restart
        d = s.data_dir
        s.own_dir = False
        s.stop(remove=False)
        s = Server(binary, "--generate", "10", data_dir=d)
        s.own_dir = True
        st, js, _ = s.upload([cust(-1, 1)], "Customer", {"X-Voltmx-RequestCacheId": "req-2"})
        c.eq("cache after restart", (len(s.admin_list("Customer")),
                                     s.stats()["uploadCacheHits"]), (14, 1))
        # a cached failure-free answer for rejects too
        st, js, _ = s.upload([cust(1, 1)], "Customer", {"X-Voltmx-RequestCacheId": "req-4"})
        st, js_again, _ = s.upload([cust(1, 1)], "Customer", {"X-Voltmx-RequestCacheId": "req-4"})
        c.eq("cached reject", js_again, js)
        st, js, _ = s.upload([cust(-1, 1)], "Customer",
                             {"X-Voltmx-RequestCacheId": "x" * 300})
        c.eq("overlong cache id", (st, js["opstatus"]), (400, 400))
    finally:
        c.eq("cache server exit", s.stop(), 0)
    # cache off: the id is ignored
    s = Server(binary, "--generate", "10", "--upload-cache", "off")
    try:
        c.eq("metadata uploadCache off",
             s.call("GET", "/services/metadata/v1/SampleSvc")[1]["uploadCache"], False)
        s.upload([cust(-1, 1)], "Customer", {"X-Voltmx-RequestCacheId": "same"})
        s.upload([cust(-1, 1)], "Customer", {"X-Voltmx-RequestCacheId": "same"})
        c.eq("cache off applies twice", len(s.admin_list("Customer")), 12)
    finally:
        c.eq("cache off exit", s.stop(), 0)


def g15(d):
    """What the server writes for a double: the shorter of %.15g and %.17g that reads back."""
    t = "%.15g" % d
    return t if float(t) == d else "%.17g" % d


def test_bodies(s, c):
    """Upload bodies read by the fast path and by yajl (escapes, comments, non-ASCII) give the same
    records; doubles come back formatted as before; nesting is bounded at 64 levels."""
    path = s.obj_path("Customer")
    up = {"X-Http-Method-Override": "UPLOAD"}
    # one record in plain JSON and the same in a form only yajl reads
    plain = ('{"records":[{"id":-1,"name":"Plain","city":"Porto","active":true,"_metadata":'
             '{"object":"Customer","action":"create","checksum":"","rowId":1}}]}')
    fancy = ('/* c */ {"records":[{"id":-1,"name":"Pl\\u0061in","city":"Po\\u0072to",'
             '"active":true,"_metadata":{"object":"Customer","action":"create",'
             '"checksum":"","rowId":1}}]} // end')
    answers_ = []
    for body in (plain, fancy):
        st, hd, raw = s.raw("POST", path, body, up)
        js = json.loads(raw)
        c.eq("body form status", (st, js["_metadata"]["successCount"]), (200, 1))
        answers_.append(strip_meta(js["objects"][0]["records"][0]))
    c.eq("fast and yajl paths read the same record", answers_[0]["name"], answers_[1]["name"])
    c.eq("escaped city", answers_[1]["city"], "Porto")
    # non-ASCII and escaped quotes come back escaped exactly once
    st, hd, raw = s.raw("POST", path, json.dumps({"records": [cust(-2, 2, name='Z\u00fc "q" \\',
                                                                  city="a\tb")]}), up)
    r = json.loads(raw)["objects"][0]["records"][0]
    c.eq("non-ASCII and escapes round-trip", (r["name"], r["city"]), ('Z\u00fc "q" \\', "a\tb"))
    # doubles: the answer text, not just the value
    values = [0.25, 0.1, 0.3, 1e-4, 0.0001234, 9.5e-5, 123456.789, -42.125, 99999999999999.9,
              999999999999999.0, 1e15, 1.5e300, 2.5e-7, 0.30000000000000004, 1 / 3.0, -0.0, 7.0,
              12345678.12345678, 0.123456789, 1e-5]
    recs = [cust(-10 - i, 10 + i, balance=v) for i, v in enumerate(values)]
    st, hd, raw = s.raw("POST", path, json.dumps({"records": recs}), up)
    texts = re.findall(r'"balance":([^,}]*)', raw.decode())
    c.eq("double texts", texts, [g15(v) for v in values])
    # nesting: 64 levels are fine, 65 are refused with a 400 naming the problem, on every
    # endpoint that reads a body
    deep_ok = '{"records":[],"x":' + "[" * 63 + "]" * 63 + "}"
    st, js, _ = s.call("POST", path, deep_ok, up)
    c.eq("64 levels accepted", (st, js["_metadata"]["recordCount"]), (200, 0))
    deep = '{"records":[],"x":' + "[" * 64 + "]" * 64 + "}"
    msg = "body: nested deeper than 64 levels"
    for what, p, h, port in (("upload", path, up, None),
                             ("download", path, {"X-Http-Method-Override": "GET"}, None),
                             ("faults", "/admin/faults", {}, s.admin_port)):
        st, js, _ = s.call("POST", p, deep, h, port=port)
        c.eq("65 levels refused: " + what, (st, js and js.get("errmsg")), (400, msg))
    huge = "[" * 2000000
    st, js, _ = s.call("POST", path, huge, up)
    c.eq("2,000,000 levels refused", (st, js["errmsg"]), (400, msg))
    # a syntax error before the 65th level is reported as such
    st, js, _ = s.call("POST", path, '{"a":1,,' + "[" * 70, up)
    c.true("syntax error first", st == 400 and "malformed JSON body" in js["errmsg"], js)
    st, js, _ = s.call("POST", path, '{"a":' + "[" * 70 + "x", up)
    c.eq("depth first", js["errmsg"], msg)


def main(binary, c):
    n = 20
    s = Server(binary, "--generate", str(n))
    try:
        test_upload(s, c, n)
        test_rejects(s, c, n)
        test_bodies(s, c)
    finally:
        c.eq("server exit", s.stop(), 0)
    test_policy(binary, c, "none", True)
    test_policy(binary, c, "client", True)
    test_policy(binary, c, "server", False)
    test_cache(binary, c)


if __name__ == "__main__":
    run(main)
