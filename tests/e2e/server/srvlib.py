"""Shared helpers for the edgesync-server end-to-end tests (Python standard library only).

Starts the real binary on port 0 with a temp data dir, parses its "listening" line, and offers
small HTTP helpers plus a check counter that prints "N passed, M failed" at the end.
"""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

SVC = "SampleSvc"


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def eq(self, what, got, want):
        if got == want:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL %s: got %r, want %r" % (what, got, want), flush=True)

    def true(self, what, cond, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL %s %s" % (what, detail), flush=True)

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 1 if self.failed else 0


class Server:
    """One edgesync-server process with its own data directory."""

    def __init__(self, binary, *args, data_dir=None):
        self.binary = binary
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="es-server-test-")
        cmd = [binary, "--port", "0", "--admin-port", "0", "--data", self.data_dir] + list(args)
        # stderr goes to a file: a pipe nobody reads could fill up and stall the server
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.wait()
            self.log.seek(0)
            err = self.log.read()
            self.log.close()
            if self.own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)
            raise RuntimeError("server did not start: %r %r" % (line, err))
        parts = line.split()
        self.url = parts[3]
        self.admin_url = parts[5]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.admin_port = int(self.admin_url.rsplit(":", 1)[1])
        self.headers = {}

    def stop(self, remove=True):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc.stdout.close()
        self.log.seek(0)
        err = self.log.read()
        self.log.close()
        if rc != 0:
            print("server exited with %r; its stderr:\n%s" % (rc, err[-4000:]), flush=True)
        if remove and self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return rc

    # ------------------------------------------------------------------ raw HTTP
    def raw(self, method, path, body=None, headers=None, port=None, timeout=30):
        """(status, headers dict, body bytes); raises on transport errors."""
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        h = dict(self.headers)
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def call(self, method, path, body=None, headers=None, port=None, timeout=30):
        """(status, parsed JSON or None, headers)."""
        st, hd, data = self.raw(method, path, body, headers, port, timeout)
        try:
            js = json.loads(data) if data else None
        except ValueError:
            js = None
        return st, js, hd

    # ------------------------------------------------------------------ protocol
    def obj_path(self, obj, **query):
        q = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        return "/services/data/v1/%s/objects/%s%s" % (SVC, obj, "?" + q if q else "")

    def svc_path(self, **query):
        q = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        return "/services/data/v1/%s%s" % (SVC, "?" + q if q else "")

    def download(self, obj, body=None, **query):
        return self.call("POST", self.obj_path(obj, **query), body if body is not None else {},
                         {"X-Http-Method-Override": "GET"})

    def download_all(self, obj, batchsize, delta=None, filter=None, between=None):
        """Run a whole batched session; returns (records, final delta, batches)."""
        query = {"$batchsize": str(batchsize)}
        if filter is not None:
            query["$filter"] = filter
        body = {"delta_context": {"objs": {obj: {"delta": delta}}}} if delta else {}
        records, batches = [], 0
        while True:
            st, js, _ = self.download(obj, body, **query)
            if st != 200:
                raise RuntimeError("download %s: HTTP %d %r" % (obj, st, js))
            batches += 1
            records.extend(js["records"])
            if between:
                between(batches)
            if js["hasMoreRecords"] != "true":
                return records, js["delta_context"]["objs"][obj]["delta"], batches
            body = {"delta_context": js["delta_context"]}

    def upload(self, records, obj=None, headers=None):
        body = {"checksum": "", "sessionID": "", "echo": [], "hasMoreRecords": "false",
                "abortonError": "false",
                "_metadata": {"totalNamespaces": "0", "totalRecords": "0", "totalObjects": "0",
                              "recordCount": "0"},
                "records": records}
        path = self.obj_path(obj) if obj else self.svc_path()
        h = {"X-Http-Method-Override": "UPLOAD"}
        h.update(headers or {})
        return self.call("POST", path, body, h)

    # ------------------------------------------------------------------ admin
    def admin(self, method, path, body=None):
        return self.call(method, path, body, port=self.admin_port)

    def admin_list(self, obj):
        st, hd, data = self.raw("GET", "/admin/records/%s/%s" % (SVC, obj),
                                port=self.admin_port)
        if st != 200:
            raise RuntimeError("admin list %s: HTTP %d" % (obj, st))
        return [json.loads(l) for l in data.decode().splitlines() if l]

    def edit(self, obj, op, record):
        return self.admin("POST", "/admin/records/%s/%s" % (SVC, obj),
                          {"op": op, "record": record})

    def faults(self, rules, seed=7):
        return self.admin("POST", "/admin/faults", {"seed": seed, "rules": rules})

    def stats(self):
        return self.admin("GET", "/admin/stats")[1]


def strip_meta(rec):
    return {k: v for k, v in rec.items() if not k.startswith("_")}


def run(main):
    """Run main(binary, checks) and exit with the right code; a crash counts as a failure."""
    if len(sys.argv) < 2:
        print("usage: %s path/to/edgesync-server" % sys.argv[0])
        sys.exit(2)
    checks = Checks()
    try:
        main(sys.argv[1], checks)
    except Exception:
        traceback.print_exc()
        checks.failed += 1
    sys.exit(checks.finish())
