#!/usr/bin/env python3
"""The API's timings (bench/api.sh runs this): one keep-alive HTTPS
connection to kenneld, as a control panel holds one.

  api.py list URL TOKEN CA RUNS           GET /v1/ves: ms per request
  api.py start URL TOKEN CA RUNS KENNEL ROOT ID
        start VE ID through the API and with `kennel start`, in turn
        (killed with `kennel kill` between), each timed from this process
  api.py events URL TOKEN CA RUNS KENNEL ROOT ID
        from a VE's state change (the mtime of its state.json, written
        when it runs; of exit.json when it stopped) to its event here

Prints one line per measure: NAME median p90 (ms).
"""
import http.client
import json
import os
import ssl
import statistics
import subprocess
import sys
import threading
import time


def conn(url, ca):
    host, port = url.removeprefix("https://").split(":")
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False  # the certificate names localhost; we dial 127.0.0.1
    return http.client.HTTPSConnection(host, int(port), context=ctx, timeout=600)


def call(c, method, path, token):
    c.request(method, path, headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    body = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {body[:300]!r}")
    return body


def report(name, samples):
    s = sorted(samples)
    p90 = s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]
    print(f"{name} {statistics.median(s):.2f} {p90:.2f}")


def bench_list(url, token, ca, runs):
    c = conn(url, ca)
    call(c, "GET", "/v1/ves", token)  # warm: the token's check, the connection
    t = []
    n = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        n = len(json.loads(call(c, "GET", "/v1/ves", token)))
        t.append((time.perf_counter() - t0) * 1e3)
    report(f"list({n})", t)


def bench_start(url, token, ca, runs, kennel, root, ve):
    c = conn(url, ca)
    call(c, "GET", "/v1/host", token)
    k = [kennel, "--root", root, "-q"]
    api, cli = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        call(c, "POST", f"/v1/ves/{ve}/actions/start", token)
        api.append((time.perf_counter() - t0) * 1e3)
        subprocess.run(k + ["kill", ve], check=True)
        t0 = time.perf_counter()
        subprocess.run(k + ["start", ve], check=True)
        cli.append((time.perf_counter() - t0) * 1e3)
        subprocess.run(k + ["kill", ve], check=True)
    report("start-api", api)
    report("start-cli", cli)


def bench_events(url, token, ca, runs, kennel, root, ve):
    c = conn(url, ca)
    arrived = {}
    ready = threading.Event()

    def listen():
        c.request("GET", f"/v1/events?ve={ve}&type=state", headers={"Authorization": "Bearer " + token})
        r = c.getresponse()
        ready.set()
        for line in r:
            if line.startswith(b"data:"):
                e = json.loads(line[5:])
                arrived[(e.get("to"), e["seq"])] = time.time_ns()

    threading.Thread(target=listen, daemon=True).start()
    ready.wait(30)
    run_dir = os.path.join(root, "run", "ve", ve)
    k = [kennel, "--root", root, "-q"]
    lat = []
    for _ in range(runs):
        for cmd, to, f in (("start", "running", "state.json"), ("kill", "stopped", "exit.json")):
            before = set(arrived)
            subprocess.run(k + [cmd, ve], check=True)
            changed = os.stat(os.path.join(run_dir, f)).st_mtime_ns
            deadline = time.time() + 10
            while time.time() < deadline:
                new = [key for key in arrived if key not in before and key[0] == to]
                if new:
                    lat.append((arrived[new[0]] - changed) / 1e6)
                    break
                time.sleep(0.001)
            else:
                raise SystemExit(f"no '{to}' event for VE {ve} within 10 s")
    report("event", lat)


def main():
    what, url, token, ca, runs = sys.argv[1:6]
    runs = int(runs)
    if what == "list":
        bench_list(url, token, ca, runs)
    elif what == "start":
        bench_start(url, token, ca, runs, *sys.argv[6:9])
    elif what == "events":
        bench_events(url, token, ca, runs, *sys.argv[6:9])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
