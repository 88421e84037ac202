#!/usr/bin/env bash
# Container start benchmark: a container running `true`, from command to exit, measured in one
# hyperfine run beside the peers on this machine:
#
#   berth run --rm DIR NAME              (image pulled beforehand; overlay, monitor, logs)
#   runc run  --bundle B ID              (berth's own spec, plain rootfs directory)
#   crun run  --bundle B ID              (same bundle)
#   podman run --rm --network none IMG true
#
# then the memory of the per-container monitor: berth's monitor against podman's conmon, each
# with idle containers, RSS and PSS from /proc/PID/smaps_rollup.
#
#   RUNS=50 scripts/bench-run.sh          (as root; installs what it needs from Debian)
#
# Quirks of these machines (docs/benchmarks.md): RLIMIT_NOFILE hard limit 20000 (podman
# gets a private containers.conf) and cgroup v1 hybrid (crun needs hugetlb mounted as a v1
# hierarchy for the run; it is unmounted afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-50}
IDLE=${IDLE:-5}

scripts/install-deps podman runc crun conmon hyperfine jq busybox-static

cargo build --release --locked -q
BERTH=$PWD/target/release/berth
work=$(mktemp -d /tmp/berth-bench-run.XXXXXX)
scope=berth-$(printf %s "$work/root" | sha256sum | cut -c1-12)
hugetlb_mounted=0
cleanup() {
  set +e
  "$BERTH" --root "$work/root" rm -f idle >/dev/null 2>&1
  podman --root "$work/podman" --runroot "$work/podman-run" rm -f -a -t 0 >/dev/null 2>&1
  podman --root "$work/podman" --runroot "$work/podman-run" system reset -f >/dev/null 2>&1
  if ((hugetlb_mounted)); then umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb; fi
  # Only this run's scope (named after its state root, as berth names it) and its own
  # cgroups: other berth installations and test runs on the machine are left alone.
  for d in /sys/fs/cgroup/*/"$scope" /sys/fs/cgroup/*/berth-bench; do [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
  rm -rf "$work" "/run/$scope"
}
trap cleanup EXIT

# The image, offline.
examples/images/build-busybox.sh "$work/busybox.tar" >/dev/null
mkdir -p "$work/desired"
cat >"$work/desired/bench.toml" <<EOF
[container.bench]
image = "oci-archive:$work/busybox.tar"
command = ["true"]
restart = "never"

[container.idle]
image = "oci-archive:$work/busybox.tar"
command = ["sleep", "3600"]
EOF
"$BERTH" --root "$work/root" pull "oci-archive:$work/busybox.tar" >/dev/null

# The bundle for runc and crun: the very spec berth generates (same namespaces, mounts,
# capabilities, seccomp profile, masked paths, rlimits), from a container berth made for the
# runc engine, over the same image flattened into a plain directory.
cat >"$work/desired/spec.toml" <<EOF
[container.spec]
image = "oci-archive:$work/busybox.tar"
command = ["true"]
runtime = "runc"
restart = "never"
EOF
"$BERTH" --root "$work/root" run "$work/desired" spec >/dev/null
spec_dir=$(ls -d "$work/root/containers"/spec-*)
mkdir -p "$work/bundle"
cp -r "$spec_dir/etc" "$work/bundle/etc"
jq --arg etc "$work/bundle/etc" '
  .linux.cgroupsPath = "/berth-bench/peer"
  | .mounts |= map(if .destination | test("^/etc/(hostname|hosts|resolv.conf)$")
                   then .source = ($etc + "/" + (.destination | ltrimstr("/etc/"))) else . end)
' "$spec_dir/config.json" >"$work/bundle/config.json"
"$BERTH" --root "$work/root" rm spec >/dev/null
"$BERTH" --root "$work/root" unpack "oci-archive:$work/busybox.tar" "$work/bundle/rootfs" >/dev/null

# podman: private storage and config.
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
EOF
export CONTAINERS_CONF=$work/containers.conf
PODMAN=(podman --root "$work/podman" --runroot "$work/podman-run")
"${PODMAN[@]}" pull -q "oci-archive:$work/busybox.tar" >/dev/null
image_id=$("${PODMAN[@]}" images -q | head -1)

if [[ ! -d /sys/fs/cgroup/hugetlb ]] && grep -q hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then
  mkdir /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb none /sys/fs/cgroup/hugetlb && hugetlb_mounted=1
fi

echo "== run true: $RUNS runs each (warmup 5) =="
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$work/run.json" \
  -n berth "$BERTH --root $work/root run --rm $work/desired bench" \
  -n runc "runc --root $work/runc run --bundle $work/bundle bench-runc" \
  -n crun "crun --root $work/crun run --bundle $work/bundle bench-crun" \
  -n podman "${PODMAN[*]} run --rm --network none $image_id true" >/dev/null

jq -r '
  (.results | map({key: .command, value: .median}) | from_entries) as $m
  | "tool     median      vs berth",
    (.results[] | "\(.command | . + "        " | .[0:8]) \(.median * 1000 | . * 100 | round / 100) ms   \(.median / $m.berth | . * 100 | round / 100)x")
' "$work/run.json"
echo "(berth / runc = $(jq -r '(.results | map({key: .command, value: .median}) | from_entries) as $m | $m.berth / $m.runc | . * 100 | round / 100' "$work/run.json")x; podman / berth = $(jq -r '(.results | map({key: .command, value: .median}) | from_entries) as $m | $m.podman / $m.berth | . * 10 | round / 10' "$work/run.json")x)"

echo
echo "== monitor memory: $IDLE idle containers each =="
mem() { # PID -> "RSS_KB PSS_KB", nothing if it has exited meanwhile
  awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} END {if (r != "") print r, p}' "/proc/$1/smaps_rollup" 2>/dev/null
}
for _ in $(seq "$IDLE"); do
  "$BERTH" --root "$work/root" run -d "$work/desired" idle >/dev/null
  "${PODMAN[@]}" run -d --network none "$image_id" sleep 3600 >/dev/null
done
sleep 1
report() { # NAME PIDS...
  local name=$1 rss=0 pss=0 n=0
  shift
  for pid in "$@"; do
    # A conmon of a `run --rm` from the timing loop may still be on its way out.
    read -r r p < <(mem "$pid") || continue
    rss=$((rss + r)) pss=$((pss + p)) n=$((n + 1))
  done
  ((n)) || { echo "$name: no processes found"; return; }
  awk -v name="$name" -v r="$rss" -v p="$pss" -v n="$n" \
    'BEGIN { printf "%-14s %d processes, per process: RSS %.2f MiB, PSS %.2f MiB\n", name, n, r/n/1024, p/n/1024 }'
}
monitors=$(pgrep -f -- "berth-monitor $work/root " || true)
conmons=$(pgrep -x conmon || true)
# shellcheck disable=SC2086
report "berth monitor" $monitors
# shellcheck disable=SC2086
report "conmon" $conmons
