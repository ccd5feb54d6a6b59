"""Remote commands over tcp:// with ZeroMQ CURVE, end to end: `edgesync keygen` key pairs; the
daemon refuses to start on a tcp:// endpoint without keys, with a world-readable secret key, a
bad allow-list line or a group-writable socket directory; on tcp:// an allowed client syncs and
asks status (config file, options and environment), its events arrive over the CURVE PUB socket;
a client whose key is not allowed, one without CURVE and one with the wrong server key are
refused within their timeout with a clear message, the daemon logs the refused key (never a
secret) and stays up; SIGHUP reloads the allow-list (a bad one leaves the old in force); ipc
socket files are mode 0600 in a 0700 directory."""
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

from eslib import Env, check, finish, free_port

bindir = os.path.abspath(sys.argv[1])
CLI = os.path.join(bindir, "edgesync")
DAEMON = os.path.join(bindir, "edgesyncd")
SVC = "SampleSvc"
OBJ = "Customer"


def run(args, env_extra=None, timeout=60, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGESYNC_")}
    env.update(env_extra or {})
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def key_of(path):
    return [l.strip() for l in open(path) if l.strip() and not l.startswith("#")][0]


def daemon_refuses(conf_text, expect, what):
    """edgesyncd with this config must exit non-zero at once, its error containing expect."""
    d = tempfile.mkdtemp(prefix="es-curve-conf-")
    conf = os.path.join(d, "edgesync.conf")
    with open(conf, "w") as f:
        f.write(conf_text.replace("@DIR@", d))
    try:
        rc, out, err = run([DAEMON, "--config", conf], timeout=30)
    except subprocess.TimeoutExpired:
        rc, err = None, "still running after 30 s"
    check(rc not in (0, None), f"{what}: daemon refused to start (rc {rc})")
    check(expect in err, f"{what}: error names '{expect}': {err.strip()}")
    shutil.rmtree(d, ignore_errors=True)
    return err


class CurveEnv(Env):
    """Env whose daemon listens on tcp:// (no cmd.sock to wait for)."""

    def start_daemon(self, env=None):
        self.daemon_log = open(os.path.join(self.dir, "daemon.log"), "a")
        self.daemon = subprocess.Popen([DAEMON, "--config", self.conf], stdout=self.daemon_log,
                                       stderr=self.daemon_log)
        self.procs.append(self.daemon)
        deadline = time.time() + 30
        while time.time() < deadline:
            rc, out, _ = self.cli("status")
            if rc == 0 and '"starting"' not in out and '"down"' not in out:
                return
            time.sleep(0.2)
        raise RuntimeError("daemon did not become ready")

    def log(self):
        with open(os.path.join(self.dir, "daemon.log")) as f:
            return f.read()


keys = tempfile.mkdtemp(prefix="es-curve-keys-")
try:
    # --- keygen ----------------------------------------------------------------------------
    pubs = {}
    for name in ("server", "good", "bad"):
        rc, out, err = run([CLI, "keygen", "--out", os.path.join(keys, name)])
        check(rc == 0, f"keygen {name}: rc {rc} {err}")
        pubs[name] = out.strip()
        check(len(pubs[name]) == 40, f"keygen {name} prints a 40-character public key")
        check(mode(os.path.join(keys, name + ".key")) == 0o600, f"{name}.key is mode 0600")
        check(key_of(os.path.join(keys, name + ".pub")) == pubs[name], f"{name}.pub holds it")
    check(len(set(pubs.values())) == 3, "three different key pairs")
    before = open(os.path.join(keys, "server.key")).read()
    rc, out, err = run([CLI, "keygen", "--out", os.path.join(keys, "server")])
    check(rc != 0 and "exists" in err, f"keygen never replaces a key: rc {rc} {err.strip()}")
    check(open(os.path.join(keys, "server.key")).read() == before, "server.key unchanged")
    rc, out, err = run([CLI, "keygen"], cwd=keys)
    check(rc == 0 and os.path.exists(os.path.join(keys, "edgesync.key")),
          "keygen without --out writes ./edgesync.key")
    secrets = [key_of(os.path.join(keys, n + ".key")) for n in ("server", "good", "bad")]

    allow = os.path.join(keys, "allow.txt")
    with open(allow, "w") as f:
        f.write("# clients allowed to command this gateway\n\n")
        f.write(open(os.path.join(keys, "good.pub")).read())
        f.write(f"#{pubs['bad']}   commented out: not allowed\n")

    # --- the daemon refuses to start -------------------------------------------------------
    port = free_port()
    base = f"data_dir = @DIR@/data\ncmd_endpoint = tcp://127.0.0.1:{port}\n"
    server_key = os.path.join(keys, "server.key")
    daemon_refuses(base, "curve.secret_key_file is not set", "tcp:// without keys")
    daemon_refuses(base + f"curve.secret_key_file = {server_key}\n",
                   "curve.allow_keys_file is not set", "tcp:// without an allow-list")
    daemon_refuses(f"data_dir = @DIR@/data\nevent_endpoint = tcp://127.0.0.1:{port}\n",
                   "event_endpoint tcp://", "tcp:// events without keys")
    loose = os.path.join(keys, "loose.key")
    with open(loose, "w") as f:
        f.write(open(server_key).read())
    os.chmod(loose, 0o644)
    err = daemon_refuses(base + f"curve.secret_key_file = {loose}\n"
                         f"curve.allow_keys_file = {allow}\n", "mode 0644",
                         "world-readable secret key")
    check("chmod 600" in err, "the error says how to fix the mode")
    check(secrets[0] not in err, "the error does not show the secret")
    broken = os.path.join(keys, "broken.txt")
    with open(broken, "w") as f:
        f.write(f"# ok\n{pubs['good']}\nnot-a-key\n")
    daemon_refuses(base + f"curve.secret_key_file = {server_key}\n"
                   f"curve.allow_keys_file = {broken}\n", f"{broken}:3: expected a 40-character",
                   "bad allow-list line")
    # An ipc socket directory others may write: they could replace the socket.
    open_dir = tempfile.mkdtemp(prefix="es-curve-open-")
    os.chmod(open_dir, 0o777)
    daemon_refuses(f"data_dir = {open_dir}\n", "lets group or others replace",
                   "group/other-writable ipc socket directory")
    os.rmdir(open_dir)

    # --- ipc sockets: 0600 files in a 0700 directory ---------------------------------------
    d = tempfile.mkdtemp(prefix="es-curve-ipc-")
    conf = os.path.join(d, "edgesync.conf")
    with open(conf, "w") as f:
        f.write(f"data_dir = {d}/data\n")
    p = subprocess.Popen([DAEMON, "--config", conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        socks = [os.path.join(d, "data", s) for s in ("cmd.sock", "events.sock", "work.sock")]
        deadline = time.time() + 20
        while time.time() < deadline and not all(os.path.exists(s) for s in socks):
            time.sleep(0.05)
        for s in socks:
            check(os.path.exists(s) and stat.S_ISSOCK(os.stat(s).st_mode)
                  and mode(s) == 0o600, f"{os.path.basename(s)} is a socket with mode 0600")
        check(mode(os.path.join(d, "data")) == 0o700, "data_dir is mode 0700")
    finally:
        p.terminate()
        p.wait(timeout=30)
        shutil.rmtree(d, ignore_errors=True)

    # --- a daemon on tcp:// with CURVE ------------------------------------------------------
    cport, eport = free_port(), free_port()
    cmd_ep, ev_ep = f"tcp://127.0.0.1:{cport}", f"tcp://127.0.0.1:{eport}"
    conf = (f"cmd_endpoint = {cmd_ep}\nevent_endpoint = {ev_ep}\n"
            f"curve.secret_key_file = {server_key}\ncurve.allow_keys_file = {allow}\n"
            # The CLI reads the same file: Env.cli() connects as the allowed client.
            f"curve.server_public_key_file = {keys}/server.pub\n"
            f"curve.client_key_file = {keys}/good.key\n")
    env = CurveEnv(bindir, generate="2000", extra_conf=conf)
    try:
        check(not os.path.exists(os.path.join(env.dir, "data", "cmd.sock")),
              "no ipc command socket when cmd_endpoint is tcp://")
        check(mode(os.path.join(env.dir, "data", "work.sock")) == 0o600,
              "the actors' ipc socket is mode 0600")

        def client(name, *args, timeout_ms=3000, extra=None):
            a = [CLI, "-e", cmd_ep, "-t", str(timeout_ms)]
            if name:
                a += ["--curve-server-key", f"{keys}/server.pub", "--curve-key",
                      f"{keys}/{name}.key"]
            t0 = time.time()
            rc, out, err = run(a + list(args), env_extra=extra)
            return rc, out, err, time.time() - t0

        # Allowed: events over the CURVE PUB, a real sync, status, through the CLI.
        ev = subprocess.Popen([CLI, "--curve-server-key", f"{keys}/server.pub", "--curve-key",
                               f"{keys}/good.key", "-e", cmd_ep, "events", "--from", ev_ep],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        rc, out, err = env.cli("setup")
        check(rc == 0, f"setup over tcp:// {rc} {err}")
        rc, out, err = env.cli("sync", SVC, OBJ, "--options",
                               '{"syncType":"downloadOnly","downloadBatchSize":500}', "--json")
        check(rc == 0, f"sync over tcp:// {rc} {err[-300:]}")
        local, remote = env.local_records(SVC, OBJ), env.server_records(SVC, OBJ)
        check(len(local) == len(remote) > 0, f"synced {len(local)} of {len(remote)} records")
        ev.send_signal(signal.SIGINT)
        ev_out, ev_err = ev.communicate(timeout=30)
        check('"phase"' in ev_out and "Download" in ev_out,
              f"progress events arrived over the CURVE PUB socket: {ev_err.strip()[-200:]}")
        rc, out, err, _ = client("good", "status")
        check(rc == 0 and '"actors"' in out, f"status with --curve-* options: {rc} {err}")
        rc, out, err, _ = client(None, "status", extra={
            "EDGESYNC_CURVE_SERVER_KEY": f"{keys}/server.pub",
            "EDGESYNC_CURVE_KEY": f"{keys}/good.key"})
        check(rc == 0, f"status with EDGESYNC_CURVE_* variables: {rc} {err}")

        # Refused: a key not in the list, no CURVE, the wrong server key.
        rc, out, err, took = client("bad", "status")
        check(rc == 3 and "not authorised" in err, f"not-allowed key refused: {rc} {err.strip()}")
        check(took < 4, f"refused within the 3 s timeout ({took:.1f} s)")
        rc, out, err, took = client("bad", "events", "--from", ev_ep)
        check(rc == 3 and "not authorised" in err, f"events refused too: {rc} {err.strip()}")
        rc, out, err, took = client(None, "status")
        check(rc == 3 and "requires CURVE" in err, f"client without CURVE refused: {rc} {err}")
        check(took < 4, f"within the timeout ({took:.1f} s)")
        rc, out, err = run([CLI, "-e", cmd_ep, "-t", "2000", "--curve-server-key",
                                  f"{keys}/good.pub", "--curve-key", f"{keys}/good.key",
                                  "status"])
        check(rc == 3 and "no reply" in err and "curve-server-key" in err,
              f"wrong server key: no reply within the timeout: {rc} {err.strip()}")
        rc, out, err = run([CLI, "-e", cmd_ep, "--curve-key", f"{keys}/good.key", "status"])
        check(rc == 2 and "--curve-server-key is missing" in err, f"half the keys: {rc} {err}")
        os.chmod(f"{keys}/good.key", 0o640)
        rc, out, err, _ = client("good", "status")
        check(rc == 2 and "mode 0640" in err, f"client secret key mode checked: {rc} {err}")
        os.chmod(f"{keys}/good.key", 0o600)

        log = env.log()
        check(f"refused CURVE client key {pubs['bad']} from 127.0.0.1" in log,
              "daemon logs the refused public key")
        check(not any(s in log for s in secrets), "no secret key in the daemon's log")
        check(env.daemon.poll() is None, "daemon still running")
        rc, out, err, _ = client("good", "status")
        check(rc == 0, f"allowed client still served after the refusals: {rc} {err}")

        # SIGHUP: the allow-list is read again; a broken one leaves the old list in force.
        with open(allow, "a") as f:
            f.write(f"{pubs['bad']}  # now allowed\n")
        env.daemon.send_signal(signal.SIGHUP)
        ok = False
        deadline = time.time() + 10
        while time.time() < deadline and not ok:
            ok = client("bad", "status")[0] == 0
            time.sleep(0.1)
        check(ok, "after SIGHUP the added key is allowed")
        with open(allow, "a") as f:
            f.write("garbage\n")
        env.daemon.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        check("previous allow-list stays in force" in env.log(), "broken reload is reported")
        rc, out, err, _ = client("bad", "status")
        check(rc == 0, f"... and the previous list still applies: {rc} {err}")
        check(env.daemon.poll() is None, "daemon still running after the reloads")
    finally:
        env.close()
finally:
    shutil.rmtree(keys, ignore_errors=True)
finish()
