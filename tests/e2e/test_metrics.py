"""Metrics and run history, end to end: /metrics (Prometheus text format 0.0.4) served by es-stats
scraped during and after a multi-object sync with uploads, its figures checked against the
server's /admin/stats, the sync result and the progress events; counters surviving a SIGKILL of
es-stats and a daemon restart; `edgesync history` listing runs (a failed one too), bounded by
history.max_runs, and kept across a daemon restart."""
import json
import os
import re
import signal
import socket
import sys
import time
import urllib.error
import urllib.request

from eslib import Env, Sync, actors, check, finish, served, free_port

bindir = sys.argv[1]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def scrape(port):
    """{(name, ((label, value), ...)): value}; every line must parse, every family be typed."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        ctype = r.headers.get("Content-Type", "")
        text = r.read().decode()
    check(ctype.startswith("text/plain; version=0.0.4"), f"content type {ctype}")
    out, typed, bad = {}, {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            typed[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        m = LINE.match(line)
        if not m:
            bad.append(line)
            continue
        labels, rest = [], m.group(3) or ""
        while rest:
            lm = LABEL.match(rest)
            if not lm:
                bad.append(line)
                break
            labels.append((lm.group(1), lm.group(2)))
            rest = rest[lm.end():]
        name = m.group(1)
        base = re.sub(r'_(bucket|sum|count)$', '', name)
        if name not in typed and base not in typed:
            bad.append("untyped: " + line)
        out[(name, tuple(sorted(labels)))] = float(m.group(4))
    check(not bad, f"exposition lines parse: {bad[:3]}")
    for fam in ["edgesync_sessions_total", "edgesync_records_uploaded_total",
                "edgesync_records_downloaded_total", "edgesync_bytes_uploaded_total",
                "edgesync_bytes_downloaded_total", "edgesync_errors_total",
                "edgesync_batch_duration_seconds", "edgesync_actor_restarts_total",
                "edgesync_pending_changes", "edgesync_upload_cache_depth",
                "edgesync_sync_in_progress"]:
        check(fam in typed, f"family {fam} has a TYPE line")
    return out


def val(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def total(m, name, **labels):
    """Sum over the series of name whose labels include the given ones."""
    return sum(v for (n, ls), v in m.items()
               if n == name and all((k, w) in ls for k, w in labels.items()))


def counters(m):
    return {k: v for k, v in m.items() if k[0].endswith("_total") and
            k[0] != "edgesync_actor_restarts_total" or
            k[0].startswith("edgesync_batch_duration_seconds")}


def history(env, *args):
    rc, out, err = env.cli("history", "--json", *args)
    check(rc == 0, f"history {args}: rc {rc} {err}")
    try:
        return json.loads(out)
    except ValueError:
        return []


port = free_port()
env = Env(bindir, generate="1500",
          extra_conf=f"metrics.listen = 127.0.0.1:{port}\nhistory.max_runs = 3\n"
          "retry.max_attempts = 1\nretry.max_ms = 50\n")
try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    # Local changes to upload: pending gauges count them before the sync.
    rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"downloadOnly"}')
    check(rc == 0, f"initial download {rc} {err[-300:]}")
    cust = env.local_records(SVC, "Customer")
    for i in range(5):
        rec = {k: v for k, v in cust[i].items() if k != "id" and not k.startswith("_")}
        rec["name"] = f"Metrics {i}"
        rc, out, err = env.cli("update", SVC, "Customer", str(cust[i]["id"]), json.dumps(rec))
        check(rc == 0, f"update {i}: {rc} {err}")
    prod = env.local_records(SVC, "Product")
    for i in range(3):
        rc, out, err = env.cli("partial-update", SVC, "Product", json.dumps(prod[i]["sku"]),
                               '{"price":2.5}')
        check(rc == 0, f"partial update {i}: {rc} {err}")
    m0 = scrape(port)
    check(val(m0, "edgesync_pending_changes", service=SVC, object="Customer") == 5,
          f"5 pending Customer changes: {val(m0, 'edgesync_pending_changes', service=SVC, object='Customer')}")
    check(val(m0, "edgesync_pending_changes", service=SVC, object="Product") == 3,
          "3 pending Product changes")
    check(val(m0, "edgesync_sessions_total", level="service", result="ok") == 1,
          "the initial download counted")
    up0 = total(m0, "edgesync_records_uploaded_total")

    # 1. A multi-object sync with uploads, slowed down so that it can be scraped while it runs.
    env.admin_post("/admin/faults", {"rules": [{"kind": "latency_ms", "ms": 150,
                                                "path": "/objects/"}]})
    applied0 = sum(served(env)["uploadApplied"].values())
    s = Sync(env, SVC, "--options", '{"downloadBatchSize":5,"uploadBatchSize":2,'
             '"getSyncStats":true}')
    seen_running = False
    deadline = time.time() + 60
    while s.p.poll() is None and time.time() < deadline:
        mid = scrape(port)
        seen_running = seen_running or val(mid, "edgesync_sync_in_progress") == 1
        time.sleep(0.1)
    rc, out = s.result()
    env.admin_post("/admin/faults", {"rules": []})
    check(rc == 0, f"sync with uploads: rc {rc} {out[:300]}")
    check(seen_running, "edgesync_sync_in_progress was 1 during the sync")
    res = json.loads(out) if out.strip() else {}
    st = res.get("syncStats", {})
    time.sleep(0.3)  # the stats actor handles the result asynchronously
    m1 = scrape(port)
    applied = sum(served(env)["uploadApplied"].values()) - applied0
    uploaded = total(m1, "edgesync_records_uploaded_total") - up0
    check(applied == 8 and uploaded == applied,
          f"uploaded records: metrics {uploaded}, server applied {applied}, want 8")
    check(st.get("totalUploadedRecords") == uploaded, f"result says {st.get('totalUploadedRecords')}")
    down = {o: val(m1, "edgesync_records_downloaded_total", service=SVC, object=o) -
            val(m0, "edgesync_records_downloaded_total", service=SVC, object=o) for o in OBJS}
    ev_down = {}
    for e in s.events:
        if e["phase"] == "Download" and e["state"] == "Ended":
            ev_down[e["object"]] = ev_down.get(e["object"], 0) + e.get("batchRecords", 0)
    check(sum(down.values()) == st.get("totalDownloadedRecords"),
          f"downloaded per object {down}, result {st.get('totalDownloadedRecords')}")
    check(all(down[o] == ev_down.get(o, 0) for o in OBJS), f"per object {down} vs events {ev_down}")
    nd = sum(1 for e in s.events if e["phase"] == "Download" and e["state"] == "Ended")
    nu = sum(1 for e in s.events if e["phase"] == "Upload" and e["state"] == "Ended")
    hd = val(m1, "edgesync_batch_duration_seconds_count", phase="download") - \
        val(m0, "edgesync_batch_duration_seconds_count", phase="download")
    hu = val(m1, "edgesync_batch_duration_seconds_count", phase="upload") - \
        val(m0, "edgesync_batch_duration_seconds_count", phase="upload")
    check(nd > 0 and hd == nd, f"download histogram count {hd} == batches {nd}")
    check(nu >= 4 and hu == nu, f"upload histogram count {hu} == batches {nu}")
    check(len(st.get("downloadStats", [])) == nd, "the result lists as many download batches")
    for ph in ("download", "upload"):
        buckets = sorted(((float("inf") if dict(ls)["le"] == "+Inf" else float(dict(ls)["le"])), v)
                         for (n, ls), v in m1.items()
                         if n == "edgesync_batch_duration_seconds_bucket" and
                         dict(ls).get("phase") == ph)
        counts = [v for _, v in buckets]
        check(counts == sorted(counts) and counts[-1] ==
              val(m1, "edgesync_batch_duration_seconds_count", phase=ph),
              f"{ph} buckets cumulative, +Inf == count: {buckets}")
    # 150 ms of latency per download request: no download batch is faster than 0.1 s.
    check(val(m1, "edgesync_batch_duration_seconds_bucket", phase="download", le="0.1") ==
          val(m0, "edgesync_batch_duration_seconds_bucket", phase="download", le="0.1"),
          "no download batch under 0.1 s during the slowed sync")
    check(total(m1, "edgesync_bytes_downloaded_total") > total(m0, "edgesync_bytes_downloaded_total"),
          "bytes downloaded grew")
    check(total(m1, "edgesync_bytes_uploaded_total") > 0, "bytes uploaded counted")
    check(val(m1, "edgesync_sessions_total", level="service", result="ok") == 2, "2 ok sessions")
    check(all(val(m1, "edgesync_pending_changes", service=SVC, object=o) == 0 for o in OBJS),
          "nothing pending after the upload")
    check(val(m1, "edgesync_upload_cache_depth") == 0, "upload cache empty")
    check(val(m1, "edgesync_sync_in_progress") == 0, "no sync in progress")

    # A slow scraper (connects, sends nothing) does not hold the actor: others are served.
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"GET /metr")
    t0 = time.time()
    scrape(port)
    check(time.time() - t0 < 2, "a scrape is answered while another client stalls")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10):
        pass
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
        check(False, "/other is 404")
    except urllib.error.HTTPError as e:
        check(e.code == 404, f"/other: {e.code}")
    slow.close()

    # 2. SIGKILL es-stats: it is restarted, its counters are where they were.
    stats = [a for a in actors(env) if a["actor"] == "stats.0"]
    check(stats and stats[0]["pid"], f"stats actor listed: {stats}")
    os.kill(stats[0]["pid"], signal.SIGKILL)
    m2 = None
    deadline = time.time() + 20
    while time.time() < deadline:
        time.sleep(0.2)
        a = [a for a in actors(env) if a["actor"] == "stats.0"]
        if a and a[0]["state"] == "ready" and a[0]["pid"] != stats[0]["pid"]:
            try:
                m2 = scrape(port)
                break
            except OSError:
                pass
    check(m2 is not None, "es-stats back after SIGKILL")
    m2 = m2 or {}
    check(counters(m2) == counters(m1),
          f"counters survive a SIGKILL of es-stats: "
          f"{set(counters(m2).items()) ^ set(counters(m1).items())}")
    check(val(m2, "edgesync_actor_restarts_total", kind="stats") == 1, "one stats restart counted")
    check(val(m2, "edgesync_actor_restarts_total", kind="download") == 0, "no download restart")

    # 3. A failed sync: every object request fails, retries run out.
    env.admin_post("/admin/faults", {"rules": [{"kind": "http_500", "path": "/objects/"}]})
    rc, out, err = env.cli("sync", SVC, "Customer", "--options", '{"syncType":"downloadOnly"}')
    env.admin_post("/admin/faults", {"rules": []})
    check(rc == 1, f"sync through HTTP 500 fails: rc {rc}")
    code = json.loads(out).get("code") if out.strip().startswith("{") else None
    time.sleep(0.3)
    m3 = scrape(port)
    check(val(m3, "edgesync_sessions_total", level="object", result="failed") == 1,
          "failed session counted")
    check(code and val(m3, "edgesync_errors_total", code=str(code)) >= 1,
          f"error code {code} counted")

    # 4. History: newest first, the failed run with its code, bounded at 3 runs.
    runs = history(env)
    check([r["entity"] for r in runs] == ["Customer", SVC, SVC],
          f"history entities {[r.get('entity') for r in runs]}")
    if len(runs) == 3:
        check(runs[0]["result"] == "failed" and runs[0]["code"] == code and runs[0]["level"] == "object",
              f"failed run recorded: {runs[0]}")
        check(runs[1]["result"] == "ok" and runs[1]["uploaded"] == 8 and
              runs[1]["downloaded"] == st.get("totalDownloadedRecords") and
              runs[1]["bytesUploaded"] > 0 and runs[1]["batchesDownloaded"] == nd and
              runs[1]["options"].get(SVC, {}).get("uploadBatchSize") == 2 and
              runs[1]["phases"].get("Download", -1) >= 0 and runs[1]["end"] >= runs[1]["start"],
              f"the sync with uploads recorded: {runs[1]}")
        check(runs[0]["id"] > runs[1]["id"] > runs[2]["id"], "ids increase")
    rc, out, err = env.cli("sync", SVC, "Product", "--options", '{"syncType":"downloadOnly"}')
    check(rc == 0, f"product sync {rc}")
    time.sleep(0.3)
    runs = history(env)
    check([r["entity"] for r in runs] == ["Product", "Customer", SVC],
          f"bounded at 3, oldest dropped: {[r.get('entity') for r in runs]}")
    check(len(history(env, "--limit", "1")) == 1, "--limit 1")
    only = history(env, "Customer")
    check(len(only) == 1 and only[0]["result"] == "failed", f"history Customer: {only}")
    rc, out, err = env.cli("history")
    lines = out.strip().splitlines()
    check(rc == 0 and len(lines) == 4 and "failed" in lines[2] and "Product" in lines[1],
          f"history table: {out}")
    rc, out, err = env.cli("history", "--limit", "x")
    check(rc == 2 and "--limit" in err, f"bad --limit: {rc} {err}")

    # 5. A daemon restart keeps the ledger and the counters.
    before = history(env)
    m4 = scrape(port)
    env.stop_daemon()
    env.start_daemon()
    time.sleep(0.3)
    check(history(env) == before, "history survives a daemon restart")
    m5 = scrape(port)
    check(counters(m5) == counters(m4), "counters survive a daemon restart")
    check(val(m5, "edgesync_history_runs") == 3, "3 runs kept")
finally:
    env.close()
finish()
