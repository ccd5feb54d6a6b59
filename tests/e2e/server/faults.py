#!/usr/bin/env python3
"""edgesync-server end to end: every fault kind (latency, 500, 503, 429 + Retry-After, hang,
drop, truncate, malformed, lost_response), matching (path, method, every Nth, count,
probability with a seed), the admin fault API and its input checks, loopback-only admin."""
import http.client
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srvlib import Server, run  # noqa: E402


def cust(cid, row_id):
    return {"id": cid, "name": "F%d" % cid, "active": True,
            "_metadata": {"object": "Customer", "action": "create", "checksum": "",
                          "rowId": row_id}}


def status_of(s, obj="Customer"):
    try:
        return s.download(obj)[0]
    except Exception as e:  # noqa: BLE001 - any transport error is a result here
        return type(e).__name__


def test_http_errors(s, c):
    st, js, _ = s.faults([{"kind": "http_500", "every": 2, "path": "/objects/Customer"}])
    c.eq("set rules", (st, len(js["rules"])), (200, 1))
    got = [status_of(s) for _ in range(4)]
    c.eq("500 every 2nd", got, [200, 500, 200, 500])
    st, js, _ = s.download("Customer")
    st, js, _ = s.download("Customer")
    c.eq("500 body", (st, js["opstatus"], "injected" in js["errmsg"]), (500, 500, True))
    c.eq("path not matched", status_of(s, "Product"), 200)
    s.faults([{"kind": "http_503", "count": 2}])
    c.eq("503 count 2", [status_of(s) for _ in range(3)], [503, 503, 200])
    s.faults([{"kind": "http_429", "retry_after": 7, "count": 1}])
    st, hd, data = s.raw("POST", s.obj_path("Customer"), {}, {"X-Http-Method-Override": "GET"})
    c.eq("429 status", st, 429)
    c.eq("429 Retry-After", hd.get("retry-after"), "7")
    c.eq("429 body", json.loads(data)["opstatus"], 429)
    s.faults([{"kind": "http_500", "method": "UPLOAD"}])
    c.eq("method filter spares downloads", status_of(s), 200)
    st, js, _ = s.upload([], "Customer")
    c.eq("method filter hits uploads", st, 500)
    st, js, _ = s.admin("GET", "/admin/faults")
    c.eq("dump counters", (js["rules"][0]["seen"], js["rules"][0]["fired"]), (1, 1))
    st, js, _ = s.admin("DELETE", "/admin/faults")
    c.eq("delete rules", (st, js["rules"]), (200, []))
    c.eq("cleared", status_of(s), 200)


def test_latency(s, c):
    s.faults([{"kind": "latency_ms", "ms": 400, "path": "/objects/Customer"}])
    t0 = time.time()
    st = status_of(s)
    dt = time.time() - t0
    c.true("latency applied", st == 200 and dt >= 0.4, (st, dt))
    t0 = time.time()
    status_of(s, "Product")
    c.true("latency only on path", time.time() - t0 < 0.3)
    # latency combines with an error rule
    s.faults([{"kind": "latency", "ms": 200}, {"kind": "http_503"}])
    t0 = time.time()
    st = status_of(s)
    c.true("latency + 503", st == 503 and time.time() - t0 >= 0.2, st)
    s.admin("DELETE", "/admin/faults")


def test_hang(s, c):
    s.faults([{"kind": "hang", "ms": 3000, "count": 1}])
    t0 = time.time()
    try:
        s.call("POST", s.obj_path("Customer"), {}, {"X-Http-Method-Override": "GET"}, timeout=1)
        c.true("hang times out", False)
    except (socket.timeout, TimeoutError):
        c.true("hang times out", 0.9 <= time.time() - t0 < 2.5, time.time() - t0)
    c.eq("served after hang", status_of(s), 200)


def test_body_faults(s, c):
    st, js, _ = s.download("Customer")
    full = json.dumps(js)
    s.faults([{"kind": "drop", "count": 1}])
    try:
        s.raw("POST", s.obj_path("Customer"), {}, {"X-Http-Method-Override": "GET"})
        c.true("drop breaks the body", False)
    except http.client.IncompleteRead as e:
        c.true("drop sends about half", 0 < len(e.partial) < len(full), len(e.partial))
    s.faults([{"kind": "truncate", "count": 1}])
    st, hd, data = s.raw("POST", s.obj_path("Customer"), {}, {"X-Http-Method-Override": "GET"})
    c.eq("truncate status", st, 200)
    c.eq("truncate content-length matches", int(hd["content-length"]), len(data))
    try:
        json.loads(data)
        c.true("truncate cuts JSON", False)
    except ValueError:
        c.true("truncate cuts JSON", 0 < len(data) < len(full), len(data))
    s.faults([{"kind": "malformed", "count": 1}])
    st, hd, data = s.raw("POST", s.obj_path("Customer"), {}, {"X-Http-Method-Override": "GET"})
    c.eq("malformed status", st, 200)
    try:
        json.loads(data)
        c.true("malformed is not JSON", False)
    except ValueError:
        c.true("malformed is not JSON", True)
    c.eq("served after body faults", status_of(s), 200)


def test_lost_response(s, c):
    before = len(s.admin_list("Customer"))
    s.faults([{"kind": "lost_response", "method": "UPLOAD", "count": 1}])
    try:
        s.upload([cust(-1, 1)], "Customer", {"X-Voltmx-RequestCacheId": "lost-1"})
        c.true("lost response: no answer", False)
    except (http.client.RemoteDisconnected, ConnectionResetError):
        c.true("lost response: no answer", True)
    c.eq("lost response: applied", len(s.admin_list("Customer")), before + 1)
    st, js, _ = s.upload([cust(-1, 1)], "Customer", {"X-Voltmx-RequestCacheId": "lost-1"})
    c.eq("lost response: replay answered from cache",
         (st, js["_metadata"]["successCount"], len(s.admin_list("Customer"))),
         (200, 1, before + 1))


def test_probability(s, c):
    def sequence(seed):
        s.faults([{"kind": "http_500", "probability": 0.5, "path": "/objects/Product"}],
                 seed=seed)
        return [status_of(s, "Product") for _ in range(24)]

    a, b, other = sequence(42), sequence(42), sequence(43)
    c.eq("seeded sequence reproducible", a, b)
    c.true("probability mixes", 0 < a.count(500) < 24, a)
    c.true("other seed differs", a != other)
    s.faults([{"kind": "http_500", "probability": 0}])
    c.eq("probability 0 never", {status_of(s) for _ in range(5)}, {200})
    s.admin("DELETE", "/admin/faults")


def test_admin_input(s, c):
    for body, needle in (({"rules": [{"kind": "boom"}]}, "rules[0].kind"),
                         ({"rules": [{"kind": "http_500", "probability": 2}]}, "probability"),
                         ({"rules": [{"kind": "http_500", "every": 0}]}, "every"),
                         ({"rules": [{"kind": "hang", "ms": -1}]}, "ms"),
                         ({"rules": [{"kind": "http_500", "colour": 1}]}, "colour"),
                         ({"rules": [{"kind": "http_500", "path": 5}]}, "path"),
                         ({"rules": {}}, "rules: expected an array"),
                         ({"seed": "x"}, "seed"), ({"bogus": 1}, "bogus"),
                         ("{nope", "malformed JSON")):
        st, js, _ = s.admin("POST", "/admin/faults", body)
        c.true("bad fault %s" % needle, st == 400 and needle in js["errmsg"], (st, js))
    st, js, _ = s.admin("GET", "/admin/faults")
    c.eq("bad rules keep old ones", js["rules"], [])
    st, js, _ = s.admin("GET", "/admin/nothing")
    c.eq("admin unknown", (st, js["opstatus"]), (404, 404))
    st, js, _ = s.admin("POST", "/admin/records/SampleSvc/Nope", {"op": "create", "record": {}})
    c.eq("admin unknown object", st, 404)
    for body, needle in (({"op": "x", "record": {}}, "op"), ({"op": "create"}, "record"),
                         ({"op": "create", "record": {"id": 1, "name": 5, "active": True}},
                          "name"),
                         ({"op": "create", "record": {"name": "a"}}, "active")):
        st, js, _ = s.admin("POST", "/admin/records/SampleSvc/Customer", body)
        c.true("admin edit %s" % needle, st in (400, 409) and needle in js["errmsg"], (st, js))
    st = s.stats()
    c.true("faults counted", st["faultsFired"] >= 10 and st["requests"]["faults"] >= 10, st)


def test_admin_loopback(s, c):
    # /proc/net/tcp lists listening sockets with hex local addresses; 0100007F = 127.0.0.1
    found = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, port = local.split(":")
            if int(port, 16) == s.admin_port and state == "0A":
                found = addr
    c.eq("admin listens on 127.0.0.1 only", found, "0100007F")


def test_shutdown_during_hang(binary, c):
    s = Server(binary, "--generate", "3")
    s.faults([{"kind": "hang", "ms": 600000}])

    def hang():
        try:
            s.call("POST", s.obj_path("Customer"), {}, {"X-Http-Method-Override": "GET"},
                   timeout=30)
        except Exception:  # noqa: BLE001 - the connection is expected to break
            pass

    t = threading.Thread(target=hang)
    t.start()
    time.sleep(0.3)
    t0 = time.time()
    rc = s.stop()
    c.true("shutdown during hang is prompt", rc == 0 and time.time() - t0 < 5,
           (rc, time.time() - t0))
    t.join()


def main(binary, c):
    s = Server(binary, "--generate", "30", "--seed", "5")
    try:
        test_http_errors(s, c)
        test_latency(s, c)
        test_hang(s, c)
        test_body_faults(s, c)
        test_lost_response(s, c)
        test_probability(s, c)
        test_admin_input(s, c)
        test_admin_loopback(s, c)
    finally:
        c.eq("server exit", s.stop(), 0)
    test_shutdown_during_hang(binary, c)


if __name__ == "__main__":
    run(main)
