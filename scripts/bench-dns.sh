#!/usr/bin/env bash
# DNS benchmark: the latency of looking a container's name up and the resolver's memory, in
# one run, against
#
#   berth's resolver        on the network's gateway, port 53 (a name of the network)
#   aardvark-dns 1.4        podman's resolver (Debian 12), run standalone on the same gateway
#                           address, port 5353, with a config naming the same container
#   the hosts file          glibc's getaddrinfo reading the container's /etc/hosts (the
#                           file berth writes), in a mount namespace where it is /etc/hosts
#
# The client is one Python process that asks each of the three in turn, one query at a time
# (UDP, an A query for `web`), QUERIES times each, interleaved so that machine noise hits
# them alike, and reports p50/p99 per target and the ratios to berth's. Python's own cost per
# call (a few microseconds) is in every number alike. Memory: VmRSS of each resolver process
# after the queries.
#
#   QUERIES=10000 scripts/bench-dns.sh      (as root; installs what it needs from Debian)
#
# BERTH=path/to/berth uses that binary instead of building the release one. Everything lives
# under one temporary directory in /var/tmp (berth's state root is a non-default one); at the
# end, on failure too, the containers and the network are removed (an empty directory with
# --allow-empty), which makes berth's resolver exit, and aardvark-dns is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
QUERIES=${QUERIES:-10000}
SUBNET_PREFIX=${SUBNET_PREFIX:-10.89.251}
AARDVARK=/usr/lib/podman/aardvark-dns

[[ $(id -u) -eq 0 ]] || { echo "$0: run as root" >&2; exit 1; }
[[ $QUERIES =~ ^[1-9][0-9]*$ ]] || { echo "$0: QUERIES must be a positive integer" >&2; exit 1; }
scripts/install-deps pkg-config libseccomp-dev busybox-static aardvark-dns python3 util-linux
if [[ -z ${BERTH:-} ]]; then
  cargo build --release --locked --bins -q
  BERTH=$PWD/target/release/berth
fi

WORK=$(mktemp -d /var/tmp/berth-bench-dns.XXXXXX)
ROOT=$WORK/root
DIR=$WORK/desired
GATEWAY=$SUBNET_PREFIX.1
aardvark_pid=

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  set +e
  [[ -n $aardvark_pid ]] && kill "$aardvark_pid" 2>/dev/null
  if [[ -d $ROOT ]]; then
    mkdir -p "$WORK/empty"
    "$BERTH" --root "$ROOT" apply "$WORK/empty" --allow-empty >/dev/null 2>&1 ||
      echo "warning: pruning berth's containers and network failed" >&2
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building the busybox image offline"
examples/images/build-busybox.sh "$WORK/busybox.tar" >/dev/null
mkdir -p "$DIR"
cat >"$DIR/bench.toml" <<EOF
[image.bb]
reference = "oci-archive:$WORK/busybox.tar"

[network.benchdns]
subnet = "$SUBNET_PREFIX.0/24"

[container.web]
image = "bb"
command = ["sleep", "3600"]
stop_timeout = "1s"
networks = [{ name = "benchdns", aliases = ["www"] }]

[container.client]
image = "bb"
command = ["sleep", "3600"]
stop_timeout = "1s"
networks = ["benchdns"]
EOF
"$BERTH" --root "$ROOT" apply "$DIR" --wait --timeout 60s >/dev/null
WEB_IP=$(dig +short @"$GATEWAY" web)
[[ $WEB_IP == "$SUBNET_PREFIX".* ]] || { echo "$0: berth's resolver did not answer web: $WEB_IP" >&2; exit 1; }
RESOLVER_PID=$(pgrep -f -- "--root $ROOT dns-resolver")
CLIENT_ID=$("$BERTH" --root "$ROOT" ps --json | python3 -c 'import json,sys; print([c["id"] for c in json.load(sys.stdin) if c["name"]=="client"][0])')
HOSTS=$ROOT/containers/$CLIENT_ID/etc/hosts
grep -q "web" "$HOSTS" || { echo "$0: no web in $HOSTS" >&2; exit 1; }

echo "== aardvark-dns $("$AARDVARK" --version 2>/dev/null | awk '{print $2}') on $GATEWAY:5353"
mkdir -p "$WORK/aardvark"
# aardvark 1.4's format: the gateway, then "ID IPV4S IPV6S NAMES" per container.
printf '%s\n%s %s  %s\n' "$GATEWAY" "0123456789ab" "$WEB_IP" "web,www" >"$WORK/aardvark/benchdns"
setsid "$AARDVARK" --config "$WORK/aardvark" -p 5353 run >"$WORK/aardvark.log" 2>&1 &
for _ in $(seq 50); do
  [[ $(dig +short -p 5353 @"$GATEWAY" web 2>/dev/null) == "$WEB_IP" ]] && break
  sleep 0.1
done
[[ $(dig +short -p 5353 @"$GATEWAY" web) == "$WEB_IP" ]] || { echo "$0: aardvark-dns does not answer; its log:" >&2; cat "$WORK/aardvark.log" >&2; exit 1; }
aardvark_pid=$(pgrep -f -- "$AARDVARK --config $WORK/aardvark" | head -1)

echo "== $QUERIES lookups of web each, interleaved"
cat >"$WORK/client.py" <<'EOF'
import os, random, socket, struct, sys, time
queries, gateway, web_ip = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def query(name):
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return qid, q + struct.pack(">HH", 1, 1)

def dns(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((gateway, port))
    s.settimeout(2)
    def ask():
        qid, q = query("web")
        t = time.perf_counter_ns()
        s.send(q)
        r = s.recv(4096)
        d = time.perf_counter_ns() - t
        assert struct.unpack(">H", r[:2])[0] == qid and socket.inet_ntoa(r[-4:]) == web_ip, r
        return d
    return ask

def hosts():
    t = time.perf_counter_ns()
    r = socket.getaddrinfo("web", None, socket.AF_INET, socket.SOCK_DGRAM)
    d = time.perf_counter_ns() - t
    assert r[0][4][0] == web_ip, r
    return d

targets = {"berth": dns(53), "aardvark-dns": dns(5353), "hosts file": hosts}
samples = {k: [] for k in targets}
for _ in range(queries):
    for k, f in targets.items():
        samples[k].append(f())
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] / 1000
b50, b99 = pct(samples["berth"], 0.5), pct(samples["berth"], 0.99)
for k, v in samples.items():
    p50, p99 = pct(v, 0.5), pct(v, 0.99)
    print(f"{k:13} p50 {p50:8.1f} us  p99 {p99:8.1f} us   ratio to berth p50 {p50 / b50:5.2f}  p99 {p99 / b99:5.2f}")
EOF
# The hosts-file lookups read the container's hosts file as /etc/hosts (files first in
# Debian's nsswitch.conf), in a private mount namespace of the client only.
unshare -m bash -c 'mount --bind "$1" /etc/hosts && exec python3 "$2" "$3" "$4" "$5"' _ \
  "$HOSTS" "$WORK/client.py" "$QUERIES" "$GATEWAY" "$WEB_IP"

rss() { awk '/^VmRSS/ {print $2 " kB"}' "/proc/$1/status"; }
echo "== memory after the queries (VmRSS)"
echo "berth resolver  $(rss "$RESOLVER_PID")"
echo "aardvark-dns    $(rss "$aardvark_pid")"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cpus"
