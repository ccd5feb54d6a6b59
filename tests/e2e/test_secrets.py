"""Secrets never leak: a full run at log.level = debug over HTTPS with a client certificate whose
key is encrypted (tls.key_password_file) (setup,
download and upload syncs with stats, a sync and a setup refused with 401 for a wrong token,
stats, status, and every event from `edgesync events`), then the configured tokens, the key's
passphrase and the decrypted client key (its PEM lines and its DER bytes) are searched for in
every log, CLI output, event, stats reply, every file of the run (the LMDB stores raw and through
mdb_dump), and the /proc cmdline and environ of the daemon, its actors and the events CLI. Only the config
and key files themselves may hold them; those two are the check that the search can find them."""
import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile

from eslib import Env, check, finish

bindir = sys.argv[1]
SVC = "SampleSvc"


def openssl(*args):
    p = subprocess.run(["openssl"] + list(args), capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {p.stderr}")


def js(text):
    try:
        return json.loads(text)
    except ValueError:
        return {}


certs = tempfile.mkdtemp(prefix="es-secrets-")
try:
    c = certs
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{c}/ca.key", "-out", f"{c}/ca.pem", "-days", "2", "-subj", "/CN=test CA")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\n"), ("gateway", "")):
        openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{c}/{name}.key",
                "-out", f"{c}/{name}.csr", "-subj", f"/CN={name}")
        with open(f"{c}/{name}.ext", "w") as f:
            f.write("basicConstraints=CA:FALSE\n" + ext)
        openssl("x509", "-req", "-in", f"{c}/{name}.csr", "-CA", f"{c}/ca.pem", "-CAkey",
                f"{c}/ca.key", "-CAcreateserial", "-out", f"{c}/{name}.pem", "-days", "2",
                "-extfile", f"{c}/{name}.ext")
    key_file = f"{c}/gateway.key"
    key_pem = open(key_file).read()
    body = "".join(l for l in key_pem.splitlines() if l and not l.startswith("-----"))
    key_lines = [l for l in key_pem.splitlines() if l and not l.startswith("-----")]
    key_der = base64.b64decode(body)
    # The daemon uses the key encrypted: its passphrase (first line of a 0600 file) is one more
    # secret, and the decrypted key above must still appear nowhere.
    passphrase = "pp-" + secrets.token_hex(16)
    pass_file = f"{c}/gateway.pass"
    with open(pass_file, "w") as f:
        f.write(passphrase + "\n")
    os.chmod(pass_file, 0o600)
    enc_key_file = f"{c}/gateway-enc.key"
    openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", key_file, "-out", enc_key_file,
            "-passout", f"file:{pass_file}")
    check("ENCRYPTED" in open(enc_key_file).read(), "the client key is encrypted")

    token = "tok-" + secrets.token_hex(16)
    wrong = "wrong-" + secrets.token_hex(16)
    env = Env(bindir, generate="300", token=token,
              server_args=["--tls-cert", f"{c}/server.pem", "--tls-key", f"{c}/server.key",
                           "--tls-client-ca", f"{c}/ca.pem"],
              extra_conf=f"log.level = debug\ntls.ca_file = {c}/ca.pem\n"
                         f"tls.cert_file = {c}/gateway.pem\ntls.key_file = {enc_key_file}\n"
                         f"tls.key_password_file = {pass_file}\n")
    try:
        texts = {}  # what -> text that must hold no secret

        def check_procs(when):
            """Command lines and environments of the daemon, its actors and the events CLI, read
            from /proc while they run: no token, passphrase or key there. (Not the reference
            server's: the test hands it the token with --token.)"""
            pids = {env.daemon.pid, events.pid}
            for _ in range(3):  # children of children
                for d in os.listdir("/proc"):
                    try:
                        with open(f"/proc/{d}/stat") as f:
                            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    except (OSError, ValueError, IndexError):
                        continue
                    if ppid in pids:
                        pids.add(int(d))
            seen = 0
            for pid in sorted(pids):
                for part in ("cmdline", "environ"):
                    try:
                        with open(f"/proc/{pid}/{part}", "rb") as f:
                            texts[f"/proc/{pid}/{part} {when}"] = f.read()
                        seen += 1
                    except OSError:
                        pass  # a process that just ended
            # edgesyncd, download x2, upload, reconcile, stats, events: 7 at least.
            check(len(pids) >= 7 and seen >= 14, f"processes read {when}: {len(pids)} pids, "
                  f"{seen} files")
        events = subprocess.Popen([os.path.join(bindir, "edgesync"), "-c", env.conf, "events"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def run(what, *args):
            rc, out, err = env.cli(*args)
            texts[what] = out + err
            return rc, out, err

        rc, out, err = run("setup", "setup")
        check(rc == 0, f"setup {rc} {err}")
        opts = '{"getSyncStats":true}'
        rc, out, err = run("download", "sync", SVC, "--options", opts, "--json")
        check(rc == 0, f"download sync {rc} {out[:300]}")
        cust = env.local_records(SVC, "Customer")
        new = {k: v for k, v in cust[0].items() if k != "id"}
        new["name"] = "Secret Keeper"
        rc, out, err = run("create", "create", SVC, "Customer", json.dumps(new))
        check(rc == 0, f"create {rc} {err}")
        rc, out, err = run("update", "partial-update", SVC, "Customer", json.dumps(cust[1]["id"]),
                           json.dumps({"name": "Changed Locally"}))
        check(rc == 0, f"partial update {rc} {err}")
        rc, out, err = run("upload", "sync", SVC, "--options", opts, "--json")
        res = js(out)
        check(rc == 0 and res.get("syncStats", {}).get("totalUploadedRecords", 0) >= 2,
              f"fullSync with uploads {rc} {out[:400]}")
        rc, out, err = run("stats", "stats")
        check(rc == 0 and out.strip(), f"stats {rc} {err}")
        run("stats of service", "stats", SVC)
        rc, out, err = run("status", "status")
        check(rc == 0, f"status {rc} {err}")
        check_procs("after the syncs")

        # A wrong token: refused with 401, the message says so without quoting it.
        with open(env.conf, "a") as f:
            f.write(f"auth_token = {wrong}\n")
        env.stop_daemon()
        env.start_daemon()
        rc, out, err = run("401 sync", "sync", SVC, "--json")
        check(rc == 1 and "credentials" in out, f"wrong token: sync fails {rc} {out[:300]}")
        rc, out, err = run("401 setup", "setup")
        check(rc != 0 and "credentials" in out + err, f"wrong token: setup fails {rc} {err}")
        run("status after 401", "status")
        run("stats after 401", "stats")
        check_procs("after the restart")

        events.send_signal(signal.SIGINT)
        try:
            ev_out, ev_err = events.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            events.kill()
            ev_out, ev_err = events.communicate()
        texts["events"] = ev_out + ev_err
        n_events = sum(1 for l in ev_out.splitlines() if l.startswith("{"))
        check(n_events >= 10, f"events seen by `edgesync events`: {n_events}")
        env.stop_daemon()

        # Every file of the run, as bytes (logs, LMDB stores, sockets' directories).
        files = {}
        for root, _, names in os.walk(env.dir):
            for n in names:
                p = os.path.join(root, n)
                if os.path.isfile(p) and p != env.conf:
                    with open(p, "rb") as f:
                        files[p] = f.read()
        check(any(p.endswith("daemon.log") for p in files), "daemon log searched")
        mdb = os.path.join(env.dir, "data", "edgesync.mdb")
        check(mdb in files or os.path.join(env.dir, "data", "data.mdb") in files,
              f"LMDB store searched: {sorted(files)[:10]}")
        if shutil.which("mdb_dump"):
            store_dir = os.path.dirname(mdb)
            for path in (store_dir, os.path.join(env.dir, "server")):
                args = ["mdb_dump", "-a", "-p"]
                if os.path.exists(os.path.join(path, "edgesync.mdb")):
                    args += ["-n", os.path.join(path, "edgesync.mdb")]
                elif os.path.exists(os.path.join(path, "server.mdb")):
                    args += ["-n", os.path.join(path, "server.mdb")]
                else:
                    args += [path]
                p = subprocess.run(args, capture_output=True, text=True)
                check(p.returncode == 0 and "HEADER=END" in p.stdout,
                      f"mdb_dump {path}: {p.returncode} {p.stderr[:200]}")
                texts["mdb_dump " + path] = p.stdout

        secrets_ = {"token": token.encode(), "wrong token": wrong.encode(),
                    "key passphrase": passphrase.encode()}
        secrets_.update({f"key line {i}": l.encode() for i, l in enumerate(key_lines)})
        secrets_["key DER"] = key_der
        leaks = []
        for what, data in list(texts.items()) + list(files.items()):
            raw = data.encode() if isinstance(data, str) else data
            for name, s in secrets_.items():
                if s in raw:
                    leaks.append(f"{name} in {what}")
        check(not leaks, f"secrets found: {leaks[:10]}")
        # The search itself works: the config and the key file do hold them.
        conf = open(env.conf, "rb").read()
        check(token.encode() in conf and wrong.encode() in conf, "tokens found in the config")
        check(all(l.encode() in open(key_file, "rb").read() for l in key_lines),
              "key lines found in the key file")
        check(passphrase.encode() in open(pass_file, "rb").read(),
              "passphrase found in its file")
        check(len(texts) >= 10 and len(files) >= 3, f"searched {len(texts)} outputs, "
              f"{len(files)} files")
    finally:
        env.close()
finally:
    shutil.rmtree(certs, ignore_errors=True)
finish()
