"""Hostile input, end to end with the real server, daemon and actors: the reference server's
"body" fault answers download and upload requests with a 1 GB body, JSON nested 1,000,000 deep,
a wrong type in each field, invalid UTF-8, duplicate keys and records, records without their key;
every sync either succeeds with the right data or fails with the documented code and a message
naming what was wrong; no process dies; actors' peak memory stays small; the store converges once
the faults stop and pending changes survive. Then random bytes and malformed MessagePack go to
every ZeroMQ socket the daemon binds (zmq_poke): dropped and logged, memory bounded, a normal sync
works afterwards."""
import json
import os
import subprocess
import sys
import time
import urllib.request

from eslib import POKE_ENV, Env, actors, check, finish, same_records, served

bindir = sys.argv[1]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]
MAX_RSS_KB = 64 * 1024
DL = '{"syncType":"downloadOnly","downloadBatchSize":50,"downloadReconciliationRequired":false}'

env = Env(bindir, generate="200", extra_conf="http.max_response_mb = 16\nretry.max_attempts = 1\n"
          "retry.max_ms = 100\nhttp.timeout_ms = 60000\n")
report = {"cases": 0, "ok": 0, "failed_as_documented": 0}
# Under AddressSanitizer freed memory sits in a quarantine (256 MB): peak RSS says nothing there.
with open(os.path.join(bindir, "edgesyncd"), "rb") as f:
    ASAN = b"__asan_init" in f.read()


def proc_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def actor_state():
    return {a["actor"]: (a["pid"], a.get("restarts", 0)) for a in actors(env)}


def faults(rules):
    env.admin_post("/admin/faults", {"seed": 3, "rules": rules})


def clear():
    env.admin_post("/admin/faults", {"rules": []})


def sync(obj, options=DL):
    args = ["sync", SVC] + ([obj] if obj else []) + ["--options", options]
    rc, out, err = env.cli(*args, timeout=240)
    try:
        res = json.loads(out) if out.strip() else {}
    except ValueError:
        res = {"unparsed": out[:300]}
    return rc, res, err


PEND_ID = None        # the Customer with a pending local change (left out of comparisons)
bump_n = [0]


def bump():
    """Change 8 Customer records upstream so the next delta batch has records to mangle."""
    bump_n[0] += 1
    for c in CUST[20:28]:
        env.admin_post(f"/admin/records/{SVC}/Customer",
                       {"op": "update", "record": {"id": c["id"], "notes": f"bump {bump_n[0]}"}})


def without_pending(recs):
    return [r for r in recs if r.get("id") != PEND_ID]


def case(name, rule, obj="Customer", codes=(2037,), words=(), options=DL, may_succeed=False,
         commits_first=False):
    """One hostile answer: the sync ends as documented and nothing crashes or changes."""
    report["cases"] += 1
    bump()
    before = actor_state()
    local_before = env.local_records(SVC, obj)
    faults(rule if isinstance(rule, list) else [rule])
    t0 = time.time()
    rc, res, err = sync(obj, options)
    took = time.time() - t0
    clear()
    after = actor_state()
    check(before == after, f"{name}: actors restarted or replaced: {before} -> {after}")
    msg = json.dumps(res)
    if rc == 0 and may_succeed:
        report["ok"] += 1
        # (an upload-only sync brings nothing down: its caller checks the server side)
        check("uploadOnly" in options or same_records(without_pending(env.local_records(SVC, obj)),
                           without_pending(env.server_records(SVC, obj))),
              f"{name}: a successful sync must give the server's records")
    else:
        report["failed_as_documented"] += 1
        check(rc == 1 and res.get("code") in codes,
              f"{name}: expected failure code {codes}, got rc {rc}: {msg[:400]} {err[-200:]}")
        check(any(w in msg for w in words),
              f"{name}: message should name one of {words}: {msg[:400]}")
        if not commits_first:
            check(same_records(env.local_records(SVC, obj), local_before),
                  f"{name}: store changed by a refused answer")
    print(f"  {name}: rc {rc} code {res.get('code')} in {took:.1f}s: "
          f"{res.get('message', '')[-150:]}", file=sys.stderr, flush=True)


def fetch_batch(obj, n):
    """The server's real first download batch of obj (what the hostile rules start from)."""
    req = urllib.request.Request(f"{env.url}/services/data/v1/{SVC}/objects/{obj}?$batchsize={n}",
                                 data=b"{}", method="POST",
                                 headers={"X-Http-Method-Override": "GET",
                                          "X-Voltmx-Authorization": env.token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def dl_rule(**kw):
    return dict(kind="body", path="/objects/Customer", method="GET", **kw)


try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    rc, res, err = sync(None, '{"syncType":"downloadOnly"}')
    check(rc == 0, f"first sync {rc} {res}")
    for o in OBJS:
        check(same_records(env.local_records(SVC, o), env.server_records(SVC, o)), f"{o} equal")

    # A pending change that every refused answer must leave alone.
    CUST = env.server_records(SVC, "Customer")
    PEND_ID = CUST[5]["id"]
    rc, out, err = env.cli("partial-update", SVC, "Customer", str(PEND_ID),
                           '{"city":"Hostile City"}')
    check(rc == 0, f"local update {rc} {err}")

    # A local write whose text is not UTF-8 is refused, naming the column; nothing is stored.
    bad = dict(CUST[7], id=987654, name="\udc00")
    rc, out, err = env.cli("create", SVC, "Customer", json.dumps(bad))
    check(rc != 0 and "name: invalid UTF-8" in out + err,
          f"create with a lone surrogate: {rc} {out} {err}")
    check(not [r for r in env.local_records(SVC, "Customer") if r["id"] == 987654],
          "refused create stored")

    # --- download answers -----------------------------------------------------------------
    print("download answers:", file=sys.stderr)
    head = '{"opstatus":0,"httpStatusCode":200,"records":[{"id":'
    case("1 GB body", dl_rule(parts=[{"text": head + '1,"name":"'},
                                     {"text": "x" * 1024, "times": 1 << 20},
                                     {"text": '"}]}'}]),
         codes=(2037,), words=("larger than",))
    case("nested 1,000,000 deep", dl_rule(parts=[{"text": '{"opstatus":0,"records":'},
                                                  {"text": "[", "times": 1000000},
                                                  {"text": "]", "times": 1000000},
                                                  {"text": "}"}]),
         words=("nesting", "records[0]"))
    case("nested 1,000,000 deep in an unknown member",
         dl_rule(parts=[{"text": '{"opstatus":0,"junk":'}, {"text": "[", "times": 1000000},
                        {"text": "]", "times": 1000000}, {"text": "}"}]),
         words=("nesting",))
    case("nested objects in a record", dl_rule(parts=[{"text": head + '1,"notes":'},
                                                       {"text": '{"a":', "times": 200000},
                                                       {"text": "1"},
                                                       {"text": "}", "times": 200000},
                                                       {"text": "}]}"}]),
         words=("nesting", "records[0].notes"))
    case("records not an array", dl_rule(set=[{"path": "records", "value": {"id": 1}}]),
         words=("records",))
    case("a record that is a string", dl_rule(set=[{"path": "records.3", "value": "record"}]),
         words=("records[3]",))
    case("key column an object", dl_rule(set=[{"path": "records.2.id", "value": {"x": 1}}]),
         words=("records[2].id",))
    case("key column a string", dl_rule(set=[{"path": "records.2.id", "value": "seven"}]),
         words=("records[2].id",))
    case("int column a float", dl_rule(set=[{"path": "records.4.tier", "value": 1.5}]),
         words=("records[4].tier",))
    case("boolean column a string", dl_rule(set=[{"path": "records.1.active", "value": "yes"}]),
         words=("records[1].active",))
    case("string column an array", dl_rule(set=[{"path": "records.1.name", "value": [1, 2]}]),
         words=("records[1].name",))
    case("number column an object", dl_rule(set=[{"path": "records.0.balance", "value": {}}]),
         words=("records[0].balance",))
    case("opstatus a string", dl_rule(set=[{"path": "opstatus", "value": "0"}]),
         words=("opstatus",), may_succeed=True)
    case("opstatus an object", dl_rule(set=[{"path": "opstatus", "value": {"a": 1}}]),
         words=("opstatus",))
    case("delta_context not an object", dl_rule(set=[{"path": "delta_context", "value": "abc"}]),
         words=("delta_context",))
    case("delta_context an array", dl_rule(set=[{"path": "delta_context", "value": [1]}]),
         words=("delta_context",))
    case("delta a number", dl_rule(set=[{"path": "delta_context.objs.Customer.delta",
                                         "value": 12}]),
         words=("delta",), may_succeed=True)
    # delta_context is the server's own state, echoed verbatim: a bad one is refused by the
    # server on the next batch (2474 naming it); the batch before it was fine and stays.
    case("batch context a string", dl_rule(set=[{"path": "delta_context.objs.Customer.bc",
                                                 "value": "bc"}, {"path": "hasMoreRecords",
                                                                  "value": "true"}]),
         codes=(2037, 2474), words=("bc",), may_succeed=True, commits_first=True)
    case("objs a list", dl_rule(set=[{"path": "delta_context.objs", "value": ["Customer"]},
                                     {"path": "hasMoreRecords", "value": "true"}]),
         codes=(2037, 2474), words=("objs",), may_succeed=True, commits_first=True)
    case("hasMoreRecords a number", dl_rule(set=[{"path": "hasMoreRecords", "value": 7}]),
         words=("hasMoreRecords",))
    case("_metadata a string", dl_rule(set=[{"path": "records.0._metadata", "value": "m"}]),
         words=("_metadata",))
    case("deleted flag wrong type", dl_rule(set=[{"path": "records.0._metadata.action",
                                                  "value": True}]),
         words=("action",))
    case("checksum wrong type", dl_rule(set=[{"path": "records.0._metadata.checksum",
                                              "value": [1]}]),
         words=("checksum",))
    case("record missing its key", dl_rule(set=[{"path": "records.6.id", "delete": True}]),
         codes=(2037, 2484), words=("id",))
    case("key null", dl_rule(set=[{"path": "records.6.id", "value": None}]),
         codes=(2037, 2484), words=("id",))
    case("invalid UTF-8 in a string", dl_rule(replace=[['"name":"', '"name":"\u00ff\u00fe']],
                                             bytes=True),
         words=("UTF8", "UTF-8"))
    # Shapes yajl lets through: the record builder refuses them, naming the column.
    case("a code point above U+10FFFF",
         dl_rule(replace=[['"name":"', '"name":"\u00f5\u009c\u00ab\u0086']], bytes=True),
         words=("name: invalid UTF-8",))
    case("an escaped lone surrogate", dl_rule(replace=[['"name":"', '"name":"\\udc00']]),
         words=("name: invalid UTF-8",))
    case("duplicate key in a record", dl_rule(replace=[['"name":', '"id":999999,"name":']]),
         words=("key column given twice",))
    case("duplicate column in a record", dl_rule(replace=[['"name":', '"name":"dup","name":']]),
         codes=(2037,), words=("name",), may_succeed=True)
    case("duplicate records in a batch", dl_rule(set=[{"path": "records.-", "copy": "records.0"},
                                                      {"path": "records.-", "copy": "records.3"}]),
         words=("records[1]",), may_succeed=True)
    case("a record that is null", dl_rule(set=[{"path": "records.1", "value": None}]),
         words=("records[1]",))
    case("not JSON at all", dl_rule(text="<html>502 Bad Gateway</html>"), words=("JSON",))
    case("empty body", dl_rule(text=""), words=("response",))
    case("root an array", dl_rule(text="[1,2,3]"), words=("response",))
    case("control byte in a string", dl_rule(replace=[['"name":"', '"name":"a\u0001']],
                                            bytes=True),
         words=("invalid",))
    case("huge string column", dl_rule(parts=[{"text": head + '1,"name":"'},
                                              {"text": "y" * 1024, "times": 8 * 1024},
                                              {"text": '","active":true,"_metadata":{}}]}'}]),
         words=("name",))
    case("huge delta_context", dl_rule(parts=[{"text": '{"opstatus":0,"records":[],'
                                                       '"delta_context":{"a":"'},
                                              {"text": "z" * 1024, "times": 4 * 1024},
                                              {"text": '"},"hasMoreRecords":"false"}'}]),
         words=("delta_context",))

    # --- key listing answers (reconciliation) ---------------------------------------------
    print("key listing answers:", file=sys.stderr)
    RC = '{"syncType":"downloadOnly","downloadBatchSize":50}'

    def kl_rule(**kw):
        """The key listing after the (one-batch) download: a harmless first rule takes the
        download request (apply_delay only acts on uploads), the hostile one every later GET."""
        return [dict(kind="apply_delay", ms=0, count=1, path="/objects/Customer", method="GET"),
                dict(kind="body", path="/objects/Customer", method="GET", **kw)]

    for name, edit, words in [
            ("listing: records not an array", {"set": [{"path": "records", "value": 5}]},
             ("records",)),
            ("listing: a key an object", {"set": [{"path": "records.4.id", "value": {}}]},
             ("records[4].id",)),
            ("listing: a record a string", {"set": [{"path": "records.2", "value": "k"}]},
             ("records[2]",)),
            ("listing: key missing", {"set": [{"path": "records.3.id", "delete": True}]},
             ("records[3]",)),
            ("listing: 1 GB", {"parts": [{"text": '{"opstatus":0,"records":[{"id":1}'},
                                         {"text": ',{"id":1}' * 128, "times": 1 << 20},
                                         {"text": "]}"}]}, ("larger than", "records"))]:
        case(name, kl_rule(**edit), options=RC, codes=(2037, 2474), words=words,
             commits_first=True)

    # --- upload answers ---------------------------------------------------------------------
    print("upload answers:", file=sys.stderr)
    UP = '{"syncType":"uploadOnly"}'
    up_n = [0]

    def up_case(name, edit, codes=(2037, 2473), words=(), may_succeed=False):
        """A local change, a hostile answer to its upload: refused with the documented code,
        the change stays pending; the next clean sync applies it exactly once."""
        up_n[0] += 1
        target = CUST[40 + up_n[0]]["id"]
        note = f"upload {up_n[0]}"
        rc, out, err = env.cli("partial-update", SVC, "Customer", str(target),
                               json.dumps({"notes": note}))
        check(rc == 0, f"{name}: local change {rc} {err}")
        ok0 = report["ok"]
        case(name, dict(kind="body", method="UPLOAD", **edit), options=UP, codes=codes,
             words=words, may_succeed=may_succeed)
        if report["ok"] == ok0:
            rc, out, err = env.cli("pending", SVC, "Customer")
            check(rc == 0 and f'"id":{target}' in out.replace(" ", ""),
                  f"{name}: change still pending after the refused answer: {out[:300]}")
        rc, res, err = sync("Customer", UP)
        check(rc == 0, f"{name}: clean upload after the fault: {rc} {json.dumps(res)[:300]}")
        srv = [r for r in env.server_records(SVC, "Customer") if r["id"] == target]
        check(len(srv) == 1 and srv[0]["notes"] == note, f"{name}: server has the change: {srv}")

    R0 = "objects.0.records.0"
    for name, edit, words, *ok in [
            ("upload: opstatus a string", {"set": [{"path": "opstatus", "value": "zero"}]},
             ("opstatus",)),
            ("upload: objects not an array", {"set": [{"path": "objects", "value": {"a": 1}}]},
             ("objects",)),
            ("upload: objects[0] a string", {"set": [{"path": "objects.0", "value": "o"}]},
             ("objects[0]",)),
            ("upload: object name a number", {"set": [{"path": "objects.0.name", "value": 5}]},
             ("name",)),
            ("upload: records not an array", {"set": [{"path": "objects.0.records",
                                                        "value": "r"}]}, ("records",)),
            ("upload: a record a string", {"set": [{"path": R0, "value": "rec"}]},
             ("records[0]",)),
            ("upload: rowId a string", {"set": [{"path": R0 + "._metadata.rowId",
                                                 "value": "abc"}]}, ("rowId",)),
            ("upload: rowId an object", {"set": [{"path": R0 + "._metadata.rowId",
                                                  "value": {"n": 1}}]}, ("rowId",)),
            ("upload: rowId missing", {"set": [{"path": R0 + "._metadata.rowId",
                                                "delete": True}]}, ("rowId",)),
            ("upload: rowId unknown", {"set": [{"path": R0 + "._metadata.rowId",
                                                "value": 987654321}]}, ("987654321", "rowId")),
            ("upload: _metadata a string", {"set": [{"path": R0 + "._metadata", "value": "m"}]},
             ("_metadata",)),
            ("upload: key column an object", {"set": [{"path": R0 + ".id", "value": {}}]},
             ("id",)),
            ("upload: key missing", {"set": [{"path": R0 + ".id", "delete": True}]},
             ("id", "key")),
            ("upload: checksum an array", {"set": [{"path": R0 + "._metadata.checksum",
                                                    "value": []}]}, ("checksum",)),
            ("upload: record opstatus a string", {"set": [{"path": R0 + "._metadata.opstatus",
                                                           "value": "x"}]}, ("opstatus",)),
            ("upload: root _metadata a list", {"set": [{"path": "_metadata", "value": [1]}]},
             ("_metadata",)),
            ("upload: recordCount a string", {"set": [{"path": "_metadata.recordCount",
                                                       "value": "many"}]}, ("recordCount",)),
            ("upload: the record twice", {"set": [{"path": "objects.0.records.1",
                                                    "copy": R0}]}, ("rowId",), True),
            ("upload: duplicate key in the record", {"replace": [['"name":',
                                                                  '"id":424242,"name":']]},
             ("id", "key")),
            ("upload: invalid UTF-8", {"replace": [['"name":"', '"name":"\u00c3\u0028']],
                                       "bytes": True}, ("UTF8", "UTF-8")),
            ("upload: an escaped lone surrogate", {"replace": [['"name":"', '"name":"\\udc00']]},
             ("UTF-8",), True),
            ("upload: not JSON", {"text": "<html>oops</html>"}, ("JSON",)),
            ("upload: nested 1,000,000 deep", {"parts": [{"text": '{"objects":'},
                                                          {"text": "[", "times": 1000000},
                                                          {"text": "]", "times": 1000000},
                                                          {"text": "}"}]}, ("nested",)),
            ("upload: 1 GB", {"parts": [{"text": '{"opstatus":0,"objects":[{"name":"'},
                                        {"text": "u" * 1024, "times": 1 << 20},
                                        {"text": '"}]}'}]}, ("upload answer larger than",))]:
        up_case(name, edit, words=words, may_succeed=bool(ok))

    # An answer that leaves a sent record out: the others apply, the omission is reported in
    # syncErrors.upload, and the left-out change stays pending for the next sync. Also when a
    # failure repeating another record's rowId stands in its place (counting answers would miss it).
    R1 = "objects.0.records.1"
    for what, at, edit in [
            ("a record left out of the answer", 90, [{"path": R0, "delete": True}]),
            ("a left-out record hidden by a repeated failure", 92,
             [{"path": R0, "copy": R1}, {"path": R0 + "._metadata.errmsg", "value": "again"}])]:
        left, kept = CUST[at]["id"], CUST[at + 1]["id"]
        for t in (left, kept):
            rc, out, err = env.cli("partial-update", SVC, "Customer", str(t),
                                   json.dumps({"notes": f"omitted {t}"}))
            check(rc == 0, f"{what}: local change {rc} {err}")
        faults([dict(kind="body", method="UPLOAD", set=edit)])
        rc, res, err = sync("Customer", UP)
        clear()
        errs = res.get("syncErrors", {}).get("upload", [])
        check(rc == 0 and any("have no result in the upload answer" in e.get("errmsg", "")
                              for e in errs), f"{what}: reported: {rc} {json.dumps(res)[:400]}")
        rc, out, err = env.cli("pending", SVC, "Customer")
        pend = out.replace(" ", "")
        check(f'"id":{left}' in pend and f'"id":{kept}' not in pend,
              f"{what}: only the left-out change stays pending: {out[:300]}")
        rc, res, err = sync("Customer", UP)
        srv = {r["id"]: r["notes"] for r in env.server_records(SVC, "Customer")
               if r["id"] in (left, kept)}
        check(rc == 0 and not res.get("syncErrors", {}).get("upload") and
              srv == {left: f"omitted {left}", kept: f"omitted {kept}"},
              f"{what}: the next sync sends it: {rc} {srv} {json.dumps(res)[:300]}")
        print(f"  upload: {what}: reported, kept pending", file=sys.stderr)

    # --- memory: the peak of every actor stays small after all of that ------------------------
    for a in actors(env):
        hwm = proc_kb(a["pid"], "VmHWM")
        report.setdefault("peak_kb", {})[a["actor"]] = hwm
        check(ASAN or 0 < hwm < MAX_RSS_KB, f"{a['actor']}: peak RSS {hwm} kB (limit {MAX_RSS_KB})")
    dhwm = proc_kb(env.daemon.pid, "VmHWM")
    report.setdefault("peak_kb", {})["edgesyncd"] = dhwm
    check(ASAN or 0 < dhwm < MAX_RSS_KB, f"edgesyncd: peak RSS {dhwm} kB")

    # --- ZeroMQ: bad frames to every socket the daemon binds --------------------------------
    print("zeromq:", file=sys.stderr)
    data = os.path.join(env.dir, "data")
    poke = os.path.join(bindir, "zmq_poke")
    before = actor_state()
    rss0 = proc_kb(env.daemon.pid, "VmRSS")
    for ep, kinds in [(f"ipc://{data}/cmd.sock", ["dealer", "req", "raw", "pub", "push"]),
                      (f"ipc://{data}/work.sock", ["dealer", "raw", "pair"]),
                      (f"ipc://{data}/events.sock", ["xsub", "sub", "raw"])]:
        for k in kinds:
            n = 10000 if k in ("dealer", "xsub", "sub") else 300 if k == "raw" else 20
            p = subprocess.run([poke, ep, k, str(n), "5"], env=POKE_ENV, capture_output=True, text=True,
                               timeout=120)
            check(p.returncode == 0, f"zmq_poke {ep} {k}: {p.returncode} {p.stderr[-300:]}")
            check(env.daemon.poll() is None, f"daemon alive after {k} on {ep}")
            report.setdefault("zmq", []).append(f"{os.path.basename(ep)} {k} {n}")
    time.sleep(1.5)
    rss1 = proc_kb(env.daemon.pid, "VmRSS")
    # The same again: buffers that the first round grew are reused, nothing accumulates.
    for ep in (f"ipc://{data}/cmd.sock", f"ipc://{data}/work.sock"):
        p = subprocess.run([poke, ep, "dealer", "10000", "6"], env=POKE_ENV, capture_output=True, text=True,
                           timeout=120)
        check(p.returncode == 0, f"zmq_poke {ep} again: {p.stderr[-300:]}")
    time.sleep(1.5)
    rss2 = proc_kb(env.daemon.pid, "VmRSS")
    report["daemon_rss_kb"] = [rss0, rss1, rss2]
    check(ASAN or rss1 - rss0 < 16 * 1024, f"daemon RSS grew {rss0} -> {rss1} kB")
    check(ASAN or rss2 - rss1 < 2 * 1024, f"daemon RSS kept growing: {rss0} -> {rss1} -> {rss2} kB")
    check(actor_state() == before, f"actors changed by the bad frames: {before} -> "
          f"{actor_state()}")
    log = open(os.path.join(env.dir, "daemon.log")).read()
    check("dropped" in log and "malformed" in log, "bad frames logged")

    # --- finally: the store converges record by record, the pending change survives -------
    check(any(r.get("city") == "Hostile City"
              for r in env.local_records(SVC, "Customer") if r["id"] == PEND_ID),
          "pending local change intact")
    rc, res, err = sync(None, '{"syncType":"fullSync"}')
    check(rc == 0, f"clean full sync after everything: {rc} {json.dumps(res)[:300]}")
    rc, out, err = env.cli("pending", SVC)
    check(rc == 0 and '"id"' not in out, f"nothing left pending: {out[:300]}")
    n = 0
    for o in OBJS:
        loc, srv = env.local_records(SVC, o), env.server_records(SVC, o)
        n += len(srv)
        check(same_records(loc, srv), f"{o}: converged to the server's data")
    srv = [r for r in env.server_records(SVC, "Customer") if r["id"] == PEND_ID]
    check(srv and srv[0]["city"] == "Hostile City", f"pending change reached the server: {srv}")
    report["records_compared"] = n
    log = open(os.path.join(env.dir, "daemon.log"), errors="replace").read()
    for bad in ("AddressSanitizer", "runtime error", "LeakSanitizer"):
        check(bad not in log, f"sanitizer report in the daemon log: {bad}")
finally:
    env.close()
print(json.dumps(report), file=sys.stderr)
finish()
