"""syncOptions through the real CLI, daemon and server at object, service and app level (SPEC 2.2,
2.3, D2-D8): invalid values fail with the exact code and message before any request reaches the
server (its request counters do not move), and valid, boundary and lenient values take the effect
the spec gives them, measured by what the server was asked for (batches, keys listings)."""
import json
import math
import sys

from eslib import Env, check, finish, served

bindir = sys.argv[1]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]


def js(out):
    try:
        return json.loads(out)
    except ValueError:
        return {}


def counters(env):
    r = dict(served(env)["requests"])
    r.pop("admin", None)  # our own /admin/stats calls
    return r


def delta(env, before):
    after = counters(env)
    return {k: after[k] - before.get(k, 0) for k in after}


def sync(env, where, options):
    rc, out, err = env.cli("sync", *where, "--options", options)
    return rc, js(out), out, err


env = Env(bindir, generate="1200")
try:
    # Before setup: nothing to sync (2483), nothing sent.
    before = counters(env)
    rc, res, out, _ = sync(env, (), "{}")
    check(rc == 1 and res.get("code") == 2483 and res.get("message") ==
          "Setup is not performed. There are no object services to sync.",
          f"app sync before setup: {out}")
    rc, res, out, _ = sync(env, (SVC,), "{}")
    check(rc == 1 and res.get("code") == 2483 and
          res.get("userInfo", {}).get("objectServiceName") == SVC, f"service before setup: {out}")
    check(delta(env, before) == {k: 0 for k in before}, "nothing sent before setup")

    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    n = {o: len(env.server_records(SVC, o)) for o in OBJS}
    # A pending change, so a sync that got past validation would upload it.
    tmpl = {k: v for k, v in env.server_records(SVC, "Customer")[0].items() if k != "id"}
    rc, out, err = env.cli("create", SVC, "Customer", json.dumps(tmpl))
    check(rc == 0, f"create {rc} {err}")

    O, S, A = (SVC, "Customer"), (SVC,), ()
    invalid = [
        # object level
        (O, '{"syncType":"bad"}', 2477, "Invalid value found for syncType option bad"),
        (O, '{"syncType":"FULLSYNC"}', 2477, "Invalid value found for syncType option FULLSYNC"),
        (O, '{"syncType":null}', 2477,
         "Invalid value found for syncType option null. It's either empty or null"),
        (O, '{"syncType":""}', 2477,
         "Invalid value found for syncType option \"\". It's either empty or null"),
        (O, '{"syncType":1}', 2477, "Invalid value found for syncType option 1"),
        (O, '{"filter":""}', 2472, "Filters applied to the current sync operation are invalid: "
         "Invalid value found for filter option \"\": filters sent are null/empty"),
        (O, '{"filter":null}', 2472, "Filters applied to the current sync operation are invalid: "
         "Invalid value found for filter option null: filters sent are null/empty"),
        (O, '{"filter":5}', 2472, "Filters applied to the current sync operation are invalid: "
         "Invalid value found for filter option 5: filter is not of type String"),
        (O, '{"downloadReconciliationRequired":"yes"}', 2304, None),
        (O, '{"downloadReconciliationRequired":"TRUE"}', 2304, None),
        (O, '{"syncType":"uploadOnly","removeAfterUpload":["Product"]}', 2304, None),
        (O, '{"removeAfterUpload":"Customer"}', 2304, None),
        (O, '{"downloadRequestQueryParams":{"k":null}}', 2304, None),
        (O, '{"uploadRequestQueryParams":{"k":true}}', 2304, None),
        (O, '{"syncType":"bad","filter":null}', 2472, None),  # SPEC 2.2 order: filter first
        # service level
        (S, '{"filter":{"Nope":"id eq 1"}}', 2472, "Filters applied to the current sync "
         "operation are invalid: Invalid value found for filter option: 'Nope' sent in filter "
         "options doesn't belong to the object service"),
        (S, '{"filter":"id eq 1"}', 2472, None),
        (S, '{"filter":{}}', 2472, None),
        (S, '{"filter":{"Customer":""}}', 2472, None),
        (S, '{"syncType":"uploadonly"}', 2477, "Invalid value found for syncType option uploadonly"),
        (S, '{"downloadReconciliationRequired":0}', 2304, None),
        (S, '{"syncType":"uploadOnly","removeAfterUpload":["Nope"]}', 2304, None),
        # app level
        (A, '{"objectServicesOptions":[]}', 2482, None),
        (A, '{"objectServicesOptions":"x"}', 2482, None),
        (A, '{"objectServicesOptions":{"NoSvc":{}}}', 2482,
         "Application sync options provided are invalid.: Invalid SDKObjectServiceName NoSvc"),
        (A, '{"objectServicesOptions":{"SampleSvc":5}}', 2482, None),
        (A, '{"objectServicesOptions":{"SampleSvc":null}}', 2482, None),
        (A, '{"objectServicesOptions":{"SampleSvc":{"syncType":"x"}}}', 2477,
         "Invalid value found for syncType option x (objectServicesOptions.SampleSvc)"),
        (A, '{"objectServicesOptions":{"SampleSvc":{"filter":{"Nope":"a"}}}}', 2472, None),
    ]
    for where, options, code, message in invalid:
        before = counters(env)
        rc, res, out, err = sync(env, where, options)
        label = f"{'/'.join(where) or 'app'} {options}"
        check(rc == 1 and res.get("code") == code and res.get("status") == -1 and
              res.get("domain") == "OfflineObjectsError", f"{label}: code {code}: {rc} {out}")
        if message:
            check(res.get("message") == message, f"{label}: message {res.get('message')!r}")
        # The message names the option at fault (or the service, for app options).
        opt = json.loads(options)
        keys = list(opt)
        inner = opt.get("objectServicesOptions")
        if isinstance(inner, dict):
            keys += list(inner) + [k for v in inner.values() if isinstance(v, dict) for k in v]
        msg = res.get("message", "")
        check(any(k in msg for k in keys), f"{label}: message names one of {keys}: {msg}")
        d = delta(env, before)
        check(all(v == 0 for v in d.values()), f"{label}: nothing sent: {d}")
    rc, out, err = env.cli("pending", SVC, "Customer")
    check(len(js(out).get("pendingSyncRecords", [])) == 1, "the pending change is still there")

    # Effective values, measured at the server. A cleared object downloads everything again.
    def download_case(where, options, want_requests, want_keys, warnings=(), stats=None):
        for o in OBJS:
            env.cli("clear", SVC, o)
        before = counters(env)
        rc, res, out, err = sync(env, where, options)
        d = delta(env, before)
        label = f"{'/'.join(where) or 'app'} {options}"
        check(rc == 0 and res.get("status") == 0, f"{label}: success: {rc} {out[:300]}")
        check(d["download"] == want_requests, f"{label}: {d['download']} download requests, "
              f"want {want_requests}")
        check(d["keys"] == want_keys, f"{label}: {d['keys']} keys listings, want {want_keys}")
        check(d["upload"] == 0, f"{label}: no upload")
        got = res.get("warnings", [])
        if res.get("successResponse"):
            got = got + res["successResponse"][SVC].get("warnings", [])
        for w in warnings:
            check(w in got, f"{label}: warning {w!r} in {got}")
        if not warnings:
            check(not got, f"{label}: no warnings: {got}")
        if stats is not None:
            r = res["successResponse"][SVC] if res.get("successResponse") else res
            check(("syncStats" in r) == stats, f"{label}: syncStats present: {stats}")
        return res

    c = n["Customer"]
    download_case(O, '{"syncType":"downloadOnly","downloadBatchSize":"250"}',
                  math.ceil(c / 250), 1)
    download_case(O, '{"syncType":"downloadOnly","downloadBatchSize":" 250.9 "}',
                  math.ceil(c / 250), 1)
    download_case(O, '{"syncType":"downloadOnly","downloadBatchSize":0,'
                  '"downloadReconciliationRequired":"false"}', 1, 0)
    download_case(O, '{"syncType":"downloadOnly","downloadBatchSize":-5}', math.ceil(c / 500), 1,
                  ["downloadBatchSize: -5 is negative, using 500"])
    download_case(O, '{"syncType":"downloadOnly","downloadBatchSize":"12abc"}',
                  math.ceil(c / 500), 1, ["downloadBatchSize: 12abc is not a number, using 500"])
    download_case(O, '{"syncType":"downloadOnly","downloadBatchSize":null,"getSyncStats":"TRUE"}',
                  math.ceil(c / 500), 1, ["downloadBatchSize: null is not a number, using 500"],
                  stats=True)
    download_case(O, '{"syncType":"downloadOnly","GetSyncStats":true}', math.ceil(c / 500), 1,
                  ["unknown option 'GetSyncStats' ignored"], stats=False)
    download_case(O, '{"syncType":"downloadOnly","getSyncStats":"yes"}', math.ceil(c / 500), 1,
                  ["getSyncStats: yes is not a boolean, no stats"], stats=False)
    download_case(S, '{"syncType":"downloadOnly","downloadBatchSize":1e30,'
                  '"downloadReconciliationRequired":false}', 3, 0,
                  ["downloadBatchSize: 1e30 is too large, using 2147483647"])
    download_case(S, '{"syncType":"downloadOnly","downloadBatchSize":"400","getSyncStats":true}',
                  sum(math.ceil(n[o] / 400) for o in OBJS), 3, stats=True)
    # D4: a well-typed filter our parser refuses: unfiltered download, warning naming the object.
    res = download_case(O, '{"syncType":"downloadOnly","filter":"nosuchfield eq 1"}',
                        math.ceil(c / 500), 1,
                        ["filter for 'Customer' ignored, every record is downloaded: filter: "
                         "position 1: unknown column 'nosuchfield'"])
    check(len(env.local_records(SVC, "Customer")) == c, "unparsable filter: every record")
    download_case(O, '{"syncType":"downloadOnly","filter":"tier eq 1"}', 1, 1)
    want = len([r for r in env.server_records(SVC, "Customer") if r["tier"] == 1])
    check(len(env.local_records(SVC, "Customer")) == want, f"filter applied: {want} records")
    # App level: per-service options and syncMode (lower-cased; anything else -> parallel).
    download_case(A, '{"syncMode":"SEQUENTIAL","objectServicesOptions":{"SampleSvc":{'
                  '"syncType":"downloadOnly","downloadBatchSize":"400","getSyncStats":"true"}}}',
                  sum(math.ceil(n[o] / 400) for o in OBJS), 3, stats=True)
    download_case(A, '{"syncMode":7,"objectServicesOptions":{"SampleSvc":{'
                  '"syncType":"downloadOnly","downloadBatchSize":0}}}', 3, 3,
                  ["syncMode: 7 is not parallel or sequential, using parallel"], stats=False)
    download_case(A, '{"objectServicesOptions":null,"extra":1}',
                  sum(math.ceil(n[o] / 500) for o in OBJS), 3,
                  ["unknown option 'extra' ignored"])

    # uploadBatchSize: records per upload request.
    def upload_case(where, options, records, want_requests, warnings=()):
        for i in range(records):
            rc, out, err = env.cli("create", SVC, "Customer",
                                   json.dumps(dict(tmpl, name=f"Upload {i}")))
            check(rc == 0, f"create {err}")
        before = counters(env)
        rc, res, out, err = sync(env, where, options)
        d = delta(env, before)
        label = f"{'/'.join(where) or 'app'} {options}"
        check(rc == 0 and d["upload"] == want_requests and d["download"] == 0,
              f"{label}: {d['upload']} upload requests (want {want_requests}), "
              f"{d['download']} downloads: {out[:200]}")
        got = res.get("warnings", [])
        for w in warnings:
            check(w in got, f"{label}: warning {w!r} in {got}")

    upload_case(O, '{"syncType":"uploadOnly","uploadBatchSize":"3"}', 9, 3)
    upload_case(S, '{"syncType":"uploadOnly","uploadBatchSize":0}', 7, 1,
                ["uploadBatchSize: 0 is not positive, using 50"])
    upload_case(S, '{"syncType":"uploadOnly","uploadBatchSize":2.9}', 5, 3)
    upload_case(A, '{"objectServicesOptions":{"SampleSvc":{"syncType":"uploadOnly",'
                '"uploadBatchSize":"4"}}}', 9, 3)
    rc, out, err = env.cli("pending", SVC)
    check(sum(len(v.get("pendingSyncRecords", [])) for v in js(out).values()) == 0,
          f"everything uploaded: {out[:200]}")
finally:
    env.close()
finish()
