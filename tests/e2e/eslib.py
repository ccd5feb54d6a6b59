"""Helpers for edgesync end-to-end tests: start the real reference server and the real daemon in a
temporary directory, run the real CLI, and compare the local store with the server's data."""
import json
import threading
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

# deploy/test's sanitizer pass sets ES_E2E_QUICK=1: the long soak tests (kills, faults, lost
# acknowledgements) then run fewer rounds; the normal pass runs them in full.
QUICK = os.environ.get("ES_E2E_QUICK") == "1"

# Environment for zmq_poke, a test tool: in the sanitizer build, libzmq itself sometimes leaks a
# handshake buffer when a peer of an incompatible socket type is refused; that is not our code.
POKE_ENV = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")

PASSED = 0
FAILED = 0


def free_port():
    """A loopback TCP port free right now."""
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL:", what, file=sys.stderr, flush=True)


def finish():
    print(f"{PASSED} passed, {FAILED} failed", flush=True)
    sys.exit(1 if FAILED else 0)


class Env:
    """A temp dir with a running edgesync-server and edgesyncd."""

    def __init__(self, bindir, generate="1000", token="secret-token", extra_conf="",
                 server_args=()):
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="es-e2e-")
        self.token = token
        self.procs = []
        self.server_args = list(server_args)
        self.generate = generate
        self.start_server()
        self.conf = os.path.join(self.dir, "edgesync.conf")
        with open(self.conf, "w") as f:
            f.write(f"data_dir = {self.dir}/data\n")
            f.write(f"server_url = {self.url}\n")
            f.write(f"auth_token = {token}\n")
            f.write("heartbeat.timeout_ms = 5000\n")
            f.write("retry.base_ms = 50\n")
            f.write(extra_conf)
        self.daemon = None
        self.start_daemon()

    def start_server(self):
        sdir = os.path.join(self.dir, "server")
        os.makedirs(sdir, exist_ok=True)
        args = [os.path.join(self.bindir, "edgesync-server"), "--port", "0", "--admin-port", "0",
                "--data", sdir, "--token", self.token, "--generate", self.generate, "--seed", "7"]
        args += self.server_args
        self.server = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(
            os.path.join(self.dir, "server.log"), "a"), text=True)
        self.procs.append(self.server)
        deadline = time.time() + 60
        line = ""
        while time.time() < deadline:
            line = self.server.stdout.readline()
            if "listening on" in line or not line:
                break
        m = re.search(r"listening on (https?://\S+) admin (http://\S+)", line)
        if not m:
            raise RuntimeError("server did not start: " + line)
        self.url, self.admin = m.group(1), m.group(2)

    def start_daemon(self, env=None):
        self.daemon_log = open(os.path.join(self.dir, "daemon.log"), "a")
        full = dict(os.environ)
        full.update(env or {})
        self.daemon = subprocess.Popen([os.path.join(self.bindir, "edgesyncd"), "--config",
                                        self.conf], stdout=self.daemon_log,
                                       stderr=self.daemon_log, env=full)
        self.procs.append(self.daemon)
        sock = os.path.join(self.dir, "data", "cmd.sock")
        deadline = time.time() + 20
        while time.time() < deadline and not os.path.exists(sock):
            time.sleep(0.05)
        # actors ready
        while time.time() < deadline:
            rc, out, _ = self.cli("status")
            if rc == 0 and '"starting"' not in out and '"down"' not in out:
                return
            time.sleep(0.1)
        raise RuntimeError("daemon did not become ready")

    def stop_daemon(self, sig=signal.SIGTERM):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(sig)
            self.daemon.wait(timeout=30)

    def cli(self, *args, timeout=300):
        p = subprocess.run([os.path.join(self.bindir, "edgesync"), "-c", self.conf] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def admin_get(self, path):
        req = urllib.request.Request(self.admin + path)
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read().decode()

    def admin_post(self, path, body):
        req = urllib.request.Request(self.admin + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read().decode()

    def server_records(self, svc, obj):
        text = self.admin_get(f"/admin/records/{svc}/{obj}")
        return [json.loads(l) for l in text.splitlines() if l.strip()]

    def local_records(self, svc, obj, *extra):
        rc, out, err = self.cli("get", svc, obj, *extra)
        if rc != 0:
            raise RuntimeError(f"get {svc} {obj}: rc {rc}: {err}")
        return json.loads(out)["records"]

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if os.environ.get("ES_KEEP"):
            print("kept", self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def norm(rec):
    """Records compare as JSON values, numbers as floats (1 == 1.0)."""
    out = {}
    for k, v in rec.items():
        if k.startswith("_"):
            continue
        if isinstance(v, bool) or v is None or isinstance(v, str):
            out[k] = v
        elif isinstance(v, (int, float)):
            out[k] = float(v)
        else:
            out[k] = v
    return json.dumps(out, sort_keys=True)


def same_records(a, b):
    sa, sb = sorted(map(norm, a)), sorted(map(norm, b))
    if sa != sb:
        only_a = set(sa) - set(sb)
        only_b = set(sb) - set(sa)
        print(f"  differ: {len(only_a)} only local, {len(only_b)} only server; e.g.",
              list(only_a)[:2], list(only_b)[:2], file=sys.stderr)
    return sa == sb


class Sync:
    """A CLI sync running in the background; events collected as they arrive."""

    def __init__(self, env, *args):
        self.p = subprocess.Popen([os.path.join(env.bindir, "edgesync"), "-c", env.conf, "sync"]
                                  + list(args) + ["--json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.events = []
        self.out = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        # stdout too: a big result must not block the CLI on a full pipe.
        self.t_out = threading.Thread(target=lambda: self.out.append(self.p.stdout.read()),
                                      daemon=True)
        self.t_out.start()

    def _read(self):
        for line in self.p.stderr:
            if line.startswith("{"):
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    pass

    def wait_batches(self, n, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if sum(1 for e in self.events if e["phase"] == "Download" and e["state"] == "Ended") >= n:
                return True
            time.sleep(0.02)
        return False

    def result(self, timeout=300):
        self.p.wait(timeout=timeout)
        self.t.join(timeout=5)
        self.t_out.join(timeout=5)
        return self.p.returncode, "".join(self.out)


def actors(env):
    rc, out, _ = env.cli("status")
    return json.loads(out)["actors"] if rc == 0 else []


def busy_download(env):
    for a in actors(env):
        if a["actor"].startswith("download.") and a["job"]:
            return a
    return None


def served(env):
    return json.loads(env.admin_get("/admin/stats"))


