"""TLS to the backend, end to end: the reference server on HTTPS with a CA, server and client
certificates made by openssl for this run. Without tls.ca_file a sync fails with 2033 naming the
certificate and the option, and changes nothing local; with it the store equals the server.
A wrong host name is refused even with the right CA; tls.verify = false works but is logged. With
--tls-client-ca a client without a certificate, or with one from another CA, is refused; with
tls.cert_file/tls.key_file it syncs; with an encrypted key and tls.key_password_file too, while a
wrong passphrase fails at once (2033, naming the options, never the passphrase, nothing lost).
Bad tls.* settings stop the daemon at start, naming them (an encrypted key without a passphrase
file, a passphrase file that is missing, empty, readable by others or without a key)."""
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

from eslib import Env, check, finish, same_records

bindir = sys.argv[1]
SVC = "SampleSvc"
OBJS = ["Customer", "Product", "OrderLine"]


def openssl(*args):
    p = subprocess.run(["openssl"] + list(args), capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {p.stderr}")


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.pem", "-days", "2", "-subj",
            f"/CN=edgesync test {name}")


def make_cert(d, name, ca, ext):
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr", "-subj", f"/CN={name}")
    with open(f"{d}/{name}.ext", "w") as f:
        f.write("basicConstraints=CA:FALSE\n" + ext)
    openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/{ca}.pem", "-CAkey",
            f"{d}/{ca}.key", "-CAcreateserial", "-out", f"{d}/{name}.pem", "-days", "2",
            "-extfile", f"{d}/{name}.ext")


def js(text):
    try:
        return json.loads(text)
    except ValueError:
        return {}


def set_conf(env, extra):
    """Replace the tls.* lines of the config, restart the daemon."""
    with open(env.conf) as f:
        lines = [l for l in f if not l.startswith("tls.")]
    with open(env.conf, "w") as f:
        f.write("".join(lines) + extra)
    env.stop_daemon()
    env.start_daemon()


def all_local(env):
    return {o: env.local_records(SVC, o) for o in OBJS}


def all_same(env, what):
    for o in OBJS:
        check(same_records(env.local_records(SVC, o), env.server_records(SVC, o)),
              f"{what}: {o} local == server")


certs = tempfile.mkdtemp(prefix="es-tls-")
try:
    make_ca(certs, "ca")
    make_ca(certs, "rogue")
    make_cert(certs, "server", "ca",
              "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    make_cert(certs, "elsewhere", "ca",
              "subjectAltName=DNS:backend.example\nextendedKeyUsage=serverAuth\n")
    make_cert(certs, "gateway", "ca", "extendedKeyUsage=clientAuth\n")
    make_cert(certs, "intruder", "rogue", "extendedKeyUsage=clientAuth\n")
    CA = f"tls.ca_file = {certs}/ca.pem\n"
    # The gateway key, encrypted with a passphrase in a 0600 file, in both PEM forms.
    PASS = "pass-" + secrets.token_hex(12)
    WRONG = "wrong-" + secrets.token_hex(12)
    for name, text, mode in (("right.pass", PASS + "\n", 0o600),
                             ("wrong.pass", WRONG + "\n", 0o600),
                             ("open.pass", PASS + "\n", 0o644), ("empty.pass", "", 0o600)):
        with open(f"{certs}/{name}", "w") as f:
            f.write(text)
        os.chmod(f"{certs}/{name}", mode)
    openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", f"{certs}/gateway.key", "-out",
            f"{certs}/gateway-pkcs8.key", "-passout", f"file:{certs}/right.pass")
    openssl("ec", "-in", f"{certs}/gateway.key", "-aes256", "-out", f"{certs}/gateway-trad.key",
            "-passout", f"file:{certs}/right.pass")
    for key, mark in (("gateway-pkcs8.key", "BEGIN ENCRYPTED PRIVATE KEY"),
                      ("gateway-trad.key", "Proc-Type: 4,ENCRYPTED")):
        check(mark in open(f"{certs}/{key}").read(), f"{key} is encrypted ({mark})")
    HTTPS = ["--tls-cert", f"{certs}/server.pem", "--tls-key", f"{certs}/server.key"]

    # 1. HTTPS backend: trusted through tls.ca_file, refused without it, store untouched.
    env = Env(bindir, generate="200", server_args=HTTPS, extra_conf=CA)
    try:
        check(env.url.startswith("https://"), f"server URL is https: {env.url}")
        rc, out, err = env.cli("setup")
        check(rc == 0, f"setup over https: {rc} {err}")
        rc, out, err = env.cli("sync", SVC, "--json")
        check(rc == 0 and js(out).get("status") == 0, f"sync over https: {rc} {out[:300]}")
        all_same(env, "https sync")
        rec = {k: v for k, v in env.local_records(SVC, "Customer")[0].items() if k != "id"}
        rec["name"] = "Made Offline"
        rc, out, err = env.cli("create", SVC, "Customer", json.dumps(rec))
        check(rc == 0, f"local create {rc} {err}")
        temp = js(out).get("pk")  # the temporary key, as pending lists it
        before = all_local(env)
        rc, pend_before, _ = env.cli("pending", SVC)

        set_conf(env, "")  # system CAs only: the test CA is unknown
        rc, out, err = env.cli("sync", SVC, "--json")
        res = js(out)
        msg = res.get("message", "")
        check(rc == 1 and res.get("code") == 2033, f"untrusted: code 2033: {rc} {out[:400]}")
        check("certificate" in msg and "tls.ca_file" in msg, f"message names the cause: {msg}")
        check(all_local(env) == before, "failed sync left the local records as they were")
        rc, pend_after, _ = env.cli("pending", SVC)
        pending = js(pend_after).get("Customer", {}).get("pendingSyncRecords")
        check(pend_after == pend_before and pending == [temp],
              f"pending change kept after the TLS failure: {pend_before} / {pend_after}")
        log = open(os.path.join(env.dir, "daemon.log")).read()
        tries = log.count("unable to get local issuer certificate; retry")
        check(tries == 0, f"a certificate failure is not retried ({tries} retries)")

        set_conf(env, "tls.verify = false\n")  # insecure: works, and says so loudly
        rc, out, err = env.cli("sync", SVC, "Product", "--json")
        check(rc == 0, f"tls.verify = false syncs: {rc} {out[:300]}")
        log = open(os.path.join(env.dir, "daemon.log")).read()
        check("tls.verify = false" in log and "NOT checked" in log, "insecure mode is logged")

        set_conf(env, CA)
        rc, out, err = env.cli("sync", SVC, "--json")
        check(rc == 0, f"sync after restoring tls.ca_file: {rc} {out[:300]}")
        rc, out, _ = env.cli("pending", SVC)
        check(rc == 0 and all(v.get("pendingSyncRecords") == [] for v in js(out).values()),
              f"pending change uploaded: {out[:300]}")
        check(any(r.get("name") == "Made Offline" for r in env.server_records(SVC, "Customer")),
              "server has the record made offline")
        all_same(env, "after restore")
    finally:
        env.close()

    # 2. The right CA, the wrong host name: refused (CURLOPT_SSL_VERIFYHOST).
    env = Env(bindir, generate="20", extra_conf=CA, server_args=[
        "--tls-cert", f"{certs}/elsewhere.pem", "--tls-key", f"{certs}/elsewhere.key"])
    try:
        rc, out, err = env.cli("setup")
        check(rc != 0 and "TLS" in err and "host name" in err, f"wrong host refused: {rc} {err}")
    finally:
        env.close()

    # 3. Client certificates required.
    env = Env(bindir, generate="100", extra_conf=CA,
              server_args=HTTPS + ["--tls-client-ca", f"{certs}/ca.pem"])
    try:
        rc, out, err = env.cli("setup")
        check(rc != 0 and "client certificate required" in err and "tls.cert_file" in err,
              f"no client certificate refused: {rc} {err}")
        set_conf(env, CA + f"tls.cert_file = {certs}/intruder.pem\n"
                 f"tls.key_file = {certs}/intruder.key\n")
        rc, out, err = env.cli("setup")
        check(rc != 0 and "client certificate refused" in err,
              f"certificate of another CA refused: {rc} {err}")
        set_conf(env, CA + f"tls.cert_file = {certs}/gateway.pem\n"
                 f"tls.key_file = {certs}/gateway.key\n")
        rc, out, err = env.cli("setup")
        check(rc == 0, f"setup with a client certificate: {rc} {err}")
        rc, out, err = env.cli("sync", SVC, "--json")
        check(rc == 0 and js(out).get("status") == 0, f"sync with client cert: {rc} {out[:300]}")
        all_same(env, "client certificate sync")

        # 3b. An encrypted client key: a wrong passphrase fails the sync at once (not retried),
        # naming the options and never the passphrase, and loses nothing; the right one syncs,
        # for both PEM forms (PKCS#8 and the traditional "Proc-Type: 4,ENCRYPTED").
        rec = {k: v for k, v in env.local_records(SVC, "Customer")[0].items() if k != "id"}
        rec["name"] = "Made Behind An Encrypted Key"
        rc, out, err = env.cli("create", SVC, "Customer", json.dumps(rec))
        check(rc == 0, f"local create {rc} {err}")
        before = all_local(env)
        rc, pend_before, _ = env.cli("pending", SVC)
        log_at = len(open(os.path.join(env.dir, "daemon.log")).read())
        set_conf(env, CA + f"tls.cert_file = {certs}/gateway.pem\n"
                 f"tls.key_file = {certs}/gateway-pkcs8.key\n"
                 f"tls.key_password_file = {certs}/wrong.pass\n")
        rc, out, err = env.cli("sync", SVC, "--json")
        res = js(out)
        msg = res.get("message", "")
        check(rc == 1 and res.get("code") == 2033, f"wrong passphrase: code 2033: {rc} {out[:400]}")
        check("tls.key_password_file" in msg and f"{certs}/wrong.pass" in msg
              and "tls.key_file" in msg, f"wrong passphrase: message names the options: {msg}")
        check(all_local(env) == before, "wrong passphrase: local records as they were")
        rc, pend_after, _ = env.cli("pending", SVC)
        check(pend_after == pend_before, f"wrong passphrase: pending change kept: {pend_after}")
        rc, out2, err2 = env.cli("setup")
        check(rc != 0 and "tls.key_password_file" in out2 + err2,
              f"wrong passphrase: setup refused naming the option: {rc} {err2}")
        log = open(os.path.join(env.dir, "daemon.log")).read()[log_at:]
        check("; retry" not in log, "a wrong passphrase is not retried")
        for what, text in (("sync output", out + err), ("setup output", out2 + err2),
                           ("daemon log", log)):
            check(PASS not in text and WRONG not in text, f"no passphrase in the {what}")

        for key in ("gateway-pkcs8.key", "gateway-trad.key"):
            set_conf(env, CA + f"tls.cert_file = {certs}/gateway.pem\n"
                     f"tls.key_file = {certs}/{key}\n"
                     f"tls.key_password_file = {certs}/right.pass\n")
            rc, out, err = env.cli("sync", SVC, "--json")
            check(rc == 0 and js(out).get("status") == 0,
                  f"sync with encrypted key {key}: {rc} {out[:300]}")
            all_same(env, f"encrypted key {key}")
        rc, out, _ = env.cli("pending", SVC)
        check(rc == 0 and all(v.get("pendingSyncRecords") == [] for v in js(out).values()),
              f"pending change uploaded with the encrypted key: {out[:300]}")
        check(any(r.get("name") == "Made Behind An Encrypted Key"
                  for r in env.server_records(SVC, "Customer")),
              "server has the record made before the wrong passphrase")
        log = open(os.path.join(env.dir, "daemon.log")).read()
        check(PASS not in log and WRONG not in log, "no passphrase in the daemon log")
    finally:
        env.close()

    # 4. Bad settings stop the daemon at start, naming the option and the path.
    work = tempfile.mkdtemp(prefix="es-tls-conf-")
    try:
        conf = os.path.join(work, "edgesync.conf")
        cases = [
            (f"tls.ca_file = {work}/missing-ca.pem\n", ["tls.ca_file", f"{work}/missing-ca.pem",
                                                       "No such file"]),
            (f"tls.ca_file = {work}\n", ["tls.ca_file", "not a regular file"]),
            (f"tls.cert_file = {certs}/gateway.pem\n", ["tls.cert_file", "tls.key_file"]),
            ("tls.verify = maybe\n", ["tls.verify", "true or false"]),
            (f"tls.cert_file = {certs}/gateway.pem\ntls.key_file = {certs}/gateway-pkcs8.key\n",
             ["tls.key_file", f"{certs}/gateway-pkcs8.key", "encrypted",
              "tls.key_password_file"]),
            (f"tls.cert_file = {certs}/gateway.pem\ntls.key_file = {certs}/gateway-trad.key\n",
             ["tls.key_file", "encrypted", "tls.key_password_file"]),
            (f"tls.key_password_file = {certs}/right.pass\n",
             ["tls.key_password_file", "tls.key_file is not"]),
            (f"tls.cert_file = {certs}/gateway.pem\ntls.key_file = {certs}/gateway-pkcs8.key\n"
             f"tls.key_password_file = {certs}/open.pass\n",
             ["tls.key_password_file", f"{certs}/open.pass", "mode 0644", "chmod 600"]),
            (f"tls.cert_file = {certs}/gateway.pem\ntls.key_file = {certs}/gateway-pkcs8.key\n"
             f"tls.key_password_file = {certs}/empty.pass\n",
             ["tls.key_password_file", f"{certs}/empty.pass", "empty"]),
            (f"tls.cert_file = {certs}/gateway.pem\ntls.key_file = {certs}/gateway-pkcs8.key\n"
             f"tls.key_password_file = {certs}/missing.pass\n",
             ["tls.key_password_file", f"{certs}/missing.pass", "No such file"]),
        ]
        for text, words in cases:
            with open(conf, "w") as f:
                f.write(f"data_dir = {work}/data\nserver_url = https://127.0.0.1:1\n" + text)
            p = subprocess.run([os.path.join(bindir, "edgesyncd"), "--config", conf],
                               capture_output=True, text=True, timeout=30)
            check(p.returncode != 0 and all(w in p.stderr for w in words),
                  f"refused at start ({text.strip()}): rc {p.returncode} {p.stderr.strip()}")
            check(PASS not in p.stdout + p.stderr, f"no passphrase printed ({text.strip()})")
        # The CLI loads the same file but never reads the passphrase: a file it cannot use
        # (here: missing, or open to others) is edgesyncd's business, not a config error.
        for name in ("missing.pass", "open.pass"):
            with open(conf, "w") as f:
                f.write(f"data_dir = {work}/data\nserver_url = https://127.0.0.1:1\n"
                        f"tls.cert_file = {certs}/gateway.pem\n"
                        f"tls.key_file = {certs}/gateway-pkcs8.key\n"
                        f"tls.key_password_file = {certs}/{name}\n")
            p = subprocess.run([os.path.join(bindir, "edgesync"), "-c", conf, "-t", "300",
                                "status"], capture_output=True, text=True, timeout=30)
            check(p.returncode != 0 and "tls.key_password_file" not in p.stderr and
                  "config" not in p.stderr.lower(),
                  f"CLI loads a config with {name}: rc {p.returncode} {p.stderr.strip()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
finally:
    shutil.rmtree(certs, ignore_errors=True)
finish()
