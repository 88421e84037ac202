#!/usr/bin/env python3
"""The client side of scripts/bench-api.sh (standard library only).

    bench_api.py layer ARCHIVE OUT        the layer of a one-layer OCI archive (for `docker import`)
    bench_api.py wait SOCKET PATH SECS    until GET PATH on SOCKET answers 200
    bench_api.py run --target ... [...]   the measurement; prints the result table

`run` measures every target with the same code: one persistent HTTP/1.1 connection per
target over its unix socket, requests interleaved one by one between the targets (so load
on the machine hits them alike), each timed from sending the request to the last byte of
the body. Memory (Rss and Pss of /proc/PID/smaps_rollup) is read before any request (idle)
and halfway through and at the end of each series (serving), between timed requests;
CPU time (utime + stime of /proc/PID/stat) is read around each series.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import sys
import tarfile
import time

# Docker API version the requests are made with: dockerd 20.10 (Debian 12) speaks 1.41.
DOCKER_VERSION = "v1.41"


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class Failed(Exception):
    pass


class Target:
    """One API server: how to ask it for the list and for a log, and its processes."""

    def __init__(self, name, kind, sock, agent_pids, helper_pids, timeout):
        if kind not in ("docker", "berth-v1"):
            raise Failed(f"{name}: unknown API kind {kind!r} (docker or berth-v1)")
        self.name, self.kind, self.sock, self.timeout = name, kind, sock, timeout
        self.agent_pids = parse_pids(agent_pids)
        self.helper_pids = parse_pids(helper_pids)
        self.conn = None
        self.connections = 0
        self.ids = []

    def list_path(self):
        if self.kind == "docker":
            return f"/{DOCKER_VERSION}/containers/json"
        return "/v1/containers"

    def logs_path(self, cid, tail):
        if self.kind == "docker":
            return f"/{DOCKER_VERSION}/containers/{cid}/logs?stdout=1&tail={tail}"
        return f"/v1/containers/{cid}/logs?tail={tail}"

    def get(self, path):
        """(status, body) of GET path on the persistent connection (reopened if closed)."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = UnixConnection(self.sock, self.timeout)
                self.connections += 1
            try:
                self.conn.request("GET", path)
                response = self.conn.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection: retry once on a new one.
                self.close()
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                self.close()
            return response.status, body
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def log_lines(self, body):
        """Lines in a log answer: Docker's multiplexed stream or berth's JSON lines."""
        if self.kind == "berth-v1":
            return sum(1 for line in body.split(b"\n") if line.strip())
        lines, at = 0, 0
        while at < len(body):
            if at + 8 > len(body):
                raise Failed(f"{self.name}: truncated frame header in a log answer")
            size = int.from_bytes(body[at + 4 : at + 8], "big")
            lines += body[at + 8 : at + 8 + size].count(b"\n")
            at += 8 + size
        return lines


def parse_pids(text):
    return [int(p) for p in text.split(",") if p.strip()]


def memory_kb(pids):
    """(Rss, Pss) in kB summed over pids, from smaps_rollup."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if key == "Rss":
                        rss += int(rest.split()[0])
                    elif key == "Pss":
                        pss += int(rest.split()[0])
        except FileNotFoundError:
            raise Failed(f"process {pid} is gone")
    return rss, pss


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total


def check(target, expect, tail):
    """The target lists the expected containers and their logs have `tail` lines."""
    status, body = target.get(target.list_path())
    if status != 200:
        raise Failed(
            f"{target.name}: GET {target.list_path()} answered {status}: {body[:300]!r}"
        )
    rows = json.loads(body)
    key = "Id" if target.kind == "docker" else "id"
    target.ids = sorted(row[key] for row in rows)
    if len(target.ids) != expect:
        raise Failed(f"{target.name}: {len(target.ids)} containers listed, expected {expect}")
    for cid in target.ids:
        status, body = target.get(target.logs_path(cid, tail))
        if status != 200:
            raise Failed(f"{target.name}: logs of {cid} answered {status}: {body[:300]!r}")
        lines = target.log_lines(body)
        if lines != tail:
            raise Failed(f"{target.name}: logs of {cid} gave {lines} lines, expected {tail}")


def series(targets, paths_of, requests, warmup):
    """Latencies (ns) per target, interleaved request by request, memory sampled twice."""
    samples = {t.name: [] for t in targets}
    sizes = {t.name: 0 for t in targets}
    serving = {t.name: (0, 0) for t in targets}
    cpu_before = {t.name: cpu_ticks(t.agent_pids) for t in targets}
    total = warmup + requests
    for i in range(total):
        order = targets if i % 2 == 0 else targets[::-1]
        for t in order:
            paths = paths_of(t)
            path = paths[i % len(paths)]
            start = time.perf_counter_ns()
            status, body = t.get(path)
            elapsed = time.perf_counter_ns() - start
            if status != 200:
                raise Failed(f"{t.name}: GET {path} answered {status}: {body[:300]!r}")
            if i >= warmup:
                samples[t.name].append(elapsed)
                sizes[t.name] += len(body)
        if i == warmup + requests // 2 or i == total - 1:
            for t in targets:
                rss, pss = memory_kb(t.agent_pids)
                old = serving[t.name]
                serving[t.name] = (max(old[0], rss), max(old[1], pss))
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_us = {
        t.name: (cpu_ticks(t.agent_pids) - cpu_before[t.name]) * 1e6 / ticks / total
        for t in targets
    }
    return samples, {k: v / requests for k, v in sizes.items()}, serving, cpu_us


def percentile(values, q):
    """Nearest rank."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def run(args):
    targets = [Target(*spec, timeout=args.timeout) for spec in args.target]
    if len({t.name for t in targets}) != len(targets):
        raise Failed("target names must differ")
    # Idle: nothing asked of the daemons for `settle` seconds, no request of this run yet.
    time.sleep(args.settle)
    idle = {t.name: memory_kb(t.agent_pids) for t in targets}
    helpers = {t.name: memory_kb(t.helper_pids) for t in targets}
    for t in targets:
        check(t, args.expect, args.tail)
    helper_counts = {t.name: len(t.helper_pids) for t in targets}
    results = {"requests": args.requests, "warmup": args.warmup, "containers": args.expect}
    calls = [
        ("GET /containers/json", lambda t: [t.list_path()]),
        (
            f"GET /containers/{{id}}/logs?stdout=1&tail={args.tail}",
            lambda t: [t.logs_path(cid, args.tail) for cid in t.ids],
        ),
    ]
    serving = {t.name: (0, 0) for t in targets}
    for label, paths_of in calls:
        samples, sizes, peak, cpu_us = series(targets, paths_of, args.requests, args.warmup)
        results[label] = {
            name: {
                "median_us": statistics.median(v) / 1000,
                "p99_us": percentile(v, 99) / 1000,
                "mean_us": statistics.fmean(v) / 1000,
                "min_us": min(v) / 1000,
                "bytes": sizes[name],
                "agent_cpu_us_per_request": cpu_us[name],
            }
            for name, v in samples.items()
        }
        for name, (rss, pss) in peak.items():
            serving[name] = (max(serving[name][0], rss), max(serving[name][1], pss))
    results["memory_kb"] = {
        t.name: {
            "idle_rss": idle[t.name][0],
            "idle_pss": idle[t.name][1],
            "serving_rss": serving[t.name][0],
            "serving_pss": serving[t.name][1],
            "helpers": helper_counts[t.name],
            "helpers_rss": helpers[t.name][0],
            "helpers_pss": helpers[t.name][1],
        }
        for t in targets
    }
    results["connections"] = {t.name: t.connections for t in targets}
    for t in targets:
        t.close()
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=2)
    print_table(results, [t.name for t in targets], calls, args)


def print_table(results, names, calls, args):
    first, *others = names
    header = ["metric", *names, *[f"ratio {first}/{o}" for o in others]]
    rows = []

    def row(metric, values, fmt):
        cells = [fmt(v) for v in values]
        ratios = [
            f"{values[0] / v:.2f}" if v else "n/a" for v in values[1:]
        ]
        rows.append([metric, *cells, *ratios])

    us = lambda v: f"{v:.0f} µs" if v >= 100 else f"{v:.1f} µs"
    mib = lambda kb: f"{kb / 1024:.1f} MiB"
    for label, _ in calls:
        r = results[label]
        row(f"{label} median", [r[n]["median_us"] for n in names], us)
        row(f"{label} p99", [r[n]["p99_us"] for n in names], us)
        row(f"{label} agent CPU per request", [r[n]["agent_cpu_us_per_request"] for n in names], us)
        row(f"{label} answer size", [r[n]["bytes"] for n in names], lambda b: f"{b:,.0f} B")
    m = results["memory_kb"]
    row("agent RSS idle", [m[n]["idle_rss"] for n in names], mib)
    row("agent PSS idle", [m[n]["idle_pss"] for n in names], mib)
    row("agent RSS serving (max)", [m[n]["serving_rss"] for n in names], mib)
    row("agent PSS serving (max)", [m[n]["serving_pss"] for n in names], mib)
    counts = "/".join(str(m[n]["helpers"]) for n in names)
    row(f"per-container processes RSS, all ({counts})", [m[n]["helpers_rss"] for n in names], mib)
    row(f"per-container processes PSS, all ({counts})", [m[n]["helpers_pss"] for n in names], mib)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    conns = ", ".join(f"{n} {results['connections'][n]}" for n in names)
    print(
        f"\n{args.requests} requests per call and target after {args.warmup} of warm-up, "
        f"interleaved one by one; connections opened: {conns}."
    )


def layer(archive, out):
    with tarfile.open(archive) as t:

        def blob(digest):
            algo, _, hexdigest = digest.partition(":")
            return t.extractfile(f"./blobs/{algo}/{hexdigest}").read()

        index = json.loads(t.extractfile("./index.json").read())
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        layers = manifest["layers"]
        if len(layers) != 1:
            raise Failed(f"{archive}: {len(layers)} layers, expected 1")
        with open(out, "wb") as f:
            f.write(blob(layers[0]["digest"]))


def wait(sock, path, seconds):
    deadline = time.monotonic() + seconds
    last = "nothing"
    while time.monotonic() < deadline:
        conn = UnixConnection(sock, 5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status == 200:
                return
            last = f"{response.status} {body[:200]!r}"
        except OSError as e:
            last = str(e)
        finally:
            conn.close()
        time.sleep(0.1)
    raise Failed(f"GET {path} on {sock}: no 200 within {seconds} s (last: {last})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("layer")
    p.add_argument("archive")
    p.add_argument("out")
    p = sub.add_parser("wait")
    p.add_argument("socket")
    p.add_argument("path")
    p.add_argument("seconds", type=float)
    p = sub.add_parser("run")
    p.add_argument(
        "--target",
        nargs=5,
        action="append",
        required=True,
        metavar=("NAME", "KIND", "SOCKET", "AGENT_PIDS", "HELPER_PIDS"),
        help="KIND: docker | berth-v1; PIDS: comma-separated (the first target is the ratios' numerator)",
    )
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--expect", type=int, required=True, help="containers each target must list")
    p.add_argument("--tail", type=int, default=100)
    p.add_argument("--settle", type=float, default=2.0, help="seconds idle before the idle memory")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    p.add_argument("--json-out")
    args = parser.parse_args()
    try:
        if args.command == "layer":
            layer(args.archive, args.out)
        elif args.command == "wait":
            wait(args.socket, args.path, args.seconds)
        else:
            run(args)
    except Failed as e:
        print(f"bench_api.py: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
