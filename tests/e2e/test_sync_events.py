"""Progress events, stats and results of startSync (SPEC 4.1-4.4, D9-D11) at object, service and
app level for fullSync, uploadOnly and downloadOnly, each with several upload and download
batches: the 8 phase/state pairs with their keys in order per batch plus Reconcile, monotonic
counts, the last event agreeing with the stats, the stats agreeing with what the server served,
per-batch network times that are measured (server latency shows in them), and the same events
on the C callbacks of libedgesync (sync_probe), on the daemon's event socket and from the CLI."""
import json
import math
import os
import subprocess
import sys
import threading
import time

from eslib import Env, check, finish, served

bindir = sys.argv[1]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]
PAIRS = {("Sync", "Started"): ["startTime", "totalObjectsToSync"],
         ("Upload", "Started"): ["batchNumber"],
         ("Upload", "InProgress"): ["totalRecordsToUpload", "batchNumber"],
         ("Upload", "Ended"): ["batchNumber", "totalUploadedRecords"],
         ("Download", "Started"): ["batchNumber"],
         ("Download", "InProgress"): ["batchNumber"],
         ("Download", "Ended"): ["totalDownloadedRecords", "batchNumber"],
         ("Sync", "Ended"): ["syncElapsedTime", "totalUploadedRecords", "totalDownloadedRecords"],
         ("Reconcile", "Started"): [],
         ("Reconcile", "Ended"): ["reconciledDeletes"]}
UPLOADS, UPLOAD_BATCH, DOWNLOAD_BATCH = 10, 4, 100


class Listener:
    """`edgesync events`: everything published on the daemon's event socket."""

    def __init__(self, env):
        self.p = subprocess.Popen([os.path.join(env.bindir, "edgesync"), "-c", env.conf,
                                   "events"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True)
        self.lines = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        time.sleep(0.5)  # let the subscription reach the PUB socket

    def _read(self):
        for line in self.p.stdout:
            if line.startswith("{"):
                self.lines.append(json.loads(line))

    def session(self, sid, n, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = [e for e in self.lines if e.get("session") == sid]
            if len(got) >= n:
                return got
            time.sleep(0.05)
        return [e for e in self.lines if e.get("session") == sid]

    def close(self):
        self.p.terminate()
        self.p.wait(timeout=10)


def counters(env):
    s = served(env)
    return dict(s["requests"]), sum(s["uploadApplied"].values())


def probe(env, options, level, *names):
    endpoint = "ipc://" + os.path.join(env.dir, "data", "cmd.sock")
    p = subprocess.run([os.path.join(bindir, "sync_probe"), endpoint, options, level, *names],
                       capture_output=True, text=True, timeout=300)
    events = [json.loads(l[2:]) for l in p.stdout.splitlines() if l.startswith("P ")]
    result = [l[2:] for l in p.stdout.splitlines() if l[:2] in ("S ", "F ")]
    parsed = [json.loads(l[2:]) for l in p.stdout.splitlines() if l.startswith("R ")]
    return p.returncode, events, result[0] if result else "", parsed[0] if parsed else {}, p.stderr


def check_sequence(label, evs, stype, name, objects):
    if not evs:
        check(False, f"{label}: no events")
        return
    ps = [(e.get("phase"), e.get("state")) for e in evs]
    check(ps[0] == ("Sync", "Started") and ps[-1] == ("Sync", "Ended") and
          ps.count(("Sync", "Started")) == 1 and ps.count(("Sync", "Ended")) == 1,
          f"{label}: Sync/Started first, Sync/Ended last, once each")
    check(all(p in PAIRS for p in ps), f"{label}: only documented pairs: {set(ps) - set(PAIRS)}")
    for e in evs:
        p = (e.get("phase"), e.get("state"))
        missing = [k for k in PAIRS.get(p, []) + ["name"] if k not in e]
        if missing:
            check(False, f"{label}: {p} lacks {missing}: {e}")
            break
    # App level: the session's own Sync events are named "application", the rest forwarded
    # from the service.
    top = "application" if label.startswith("app") else name
    check(evs[0]["name"] == evs[-1]["name"] == top and all(e["name"] == name for e in evs[1:-1]),
          f"{label}: name {name} on every event ({top} on Sync)")
    check(evs[0]["totalObjectsToSync"] == len(objects), f"{label}: totalObjectsToSync")
    # Per batch: Started, InProgress, Ended, in that order, nothing else.
    per = {}
    for e in evs:
        if e["phase"] in ("Upload", "Download"):
            per.setdefault((e["phase"], e.get("object"), e["batchNumber"]), []).append(e["state"])
    bad = {k: v for k, v in per.items() if v != ["Started", "InProgress", "Ended"]}
    check(not bad, f"{label}: every batch Started, InProgress, Ended: {list(bad.items())[:3]}")
    ups = sorted(k[2] for k in per if k[0] == "Upload")
    downs = {o: sorted(k[2] for k in per if k[0] == "Download" and k[1] == o) for o in objects}
    if stype == "downloadOnly":
        check(not ups, f"{label}: no upload events")
    else:
        check(ups == list(range(1, math.ceil(UPLOADS / UPLOAD_BATCH) + 1)),
              f"{label}: upload batches 1..{math.ceil(UPLOADS / UPLOAD_BATCH)}: {ups}")
    if stype == "uploadOnly":
        check(all(not d for d in downs.values()), f"{label}: no download events")
    else:
        check(all(len(d) >= 2 and d == list(range(1, len(d) + 1)) for d in downs.values()),
              f"{label}: several download batches 1..n per object: {downs}")
        last_up = max([i for i, p in enumerate(ps) if p[0] == "Upload"], default=-1)
        first_down = min([i for i, p in enumerate(ps) if p[0] == "Download"], default=len(ps))
        check(last_up < first_down, f"{label}: upload before download")
        for o in objects:
            ends = [i for i, e in enumerate(evs) if e.get("object") == o and
                    (e["phase"], e["state"]) == ("Download", "Ended")]
            rec = [i for i, e in enumerate(evs) if e.get("object") == o and e["phase"] == "Reconcile"]
            check(len(rec) == 2 and evs[rec[0]]["state"] == "Started" and
                  evs[rec[1]]["state"] == "Ended" and ends and rec[0] > ends[-1],
                  f"{label}: {o}: Reconcile Started, Ended after its last download batch")
    for phase, key in (("Upload", "totalUploadedRecords"), ("Download", "totalDownloadedRecords")):
        counts = [e[key] for e in evs if (e["phase"], e["state"]) == (phase, "Ended")]
        check(counts == sorted(counts), f"{label}: {key} monotonic: {counts}")
        if counts:
            check(counts[-1] == evs[-1][key], f"{label}: last {phase}/Ended {key} {counts[-1]} "
                  f"== Sync/Ended {evs[-1][key]}")


env = Env(bindir, generate="300")
listener = None
try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    listener = Listener(env)
    tmpl = {k: v for k, v in env.server_records(SVC, "Customer")[0].items() if k != "id"}
    for level in ("object", "service", "app"):
        for stype in ("fullSync", "uploadOnly", "downloadOnly"):
            label = f"{level} {stype}"
            for o in OBJS:
                env.cli("clear", SVC, o)
            uploads = 0 if stype == "downloadOnly" else UPLOADS
            for i in range(uploads):
                rc, out, err = env.cli("create", SVC, "Customer",
                                       json.dumps(dict(tmpl, name=f"{label} {i}")))
                check(rc == 0, f"create {err}")
            opts = {"syncType": stype, "downloadBatchSize": DOWNLOAD_BATCH,
                    "uploadBatchSize": UPLOAD_BATCH, "getSyncStats": True}
            objects = ["Customer"] if level == "object" else OBJS
            before, applied = counters(env)
            if level == "app":
                rc, evs, res_text, parsed, err = probe(
                    env, json.dumps({"objectServicesOptions": {SVC: opts}}), "app")
            elif level == "service":
                rc, evs, res_text, parsed, err = probe(env, json.dumps(opts), "service", SVC)
            else:
                rc, evs, res_text, parsed, err = probe(env, json.dumps(opts), "object", SVC,
                                                       "Customer")
            after, applied2 = counters(env)
            d = {k: after[k] - before[k] for k in after}
            res = json.loads(res_text) if res_text else {}
            check(rc == 0 and res.get("status") == 0, f"{label}: success {rc} {res_text[:300]} {err}")
            name = {"object": "Customer", "service": SVC, "app": SVC}[level]
            check_sequence(label, evs, stype, name, objects)

            # Stats against the server and the events.
            r = res.get("successResponse", {}).get(SVC, {}) if level == "app" else res
            st = r.get("syncStats", {})
            ended = evs[-1] if evs else {}
            # (At app level the session's elapsed time spans every service, not just this one.)
            check(st.get("totalDownloadedRecords") == ended.get("totalDownloadedRecords") and
                  st.get("totalUploadedRecords") == ended.get("totalUploadedRecords") and
                  (level == "app" or st.get("syncElapsedTime") == ended.get("syncElapsedTime")),
                  f"{label}: Sync/Ended agrees with syncStats")
            ds, us = st.get("downloadStats", []), st.get("uploadStats", [])
            check(len(ds) == d["download"], f"{label}: {len(ds)} download batches in stats, "
                  f"server served {d['download']}")
            check(len(us) == d["upload"], f"{label}: {len(us)} upload batches in stats, "
                  f"server served {d['upload']}")
            want_down = 0 if stype == "uploadOnly" else sum(
                len(env.server_records(SVC, o)) for o in objects)
            check(st.get("totalDownloadedRecords") == want_down ==
                  sum(b["numberOfRecords"] for b in ds),
                  f"{label}: downloaded {st.get('totalDownloadedRecords')} == server's {want_down}"
                  " == sum of batches")
            check(st.get("totalUploadedRecords") == applied2 - applied == uploads ==
                  sum(b["numberOfRecords"] for b in us),
                  f"{label}: uploaded {st.get('totalUploadedRecords')}, server applied "
                  f"{applied2 - applied}, created {uploads}")
            check(st.get("numberOfRecordsSynced") == want_down + uploads, f"{label}: synced sum")
            tkeys = ["requestCreationTime", "networkDurationTime", "responseParsingTime",
                     "dataPersistanceTime", "bytes", "retries", "batchNumber", "numberOfRecords"]
            check(all(isinstance(b.get(k), int) and b[k] >= 0 for b in ds + us for k in tkeys) and
                  all(b["bytes"] > 0 for b in ds + us), f"{label}: batch timings and bytes")
            check(st.get("reconciledDeletes") == 0 and st.get("uploadCacheReplays") == 0 and
                  st.get("name") == name, f"{label}: per-session stats")

            # The C library's parsed structure.
            check(parsed.get("ok") == 1 and parsed.get("code") == 0 and parsed.get("stats") ==
                  (level != "app") and (level == "app" or parsed.get("downloaded") == want_down
                                        and parsed.get("uploaded") == uploads and
                                        parsed.get("nupload") == len(us) and
                                        parsed.get("ndownload") == len(ds)),
                  f"{label}: parsed result {parsed}")
            if level == "app":
                check(parsed.get("services") == {SVC: {"ok": 1, "code": 0}} and
                      parsed.get("name") == "", f"{label}: parsed app result {parsed}")

            # The event socket saw exactly what the C callbacks got.
            sid = evs[0].get("session") if evs else None
            got = listener.session(sid, len(evs))
            check(got == evs, f"{label}: event socket == C callback ({len(got)} vs {len(evs)})")

    # The CLI (--json) prints the same events as the event socket publishes.
    for o in OBJS:
        env.cli("clear", SVC, o)
    rc, out, err = env.cli("sync", SVC, "--options", '{"downloadBatchSize":100}', "--json")
    cli_evs = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
    check(rc == 0 and len(cli_evs) > 10, f"CLI sync {rc}: {len(cli_evs)} events")
    sid = cli_evs[0].get("session") if cli_evs else None
    check(listener.session(sid, len(cli_evs)) == cli_evs, "event socket == CLI --json events")

    # Measured, not estimated: server latency shows in every download batch's network time.
    for o in OBJS:
        env.cli("clear", SVC, o)
    env.admin_post("/admin/faults", {"seed": 1, "rules": [{"kind": "latency_ms", "ms": 120,
                                                           "path": "/objects/Customer"}]})
    rc, evs, res_text, parsed, err = probe(env, '{"downloadBatchSize":100,"getSyncStats":true,'
                                           '"syncType":"downloadOnly"}', "service", SVC)
    env.admin_post("/admin/faults", {"rules": []})
    ds = json.loads(res_text).get("syncStats", {}).get("downloadStats", []) if res_text else []
    slow = [b["networkDurationTime"] for b in ds if b["object"] == "Customer"]
    fast = [b["networkDurationTime"] for b in ds if b["object"] != "Customer"]
    n = len(env.server_records(SVC, "Customer"))
    check(len(slow) == math.ceil(n / 100) and all(t >= 120 for t in slow),
          f"delayed batches took >= 120 ms: {slow}")
    check(fast and max(fast) < 120, f"undelayed batches did not: {fast}")
finally:
    if listener:
        listener.close()
    env.close()
finish()
