"""Storage faults, end to end. (1) The LMDB map fills up mid-download (store.map_max_mb = 2): the
sync fails with code 2000 and a message naming the cause and the option to raise; the store is not
corrupted (mdb_stat reads it, no reader or writer lock is left held, records already committed are
readable); after store.map_max_mb is raised in the config and the daemon restarted, the next sync
continues from the committed batch and converges record by record. (2) A data directory the daemon
cannot use - read-only, missing (its parent does not exist), or on which it cannot create its
sockets (a path too long for an ipc socket): edgesyncd exits non-zero at start with an error naming
the path and the cause, and leaves nothing behind."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

from eslib import Env, check, finish, same_records, served

bindir = sys.argv[1]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]
BATCH = 500


def mdb_readers(path):
    """mdb_stat -rr: the reader table after clearing stale slots of dead processes; the number
    of stale slots it had to clear must be 0 (a dead process left nothing behind)."""
    p = subprocess.run(["mdb_stat", "-n", "-rr", path], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def mdb_ok(path):
    """mdb_stat -a: every table readable (page walk of each database's root)."""
    p = subprocess.run(["mdb_stat", "-n", "-a", path], capture_output=True, text=True, timeout=30)
    return p.returncode == 0 and "Status of Main DB" in p.stdout, p.stdout[-400:] + p.stderr


# 1. Map full mid-download.
conf = "store.map_size_mb = 1\nstore.map_max_mb = 2\n"
env = Env(bindir, generate="Customer=20000,Product=50,OrderLine=50", extra_conf=conf)
try:
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    opts = json.dumps({"syncType": "downloadOnly", "downloadBatchSize": BATCH})
    rc, out, err = env.cli("sync", SVC, "--options", opts)
    res = json.loads(out) if out.strip() else {}
    msg = res.get("message", "")
    check(rc == 1 and res.get("code") == 2000, f"map full: code 2000: rc {rc} {out[:300]}")
    check("map full" in msg and "store.map_max_mb" in msg,
          f"map full: the message names the cause and the option: {msg!r}")
    db = os.path.join(env.dir, "data", "edgesync.mdb")
    ok, text = mdb_ok(db)
    check(ok, f"mdb_stat reads the full store: {text}")
    rrc, text = mdb_readers(db)
    check("0 stale readers cleared" in text and "(no active readers)" in text,
          f"no stale reader slot after the failure: {text}")
    # The daemon still answers, and whole batches were committed (never part of one).
    have = len(env.local_records(SVC, "Customer"))
    check(0 < have < 20000 and have % BATCH == 0,
          f"committed whole batches before the map filled: {have} Customer rows")
    # The store is writable again for small things (the daemon is not wedged): a local create
    # either works or fails with the same clear cause, never a crash.
    rc, out, err = env.cli("status")
    check(rc == 0, f"daemon alive after map full: {err}")

    # Raise the limit, restart: the sync continues from the committed batches and converges.
    with open(env.conf, "a") as f:
        f.write("store.map_max_mb = 256\n")
    env.stop_daemon()
    check(env.daemon.returncode == 0, f"daemon stopped cleanly: {env.daemon.returncode}")
    env.start_daemon()
    before = served(env)["requests"]["download"]
    # preserveBatchContext (SPEC D7): start where the failed session's last batch left off.
    rc, out, err = env.cli("sync", SVC, "--options", json.dumps(
        {"syncType": "downloadOnly", "downloadBatchSize": BATCH, "preserveBatchContext": True}))
    check(rc == 0, f"sync after raising store.map_max_mb: rc {rc} {out[:300]}")
    fetched = served(env)["requests"]["download"] - before
    # Remaining Customer batches, + one (delta) request per other object, + the batch that
    # did not fit (fetched again: it was never committed).
    remaining = (20000 - have + BATCH - 1) // BATCH
    check(fetched <= remaining + 2 + 1,
          f"continued from the committed batch: {fetched} requests for {remaining} remaining")
    compared = 0
    for o in OBJS:
        local, server = env.local_records(SVC, o), env.server_records(SVC, o)
        check(same_records(local, server), f"{o}: local == server after the map was raised")
        compared += len(server)
    env.stop_daemon()
    ok, text = mdb_ok(db)
    check(ok, f"mdb_stat reads the store at the end: {text}")
    rrc, text = mdb_readers(db)
    check("0 stale readers cleared" in text and "(no active readers)" in text, f"reader table clean at the end: {text}")
    print(f"map full: {have} rows committed before, {fetched} requests to finish, "
          f"{compared} records compared", file=sys.stderr)
finally:
    env.close()


# 2. Data directories the daemon cannot use.
def start_with(data_dir, wrap=()):
    d = tempfile.mkdtemp(prefix="es-e2e-store-")
    conf = os.path.join(d, "edgesync.conf")
    with open(conf, "w") as f:
        f.write(f"data_dir = {data_dir}\nserver_url = http://127.0.0.1:9\n")
    p = subprocess.run(list(wrap) + [os.path.join(bindir, "edgesyncd"), "--config", conf],
                       capture_output=True, text=True, timeout=60)
    shutil.rmtree(d, ignore_errors=True)
    return p


base = tempfile.mkdtemp(prefix="es-e2e-dirs-")
try:
    # Missing: the parent does not exist either (one missing level is created, mode 0700).
    missing = os.path.join(base, "no", "such", "data")
    p = start_with(missing)
    check(p.returncode != 0 and missing in p.stderr and "No such file or directory" in p.stderr,
          f"missing data dir: rc {p.returncode} {p.stderr}")
    check(not os.path.exists(os.path.join(base, "no")), "missing data dir: nothing created")

    # Read-only: run without the capabilities that let root write anywhere.
    ro = os.path.join(base, "ro")
    os.mkdir(ro, 0o500)
    wrap = []
    if os.geteuid() == 0:
        wrap = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    p = start_with(ro, wrap)
    check(p.returncode != 0 and ro in p.stderr and "Permission denied" in p.stderr,
          f"read-only data dir: rc {p.returncode} {p.stderr}")
    check(os.listdir(ro) == [], f"read-only data dir: nothing created: {os.listdir(ro)}")

    # Sockets cannot be created: ipc socket paths are limited to 107 bytes.
    deep = os.path.join(base, "d" * 60, "e" * 60)
    os.makedirs(deep)
    p = start_with(deep)
    check(p.returncode != 0 and deep in p.stderr and "cmd.sock" in p.stderr,
          f"data dir too long for sockets: rc {p.returncode} {p.stderr}")
    check(os.listdir(deep) == [], f"socket failure: nothing left in the data dir: "
          f"{os.listdir(deep)}")

    # A data dir that is a file.
    f = os.path.join(base, "file")
    open(f, "w").close()
    p = start_with(f)
    check(p.returncode != 0 and f in p.stderr and "Not a directory" in p.stderr,
          f"data dir is a file: rc {p.returncode} {p.stderr}")
finally:
    os.chmod(os.path.join(base, "ro"), 0o700) if os.path.exists(os.path.join(base, "ro")) else None
    shutil.rmtree(base, ignore_errors=True)
finish()
