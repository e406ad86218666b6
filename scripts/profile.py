#!/usr/bin/env python3
"""Where a request's CPU goes, layer by layer (issue 23).

    scripts/profile.py [PATH ...]      # default: /scenario6 /scenario1

Starts the stack at RUST_LOG=warn (cargo xtask up --detach --keys), loads
each PATH on servicea with wrk (32 connections), samples jwt-factory,
servicea and serviceb with perf (user and kernel stacks, DWARF unwinding)
for 8 s, and writes under target/profiles/:

- flame-<scenario>.svg: the flamegraph (inferno);
- <scenario>.folded: the folded stacks;

then prints each layer's share of the samples. A sample belongs to the
first layer named by a frame, from the leaf up; a sample in a syscall is
the kernel's, by the syscall's kind. Installs perf and inferno first
(cargo xtask install perf inferno); stops the stack at the end.
"""

import collections
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "profiles"

# (layer, pattern), scanned from the leaf up: the first match names it.
LAYERS = [
    ("cryptography (aws-lc, jsonwebtoken)", r"aws_lc|jsonwebtoken::crypto"),
    ("TLS (rustls)", r"rustls::"),
    ("JSON (serde_json)", r"serde_json::|serde::de|serde::ser"),
    ("logging (tracing-subscriber, appender)", r"tracing_subscriber::|tracing_appender::"),
    ("request span and ids (request_tracing, tracing)",
     r"s2s_web::request_tracing|tracing::span|tracing_core::|tower_http::request_id|uuid::"),
    ("console trace layer (s2s_web::trace)", r"s2s_web::trace::"),
    ("Host, cross-site and body checks (s2s_web::listener_checks, guard, body limit)",
     r"s2s_web::listener_checks|s2s_web::guard|s2s_web::cross_site|http_body_util::limited"),
    ("connection registry and accept (s2s_web::connections, serve)",
     r"s2s_web::connections|s2s_web::serve|axum_server::"),
    ("token checks (s2s_auth, the JWK Set cache)",
     r"s2s_auth::|app::jwks|app::bearer|app::binding|s2s_web::jwks_cache"),
    ("handler (app's caller, receiver, verifier)",
     r"app::caller|app::receiver|app::verifier|app::factory_client|jwt_factory::"),
    ("outbound client (reqwest, hyper-util client, s2s_web::outbound)",
     r"reqwest::|hyper_util::client|hyper::client|s2s_web::outbound|s2s_web::peer_pin"),
    ("routing and extractors (axum, matchit, tower)", r"axum::|matchit::|tower::"),
    ("HTTP parsing and writing (hyper server)", r"hyper::|hyper_util::server|httparse"),
    ("async runtime (tokio)", r"tokio::"),
    ("allocation (malloc, free)", r"malloc|_int_free|cfree|realloc|__libc_free"),
]


def run(*argv, **kw):
    print("$ " + " ".join(str(a) for a in argv), flush=True)
    return subprocess.run(argv, check=True, cwd=ROOT, **kw)


def xtask(*args, env=None):
    return run("cargo", "xtask", *args, env=env)


def ready():
    """Each process's pid and readiness URL, from the supervisor's ready
    file (`NAME PID READY_MS URL`): names and ports are the topology's."""
    found = {}
    for line in (ROOT / "target" / "xtask" / "ready").read_text().splitlines():
        name, pid, _ms, url = line.split()
        found[name] = (pid, url)
    return found


def base_url(url):
    """`http://HOST:PORT` of a readiness URL."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


def layer_of(frames):
    if "entry_SYSCALL_64_after_hwframe" in frames:
        stack = ";".join(frames)
        if re.search(r"tcp_|sock_|inet_|sendto|recvfrom|sendmsg|recvmsg", stack):
            return "kernel (syscalls): socket I/O"
        return "kernel (syscalls): epoll, futex, scheduling"
    for frame in reversed(frames):
        for name, pattern in LAYERS:
            if re.search(pattern, frame):
                return name
    return "other (libc, std)"


def layers(folded):
    totals = collections.Counter()
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        totals[layer_of(stack.split(";"))] += int(count)
    return totals


def profile(path, procs, servicea):
    name = path.strip("/").replace("/", "-").replace("?", "-") or "root"
    url = f"{servicea}{path}"
    data = OUT / f"{name}.data"
    load = subprocess.Popen(["wrk", "-t2", "-c32", "-d14s", url],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(3)  # past wrk's connection set-up: the steady state is sampled
    wanted = ",".join(procs[p][0] for p in ("jwt-factory", "servicea", "serviceb"))
    run("perf", "record", "-q", "-F", "997", "--call-graph", "dwarf,16384",
        "-p", wanted, "-o", data, "--", "sleep", "8")
    out, _ = load.communicate(timeout=60)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    folded = OUT / f"{name}.folded"
    with open(folded, "w") as f:
        script = subprocess.Popen(["perf", "script", "-i", data], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        subprocess.run([inferno("inferno-collapse-perf")], stdin=script.stdout,
                       stdout=f, check=True)
        script.wait()
    svg = OUT / f"flame-{name}.svg"
    with open(svg, "w") as f:
        subprocess.run([inferno("inferno-flamegraph"), "--title",
                        f"GET {path}, RUST_LOG=warn: jwt-factory, servicea, serviceb", folded],
                       stdout=f, check=True)
    data.unlink()
    totals = layers(folded)
    whole = sum(totals.values()) or 1
    print(f"\nGET {path}: {rps.group(1) if rps else '?'} requests/s under the profile; "
          f"{svg.relative_to(ROOT)}")
    for layer, n in totals.most_common():
        print(f"  {100 * n / whole:5.1f}%  {layer}")
    return {layer: round(100 * n / whole, 1) for layer, n in totals.items()}


def inferno(tool):
    on_path = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True)
    if on_path.stdout.strip():
        return on_path.stdout.strip()
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    return str(Path(home) / "bin" / tool)


def main():
    paths = sys.argv[1:] or ["/scenario6", "/scenario1"]
    OUT.mkdir(parents=True, exist_ok=True)
    xtask("install", "perf", "inferno", "wrk")
    env = dict(os.environ, RUST_LOG="warn")
    xtask("up", "--detach", "--keys", env=env)
    try:
        procs = ready()
        servicea = base_url(procs["servicea"][1])
        with urllib.request.urlopen(f"{servicea}/hello", timeout=10) as r:
            r.read()
        shares = {path: profile(path, procs, servicea) for path in paths}
        (OUT / "layers.json").write_text(json.dumps(shares, indent=2) + "\n")
        print(f"\nthe shares, as JSON: {(OUT / 'layers.json').relative_to(ROOT)}")
    finally:
        xtask("down")


if __name__ == "__main__":
    main()
