#!/usr/bin/env python3
"""test_cli_usage - the edgesync CLI without a daemon: usage errors exit 2 with a message naming
the problem (before anything is sent), an unreachable daemon exits 3, --help/--version exit 0.

usage: test_cli_usage.py PATH/TO/edgesync
"""
import os
import re
import socket
import subprocess
import sys
import tempfile

failures = []


def run(exe, args, cwd, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGESYNC_")}
    env.update(env_extra or {})
    p = subprocess.run([exe] + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def check(exe, args, cwd, code, stderr_pattern=None, stdout_pattern=None, env=None):
    rc, out, err = run(exe, args, cwd, env)
    name = " ".join(args) or "(no arguments)"
    problems = []
    if rc != code:
        problems.append(f"exit {rc}, expected {code}")
    if stderr_pattern is not None and not re.search(stderr_pattern, err):
        problems.append(f"stderr {err!r} does not match {stderr_pattern!r}")
    if stdout_pattern is not None and not re.search(stdout_pattern, out):
        problems.append(f"stdout {out!r} does not match {stdout_pattern!r}")
    if problems:
        failures.append(f"edgesync {name}: " + "; ".join(problems))
    else:
        print(f"ok   edgesync {name}")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    exe = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="es_cli_") as tmp:
        missing = os.path.join(tmp, "missing.sock")
        gone = ["-e", "ipc://" + missing]
        unreachable = (r"^edgesync: cannot reach the daemon: command socket '"
                       + re.escape(missing) + r"': No such file or directory "
                       r"\(is edgesyncd running\?\)\n$")
        bad_json = os.path.join(tmp, "bad.json")
        with open(bad_json, "w") as f:
            f.write('{"syncType": ')
        good_json = os.path.join(tmp, "good.json")
        with open(good_json, "w") as f:
            f.write('{"syncType": "downloadOnly"}')
        bad_conf = os.path.join(tmp, "bad.conf")
        with open(bad_conf, "w") as f:
            f.write("# comment\nno equals sign here\n")
        conf = os.path.join(tmp, "good.conf")
        with open(conf, "w") as f:
            f.write(f"data_dir = {tmp}/data\n")
        long_name = "n" * 129

        # Global usage.
        check(exe, [], tmp, 2, r"^usage: edgesync ")
        check(exe, ["--help"], tmp, 0, None, r"^usage: edgesync .*\n(.*\n)*commands:")
        check(exe, ["--version"], tmp, 0, None, r"^edgesync \d+\.\d+\.\d+\n$")
        check(exe, ["bogus"], tmp, 2, r"^edgesync: unknown command 'bogus' \(see 'edgesync --help'\)")
        check(exe, ["-x", "status"], tmp, 2, r"^edgesync: unknown option '-x'")
        check(exe, ["-e"], tmp, 2, r"^edgesync: option '-e' needs a value")
        check(exe, ["-t", "abc", "status"], tmp, 2,
              r"^edgesync: -t: expected milliseconds 1\.\.3600000, got 'abc'")
        check(exe, ["-t", "0", "status"], tmp, 2, r"got '0'")
        check(exe, ["-c", conf, "-e", "tcp://x:1", "status"], tmp, 2,
              r"^edgesync: -c and -e exclude each other")
        check(exe, ["-c", os.path.join(tmp, "nope.conf"), "status"], tmp, 2,
              r"^edgesync: config: " + re.escape(os.path.join(tmp, "nope.conf"))
              + r": No such file or directory\n$")
        check(exe, ["-c", bad_conf, "status"], tmp, 2,
              r"^edgesync: config: " + re.escape(bad_conf) + r":2: expected 'key = value'")

        # Per-command help needs neither config nor daemon.
        for cmd in ["sync", "setup", "get", "status", "stats", "events", "cancel", "create",
                    "update", "partial-update", "delete", "pending", "rollback", "clear",
                    "mark-for-upload"]:
            check(exe, gone + [cmd, "--help"], tmp, 0, None, r"^usage: edgesync " + cmd + " ")
        check(exe, ["-c", bad_conf, "sync", "-h"], tmp, 0, None, r"^usage: edgesync sync ")

        # Command arguments: exit 2 even though the daemon is unreachable (checked first).
        check(exe, gone + ["sync", "--bad"], tmp, 2,
              r"^edgesync: sync: unknown option '--bad' \(see 'edgesync sync --help'\)\n$")
        check(exe, gone + ["sync", "a", "b", "c"], tmp, 2, r"sync: unexpected argument 'c'")
        check(exe, gone + ["sync", "--options"], tmp, 2, r"sync: option '--options' needs a value")
        check(exe, gone + ["sync", "--json=1"], tmp, 2, r"sync: option '--json' takes no value")
        check(exe, gone + ["sync", "--options", "{"], tmp, 2,
              r"sync: --options: invalid JSON: parse error")
        check(exe, gone + ["sync", "--options", '{"a":}'], tmp, 2, r"sync: --options: invalid JSON")
        check(exe, gone + ["sync", "--options", "[1]"], tmp, 2,
              r"sync: --options: must be a JSON object")
        check(exe, gone + ["sync", "--options", '"x"'], tmp, 2, r"must be a JSON object")
        check(exe, gone + ["sync", "--options", "@" + os.path.join(tmp, "none.json")], tmp, 2,
              r"sync: --options: cannot read '" + re.escape(os.path.join(tmp, "none.json"))
              + r"': No such file or directory")
        check(exe, gone + ["sync", "--options=@" + bad_json], tmp, 2,
              r"sync: --options: invalid JSON in " + re.escape(bad_json) + ": parse error")
        check(exe, gone + ["sync", "--options", "@" + tmp], tmp, 2,
              r"sync: --options: cannot read '" + re.escape(tmp) + "'")
        check(exe, gone + ["sync", long_name], tmp, 2, r"sync: SERVICE longer than 128 bytes")
        check(exe, gone + ["sync", "svc", ""], tmp, 2, r"sync: OBJECT must not be empty")
        check(exe, gone + ["setup", "a", "b"], tmp, 2, r"setup: unexpected argument 'b'")
        check(exe, gone + ["get"], tmp, 2, r"get: missing SERVICE")
        check(exe, gone + ["get", "svc"], tmp, 2, r"get: missing OBJECT")
        check(exe, gone + ["get", "s", "o", "1", "2"], tmp, 2, r"get: unexpected argument '2'")
        check(exe, gone + ["get", "s", "o", "--limit", "x"], tmp, 2,
              r"get: --limit: expected a number 0\.\.4294967295, got 'x'")
        check(exe, gone + ["get", "s", "o", "--limit", "-1"], tmp, 2, r"got '-1'")
        check(exe, gone + ["get", "s", "o", "--limit", "4294967296"], tmp, 2, r"got '4294967296'")
        check(exe, gone + ["get", "s", "o", "--filter"], tmp, 2, r"option '--filter' needs a value")
        check(exe, gone + ["get", "s", "o", "--filter="], tmp, 2, r"get: --filter: must not be empty")
        check(exe, gone + ["status", "a", "b"], tmp, 2, r"status: unexpected argument 'b'")
        check(exe, gone + ["stats", "a", "b"], tmp, 2, r"stats: unexpected argument 'b'")
        check(exe, gone + ["cancel"], tmp, 2, r"cancel: missing SESSION")
        check(exe, gone + ["events", "--from"], tmp, 2, r"events: option '--from' needs a value")
        check(exe, gone + ["events", "a", "b"], tmp, 2, r"events: unexpected argument 'b'")
        check(exe, ["-e", "inproc://x", "events"], tmp, 2,
              r"events: cannot tell the event endpoint from 'inproc://x'")

        # Local data commands.
        bad_rec = os.path.join(tmp, "bad_rec.json")
        with open(bad_rec, "w") as f:
            f.write('{"name": "x",')
        nul_rec = os.path.join(tmp, "nul_rec.json")
        with open(nul_rec, "wb") as f:
            f.write(b'{"name": "x"}\0{')
        good_rec = os.path.join(tmp, "good_rec.json")
        with open(good_rec, "w") as f:
            f.write('{"name": "x", "qty": 2}')

        def see(cmd):
            return r" \(see 'edgesync " + cmd + r" --help'\)\n$"

        check(exe, gone + ["create"], tmp, 2, r"^edgesync: create: missing SERVICE" + see("create"))
        check(exe, gone + ["create", "S"], tmp, 2, r"^edgesync: create: missing OBJECT")
        check(exe, gone + ["create", "S", "O"], tmp, 2, r"^edgesync: create: missing RECORD")
        check(exe, gone + ["create", "S", "O", "{}", "x"], tmp, 2,
              r"^edgesync: create: unexpected argument 'x'")
        check(exe, gone + ["create", "S", "O", '{"a":'], tmp, 2,
              r"^edgesync: create: RECORD: invalid JSON: parse error: premature EOF"
              + see("create"))
        check(exe, gone + ["create", "S", "O", "[1]"], tmp, 2,
              r"^edgesync: create: RECORD: must be a JSON object")
        check(exe, gone + ["create", "S", "O", "7"], tmp, 2,
              r"create: RECORD: must be a JSON object")
        check(exe, gone + ["create", "S", "O", "@" + bad_rec], tmp, 2,
              r"create: RECORD: invalid JSON in " + re.escape(bad_rec) + ": parse error")
        check(exe, gone + ["create", "S", "O", "@" + nul_rec], tmp, 2,
              r"create: RECORD: '" + re.escape(nul_rec) + "' contains a NUL byte")
        check(exe, gone + ["create", "S", "O", "@" + os.path.join(tmp, "none.json")], tmp, 2,
              r"create: RECORD: cannot read '" + re.escape(os.path.join(tmp, "none.json"))
              + r"': No such file or directory")
        check(exe, gone + ["create", "S", "O", "{}", "--options", "[1]"], tmp, 2,
              r"create: --options: must be a JSON object, like \{\"markForUpload\":false\}")
        check(exe, gone + ["create", "S", "O", "{}", "--options", "{"], tmp, 2,
              r"create: --options: invalid JSON: parse error")
        check(exe, gone + ["create", "S", "O", "{}", "--options"], tmp, 2,
              r"create: option '--options' needs a value")
        check(exe, gone + ["create", "S", "O", "{}", "--filter", "x"], tmp, 2,
              r"create: unknown option '--filter'")
        check(exe, gone + ["create", long_name, "O", "{}"], tmp, 2,
              r"create: SERVICE longer than 128 bytes")
        check(exe, gone + ["create", "S", "", "{}"], tmp, 2, r"create: OBJECT must not be empty")
        check(exe, gone + ["create", "S", "O", ""], tmp, 2, r"create: RECORD must not be empty")
        check(exe, gone + ["update", "S", "O", "1"], tmp, 2, r"^edgesync: update: missing RECORD")
        check(exe, gone + ["update", "S", "O"], tmp, 2, r"^edgesync: update: missing PK")
        check(exe, gone + ["update", "S", "O", "1", "{}", "x"], tmp, 2,
              r"update: unexpected argument 'x'")
        check(exe, gone + ["update", "S", "O", '{"id":', "{}"], tmp, 2,
              r"^edgesync: update: PK: invalid JSON: parse error: premature EOF" + see("update"))
        check(exe, gone + ["update", "S", "O", '"SKU-1', "{}"], tmp, 2,
              r"update: PK: invalid JSON: parse error: premature EOF")
        check(exe, gone + ["update", "S", "O", "", "{}"], tmp, 2, r"update: PK must not be empty")
        check(exe, gone + ["update", "S", "O", "1", "[]"], tmp, 2,
              r"update: RECORD: must be a JSON object")
        check(exe, gone + ["partial-update", "S", "O", "1"], tmp, 2,
              r"^edgesync: partial-update: missing RECORD" + see("partial-update"))
        check(exe, gone + ["partial-update", "S", "O", "1", '{"a"}'], tmp, 2,
              r"partial-update: RECORD: invalid JSON: parse error")
        check(exe, gone + ["partial-update", "S", "O", "1", "{}", "--options=1"], tmp, 2,
              r"partial-update: --options: must be a JSON object")
        check(exe, gone + ["delete", "S", "O"], tmp, 2,
              r"^edgesync: delete: missing PK" + see("delete"))
        check(exe, gone + ["delete", "S", "O", "1", "{}"], tmp, 2,
              r"delete: unexpected argument '\{\}'")
        check(exe, gone + ["delete", "S", "O", "1", "--options", "@" + bad_rec], tmp, 2,
              r"delete: --options: invalid JSON in " + re.escape(bad_rec))
        check(exe, gone + ["delete", "S", "O", "--bogus"], tmp, 2,
              r"delete: unknown option '--bogus'")
        check(exe, gone + ["pending"], tmp, 2,
              r"^edgesync: pending: missing SERVICE" + see("pending"))
        check(exe, gone + ["pending", "S", "O", "P"], tmp, 2, r"pending: unexpected argument 'P'")
        check(exe, gone + ["pending", "S", "--options", "{}"], tmp, 2,
              r"pending: unknown option '--options'")
        check(exe, gone + ["pending", long_name], tmp, 2, r"pending: SERVICE longer than 128 bytes")
        check(exe, gone + ["rollback", "S", "O", "1", "2"], tmp, 2,
              r"^edgesync: rollback: unexpected argument '2'" + see("rollback"))
        check(exe, gone + ["rollback", "S", "O", "{"], tmp, 2, r"rollback: PK: invalid JSON")
        check(exe, gone + ["rollback", "S", long_name], tmp, 2,
              r"rollback: OBJECT longer than 128 bytes")
        check(exe, gone + ["clear"], tmp, 2, r"^edgesync: clear: missing SERVICE" + see("clear"))
        check(exe, gone + ["clear", "S", "O", "1", "2"], tmp, 2, r"clear: unexpected argument '2'")
        check(exe, gone + ["clear", "S", "", "1"], tmp, 2, r"clear: OBJECT must not be empty")
        check(exe, gone + ["mark-for-upload"], tmp, 2,
              r"^edgesync: mark-for-upload: missing SERVICE" + see("mark-for-upload"))
        check(exe, gone + ["mark-for-upload", "S", "O", "X"], tmp, 2,
              r"mark-for-upload: unexpected argument 'X'")

        # Daemon unreachable: exit 3 naming the socket.
        for args in (["status"], ["status", "s1"], ["setup"], ["stats"], ["cancel", "s1"],
                     ["get", "s", "o", "7"], ["sync"], ["sync", "svc"],
                     ["sync", "svc", "obj", "--options", "@" + good_json, "--json"], ["events"],
                     ["events", "s1"], ["create", "S", "O", '{"a":1}'],
                     ["create", "S", "O", "@" + good_rec, "--options", '{"trackChanges":false}'],
                     ["update", "S", "O", "SKU-1", "{}"], ["partial-update", "S", "O", "7", "{}"],
                     ["delete", "S", "O", "-1"], ["delete", "S", "O", '{"a":1,"b":"x"}'],
                     ["delete", "S", "O", "--", "-x"], ["pending", "S"], ["pending", "S", "O"],
                     ["rollback"], ["rollback", "S", "O", "1"], ["clear", "S"],
                     ["clear", "S", "O", "k"], ["mark-for-upload", "S"],
                     ["mark-for-upload", "S", "O"]):
            check(exe, gone + args, tmp, 3, unreachable)
        check(exe, ["status"], tmp, 3, unreachable, env={"EDGESYNC_ENDPOINT": "ipc://" + missing})
        # -e wins over the environment.
        check(exe, gone + ["status"], tmp, 3, unreachable,
              env={"EDGESYNC_ENDPOINT": "ipc:///elsewhere.sock"})
        check(exe, ["-c", conf, "status"], tmp, 3,
              r"command socket '" + re.escape(tmp) + r"/data/cmd\.sock': No such file")
        if not os.path.exists("/etc/edgesync/edgesync.conf"):
            check(exe, ["status"], tmp, 3,
                  r"command socket '" + re.escape(os.path.realpath(tmp))
                  + r"/edgesync-data/cmd\.sock': No such file")
        notsock = os.path.join(tmp, "plain")
        open(notsock, "w").close()
        check(exe, ["-e", "ipc://" + notsock, "status"], tmp, 3,
              r"command socket '" + re.escape(notsock) + "' is not a socket")

        # A socket file nobody serves (a daemon that died): the reply times out.
        stale = os.path.join(tmp, "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(stale)
        s.close()
        check(exe, ["-t", "200", "-e", "ipc://" + stale, "status"], tmp, 3,
              r"^edgesync: no reply from the daemon at ipc://" + re.escape(stale)
              + r" within 200 ms \(is edgesyncd running\?\)\n$")
        check(exe, ["-t", "200", "-e", "ipc://" + stale, "sync", "svc"], tmp, 3,
              r"no reply from the daemon at ipc://" + re.escape(stale) + " within 200 ms")
        # TCP: nothing listens on port 1.
        check(exe, ["-t", "200", "-e", "tcp://127.0.0.1:1", "stats"], tmp, 3,
              r"no reply from the daemon at tcp://127\.0\.0\.1:1 within 200 ms")

    for f in failures:
        print("FAIL " + f)
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
