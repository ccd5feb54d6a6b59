"""Finished sessions kept in the store (the newest 100, answered by `edgesync status SESSION`) are
ordered by a counter in the store, not by a clock: an index written before a reboot (earlier versions
keyed it by the time since boot, which restarts at zero) or under a clock far ahead must not make the
next sessions sort first and be pruned the moment they end."""
import json
import os
import subprocess
import sys

from eslib import Env, check, finish

bindir = sys.argv[1]
SVC = "SampleSvc"
env = Env(bindir, generate="20")


def session_ids():
    rc, out, err = env.cli("status")
    check(rc == 0, f"status {rc} {err}")
    return [s["id"] for s in json.loads(out).get("sessions", []) if s.get("state") == "done"]


try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    env.stop_daemon()

    # 100 index entries that sort after anything a clock since boot gives: what an earlier
    # daemon of a gateway that ran for long leaves behind when it reboots.
    db = os.path.join(env.dir, "data", "edgesync.mdb")
    lines = "".join(f"f{i:015x}/ghost{i}\nghost{i}\n" for i in range(100))
    p = subprocess.run(["mdb_load", "-n", "-T", "-s", "sdone", db], input=lines, text=True,
                       capture_output=True)
    check(p.returncode == 0, f"mdb_load: {p.stderr}")

    env.start_daemon()
    new = []
    for i in range(3):
        rc, out, err = env.cli("sync", SVC, "--options", '{"syncType":"downloadOnly"}')
        check(rc == 0, f"sync {i} {rc} {out} {err}")
    new = session_ids()
    check(len(new) == 3, f"three new finished sessions: {new}")
    env.stop_daemon()
    env.start_daemon()
    # After a restart the daemon answers for finished sessions from the store only.
    for sid in new:
        rc, out, err = env.cli("status", sid)
        check(rc == 0 and sid in out, f"session {sid} kept after the restart: {rc} {out} {err}")
    p = subprocess.run(["mdb_dump", "-n", "-p", "-s", "sdone", db], capture_output=True, text=True)
    check(p.returncode == 0, f"mdb_dump: {p.stderr}")
    keys = [ln.strip() for ln in p.stdout.splitlines()[:-1] if ln.startswith(" ")][0::2]
    check(len(keys) == 100, f"100 finished sessions kept: {len(keys)}")
    check(all(any(k.endswith("/" + sid) for k in keys) for sid in new),
          f"the newest sessions are among them: {keys[-5:]}")
    check(not any(k.endswith("/ghost0") for k in keys), "the oldest entries went first")
    print(f"sessions kept: {len(keys)}, newest {keys[-1]}", file=sys.stderr)
finally:
    env.close()
finish()
