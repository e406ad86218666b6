#!/usr/bin/env python3
"""One ABBA step: the CPU per request of the whole stack with one pair of
binaries (issue 23's before-and-after measurements).

    scripts/abba.py VARIANT [PATH ...]

VARIANT names a folder target/ab/VARIANT holding an `app` and a
`jwt-factory` (copy them from target/release after a build). They are
copied into target/release, the stack is started with
`cargo xtask up --detach --keys --no-build` at RUST_LOG=warn, and each PATH
(default /scenario6 and /scenario1) gets a 2 s warm-up and then 10 s of
`wrk -t2 -c32` on servicea. It prints one JSON line: per path the CPU
ticks of all nine processes per request (µs) and wrk's requests/s, then
each service's resident memory after the load (MB). Run the old and the
new variant in the order A B B A and read each pair against its
neighbours: a shared machine drifts within minutes. Needs wrk
(`cargo xtask install wrk`) and, for the sidecars, Envoy (ENVOY_BIN or
the virtualenv's).
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    variant, paths = sys.argv[1], sys.argv[2:] or ["/scenario6", "/scenario1"]
    source = ROOT / "target" / "ab" / variant
    for binary in ("app", "jwt-factory"):
        if not (source / binary).is_file():
            sys.exit(f"{source / binary}: no such binary (copy it from target/release)")
        shutil.copy2(source / binary, ROOT / "target" / "release" / binary)
    env = dict(os.environ, RUST_LOG="warn")
    subprocess.run(["cargo", "xtask", "up", "--detach", "--keys", "--no-build"], cwd=ROOT,
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        print(json.dumps({variant: measure(paths)}))
    finally:
        subprocess.run(["cargo", "xtask", "down"], cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(paths):
    procs = {}
    for line in (ROOT / "target" / "xtask" / "ready").read_text().splitlines():
        name, pid, _ms, url = line.split()
        procs[name] = (int(pid), url)
    base = procs["servicea"][1].rsplit("/", 1)[0]
    tick = os.sysconf("SC_CLK_TCK")

    def ticks():
        total = 0
        for pid, _ in procs.values():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])
        return total

    out = {}
    for path in paths:
        subprocess.run(["wrk", "-t2", "-c32", "-d2s", base + path], capture_output=True)
        before = ticks()
        text = subprocess.run(["wrk", "-t2", "-c32", "-d10s", base + path],
                              capture_output=True, text=True).stdout
        after = ticks()
        n = int(re.search(r"(\d+) requests in", text).group(1))
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
        out[path] = {"cpu_us": round((after - before) * 1e6 / tick / n, 1), "rps": rps}
    rss = {}
    for name in ("jwt-factory", "servicea", "serviceb", "servicec", "verifier"):
        for line in Path(f"/proc/{procs[name][0]}/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                rss[name] = int(line.split()[1]) // 1024
    out["rss_mb"] = rss
    return out


if __name__ == "__main__":
    main()
