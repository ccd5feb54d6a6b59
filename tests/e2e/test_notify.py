#!/usr/bin/env python3
"""edgesyncd speaks systemd's notification protocol (sd_notify) to a real unix datagram socket
set in NOTIFY_SOCKET, as systemd would: READY=1 only once every actor has said HELLO (one actor
is made slow to start), STATUS= lines as actors come and go, WATCHDOG=1 at half of WATCHDOG_USEC
while the loop turns, STOPPING=1 at SIGTERM and nothing after it; the variables are not passed
on to the actors; WATCHDOG_PID of another process turns the pings off; malformed variables stop
the daemon with an error naming them."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import eslib  # noqa: E402
from eslib import check  # noqa: E402

SLOW_S = 1.5          # es-reconcile says HELLO this much later than the others
WATCHDOG_USEC = 400000


class Receiver:
    """The systemd side: a datagram socket and every message with its arrival time."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.msgs = []
        self.lock = threading.Lock()
        self.running = True
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            with self.lock:
                self.msgs.append((time.time(), data.decode()))

    def all(self):
        with self.lock:
            return list(self.msgs)

    def clear(self):
        with self.lock:
            self.msgs.clear()

    def wait_for(self, text, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for t, m in self.all():
                if text in m.split("\n"):
                    return t
            time.sleep(0.02)
        return None

    def close(self):
        self.running = False
        self.t.join()
        self.sock.close()


def make_bindir(real, tmp):
    """edgesyncd copied (it finds actors beside its real path), actors linked, es-reconcile
    wrapped: it writes the time it starts the real actor, after SLOW_S seconds."""
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    shutil.copy2(os.path.join(real, "edgesyncd"), bindir)
    for name in ("es-download", "es-upload", "es-stats", "edgesync", "edgesync-server"):
        os.symlink(os.path.join(real, name), os.path.join(bindir, name))
    wrapper = os.path.join(bindir, "es-reconcile")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\n"
                f"sleep {SLOW_S}\n"
                f"python3 -c 'import time; print(time.time())' >> {tmp}/reconcile-exec\n"
                f"exec {os.path.join(real, 'es-reconcile')} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    return bindir


class NotifyEnv(eslib.Env):
    notify_env = {}

    def start_daemon(self, env=None):
        full = dict(self.notify_env)
        full.update(env or {})
        super().start_daemon(full)


def actor_pids(env):
    rc, out, _ = env.cli("status")
    return [int(p) for p in re.findall(r'"actor":"[^"]*","pid":(\d+)', out) if int(p) > 0]


def kinds(msgs):
    return [m for _, m in msgs]


def main():
    real = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="es-notify-")
    recv = Receiver(os.path.join(tmp, "notify.sock"))
    env = None
    try:
        bindir = make_bindir(real, tmp)
        NotifyEnv.notify_env = {"NOTIFY_SOCKET": recv.path, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
        env = NotifyEnv(bindir, generate="10")
        t_ready = recv.wait_for("READY=1")
        check(t_ready is not None, "READY=1 arrives")
        with open(os.path.join(tmp, "reconcile-exec")) as f:
            t_exec = float(f.read().split()[0])
        check(t_ready is not None and t_ready > t_exec,
              f"READY=1 ({t_ready}) after the slow actor started ({t_exec})")
        msgs = recv.all()
        before = [m for t, m in msgs if t_ready is not None and t < t_ready]
        starting = [m for m in before if m.startswith("STATUS=starting: ")]
        check(starting and all(re.fullmatch(r"STATUS=starting: [0-4] of 5 actors ready", m)
                               for m in starting), f"STATUS=starting lines before READY: {before}")
        ready = [m for _, m in msgs if "READY=1" in m.split("\n")]
        check(ready == ["READY=1\nSTATUS=running: all 5 actors ready"], f"READY message: {ready}")
        # The actors do not inherit the systemd variables (NotifyAccess=main, and a child must
        # not feed the watchdog for its parent).
        pids = actor_pids(env)
        check(len(pids) == 5, f"5 actor pids in status: {pids}")
        for pid in pids:
            with open(f"/proc/{pid}/environ", "rb") as f:
                names = [v.split(b"=", 1)[0] for v in f.read().split(b"\0") if v]
            check(b"NOTIFY_SOCKET" not in names and b"WATCHDOG_USEC" not in names,
                  f"actor {pid} has no NOTIFY_SOCKET/WATCHDOG_USEC")

        # Watchdog: pings keep coming at half the period; a gap of a whole period is a failure.
        recv.clear()
        time.sleep(2.0)
        pings = [t for t, m in recv.all() if m == "WATCHDOG=1"]
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        check(len(pings) >= 6, f"WATCHDOG=1 every {WATCHDOG_USEC / 2e6} s: {len(pings)} in 2 s")
        check(gaps and max(gaps) < WATCHDOG_USEC / 1e6,
              f"no gap of a whole watchdog period: max {max(gaps) if gaps else None}")

        # An actor dies: degraded, then running again once it is restarted; READY only once.
        upload = [p for p in pids if open(f"/proc/{p}/cmdline", "rb").read().find(b"es-upload")
                  >= 0]
        check(len(upload) == 1, f"one es-upload among {pids}")
        recv.clear()
        os.kill(upload[0], signal.SIGKILL)
        check(recv.wait_for("STATUS=degraded: 4 of 5 actors ready, restarting the others")
              is not None, f"STATUS=degraded after a crash: {kinds(recv.all())}")
        check(recv.wait_for("STATUS=running: all 5 actors ready") is not None,
              f"STATUS=running after the restart: {kinds(recv.all())}")
        check(not any("READY=1" in m.split("\n") for m in kinds(recv.all())),
              "READY=1 is sent once per process")

        # SIGTERM: STOPPING=1, then silence (no ping during the actors' shutdown), exit 0.
        recv.clear()
        env.daemon.send_signal(signal.SIGTERM)
        rc = env.daemon.wait(timeout=30)
        check(rc == 0, f"edgesyncd exit status after SIGTERM: {rc}")
        time.sleep(0.3)
        after = kinds(recv.all())
        stop = [i for i, m in enumerate(after) if "STOPPING=1" in m.split("\n")]
        check(len(stop) == 1, f"one STOPPING=1 at SIGTERM: {after}")
        check(stop and stop[0] == len(after) - 1, f"nothing after STOPPING=1: {after}")

        # WATCHDOG_PID naming another process: that watchdog is not ours, no pings.
        recv.clear()
        env.start_daemon({"WATCHDOG_PID": "1"})
        check(recv.wait_for("READY=1") is not None, "READY=1 with a foreign WATCHDOG_PID")
        time.sleep(1.0)
        check("WATCHDOG=1" not in kinds(recv.all()),
              f"no WATCHDOG=1 with WATCHDOG_PID=1: {kinds(recv.all())}")
        env.stop_daemon()

        # Malformed variables: exit 1 at once, the message names the variable and the value.
        for var, value, want in (
                ("WATCHDOG_USEC", "soon", "WATCHDOG_USEC: expected a positive integer, got 'soon'"),
                ("WATCHDOG_USEC", "0", "WATCHDOG_USEC: expected a positive integer, got '0'"),
                ("WATCHDOG_PID", "-3", "WATCHDOG_PID: expected a positive integer, got '-3'"),
                ("NOTIFY_SOCKET", "relative.sock",
                 "NOTIFY_SOCKET: expected an absolute path or @abstract name, got "
                 "'relative.sock'"),
                ("NOTIFY_SOCKET", "/" + "x" * 200, "NOTIFY_SOCKET: longer than 107 bytes")):
            e = dict(os.environ, NOTIFY_SOCKET=recv.path, WATCHDOG_USEC="1000000")
            e[var] = value
            p = subprocess.run([os.path.join(bindir, "edgesyncd"), "--config", env.conf],
                               env=e, capture_output=True, text=True, timeout=30)
            check(p.returncode == 1 and want in p.stderr,
                  f"{var}={value[:20]}: rc {p.returncode}, stderr {p.stderr!r}")
    finally:
        if env:
            env.close()
        recv.close()
        shutil.rmtree(tmp, ignore_errors=True)
    eslib.finish()


if __name__ == "__main__":
    main()
