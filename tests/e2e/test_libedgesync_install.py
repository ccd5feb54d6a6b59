"""libedgesync as users get it: `cmake --install` the library components into a temporary prefix,
compile client/example/sync_example.c with `cc $(pkg-config --cflags --libs edgesync)` against
that prefix only, and run it against a real daemon and server: it prints the progress events
and the parsed success object."""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eslib import Env, check, finish  # noqa: E402

bindir, builddir, clientdir = sys.argv[1], sys.argv[2], sys.argv[3]
prefix = tempfile.mkdtemp(prefix="es-install-")
env = None
try:
    for comp in ("libedgesync", "libedgesync-dev"):
        p = subprocess.run(["cmake", "--install", builddir, "--prefix", prefix,
                            "--component", comp], capture_output=True, text=True)
        check(p.returncode == 0, f"cmake --install {comp}: {p.stderr}")
    pcs = glob.glob(os.path.join(prefix, "**", "pkgconfig", "edgesync.pc"), recursive=True)
    check(len(pcs) == 1, f"one edgesync.pc installed: {pcs}")
    libs = glob.glob(os.path.join(prefix, "**", "libedgesync.so*"), recursive=True)
    names = sorted(os.path.basename(x) for x in libs)
    check(any(n.startswith("libedgesync.so.0") for n in names) and "libedgesync.so" in names,
          f"shared library with soname and link: {names}")
    check(not glob.glob(os.path.join(prefix, "**", "libedgesync.a"), recursive=True),
          "static library (needs uninstalled archives) not installed")
    check(os.path.exists(os.path.join(prefix, "include", "edgesync.h")), "header installed")
    p = subprocess.run(["readelf", "-d", [x for x in libs if not os.path.islink(x)][0]],
                       capture_output=True, text=True)
    check("libedgesync.so.0]" in p.stdout, f"SONAME libedgesync.so.0: {p.stdout[:400]}")

    penv = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]))
    p = subprocess.run(["pkg-config", "--cflags", "--libs", "edgesync"], capture_output=True,
                       text=True, env=penv)
    flags = p.stdout.split()
    check(p.returncode == 0 and any(f.startswith("-I" + prefix) for f in flags) and
          "-ledgesync" in flags, f"pkg-config flags point into the prefix: {p.stdout} {p.stderr}")
    p = subprocess.run(["pkg-config", "--modversion", "edgesync"], capture_output=True, text=True,
                       env=penv)
    check(p.stdout.strip() == "0.1.0", f"pkg-config version: {p.stdout}")
    exe = os.path.join(prefix, "sync_example")
    # Exactly the README's command; the source tree is not on the include path. A sanitizer
    # build's library needs its runtime linked into the program too.
    cache = os.path.join(os.path.dirname(os.path.abspath(bindir)), "CMakeCache.txt")
    san = ""
    if os.path.exists(cache) and "ES_SANITIZE:BOOL=ON" in open(cache).read():
        san = "-fsanitize=address,undefined "
    p = subprocess.run(f"cc {san}-Wall -Wextra -Werror -o {exe} "
                       f"{os.path.join(clientdir, 'example', 'sync_example.c')} "
                       "$(pkg-config --cflags --libs edgesync)", shell=True,
                       capture_output=True, text=True, env=penv)
    check(p.returncode == 0, f"example compiles against the installed library: {p.stderr}")

    env = Env(bindir, generate="300")
    rc, out, err = env.cli("setup")
    check(rc == 0, f"setup {rc} {err}")
    endpoint = "ipc://" + os.path.join(env.dir, "data", "cmd.sock")
    renv = dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(libs[0]))
    p = subprocess.run([exe, endpoint, "SampleSvc", '{"getSyncStats":true,"downloadBatchSize":100}'],
                       capture_output=True, text=True, env=renv, timeout=120)
    lines = p.stdout.splitlines()
    events = [json.loads(l.split(" ", 1)[1]) for l in lines if l.startswith("progress ")]
    total = sum(len(env.server_records("SampleSvc", o))
                for o in ("Customer", "Product", "OrderLine"))
    check(p.returncode == 0, f"example exit 0: {p.returncode} {p.stderr[-300:]}")
    check(events and events[0]["phase"] == "Sync" and events[0]["state"] == "Started" and
          events[-1]["phase"] == "Sync" and events[-1]["state"] == "Ended",
          f"example printed the progress events: {len(events)}")
    want = f"success SampleSvc: {total} records downloaded, 0 uploaded, 0 record errors"
    check(want in lines, f"example printed the parsed result '{want}': {lines[-1:]}")
    p = subprocess.run([exe, endpoint, "SampleSvc", '{"syncType":"sideways"}'],
                       capture_output=True, text=True, env=renv, timeout=60)
    check(p.returncode == 1 and
          "failure 2477: Invalid value found for syncType option sideways" in p.stdout,
          f"example prints a parsed failure: {p.returncode} {p.stdout}")
    p = subprocess.run([exe], capture_output=True, text=True, env=renv)
    check(p.returncode == 2 and "usage" in p.stderr, "example usage")
finally:
    if env:
        env.close()
    shutil.rmtree(prefix, ignore_errors=True)
finish()
