#!/usr/bin/env python3
"""edgesync benchmarks (issue 7): one command measures download speed against a floor, memory,
upload, incremental and no-op syncs, parallel workers, a fleet of daemons and cost growth, on
this machine, against the reference server on loopback. Prints figures and ratios, writes
results JSON and a gnuplot PNG. Benchmarks, not tests: nothing here asserts a time.

    python3 bench/bench.py [--quick] [--bindir DIR] [--out DIR] [--only S1,S2,...]

--quick: small sizes, one repetition (the ctest smoke run, well under a minute).
"""
import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SVC = "SampleSvc"
TOKEN = "bench-token"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def summary(values):
    """median/min/max (and n) of a list of numbers."""
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "n": len(v)}


def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


# --- processes ----------------------------------------------------------------------------------

def proc_cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return out


class Server:
    """The reference backend with a generated dataset, in its own directory."""

    def __init__(self, bindir, workdir, generate):
        self.dir = os.path.join(workdir, "server")
        os.makedirs(self.dir, exist_ok=True)
        t0 = time.time()
        self.p = subprocess.Popen(
            [os.path.join(bindir, "edgesync-server"), "--port", "0", "--admin-port", "0",
             "--data", self.dir, "--token", TOKEN, "--generate", generate, "--seed", "7",
             "--log-level", "error"],
            stdout=subprocess.PIPE, stderr=open(os.path.join(workdir, "server.log"), "a"),
            text=True)
        line = self.p.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError("server did not start: " + line)
        parts = line.split()
        self.url, self.admin = parts[3], parts[5]
        self.start_seconds = time.time() - t0
        self._conn = None

    def cpu(self):
        return proc_cpu_seconds(self.p.pid)

    def admin_post(self, path, body):
        """POST on one keep-alive connection (the loop of 1,000 updates uses it)."""
        if self._conn is None:
            u = urllib.parse.urlparse(self.admin)
            self._conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self._conn.request("POST", path, body=json.dumps(body),
                           headers={"Content-Type": "application/json"})
        r = self._conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"admin {path}: HTTP {r.status} {data[:200]}")
        return data

    def admin_get(self, path):
        u = urllib.parse.urlparse(self.admin)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        c.request("GET", path)
        data = c.getresponse().read()
        c.close()
        return data.decode()

    def close(self):
        if self._conn:
            self._conn.close()
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


class Daemon:
    """edgesyncd with its actors, in its own data directory, set up for the server."""

    def __init__(self, bindir, workdir, server, name="d", extra_conf="", wait=True,
                 copy_data=None):
        self.bindir = bindir
        self.dir = os.path.join(workdir, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        if copy_data:   # start from a copy of a stopped daemon's store
            shutil.copytree(copy_data, os.path.join(self.dir, "data"),
                            ignore=shutil.ignore_patterns("*.sock", "*-lock"))
        self.conf = os.path.join(self.dir, "edgesync.conf")
        with open(self.conf, "w") as f:
            f.write(f"data_dir = {self.dir}/data\nserver_url = {server.url}\n"
                    f"auth_token = {TOKEN}\nlog.level = warn\n{extra_conf}")
        self.log = open(os.path.join(self.dir, "daemon.log"), "a")
        self.p = subprocess.Popen([os.path.join(bindir, "edgesyncd"), "--config", self.conf],
                                  stdout=self.log, stderr=self.log)
        self.endpoint = f"ipc://{self.dir}/data/cmd.sock"
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=60):
        sock = os.path.join(self.dir, "data", "cmd.sock")
        deadline = time.time() + timeout
        while time.time() < deadline and not os.path.exists(sock):
            if self.p.poll() is not None:
                raise RuntimeError(f"edgesyncd exited: see {self.dir}/daemon.log")
            time.sleep(0.02)
        while time.time() < deadline:
            rc, out, _, _ = self.cli("status")
            if rc == 0 and '"starting"' not in out and '"down"' not in out:
                return
            time.sleep(0.05)
        raise RuntimeError("daemon did not become ready")

    def cli(self, *args, timeout=900):
        t0 = time.perf_counter()
        p = subprocess.run([os.path.join(self.bindir, "edgesync"), "-c", self.conf] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0

    def setup(self):
        rc, out, err, _ = self.cli("setup")
        if rc != 0:
            raise RuntimeError(f"setup: rc {rc}: {err[-500:]}")

    def sync(self, *args, options=None, events=False):
        """Run a sync through the CLI; (seconds, result dict, events)."""
        a = ["sync", SVC] + list(args)
        if options is not None:
            a += ["--options", json.dumps(options)]
        if events:
            a.append("--json")
        rc, out, err, secs = self.cli(*a)
        if rc != 0:
            raise RuntimeError(f"sync {args} {options}: rc {rc}: {out[-500:]} {err[-500:]}")
        ev = [json.loads(l) for l in err.splitlines() if l.startswith("{")] if events else []
        return secs, json.loads(out), ev

    def pids(self):
        return [self.p.pid] + children_of(self.p.pid)

    def close(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


class MemSampler:
    """Samples VmHWM/VmRSS (/proc/pid/status) and Pss/Private_Dirty (/proc/pid/smaps_rollup) of
    the daemon and each actor every ~20 ms; keeps per-process peaks and the peak of the sums."""

    def __init__(self, daemon, period=0.02):
        self.daemon = daemon
        self.period = period
        self.per = {}            # name -> {hwm_kb, rss_kb, pss_kb, dirty_kb}
        self.peak_sum = {"rss_kb": 0, "pss_kb": 0, "dirty_kb": 0, "anon_kb": 0}
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    @staticmethod
    def _read(pid):
        m = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("Name:", "VmHWM:", "VmRSS:", "RssAnon:")):
                    k, v = line.split(":", 1)
                    m[k] = v.split()[0]
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(("Pss:", "Private_Dirty:")):
                    k, v = line.split(":", 1)
                    m[k] = int(v.split()[0])
        return m

    def _run(self):
        pids, refreshed = [], 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - refreshed > 0.5:
                pids, refreshed = self.daemon.pids(), now
            sums = {"rss_kb": 0, "pss_kb": 0, "dirty_kb": 0, "anon_kb": 0}
            for pid in pids:
                try:
                    m = self._read(pid)
                except (OSError, ValueError):
                    continue
                name = m.get("Name", str(pid))
                if pid == self.daemon.p.pid:
                    name = "edgesyncd"
                elif name in self.per and self.per[name].get("pid") != pid:
                    name = f"{name}#{pid}"   # several download workers
                cur = {"hwm_kb": int(m.get("VmHWM", 0)), "rss_kb": int(m.get("VmRSS", 0)),
                       "pss_kb": m.get("Pss", 0), "dirty_kb": m.get("Private_Dirty", 0),
                       "anon_kb": int(m.get("RssAnon", 0))}
                e = self.per.setdefault(name, {"pid": pid, "hwm_kb": 0, "rss_kb": 0,
                                               "pss_kb": 0, "dirty_kb": 0, "anon_kb": 0})
                for k, v in cur.items():
                    e[k] = max(e[k], v)
                for k in sums:
                    sums[k] += cur[k]
            for k in sums:
                self.peak_sum[k] = max(self.peak_sum[k], sums[k])
            self.samples += 1
            self._stop.wait(self.period)

    def result(self):
        per = {k: {kk: vv for kk, vv in v.items() if kk != "pid"} for k, v in self.per.items()}
        return {"processes": per, "peak_sum": dict(self.peak_sum), "samples": self.samples}


# --- scenarios ----------------------------------------------------------------------------------

def download_events_progress(events):
    """Cumulative (seconds since the first event, records) at each Download/Ended event."""
    pts, total, t0 = [], 0, None
    for e in events:
        ts = e.get("_t")
        if t0 is None:
            t0 = ts
        if e.get("phase") == "Download" and e.get("state") == "Ended":
            total = e.get("totalDownloadedRecords", total)
            pts.append((ts - t0, total))
    return pts


def sync_timed_events(d, *args, options=None):
    """A sync with --json, each event line stamped with its arrival time (for progression)."""
    a = [os.path.join(d.bindir, "edgesync"), "-c", d.conf, "sync", SVC] + list(args)
    if options is not None:
        a += ["--options", json.dumps(options)]
    a.append("--json")
    t0 = time.perf_counter()
    p = subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events = []

    def rd():
        for line in p.stderr:
            if line.startswith("{"):
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                e["_t"] = time.perf_counter() - t0
                events.append(e)

    t = threading.Thread(target=rd, daemon=True)
    t.start()
    out = p.stdout.read()
    p.wait()
    secs = time.perf_counter() - t0
    t.join(timeout=10)
    if p.returncode != 0:
        raise RuntimeError(f"sync {args}: rc {p.returncode}: {out[-500:]}")
    return secs, json.loads(out), events


def batch_breakdown(result):
    """Sums of the per-batch timings the download actor reports in syncStats.downloadStats
    (ms; measured by the actor with millisecond clocks, so small batches round down)."""
    keys = {"requestCreationTime": "request_ms", "networkDurationTime": "network_ms",
            "responseParsingTime": "parse_ms", "dataPersistanceTime": "persist_ms"}
    tot = {v: 0 for v in keys.values()}
    stats = result.get("syncStats", {}).get("downloadStats", [])
    for b in stats:
        for k, v in keys.items():
            tot[v] += b.get(k, 0) or 0
    tot["batches"] = len(stats)
    return tot


def floor_run(bindir, server, work, object_name, batch):
    """One floor measurement: bench_floor_fetch (libcurl) then bench_floor_load (yajl + LMDB)."""
    pages = os.path.join(work, "floor-pages")
    shutil.rmtree(pages, ignore_errors=True)
    os.makedirs(pages)
    url = f"{server.url}/services/data/v1/{SVC}/objects/{object_name}?$batchsize={batch}"
    f = subprocess.run([os.path.join(bindir, "bench_floor_fetch"), url, TOKEN, "1.0", pages],
                       capture_output=True, text=True, timeout=600)
    if f.returncode != 0:
        raise RuntimeError("floor_fetch: " + f.stderr)
    db = os.path.join(work, "floor.mdb")
    for p in (db, db + "-lock"):
        if os.path.exists(p):
            os.unlink(p)
    ld = subprocess.run([os.path.join(bindir, "bench_floor_load"), pages, db],
                        capture_output=True, text=True, timeout=600)
    if ld.returncode != 0:
        raise RuntimeError("floor_load: " + ld.stderr)
    fr, lr = json.loads(f.stdout), json.loads(ld.stdout)
    shutil.rmtree(pages, ignore_errors=True)
    return {"fetch_s": fr["seconds"], "load_s": lr["seconds"],
            "total_s": fr["seconds"] + lr["seconds"], "pages": fr["pages"], "bytes": fr["bytes"],
            "records": lr["records"], "peak_dirty_kb": lr.get("peak_dirty_kb", -1)}


def s_download(cfg, bindir, work, res):
    """Scenarios 1, 2 (memory during the same runs), 4 and the 100k point of 7."""
    n = cfg["s1_records"]
    log(f"[1] initial download of {n} Customers: generating the server dataset")
    srv = Server(bindir, work, f"Customer={n},Product=0,OrderLine=0")
    out = {"records": n, "server_generate_s": round(srv.start_seconds, 2), "batches": {}}
    mem = {"batches": {}}
    keep = None
    try:
        for batch in cfg["s1_batches"]:
            times, floors, mems, bds, prog = [], [], [], [], None
            for rep in range(cfg["reps"]):
                d = Daemon(bindir, work, srv, name=f"s1-{batch}-{rep}")
                d.setup()
                with MemSampler(d) as ms:
                    secs, result, ev = sync_timed_events(
                        d, "Customer", options={"syncType": "downloadOnly",
                                                "downloadBatchSize": batch,
                                                "getSyncStats": True})
                got = result.get("syncStats", {}).get("totalDownloadedRecords")
                if got != n:
                    raise RuntimeError(f"downloaded {got} records, expected {n}")
                times.append(secs)
                mems.append(ms.result())
                bds.append(batch_breakdown(result))
                if prog is None:
                    prog = download_events_progress(ev)
                fl = floor_run(bindir, srv, work, "Customer", batch)
                floors.append(fl)
                log(f"    batch {batch} rep {rep + 1}: edgesync {secs:.2f} s, floor "
                    f"{fl['total_s']:.2f} s (fetch {fl['fetch_s']:.2f} + load {fl['load_s']:.2f})"
                    f", daemon peak Pss {ms.peak_sum['pss_kb'] / 1024:.1f} MB")
                if batch == cfg["s1_batches"][0] and rep == cfg["reps"] - 1:
                    keep = d            # scenario 4 continues on this store
                else:
                    d.close()
                    shutil.rmtree(d.dir, ignore_errors=True)
            med = statistics.median(times)
            fmed = statistics.median(f["total_s"] for f in floors)
            out["batches"][str(batch)] = {
                "edgesync_s": summary(times),
                "floor_s": summary([f["total_s"] for f in floors]),
                "floor_fetch_s": summary([f["fetch_s"] for f in floors]),
                "floor_load_s": summary([f["load_s"] for f in floors]),
                "ratio": med / fmed if fmed else None,
                "records_per_s": n / med,
                "bytes": floors[0]["bytes"], "pages": floors[0]["pages"],
                "actor_breakdown_ms": bds[len(bds) // 2],
                "floor_load_peak_dirty_kb": max(f["peak_dirty_kb"] for f in floors),
                "progress": prog,
            }
            # Peak over the repetitions.
            agg = {"processes": {}, "peak_sum": {"rss_kb": 0, "pss_kb": 0, "dirty_kb": 0,
                                                 "anon_kb": 0}}
            for m in mems:
                for name, v in m["processes"].items():
                    base = name.split("#")[0]
                    e = agg["processes"].setdefault(base, {k: 0 for k in v})
                    for k in v:
                        e[k] = max(e[k], v[k])
                for k in agg["peak_sum"]:
                    agg["peak_sum"][k] = max(agg["peak_sum"][k], m["peak_sum"][k])
            agg["samples"] = sum(m["samples"] for m in mems)
            mem["batches"][str(batch)] = agg
        res["download"] = out
        res["memory"] = mem

        # Scenario 4: incremental after changes on the server, then no-op syncs.
        d = keep
        upd = cfg["s4_updates"]
        log(f"[4] incremental: {upd} of {n} records updated on the server")
        t0 = time.perf_counter()
        step = max(1, n // upd)
        for i in range(upd):
            rid = 1 + i * step
            srv.admin_post(f"/admin/records/{SVC}/Customer", {"op": "update", "record": {
                "id": rid, "name": f"Changed {i}", "email": f"changed{i}@example.com",
                "city": "Oslo", "country": "Norway", "balance": 1.5 + i, "active": True,
                "created": "2024-01-01T00:00:00Z", "tier": 2,
                "notes": "changed by the benchmark"}})
        admin_s = time.perf_counter() - t0
        secs, result, ev = d.sync("Customer", options={"syncType": "downloadOnly",
                                                       "getSyncStats": True}, events=False)
        got = result.get("syncStats", {}).get("totalDownloadedRecords")
        initial = out["batches"][str(cfg["s1_batches"][0])]["edgesync_s"]["median"]
        lat = []
        for _ in range(cfg["s4_noop_runs"]):
            s, _, _ = d.sync("Customer", options={"syncType": "downloadOnly"})
            lat.append(s)
        res["incremental"] = {
            "changed": upd, "downloaded": got, "admin_updates_s": admin_s, "sync_s": secs,
            "initial_s": initial, "ratio_to_initial": secs / initial,
            "noop": {"runs": len(lat), "median_s": statistics.median(lat), "p99_s": pct(lat, 99),
                     "min_s": min(lat), "max_s": max(lat)},
        }
        log(f"    incremental sync {secs:.3f} s ({got} records), no-op median "
            f"{statistics.median(lat) * 1000:.1f} ms p99 {pct(lat, 99) * 1000:.1f} ms")
        d.close()
    finally:
        if keep and keep.p.poll() is None:
            keep.close()
        srv.close()


def s_upload(cfg, bindir, work, res):
    """Scenario 3: upload of N pending creates at two uploadBatchSize values."""
    n = cfg["s3_changes"]
    log(f"[3] upload of {n} pending changes")
    srv = Server(bindir, work, "Customer=100,Product=0,OrderLine=0")
    out = {"changes": n, "batches": {}}
    try:
        # Creating the changes costs one request each; do it once, then upload from copies.
        t = Daemon(bindir, work, srv, name="s3-template")
        try:
            t.setup()
            p = subprocess.run([os.path.join(bindir, "bench_mkchanges"), t.endpoint, SVC,
                                "Customer", str(n)], capture_output=True, text=True, timeout=900)
            if p.returncode != 0:
                raise RuntimeError("mkchanges: " + p.stderr)
            mk = json.loads(p.stdout)["seconds"]
        finally:
            t.close()
        out["create_s"] = mk
        out["creates_per_s"] = n / mk
        log(f"    {n} creates through libedgesync: {mk:.2f} s ({n / mk:.0f}/s)")
        for batch in cfg["s3_batches"]:
            times = []
            for rep in range(cfg["reps"]):
                d = Daemon(bindir, work, srv, name="s3",
                           copy_data=os.path.join(t.dir, "data"))
                try:
                    secs, result, _ = d.sync("Customer", options={
                        "syncType": "uploadOnly", "uploadBatchSize": batch,
                        "getSyncStats": True})
                    up = result.get("syncStats", {}).get("totalUploadedRecords")
                    if up is not None and up != n:
                        raise RuntimeError(f"uploaded {up} of {n}")
                    times.append(secs)
                    log(f"    uploadBatchSize {batch} rep {rep + 1}: {secs:.2f} s "
                        f"({n / secs:.0f} records/s)")
                finally:
                    d.close()
            med = statistics.median(times)
            out["batches"][str(batch)] = {"upload_s": summary(times), "records_per_s": n / med}
        res["upload"] = out
    finally:
        srv.close()


def s_parallel(cfg, bindir, work, res):
    """Scenario 5: service-level sync of four objects with 1 and 2 download workers."""
    n = cfg["s5_records"]
    log(f"[5] parallel: four objects of {n} records, download.workers 1 vs 2")
    srv = Server(bindir, work, f"Customer={n},Product={n},OrderLine={n},Supplier={n}")
    out = {"records_per_object": n, "objects": 4, "workers": {}}
    try:
        for w in (1, 2):
            times = []
            for rep in range(cfg["reps"]):
                d = Daemon(bindir, work, srv, name="s5", extra_conf=f"download.workers = {w}\n")
                try:
                    d.setup()
                    secs, result, _ = d.sync(options={"syncType": "downloadOnly"})
                    times.append(secs)
                    log(f"    workers {w} rep {rep + 1}: {secs:.2f} s")
                finally:
                    d.close()
            out["workers"][str(w)] = {"sync_s": summary(times),
                                      "records_per_s": 4 * n / statistics.median(times)}
        out["speedup"] = (out["workers"]["1"]["sync_s"]["median"]
                          / out["workers"]["2"]["sync_s"]["median"])
        res["parallel"] = out
    finally:
        srv.close()


def s_fleet(cfg, bindir, work, res):
    """Scenario 6: 1, 10, 50 daemons syncing concurrently against one server."""
    n = cfg["s6_records"]
    log(f"[6] fleet: {cfg['s6_sizes']} daemons, {n} records each")
    srv = Server(bindir, work, f"Customer={n},Product=0,OrderLine=0")
    out = {"records_per_instance": n, "fleets": {}}
    try:
        for size in cfg["s6_sizes"]:
            ds = []
            try:
                for i in range(size):
                    ds.append(Daemon(bindir, work, srv, name=f"f{i}", wait=False))
                for d in ds:
                    d.wait_ready()
                for d in ds:
                    d.setup()
                sess, errs = [None] * size, []

                def one(i, d):
                    try:
                        sess[i], _, _ = d.sync("Customer", options={"syncType": "downloadOnly"})
                    except Exception as e:      # reported after the join
                        errs.append(str(e))

                ths = [threading.Thread(target=one, args=(i, d)) for i, d in enumerate(ds)]
                cpu0 = srv.cpu()
                t0 = time.perf_counter()
                for t in ths:
                    t.start()
                for t in ths:
                    t.join()
                wall = time.perf_counter() - t0
                cpu = srv.cpu() - cpu0
                if errs:
                    raise RuntimeError(f"fleet of {size}: {len(errs)} syncs failed: {errs[0]}")
                out["fleets"][str(size)] = {
                    "wall_s": wall, "records_per_s": size * n / wall,
                    "session_p50_s": pct(sess, 50), "session_p99_s": pct(sess, 99),
                    "session_max_s": max(sess), "server_cpu_s": cpu,
                    "server_cpu_us_per_record": cpu / (size * n) * 1e6}
                log(f"    {size} daemons: {wall:.2f} s, {size * n / wall:.0f} records/s, session "
                    f"p50 {pct(sess, 50):.2f} s p99 {pct(sess, 99):.2f} s, server CPU {cpu:.2f} s")
            finally:
                for d in ds:
                    d.close()
                for i in range(size):
                    shutil.rmtree(os.path.join(work, f"f{i}"), ignore_errors=True)
        res["fleet"] = out
    finally:
        srv.close()


def s_growth(cfg, bindir, work, res):
    """Scenario 7: initial download at several sizes (plus the scenario-1 size): time and memory
    per record, and the throughput of the last 10% of records against the first 10%."""
    sizes = sorted(set(cfg["s7_sizes"] + [cfg["s1_records"]]))
    log(f"[7] cost growth: {sizes} records, downloadBatchSize {cfg['s1_batches'][0]}")
    out = {"batch": cfg["s1_batches"][0], "sizes": {}}
    for n in sizes:
        srv = Server(bindir, work, f"Customer={n},Product=0,OrderLine=0")
        try:
            d = Daemon(bindir, work, srv, name="s7")
            try:
                d.setup()
                with MemSampler(d) as ms:
                    secs, result, ev = sync_timed_events(
                        d, "Customer", options={"syncType": "downloadOnly",
                                                "downloadBatchSize": out["batch"]})
                prog = download_events_progress(ev)
                store = os.path.join(d.dir, "data")
                store_b = sum(os.path.getsize(os.path.join(store, f)) for f in os.listdir(store)
                              if f.endswith(".mdb"))
            finally:
                d.close()
        finally:
            srv.close()
        first = last = None
        if prog and prog[-1][1]:
            tot, tend = prog[-1][1], prog[-1][0]
            # time at which 10% and 90% of the records were committed (first crossing)
            t10 = next(t for t, r in prog if r >= 0.1 * tot)
            t90 = next(t for t, r in prog if r >= 0.9 * tot)
            r10 = next(r for t, r in prog if r >= 0.1 * tot)
            r90 = next(r for t, r in prog if r >= 0.9 * tot)
            t_start = prog[0][0]
            first = r10 / t10 if t10 > 0 else None
            last = (tot - r90) / (tend - t90) if tend > t90 else None
            del t_start
        m = ms.result()
        out["sizes"][str(n)] = {
            "sync_s": secs, "records_per_s": n / secs, "us_per_record": secs / n * 1e6,
            "server_generate_s": srv.start_seconds,
            "peak_pss_kb": m["peak_sum"]["pss_kb"], "peak_dirty_kb": m["peak_sum"]["dirty_kb"],
            "download_actor_hwm_kb": max((v["hwm_kb"] for k, v in m["processes"].items()
                                          if k.startswith("es-download")), default=0),
            "store_bytes": store_b, "store_bytes_per_record": store_b / n,
            "first10_records_per_s": first, "last10_records_per_s": last,
            "last_vs_first": (last / first) if first and last else None,
            "progress": prog[:: max(1, len(prog) // 200)],
        }
        log(f"    {n}: {secs:.2f} s ({n / secs:.0f} records/s), first 10% {first or 0:.0f}/s, "
            f"last 10% {last or 0:.0f}/s, daemon peak Pss {m['peak_sum']['pss_kb'] / 1024:.1f} MB,"
            f" store {store_b / n:.0f} B/record")
    res["growth"] = out


# --- report -------------------------------------------------------------------------------------

EXPECTED = {"download": ["records", "batches"], "memory": ["batches"],
            "incremental": ["sync_s", "ratio_to_initial", "noop"], "upload": ["batches"],
            "parallel": ["workers", "speedup"], "fleet": ["fleets"], "growth": ["sizes"]}


def check_keys(res):
    ok = True
    for k, sub in EXPECTED.items():
        for s in sub:
            if s not in res.get(k, {}):
                log(f"bench: missing {k}.{s}")
                ok = False
    for b, v in res.get("download", {}).get("batches", {}).items():
        for s in ("edgesync_s", "floor_s", "ratio"):
            if not isinstance(v.get(s), (dict, float)):
                log(f"bench: missing download.batches.{b}.{s}")
                ok = False
    return ok


def report(res):
    m = res["machine"]
    print(f"edgesync bench ({res['mode']}) on {m['nproc']} x {m['cpu']}, {m['mem_mb']} MB RAM")
    dl = res.get("download")
    if dl:
        print(f"\n1. initial download of {dl['records']} Customer records (median of "
              f"{res['config']['reps']}; min..max)")
        for b, v in dl["batches"].items():
            e, f = v["edgesync_s"], v["floor_s"]
            print(f"   batch {b:>5}: edgesync {e['median']:.2f} s ({e['min']:.2f}..{e['max']:.2f})"
                  f" = {v['records_per_s']:.0f} rec/s; floor {f['median']:.2f} s (fetch "
                  f"{v['floor_fetch_s']['median']:.2f} + load {v['floor_load_s']['median']:.2f})"
                  f"; ratio {v['ratio']:.2f} (target <= 2.0)")
            bd = v["actor_breakdown_ms"]
            print(f"               actor per-batch sums: request {bd['request_ms']} ms, network "
                  f"{bd['network_ms']} ms, parse {bd['parse_ms']} ms, persist "
                  f"{bd['persist_ms']} ms over {bd['batches']} batches")
    mem = res.get("memory")
    if mem:
        print("\n2. peak memory during scenario 1, MB. Whole daemon = peak of the sums over "
              "edgesyncd and its actors\n   (Pss counts shared libraries once and includes mapped "
              "LMDB pages; Private_Dirty is what the processes own).\n   Per process: "
              "VmHWM / Private_Dirty")
        for b, v in mem["batches"].items():
            procs = ", ".join(f"{k} {p['hwm_kb'] / 1024:.1f}/{p['dirty_kb'] / 1024:.1f}"
                              for k, p in sorted(v["processes"].items()))
            print(f"   batch {b:>5}: whole daemon Pss {v['peak_sum']['pss_kb'] / 1024:.1f}, "
                  f"Private_Dirty {v['peak_sum']['dirty_kb'] / 1024:.1f}, RssAnon "
                  f"{v['peak_sum']['anon_kb'] / 1024:.1f} (target < 32)")
            print(f"               {procs}")
        # Memory that grows with the batch is what one transaction per batch needs: the floor
        # loader (the batch's text and LMDB's dirty pages, nothing else) shows how much.
        dl = res.get("download", {}).get("batches", {})
        bs = [b for b in mem["batches"] if "floor_load_peak_dirty_kb" in dl.get(b, {})]
        if len(bs) >= 2:
            lo, hi = bs[0], bs[-1]
            dd = [mem["batches"][b]["processes"].get("es-download", {}).get("dirty_kb", 0)
                  for b in (lo, hi)]
            ff = [dl[b]["floor_load_peak_dirty_kb"] for b in (lo, hi)]
            print(f"   batch {lo} -> {hi}: es-download Private_Dirty {dd[0] / 1024:.1f} -> "
                  f"{dd[1] / 1024:.1f} MB (+{(dd[1] - dd[0]) / 1024:.1f}); the floor loader "
                  f"(one transaction per batch) {ff[0] / 1024:.1f} -> {ff[1] / 1024:.1f} MB "
                  f"(+{(ff[1] - ff[0]) / 1024:.1f})")
    up = res.get("upload")
    if up:
        print(f"\n3. upload of {up['changes']} pending creates")
        for b, v in up["batches"].items():
            print(f"   uploadBatchSize {b:>4}: {v['upload_s']['median']:.2f} s = "
                  f"{v['records_per_s']:.0f} rec/s (target >= 20000 at 200)")
        print(f"   (creating them through libedgesync, one request each: "
              f"{up['creates_per_s']:.0f}/s)")
    inc = res.get("incremental")
    if inc:
        print(f"\n4. incremental: {inc['changed']} changed on the server -> {inc['sync_s']:.3f} s "
              f"({inc['downloaded']} records), {inc['ratio_to_initial']:.3f} of the initial "
              f"download; no-op sync (CLI round trip) median {inc['noop']['median_s'] * 1000:.1f} "
              f"ms, p99 {inc['noop']['p99_s'] * 1000:.1f} ms over {inc['noop']['runs']} runs")
    par = res.get("parallel")
    if par:
        w1, w2 = par["workers"]["1"], par["workers"]["2"]
        print(f"\n5. service sync, {par.get('objects', 3)} x {par['records_per_object']} records: "
              f"sequential (download.workers=1) {w1['sync_s']['median']:.2f} s, "
              f"parallel (workers=2) {w2['sync_s']['median']:.2f} s, "
              f"speed-up {par['speedup']:.2f} on {m['nproc']} cores")
    fl = res.get("fleet")
    if fl:
        print(f"\n6. fleet, {fl['records_per_instance']} records per daemon")
        for k, v in fl["fleets"].items():
            print(f"   {k:>3} daemons: {v['records_per_s']:.0f} rec/s aggregate, session p50 "
                  f"{v['session_p50_s']:.2f} s p99 {v['session_p99_s']:.2f} s, server CPU "
                  f"{v['server_cpu_s']:.2f} s ({v['server_cpu_us_per_record']:.1f} us/record)")
    gr = res.get("growth")
    if gr:
        print(f"\n7. cost growth (downloadBatchSize {gr['batch']})")
        for k, v in gr["sizes"].items():
            lf = v["last_vs_first"]
            print(f"   {int(k):>8} records: {v['sync_s']:.2f} s, {v['us_per_record']:.1f} us/record"
                  f", daemon peak Pss {v['peak_pss_kb'] / 1024:.1f} MB, store "
                  f"{v['store_bytes_per_record']:.0f} B/record, last 10% / first 10% throughput "
                  f"{'%.2f' % lf if lf else 'n/a'}")
    print(f"\nelapsed {res['elapsed_s']:.0f} s")


def plot(res, outdir):
    """A 2x2 PNG with gnuplot: download vs floor, memory per process, fleet, growth progress."""
    if not shutil.which("gnuplot"):
        log("bench: gnuplot not found, no picture (deploy/install-deps installs gnuplot-nox)")
        return
    d = os.path.join(outdir, "plotdata")
    os.makedirs(d, exist_ok=True)
    cmds = ["set terminal pngcairo size 1400,1000 font ',10'" if "pngcairo" in
            subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True,
                           text=True).stderr + subprocess.run(["gnuplot", "-e", "set terminal"],
                                                             capture_output=True,
                                                             text=True).stdout
            else "set terminal png size 1400,1000",
            f"set output '{os.path.join(outdir, 'latest.png')}'",
            "set multiplot layout 2,2 title 'edgesync bench: %s, %d x %s'" % (
                res["mode"], res["machine"]["nproc"], res["machine"]["cpu"].replace("'", "")),
            "set style data histograms", "set style histogram clustered gap 1",
            "set style fill solid 0.8 border -1", "set grid ytics", "set key top left"]
    dl = res.get("download")
    if dl:
        with open(os.path.join(d, "download.dat"), "w") as f:
            f.write("batch edgesync floor_fetch floor_load\n")
            for b, v in dl["batches"].items():
                f.write(f"{b} {v['edgesync_s']['median']} {v['floor_fetch_s']['median']} "
                        f"{v['floor_load_s']['median']}\n")
        cmds += [f"set title 'Initial download of {dl['records']} records (s, median)'",
                 "set xlabel 'downloadBatchSize'", "set ylabel 'seconds'", "set yrange [0:*]",
                 f"set xrange [-0.6:{len(dl['batches']) - 0.4}]",
                 f"plot '{d}/download.dat' using 2:xtic(1) title 'edgesync', "
                 "'' using 3 title 'floor: fetch', '' using 4 title 'floor: LMDB load'"]
    mem = res.get("memory")
    if mem:
        names = sorted({k for v in mem["batches"].values() for k in v["processes"]})
        with open(os.path.join(d, "memory.dat"), "w") as f:
            f.write("process " + " ".join(f"b{b}" for b in mem["batches"]) + "\n")
            for nm in names:
                f.write(nm + " " + " ".join(
                    str(v["processes"].get(nm, {}).get("dirty_kb", 0) / 1024)
                    for v in mem["batches"].values()) + "\n")
            f.write("daemon-Private_Dirty " + " ".join(str(v["peak_sum"]["dirty_kb"] / 1024)
                                                       for v in mem["batches"].values()) + "\n")
            f.write("daemon-Pss " + " ".join(str(v["peak_sum"]["pss_kb"] / 1024)
                                             for v in mem["batches"].values()) + "\n")
        cols = ", ".join(
            (f"'{d}/memory.dat' using {i + 2}:xtic(1)" if i == 0 else f"'' using {i + 2}")
            + f" title 'batch {b}'" for i, b in enumerate(mem["batches"]))
        cmds += ["set title 'Peak memory (MB): Private_Dirty per process; whole daemon "
                 "Private_Dirty and Pss'",
                 "set xlabel ''", "set ylabel 'MB'", "set xtics rotate by -30",
                 f"set xrange [-0.6:{len(names) + 1.6}]", f"plot {cols}",
                 "set xtics norotate", "set autoscale x"]
    fl = res.get("fleet")
    if fl:
        with open(os.path.join(d, "fleet.dat"), "w") as f:
            for k, v in fl["fleets"].items():
                f.write(f"{k} {v['records_per_s']} {v['session_p50_s']} {v['session_p99_s']}\n")
        cmds += ["set style data linespoints", "set title 'Fleet: aggregate records/s and "
                 "session time'", "set xlabel 'daemons'", "set ylabel 'records/s'",
                 "set y2label 'session s'", "set y2tics", "set logscale x",
                 f"plot '{d}/fleet.dat' using 1:2 axes x1y1 title 'records/s', '' using 1:3 "
                 "axes x1y2 title 'session p50', '' using 1:4 axes x1y2 title 'session p99'",
                 "unset logscale x", "unset y2tics", "unset y2label"]
    gr = res.get("growth")
    if gr:
        parts = []
        for k, v in gr["sizes"].items():
            fn = os.path.join(d, f"growth-{k}.dat")
            with open(fn, "w") as f:
                pr = v["progress"]
                w = max(1, len(pr) // 20)   # rate over a sliding ~5% window
                for i in range(w, len(pr)):
                    dt = pr[i][0] - pr[i - w][0]
                    if dt > 0:
                        f.write(f"{pr[i][1] / int(k) * 100} {(pr[i][1] - pr[i - w][1]) / dt}\n")
            parts.append(f"'{fn}' using 1:2 title '{k} records'")
        cmds += ["set style data lines",
                 "set title 'Cost growth: records/s over ~5% windows vs progress'",
                 "set xlabel '% of records committed'", "set ylabel 'records/s'",
                 "plot " + ", ".join(parts)]
    cmds.append("unset multiplot")
    p = subprocess.run(["gnuplot"], input="\n".join(cmds) + "\n", capture_output=True,
                       text=True)
    if p.returncode != 0:
        log("bench: gnuplot failed: " + p.stderr[-500:])
    else:
        log(f"plot: {os.path.join(outdir, 'latest.png')}")


# --- driver -------------------------------------------------------------------------------------

CONFIGS = {
    "full": {"reps": 5, "s1_records": 100000, "s1_batches": [500, 5000], "s4_updates": 1000,
             "s4_noop_runs": 50, "s3_changes": 10000, "s3_batches": [50, 200],
             "s5_records": 25000, "s6_records": 5000, "s6_sizes": [1, 10, 50],
             "s7_sizes": [10000, 1000000]},
    "quick": {"reps": 1, "s1_records": 3000, "s1_batches": [500, 5000], "s4_updates": 30,
              "s4_noop_runs": 5, "s3_changes": 300, "s3_batches": [50, 200],
              "s5_records": 1000, "s6_records": 500, "s6_sizes": [1, 3],
              "s7_sizes": [1000]},
}


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {"nproc": os.cpu_count(), "cpu": model, "mem_mb": mem_kb // 1024,
            "kernel": platform.release(), "python": platform.python_version()}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--bindir", default=os.path.join(ROOT, "build-bench", "bin"))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--only", default="", help="comma list of scenarios: 1,3,5,6,7")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless the JSON has every expected key (smoke test)")
    args = ap.parse_args()
    mode = "quick" if args.quick else "full"
    cfg = CONFIGS[mode]
    os.makedirs(args.out, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    res = {"mode": mode, "machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "config": cfg}
    work = tempfile.mkdtemp(prefix="es-bench-")
    t0 = time.time()
    try:
        for key, fn in (("1", s_download), ("3", s_upload), ("5", s_parallel), ("6", s_fleet),
                        ("7", s_growth)):
            if only and key not in only:
                continue
            fn(cfg, args.bindir, work, res)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["elapsed_s"] = time.time() - t0
    path = os.path.join(args.out, "latest.json")
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    report(res)
    plot(res, args.out)
    log(f"results: {path}")
    if args.check:
        sys.exit(0 if check_keys(res) else 1)


if __name__ == "__main__":
    main()
