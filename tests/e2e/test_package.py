#!/usr/bin/env python3
"""The Debian package, as built by cpack from this build tree: control fields and maintainer
scripts (dpkg-deb -I / -e), the extracted layout (dpkg-deb -x into a clean directory: every
file, its mode and owner), the binaries run from there, edgesyncd finds its actors in the
installed libexec directory and reaches READY=1 with them, the units pass systemd-analyze
verify, and the shipped /etc config lists every option of the binary's table at its default.
usage: test_package.py BUILD_DIR SOURCE_DIR"""
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from eslib import check, finish  # noqa: E402

BUILD, SOURCE = (os.path.abspath(a) for a in sys.argv[1:3])
ACTORS = ("es-download", "es-upload", "es-reconcile", "es-stats")


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=kw.pop("timeout", 120),
                          **kw)


def cpack_var(name):
    with open(os.path.join(BUILD, "CPackConfig.cmake")) as f:
        m = re.search(r'set\(%s "([^"]*)"\)' % re.escape(name), f.read())
    return m.group(1) if m else None


def build_debs(out):
    p = run(["cpack", "-G", "DEB", "--config", os.path.join(BUILD, "CPackConfig.cmake"),
             "-B", out], timeout=200)
    if p.returncode != 0:
        print(p.stdout, p.stderr, file=sys.stderr)
    check(p.returncode == 0, f"cpack -G DEB: rc {p.returncode}")
    return {re.sub(r"_.*", "", f): os.path.join(out, f) for f in os.listdir(out)
            if f.endswith(".deb")}


def control(deb):
    p = run(["dpkg-deb", "-f", deb])
    fields, key = {}, None
    for line in p.stdout.splitlines():
        if line.startswith(" ") and key:
            fields[key] += "\n" + line
        else:
            key, _, value = line.partition(": ")
            fields[key] = value
    return fields


def check_control(debs, tmp):
    version = cpack_var("CPACK_PACKAGE_VERSION")
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    info = run(["dpkg-deb", "-I", debs["edgesync"]])
    check(info.returncode == 0, "dpkg-deb -I edgesync")
    c = control(debs["edgesync"])
    check(c.get("Package") == "edgesync", f"Package: {c.get('Package')}")
    check(c.get("Version") == version, f"Version {c.get('Version')} = project {version}")
    check(c.get("Architecture") == arch, f"Architecture {c.get('Architecture')} = {arch}")
    check(re.fullmatch(r".+ <[^ >]+@[^ >]+>", c.get("Maintainer", "")) is not None,
          f"Maintainer: {c.get('Maintainer')}")
    check(c.get("Section") == "net", f"Section: {c.get('Section')}")
    check(c.get("Description", "").startswith("offline-objects sync daemon for edge gateways\n"),
          "Description: summary and long text")
    deps = c.get("Depends", "")
    # dpkg-shlibdeps found the run-time libraries of the binaries.
    for lib in ("libc6", "libzmq5", "liblmdb0", "libcurl", "libyajl2", "libmicrohttpd"):
        check(re.search(r"(^|, )%s[\w.+-]* \(>= " % re.escape(lib), deps) is not None,
              f"Depends on {lib} with a version: {deps}")
    ctl = os.path.join(tmp, "control")
    check(run(["dpkg-deb", "-e", debs["edgesync"], ctl]).returncode == 0, "dpkg-deb -e")
    with open(os.path.join(ctl, "conffiles")) as f:
        check(f.read().split() == ["/etc/edgesync/edgesync.conf"], "conffiles")
    for script in ("postinst", "prerm", "postrm"):
        path = os.path.join(ctl, script)
        mode = stat.S_IMODE(os.stat(path).st_mode) if os.path.exists(path) else None
        check(mode == 0o755, f"control {script} mode {oct(mode or 0)}")
        check(run(["sh", "-n", path]).returncode == 0, f"{script} is valid sh")
    with open(os.path.join(ctl, "postinst")) as f:
        text = f.read()
    check("/usr/lib/sysusers.d/edgesync.conf" in text and "useradd --system" in text,
          "postinst creates the edgesync user (sysusers, else useradd)")
    dev = control(debs.get("libedgesync-dev", "")) if "libedgesync-dev" in debs else {}
    check(dev.get("Package") == "libedgesync-dev"
          and dev.get("Depends") == f"edgesync (= {version})",
          f"libedgesync-dev depends on this edgesync: {dev.get('Depends')}")


def check_layout(deb, root):
    check(run(["dpkg-deb", "-x", deb, root]).returncode == 0, "dpkg-deb -x")
    listing = run(["dpkg-deb", "-c", deb]).stdout.splitlines()
    check(listing and all(" root/root " in l for l in listing), "every entry owned root/root")
    expected = {
        "usr/sbin/edgesyncd": 0o755,
        "usr/bin/edgesync": 0o755,
        "usr/bin/edgesync-server": 0o755,
        "usr/lib/systemd/system/edgesyncd.service": 0o644,
        "usr/lib/systemd/system/edgesync-server.service": 0o644,
        "usr/lib/sysusers.d/edgesync.conf": 0o644,
        "etc/edgesync/edgesync.conf": 0o644,
        "usr/share/doc/edgesync/README.md": 0o644,
        "usr/share/doc/edgesync/examples/edgesync-quickstart.conf": 0o644,
    }
    for a in ACTORS:
        expected["usr/libexec/edgesync/" + a] = 0o755
    for path, mode in expected.items():
        full = os.path.join(root, path)
        got = stat.S_IMODE(os.lstat(full).st_mode) if os.path.lexists(full) else None
        check(got == mode, f"{path}: mode {oct(got) if got is not None else 'missing'}, "
                           f"expected {oct(mode)}")
    libs = [f for d, _, fs in os.walk(os.path.join(root, "usr/lib")) for f in fs
            if re.fullmatch(r"libedgesync\.so\.\d+.*", f)]
    check(libs, "libedgesync.so.N is in the package")
    triplet = subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], capture_output=True,
                             text=True).stdout.strip()
    libdir = os.path.join(root, "usr/lib", triplet)
    check(triplet and os.path.isdir(libdir) and
          any(re.fullmatch(r"libedgesync\.so\.\d+.*", f) for f in os.listdir(libdir)),
          f"libedgesync.so.N is in /usr/lib/{triplet} (multiarch)")
    top = sorted(os.listdir(root))
    check(top == ["etc", "usr"], f"nothing outside /etc and /usr: {top}")
    for path in expected:
        if expected[path] == 0o755:
            with open(os.path.join(root, path), "rb") as f:
                check(f.read(4) == b"\x7fELF", f"{path} is an ELF binary")
    with open(os.path.join(root, "etc/edgesync/edgesync.conf")) as a, \
            open(os.path.join(SOURCE, "deploy/etc/edgesync.conf")) as b:
        check(a.read() == b.read(), "/etc/edgesync/edgesync.conf is deploy/etc/edgesync.conf")


def check_binaries(root, tmp):
    for exe in ("usr/sbin/edgesyncd", "usr/bin/edgesync", "usr/bin/edgesync-server"):
        p = run([os.path.join(root, exe), "--help"])
        check(p.returncode == 0 and "usage" in p.stdout.lower(),
              f"{exe} --help: rc {p.returncode} {p.stderr[:200]}")
    for a in ACTORS:
        p = run([os.path.join(root, "usr/libexec/edgesync", a)])
        check(p.returncode == 2 and "--endpoint and --data-dir are required" in p.stderr,
              f"{a} runs and asks for its arguments: rc {p.returncode} {p.stderr[:200]}")
    # edgesyncd from the extracted tree: its actors come from usr/libexec/edgesync (there are
    # none beside it) and all say HELLO: READY=1 on a notification socket, then SIGTERM.
    conf = os.path.join(tmp, "daemon.conf")
    with open(conf, "w") as f:
        f.write(f"data_dir = {tmp}/data\nserver_url = http://127.0.0.1:1\n")
    sock_path = os.path.join(tmp, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.5)
    log = open(os.path.join(tmp, "daemon.log"), "w")
    d = subprocess.Popen([os.path.join(root, "usr/sbin/edgesyncd"), "--config", conf],
                         env=dict(os.environ, NOTIFY_SOCKET=sock_path), stdout=log, stderr=log)
    ready, deadline = False, time.time() + 30
    while not ready and time.time() < deadline and d.poll() is None:
        try:
            ready = "READY=1" in sock.recv(4096).decode().split("\n")
        except socket.timeout:
            pass
    check(ready, "installed edgesyncd: READY=1 with its actors from usr/libexec/edgesync")
    if d.poll() is None:
        d.send_signal(signal.SIGTERM)
        check(d.wait(timeout=30) == 0, "installed edgesyncd stops cleanly on SIGTERM")
    sock.close()
    log.close()
    # Without them, edgesyncd says where it looked.
    os.rename(os.path.join(root, "usr/libexec/edgesync/es-stats"), os.path.join(tmp, "es-stats"))
    p = run([os.path.join(root, "usr/sbin/edgesyncd"), "--config", conf])
    want = ("actor binaries (es-stats, es-upload, es-reconcile, es-download) are neither in "
            f"{root}/usr/sbin nor in {root}/usr/sbin/../libexec/edgesync")
    check(p.returncode == 1 and want in p.stderr, f"missing actor: rc {p.returncode} {p.stderr}")
    os.rename(os.path.join(tmp, "es-stats"), os.path.join(root, "usr/libexec/edgesync/es-stats"))


def unit_settings(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")):
                k, _, v = line.partition("=")
                out.setdefault(k, []).append(v)
    return out


def check_units(root, tmp):
    units = os.path.join(root, "usr/lib/systemd/system")
    d = unit_settings(os.path.join(units, "edgesyncd.service"))
    want = {"Type": "notify", "ExecStart": "/usr/sbin/edgesyncd --config /etc/edgesync/edgesync.conf",
            "User": "edgesync", "StateDirectory": "edgesync", "ConfigurationDirectory": "edgesync",
            "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
            "NoNewPrivileges": "yes", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
            "Restart": "on-failure", "KillMode": "mixed", "WatchdogSec": "30s"}
    for k, v in want.items():
        check(d.get(k) == [v], f"edgesyncd.service {k}={d.get(k)}, expected {v}")
    s = unit_settings(os.path.join(units, "edgesync-server.service"))
    check(s.get("ExecStart", [""])[0].startswith("/usr/bin/edgesync-server "),
          f"edgesync-server.service ExecStart {s.get('ExecStart')}")
    # systemd-analyze verify checks that ExecStart exists: point it into the extracted tree.
    vdir = os.path.join(tmp, "verify")
    os.makedirs(vdir)
    names = []
    for u in ("edgesyncd.service", "edgesync-server.service"):
        with open(os.path.join(units, u)) as f:
            text = f.read()
        text = re.sub(r"^ExecStart=/usr/", f"ExecStart={root}/usr/", text, flags=re.M)
        with open(os.path.join(vdir, u), "w") as f:
            f.write(text)
        names.append(os.path.join(vdir, u))
    p = run(["systemd-analyze", "verify", "--man=no"] + names)
    check(p.returncode == 0 and not p.stderr.strip(),
          f"systemd-analyze verify: rc {p.returncode} {p.stderr}")
    # And it does fail on a unit whose binary is missing (the check is real).
    with open(names[0]) as f:
        broken = f.read().replace(f"{root}/usr/sbin/edgesyncd", f"{root}/usr/sbin/missing")
    with open(names[0], "w") as f:
        f.write(broken)
    p = run(["systemd-analyze", "verify", "--man=no", names[0]])
    check(p.returncode != 0 and "missing" in p.stderr, "verify rejects a missing ExecStart")


def check_config(root):
    """Every option of `edgesyncd --help-config` is in the /etc file once, with its help line
    before it; commented lines show the default; only data_dir is set (to /var/lib/edgesync)."""
    exe = os.path.join(root, "usr/sbin/edgesyncd")
    conf = os.path.join(root, "etc/edgesync/edgesync.conf")
    table = run([exe, "--help-config"]).stdout
    options = re.findall(r"^# (.*)\n(\S+) = (.*)$", table, flags=re.M)
    check(len(options) >= 20, f"--help-config lists the options: {len(options)}")
    with open(conf) as f:
        lines = f.read().splitlines()
    entries = {}
    for i, line in enumerate(lines):
        m = re.fullmatch(r"(#?)([a-z_]+(?:\.[a-z_]+)*) =(?: (.*))?", line)
        if m:
            entries.setdefault(m.group(2), []).append((i, m.group(1) == "", m.group(3) or ""))
    names = {n for _, n, _ in options}
    check(set(entries) == names, f"options only in the file: {set(entries) - names}, "
                                 f"only in the table: {names - set(entries)}")
    for help_text, name, default in options:
        e = entries.get(name, [])
        check(len(e) == 1, f"{name} appears once: {len(e)}")
        if len(e) != 1:
            continue
        i, active, value = e[0]
        check(f"# {help_text}" in lines[max(0, i - 3):i], f"{name}: help line '# {help_text}'")
        if name == "data_dir":
            check(active and value == "/var/lib/edgesync", f"data_dir = /var/lib/edgesync: {value}")
        else:
            check(not active and value == default.strip(),
                  f"{name}: commented default '{default.strip()}', got "
                  f"{'active' if active else 'commented'} '{value}'")
    p = run([exe, "--config", conf, "--help-config"])
    check(p.returncode == 0, f"edgesyncd loads the /etc file: {p.stderr}")


def main():
    for tool in ("cpack", "dpkg-deb", "dpkg-shlibdeps", "systemd-analyze"):
        if not shutil.which(tool):
            check(False, f"{tool} is installed (deploy/install-deps)")
            finish()
    tmp = tempfile.mkdtemp(prefix="es-package-")
    try:
        debs = build_debs(os.path.join(tmp, "out"))
        check("edgesync" in debs, f"edgesync_*.deb built: {sorted(debs)}")
        if "edgesync" in debs:
            check_control(debs, tmp)
            root = os.path.join(tmp, "root")
            check_layout(debs["edgesync"], root)
            check_binaries(root, tmp)
            check_units(root, tmp)
            check_config(root)
    finally:
        if os.environ.get("ES_KEEP"):
            print("kept", tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
