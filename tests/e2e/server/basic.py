#!/usr/bin/env python3
"""edgesync-server end to end: appconfig, metadata, object and service download (batches,
filters, delta, deletes), batch stability under concurrent edits, keys-only listing, auth, bad
input, persistence, reset and loading."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srvlib import SVC, Server, run, strip_meta  # noqa: E402


def key_of(obj, rec):
    if obj == "Customer":
        return rec["id"]
    if obj == "Product":
        return rec["sku"]
    return (rec["orderId"], rec["lineNo"])


def apply(state, obj, records):
    """Apply downloaded records to a client-side dict the way a client does."""
    for r in records:
        k = key_of(obj, r)
        if r["_metadata"]["action"] == "delete":
            state.pop(k, None)
        else:
            state[k] = strip_meta(r)


def server_state(s, obj):
    return {key_of(obj, r): r for r in s.admin_list(obj)}


def test_meta(s, c):
    st, js, _ = s.call("GET", "/appconfig", headers={"Host": "example.test:1234"})
    c.eq("appconfig status", st, 200)
    svc = js["objectsvc"][SVC]
    c.eq("appconfig url", svc["url"], "http://example.test:1234/services/data/v1/SampleSvc")
    c.eq("appconfig metadata_url", svc["metadata_url"],
         "http://example.test:1234/services/metadata/v1/SampleSvc")
    c.eq("appconfig version", svc["version"], "1.0")
    st, js, _ = s.call("GET", "/appconfig", headers={"Host": "bad host\"x"})
    c.eq("appconfig hostile Host falls back", js["objectsvc"][SVC]["url"],
         "http://127.0.0.1:%d/services/data/v1/SampleSvc" % s.port)
    st, meta, hd = s.call("GET", "/services/metadata/v1/SampleSvc")
    c.eq("metadata status", st, 200)
    c.eq("metadata content type", hd.get("content-type"), "application/json")
    c.eq("metadata objects", [o["name"] for o in meta["objects"]],
         ["Customer", "Product", "OrderLine"])
    c.eq("metadata keys", [o["key"] for o in meta["objects"]],
         [["id"], ["sku"], ["orderId", "lineNo"]])
    c.eq("metadata uploadCache", meta["uploadCache"], True)
    c.eq("metadata policy", meta["syncConflictResolutionPolicy"], "None")
    c.eq("metadata version", meta["version"], "1.0")
    cust = meta["objects"][0]
    c.eq("Customer fields", len(cust["fields"]), 10)
    c.eq("Customer id auto", cust["fields"][0]["auto_generated"], True)
    c.eq("Customer types", [f["datatype"] for f in cust["fields"]],
         ["int", "string", "string", "string", "string", "number", "boolean", "datetime",
          "int", "string"])
    st, js, _ = s.call("GET", "/services/metadata/v1/Nope")
    c.eq("metadata unknown svc", (st, js["opstatus"]), (404, 404))
    c.true("metadata unknown svc errmsg", "Nope" in js["errmsg"], js)


def test_download(s, c, n):
    counts = {"Customer": n, "Product": n // 2, "OrderLine": n}
    for obj, cnt in counts.items():
        st, js, _ = s.download(obj, **{"$batchsize": "0"})
        c.eq("%s all status" % obj, st, 200)
        c.eq("%s all count" % obj, len(js["records"]), cnt)
        c.eq("%s hasMore" % obj, js["hasMoreRecords"], "false")
        c.eq("%s recordCount" % obj, js["_metadata"]["recordCount"], cnt)
        c.eq("%s opstatus" % obj, (js["opstatus"], js["httpStatusCode"]), (0, 200))
        c.true("%s actions" % obj, all(r["_metadata"]["action"] == "create" and
                                        len(r["_metadata"]["checksum"]) == 16
                                        for r in js["records"]))
        listed = s.admin_list(obj)
        c.eq("%s equals admin list" % obj,
             sorted(json.dumps(strip_meta(r), sort_keys=True) for r in js["records"]),
             sorted(json.dumps(r, sort_keys=True) for r in listed))
        sizes = [len(json.dumps(strip_meta(r))) for r in js["records"]]
        c.true("%s ~300 bytes" % obj, 200 <= sum(sizes) / len(sizes) <= 400, sum(sizes) / len(sizes))
        c.true("%s 10 fields" % obj, all(len(strip_meta(r)) >= 9 for r in js["records"]))
    # no $batchsize = everything
    st, js, _ = s.download("Customer")
    c.eq("no batchsize = all", len(js["records"]), n)
    # batches
    recs, delta, batches = s.download_all("Customer", 7)
    keys = [r["id"] for r in recs]
    c.eq("batched count", len(keys), n)
    c.eq("batched no repeats", len(set(keys)), n)
    c.eq("batched batches", batches, (n + 6) // 7)
    c.eq("batched key order = change order", keys, list(range(1, n + 1)))
    total = n + n // 2 + n
    c.eq("final delta is max seq", delta, str(total))
    # composite key object in batches
    recs, _, _ = s.download_all("OrderLine", 9)
    c.eq("OrderLine batched", len({(r["orderId"], r["lineNo"]) for r in recs}), n)
    # batch context shape
    st, js, _ = s.download("Product", **{"$batchsize": "5"})
    c.eq("bc shape", js["delta_context"]["objs"]["Product"],
         {"delta": "0", "bc": {"bdelta": "0", "batchid": str(n + 5), "bhi": str(total)}})
    c.eq("curobj", js["delta_context"]["curobj"], "Product")
    # exactly divisible: no empty trailing batch
    recs, _, batches = s.download_all("Product", n // 2)
    c.eq("exact batch count", (len(recs), batches), (n // 2, 1))


def test_filter(s, c, n):
    listed = s.admin_list("Customer")
    want = sorted(r["id"] for r in listed if r["tier"] == 3)
    recs, _, _ = s.download_all("Customer", 4, filter="tier eq 3")
    c.eq("filter tier eq 3", sorted(r["id"] for r in recs), want)
    want = sorted(r["id"] for r in listed if r["city"] in ("Lisbon", "Tokyo") and r["active"])
    recs, _, _ = s.download_all("Customer", 0,
                                filter="(city eq 'Lisbon' or city eq 'Tokyo') and active eq true")
    c.eq("filter and/or", sorted(r["id"] for r in recs), want)
    want = sorted(r["id"] for r in listed if r["name"].startswith("A"))
    recs, _, _ = s.download_all("Customer", 3, filter="startswith(name,'A')")
    c.eq("filter startswith", sorted(r["id"] for r in recs), want)
    # a filter the parser rejects: all records and a warning
    st, js, _ = s.download("Customer", **{"$filter": "nosuchcolumn eq 1", "$batchsize": "0"})
    c.eq("bad filter status", st, 200)
    c.eq("bad filter all records", len(js["records"]), n)
    c.true("bad filter warning", "warning" in js and "filter" in js["warning"], js.get("warning"))
    st, js, _ = s.download("Customer", **{"$filter": "tier eq", "$batchsize": "0"})
    c.true("bad filter 2 warning", "position" in js.get("warning", ""), js.get("warning"))


def test_delta(s, c, n):
    recs, delta, _ = s.download_all("Customer", 0)
    state = {}
    apply(state, "Customer", recs)
    st, js, _ = s.edit("Customer", "update", {"id": 2, "city": "Paris"})
    c.eq("admin update", st, 200)
    c.eq("admin update merged", js["record"]["city"], "Paris")
    st, js, _ = s.edit("Customer", "delete", {"id": 3})
    c.eq("admin delete", st, 200)
    st, js, _ = s.edit("Customer", "create", {"name": "New Person", "active": True})
    c.eq("admin create auto key", (st, js["record"]["id"]), (200, n + 1))
    st, js, _ = s.edit("Customer", "update", {"id": 9999, "city": "X"})
    c.eq("admin update missing", st, 404)
    st, js, _ = s.edit("Customer", "create", {"id": 2, "name": "Dup", "active": True})
    c.eq("admin create existing", st, 409)
    recs, delta2, _ = s.download_all("Customer", 2, delta=delta)
    by = {r["id"]: r for r in recs}
    c.eq("delta ids", sorted(by), [2, 3, n + 1])
    c.eq("delta update action", by[2]["_metadata"]["action"], "update")
    c.eq("delta update value", by[2]["city"], "Paris")
    c.eq("delta delete", by[3], {"id": 3, "_metadata": {"action": "delete", "checksum": ""}})
    c.eq("delta create action", by[n + 1]["_metadata"]["action"], "create")
    c.true("delta advanced", int(delta2) > int(delta), (delta, delta2))
    apply(state, "Customer", recs)
    c.eq("client state after delta", state,
         {k: v for k, v in server_state(s, "Customer").items()})
    recs, delta3, _ = s.download_all("Customer", 5, delta=delta2)
    c.eq("empty delta", (recs, delta3), ([], delta2))
    # initial download never carries tombstones
    recs, _, _ = s.download_all("Customer", 0)
    c.eq("initial skips deletes", len(recs), n)
    c.true("initial no delete actions",
           all(r["_metadata"]["action"] != "delete" for r in recs))
    # recreate a deleted key: a create again
    st, js, _ = s.edit("Customer", "create", {"id": 3, "name": "Back", "active": False})
    c.eq("recreate deleted", st, 200)
    recs, _, _ = s.download_all("Customer", 0, delta=delta2)
    c.eq("recreated comes as create", [(r["id"], r["_metadata"]["action"]) for r in recs],
         [(3, "create")])
    # filtered delta: deletes of matching records are reported
    st, js, _ = s.edit("Customer", "delete", {"id": 3})
    recs, _, _ = s.download_all("Customer", 0, delta=delta2, filter="name eq 'Back'")
    c.eq("filtered delta delete", [(r["id"], r["_metadata"]["action"]) for r in recs],
         [(3, "delete")])


def test_stability(s, c):
    """Edits between the batches of one session: nothing repeated, nothing lost."""
    recs0, delta0, _ = s.download_all("OrderLine", 0)
    state = {}
    apply(state, "OrderLine", recs0)
    seen_keys = []
    edits = {"n": 0}

    def between(batch):
        # change a record already delivered, one not yet delivered, delete one of each,
        # create new ones
        i = edits["n"]
        edits["n"] += 1
        delivered = seen_keys[-1] if seen_keys else (1, 1)
        s.edit("OrderLine", "update",
               {"orderId": delivered[0], "lineNo": delivered[1], "qty": 100 + i})
        ahead = (12 - i % 3, 1 + i % 4)
        s.edit("OrderLine", "update", {"orderId": ahead[0], "lineNo": ahead[1], "qty": 500 + i})
        s.edit("OrderLine", "create",
               {"orderId": 1000 + i, "lineNo": 1, "sku": "SKU-1", "qty": 1})
        if i == 1:
            s.edit("OrderLine", "delete", {"orderId": 1, "lineNo": 2})
            s.edit("OrderLine", "delete", {"orderId": 13, "lineNo": 3})

    records = []
    body = {"delta_context": {"objs": {"OrderLine": {"delta": delta0}}}}
    # a full initial session under edits
    body = {}
    while True:
        st, js, _ = s.download("OrderLine", body, **{"$batchsize": "6"})
        records.extend(js["records"])
        seen_keys.extend((r["orderId"], r["lineNo"]) for r in js["records"])
        if js["hasMoreRecords"] != "true":
            delta1 = js["delta_context"]["objs"]["OrderLine"]["delta"]
            break
        between(len(records))
        body = {"delta_context": js["delta_context"]}
    keys = [(r["orderId"], r["lineNo"]) for r in records]
    c.eq("stability: no repeats in session", len(keys), len(set(keys)))
    client = {}
    apply(client, "OrderLine", records)
    recs2, _, _ = s.download_all("OrderLine", 4, delta=delta1)
    keys2 = [(r["orderId"], r["lineNo"]) for r in recs2]
    c.eq("stability: no repeats in delta", len(keys2), len(set(keys2)))
    apply(client, "OrderLine", recs2)
    c.eq("stability: client == server after delta", client, server_state(s, "OrderLine"))
    c.true("stability: edits happened", edits["n"] >= 5, edits)


def test_keys(s, c, n):
    st, js, _ = s.download("Customer", **{"$select": "id", "$batchsize": "4"})
    c.eq("keys status", st, 200)
    c.eq("keys first batch", js["records"], [{"id": 1}, {"id": 2}, {"id": 4}, {"id": 5}])
    recs, ctx = [], {}
    body = {}
    batches = 0
    while True:
        st, js, _ = s.download("Customer", body, **{"$select": "id", "$batchsize": "4"})
        recs.extend(js["records"])
        batches += 1
        if js["hasMoreRecords"] != "true":
            ctx = js["delta_context"]
            break
        body = {"delta_context": js["delta_context"]}
    live = sorted(r["id"] for r in s.admin_list("Customer"))
    c.eq("keys all live in key order", [r["id"] for r in recs], live)
    c.eq("keys only key columns", all(list(r) == ["id"] for r in recs), True)
    c.eq("keys final context has no delta", ctx["objs"]["Customer"], {})
    want = sorted((r["orderId"], r["lineNo"]) for r in s.admin_list("OrderLine")
                  if r["qty"] > 10)
    recs, body = [], {}
    while True:
        st, js, _ = s.download("OrderLine", body, **{"$select": "orderId, lineNo",
                                                     "$batchsize": "7", "$filter": "qty gt 10"})
        recs.extend(js["records"])
        if js["hasMoreRecords"] != "true":
            break
        body = {"delta_context": js["delta_context"]}
    c.eq("keys composite filtered", [(r["orderId"], r["lineNo"]) for r in recs], want)
    st, js, _ = s.download("Customer", **{"$select": "id,name"})
    c.eq("keys non-key column", (st, js["opstatus"]), (400, 400))
    c.true("keys non-key errmsg", "name" in js["errmsg"], js)
    st, js, _ = s.download("Customer", **{"$select": "bogus"})
    c.true("keys unknown column", st == 400 and "bogus" in js["errmsg"], js)
    st, js, _ = s.download("OrderLine", **{"$select": "orderId"})
    c.true("keys partial composite", st == 400 and "every" in js["errmsg"], js)
    st, js, _ = s.download("Customer", {"delta_context": {"objs": {"Customer": {"delta": "5"}}}},
                           **{"$select": "id"})
    c.true("keys with delta refused", st == 400 and "delta" in js["errmsg"], js)
    st, js, _ = s.download("Customer", {"delta_context": {"objs": {"Customer": {
        "bc": {"batchid": "zz"}}}}}, **{"$select": "id"})
    c.true("keys bad batchid", st == 400 and "batchid" in js["errmsg"], js)


def service_session(s, objs_body, batchsize):
    """Service level session: returns ({obj: records}, final delta_context, batches)."""
    body = {"delta_context": {"objs": objs_body}} if objs_body else {}
    out, batches = {}, 0
    while True:
        st, js, _ = s.call("POST", s.svc_path(offline="true", **{"$batchsize": str(batchsize)}),
                           body, {"X-Http-Method-Override": "GET"})
        if st != 200:
            raise RuntimeError("service download: %d %r" % (st, js))
        batches += 1
        for o in js["Objects"]:
            assert o["opstatus"] == 0 and o["httpStatusCode"] == 200
            out.setdefault(o["name"], []).extend(o["records"])
        if js["hasMoreRecords"] != "true":
            return out, js["delta_context"], batches
        body = {"delta_context": js["delta_context"]}


def test_service(s, c):
    counts = {o: len(s.admin_list(o)) for o in ("Customer", "Product", "OrderLine")}
    out, ctx, batches = service_session(s, None, 10)
    for o, cnt in counts.items():
        keys = [key_of(o, r) for r in out.get(o, [])]
        c.eq("svc %s count" % o, len(keys), cnt)
        c.eq("svc %s no repeats" % o, len(set(keys)), cnt)
    c.eq("svc batches", batches, (max(counts.values()) + 9) // 10)
    deltas = {o: ctx["objs"][o]["delta"] for o in counts}
    c.eq("svc one snapshot delta", len(set(deltas.values())), 1)
    c.true("svc final has no bc", all("bc" not in ctx["objs"][o] for o in counts), ctx)
    # filter through odatastring, kept across batches
    listed = s.admin_list("Customer")
    want = sorted(r["id"] for r in listed if (r.get("tier") or 0) >= 4)
    out, ctx, _ = service_session(s, {"Customer": {"odatastring": "$filter=tier ge 4"}}, 3)
    c.eq("svc odatastring filter", sorted(r["id"] for r in out["Customer"]), want)
    c.eq("svc odatastring echoed", ctx["objs"]["Customer"].get("odatastring"),
         "$filter=tier ge 4")
    st, js, _ = s.call("POST", s.svc_path(offline="true", **{"$batchsize": "0"}),
                       {"delta_context": {"objs": {"Customer": {"odatastring":
                                                                "$filter=nope eq 1"}}}},
                       {"X-Http-Method-Override": "GET"})
    cust = [o for o in js["Objects"] if o["name"] == "Customer"][0]
    c.true("svc bad odata warning", "position" in cust.get("warning", ""), cust.get("warning"))
    c.eq("svc bad odata all records", len(cust["records"]), counts["Customer"])
    # service delta after edits
    s.edit("Product", "update", {"sku": "SKU-00000001", "stock": 4242})
    s.edit("Customer", "delete", {"id": 5})
    body = {o: {"delta": d} for o, d in deltas.items()}
    out, ctx2, _ = service_session(s, body, 1)
    c.eq("svc delta Product", [(r["sku"], r["stock"]) for r in out["Product"]],
         [("SKU-00000001", 4242)])
    c.eq("svc delta Customer", [(r["id"], r["_metadata"]["action"]) for r in out["Customer"]],
         [(5, "delete")])
    c.eq("svc delta OrderLine", out.get("OrderLine", []), [])
    # bad input at service level
    st, js, _ = s.call("POST", s.svc_path(), {}, {"X-Http-Method-Override": "GET"})
    c.true("svc needs offline=true", st == 400 and "offline" in js["errmsg"], js)
    st, js, _ = s.call("POST", s.svc_path(offline="true"),
                       {"delta_context": {"objs": {"Nope": {"delta": "1"}}}},
                       {"X-Http-Method-Override": "GET"})
    c.true("svc unknown object", st == 400 and "Nope" in js["errmsg"], js)


def test_bad_input(s, c):
    def bad(what, st, js, status, needle):
        c.eq(what + " status", st, status)
        c.true(what + " shape", isinstance(js, dict) and js.get("opstatus") == status and
               needle in js.get("errmsg", ""), js)

    st, js, _ = s.download("Customer", **{"$batchsize": "-1"})
    bad("batchsize -1", st, js, 400, "$batchsize")
    st, js, _ = s.download("Customer", **{"$batchsize": "abc"})
    bad("batchsize abc", st, js, 400, "$batchsize")
    st, js, _ = s.download("Customer", **{"$batchsize": "99999999999"})
    bad("batchsize huge", st, js, 400, "$batchsize")
    st, js, _ = s.download("Customer", **{"$batchsize": ""})
    bad("batchsize empty", st, js, 400, "$batchsize")
    st, js, _ = s.call("POST", s.obj_path("Customer"), "{not json",
                       {"X-Http-Method-Override": "GET"})
    bad("malformed JSON", st, js, 400, "malformed JSON")
    st, js, _ = s.call("POST", s.obj_path("Customer"), "[1,2]",
                       {"X-Http-Method-Override": "GET"})
    bad("array body", st, js, 400, "expected a JSON object")
    st, js, _ = s.call("POST", s.obj_path("Customer"), b'{"a":1}\x00',
                       {"X-Http-Method-Override": "GET"})
    bad("NUL in body", st, js, 400, "NUL")
    st, js, _ = s.download("Nope")
    bad("unknown object", st, js, 404, "Nope")
    st, js, _ = s.call("POST", "/services/data/v1/Other/objects/Customer", {},
                       {"X-Http-Method-Override": "GET"})
    bad("unknown service", st, js, 404, "Other")
    st, js, _ = s.call("GET", "/nothing/here")
    bad("unknown path", st, js, 404, "/nothing/here")
    st, js, _ = s.call("POST", s.obj_path("Customer"), {})
    bad("missing override", st, js, 400, "X-Http-Method-Override")
    st, js, _ = s.call("POST", s.obj_path("Customer"), {}, {"X-Http-Method-Override": "PATCH"})
    bad("bad override", st, js, 400, "PATCH")
    for val, needle in ((5, "delta_context"), ([], "delta_context")):
        st, js, _ = s.download("Customer", {"delta_context": val})
        bad("delta_context %r" % (val,), st, js, 400, needle)
    st, js, _ = s.download("Customer", {"delta_context": {"objs": "x"}})
    bad("objs string", st, js, 400, "delta_context.objs")
    for d in ("xyz", "-1", "", True, 1.5, "1" * 25):
        st, js, _ = s.download("Customer", {"delta_context": {"objs": {"Customer": {"delta": d}}}})
        bad("delta %r" % (d,), st, js, 400, "delta_context.objs.Customer.delta")
    for bc, needle in (("x", "bc: expected an object"),
                       ({"bdelta": "0", "batchid": "x", "bhi": "5"}, "bc.batchid"),
                       ({"bdelta": "0", "batchid": "1"}, "bc.bhi"),
                       ({"bdelta": "5", "batchid": "1", "bhi": "9"}, "inconsistent"),
                       ({"bdelta": "0", "batchid": "1", "bhi": "999999"}, "inconsistent")):
        st, js, _ = s.download("Customer", {"delta_context": {"objs": {"Customer": {
            "delta": "0", "bc": bc}}}})
        bad("bc %r" % (bc,), st, js, 400, needle)
    # every prefix of a valid body is refused cleanly (the empty prefix means {})
    valid = json.dumps({"delta_context": {"objs": {"Customer": {"delta": "3"}}}})
    prefix_ok = 0
    for i in range(1, len(valid)):
        st, js, _ = s.call("POST", s.obj_path("Customer"), valid[:i],
                           {"X-Http-Method-Override": "GET"})
        prefix_ok += st == 400 and js["opstatus"] == 400 and "malformed JSON" in js["errmsg"]
    c.eq("every prefix refused", prefix_ok, len(valid) - 1)
    # wrong type per field of the context
    st, js, _ = s.download("Customer", {"delta_context": {"objs": {"Customer": 7}}})
    bad("entry not object", st, js, 400, "delta_context.objs.Customer")
    st, js, _ = s.call("GET", "/services/metadata/v1/SampleSvc")
    c.eq("still serving after bad input", st, 200)


def test_big_body(binary, c):
    s = Server(binary, "--generate", "5", "--max-body-mb", "1")
    try:
        st, js, _ = s.call("POST", s.obj_path("Customer"), "{" + " " * (2 << 20) + "}",
                           {"X-Http-Method-Override": "GET"})
        c.eq("oversized body", (st, js["opstatus"]), (413, 413))
        c.true("oversized errmsg", "larger than" in js["errmsg"], js)
        st, js, _ = s.download("Customer")
        c.eq("after oversized", (st, len(js["records"])), (200, 5))
    finally:
        c.eq("big body server exit", s.stop(), 0)


def test_auth(binary, c):
    s = Server(binary, "--generate", "3", "--token", "s3cret")
    try:
        for path in ("/appconfig", "/services/metadata/v1/SampleSvc"):
            st, js, _ = s.call("GET", path)
            c.eq("no token %s" % path, (st, js["opstatus"]), (401, 401))
            c.true("no token errmsg", "X-Voltmx-Authorization" in js["errmsg"], js)
        st, js, _ = s.download("Customer")
        c.eq("no token download", st, 401)
        st, js, _ = s.call("POST", s.obj_path("Customer"), {},
                           {"X-Http-Method-Override": "GET", "X-Voltmx-Authorization": "wrong"})
        c.eq("wrong token", (st, js["opstatus"]), (401, 401))
        c.true("wrong token errmsg", "not valid" in js["errmsg"] and "s3cret" not in js["errmsg"],
               js)
        st, js, _ = s.call("POST", s.obj_path("Customer"), {},
                           {"X-Http-Method-Override": "GET", "X-Voltmx-Authorization": "s3cre"})
        c.eq("prefix token", st, 401)
        st, js, _ = s.call("POST", s.obj_path("Customer"), {},
                           {"X-Http-Method-Override": "GET", "X-Voltmx-Authorization": "s3cret"})
        c.eq("voltmx token", (st, len(js["records"])), (200, 3))
        st, js, _ = s.call("POST", s.obj_path("Customer"), {},
                           {"X-Http-Method-Override": "GET", "X-Kony-Authorization": "s3cret"})
        c.eq("kony token", st, 200)
        st, js, _ = s.call("GET", "/services/metadata/v1/SampleSvc",
                           headers={"X-Voltmx-Authorization": "s3cret"})
        c.eq("metadata with token", st, 200)
        st, js, _ = s.upload([], "Customer")
        c.eq("upload without token", st, 401)
        c.eq("admin needs no token", s.admin("GET", "/admin/stats")[0], 200)
        c.true("unauthorized counted", s.stats()["requests"]["unauthorized"] >= 6)
    finally:
        c.eq("auth server exit", s.stop(), 0)


def test_persistence(binary, c):
    d = tempfile.mkdtemp(prefix="es-server-persist-")
    s = Server(binary, "--generate", "20", data_dir=d)
    s.edit("Customer", "update", {"id": 1, "city": "Kept"})
    c.eq("persist stop", s.stop(remove=False), 0)
    s = Server(binary, "--generate", "20", data_dir=d)
    c.eq("persist kept edit", [r["city"] for r in s.admin_list("Customer") if r["id"] == 1],
         ["Kept"])
    st, js, _ = s.admin("POST", "/admin/reset")
    c.eq("reset status", st, 200)
    c.true("reset regenerated",
           [r["city"] for r in s.admin_list("Customer") if r["id"] == 1] != ["Kept"])
    c.eq("reset counts", len(s.admin_list("Customer")), 20)
    s.stop(remove=False)
    s = Server(binary, "--generate", "Customer=4,Product=0,OrderLine=2", data_dir=d)
    c.eq("other args regenerate", [len(s.admin_list(o)) for o in ("Customer", "Product",
                                                                   "OrderLine")], [4, 0, 2])
    s.stop(remove=False)
    # the generator is deterministic per seed
    s2 = Server(binary, "--generate", "Customer=4,Product=0,OrderLine=2")
    first = s2.admin_list("Customer")
    s2.stop()
    s3 = Server(binary, "--generate", "Customer=4,Product=0,OrderLine=2")
    c.eq("same seed same data", s3.admin_list("Customer"), first)
    s3.stop()
    s4 = Server(binary, "--generate", "Customer=4,Product=0,OrderLine=2", "--seed", "99")
    c.true("other seed other data", s4.admin_list("Customer") != first)
    s4.stop()
    # loader
    path = os.path.join(d, "load.jsonl")
    with open(path, "w") as f:
        f.write(json.dumps({"object": "Product", "record": {"sku": "X-1", "name": "Loaded",
                                                            "price": 1.5}}) + "\n\n")
        f.write(json.dumps({"object": "Customer", "record": {"id": 500, "name": "L",
                                                             "active": True}}) + "\n")
    s = Server(binary, "--generate", "Customer=2,Product=0,OrderLine=0", "--load", path,
               data_dir=d)
    c.eq("loaded product", [r["sku"] for r in s.admin_list("Product")], ["X-1"])
    st, js, _ = s.edit("Customer", "create", {"name": "after load", "active": True})
    c.eq("auto key after loaded max", js["record"]["id"], 501)
    s.stop(remove=False)
    with open(path, "w") as f:
        f.write(json.dumps({"object": "Product", "record": {"sku": "X-1", "name": "ok",
                                                            "price": 1}}) + "\n")
        f.write(json.dumps({"object": "Product", "record": {"sku": "X-2", "price": "cheap"}}))
    try:
        Server(binary, "--load", path, data_dir=d)
        c.true("bad load refused", False)
    except RuntimeError as e:
        c.true("bad load names line", "load.jsonl:2" in str(e) and "price" in str(e), str(e))
    # bad command lines
    for args, needle in ((["--port", "x"], "--port"), (["--policy", "maybe"], "--policy"),
                         (["--generate", "Foo=1"], "--generate"),
                         (["--upload-cache", "yes"], "--upload-cache"),
                         (["--max-body-mb", "0"], "--max-body-mb"), (["--bogus"], "--bogus")):
        try:
            Server(binary, *args)
            c.true("bad args %r refused" % args, False)
        except RuntimeError as e:
            c.true("bad args %r" % args, needle in str(e), str(e))
    import shutil
    shutil.rmtree(d, ignore_errors=True)


def test_supplier(binary, c):
    """Naming Supplier in --generate adds a fourth object; the default service keeps three."""
    s = Server(binary, "--generate", "Customer=3,Product=2,OrderLine=0,Supplier=25")
    try:
        st, meta, _ = s.call("GET", "/services/metadata/v1/SampleSvc")
        c.eq("supplier metadata objects", [o["name"] for o in meta["objects"]],
             ["Customer", "Product", "OrderLine", "Supplier"])
        sup = meta["objects"][3]
        c.eq("supplier key", sup["key"], ["supplierId"])
        c.eq("supplier fields", len(sup["fields"]), 10)
        rows = s.admin_list("Supplier")
        c.eq("supplier count", len(rows), 25)
        c.eq("supplier ids", sorted(r["supplierId"] for r in rows), list(range(1, 26)))
        c.true("supplier records ~300 bytes of JSON",
               all(200 <= len(json.dumps(r)) <= 450 for r in rows), rows[:2])
        out, _, _ = service_session(s, None, 10)
        c.eq("supplier service download", len(out.get("Supplier", [])), 25)
        s.edit("Supplier", "create", {"supplierId": 100, "name": "New", "active": True})
        c.eq("supplier edit", len(s.admin_list("Supplier")), 26)
    finally:
        c.eq("supplier server exit", s.stop(), 0)
    s = Server(binary, "--generate", "Customer=3,Product=2,OrderLine=0")
    try:
        st, meta, _ = s.call("GET", "/services/metadata/v1/SampleSvc")
        c.eq("no supplier by default", [o["name"] for o in meta["objects"]],
             ["Customer", "Product", "OrderLine"])
    finally:
        s.stop()


def main(binary, c):
    n = 50
    s = Server(binary, "--generate", str(n))
    try:
        test_meta(s, c)
        test_download(s, c, n)
        test_filter(s, c, n)
        test_delta(s, c, n)
        test_stability(s, c)
        test_keys(s, c, n)
        test_service(s, c)
        test_bad_input(s, c)
        st = s.stats()
        c.true("stats download counted", st["requests"]["download"] > 20, st)
        c.true("stats keys counted", st["requests"]["keys"] >= 3, st)
        c.true("stats service counted", st["requests"]["download_service"] >= 5, st)
    finally:
        c.eq("server exit code", s.stop(), 0)
    test_big_body(binary, c)
    test_auth(binary, c)
    test_persistence(binary, c)
    test_supplier(binary, c)


if __name__ == "__main__":
    run(main)
