#!/usr/bin/env bash
# API benchmark: berth's agent against dockerd, side by side in one run, on this machine.
#
#   1. Latency of `GET /containers/json` and `GET /containers/{id}/logs?stdout=1&tail=100`:
#      median and p99 over REQUESTS requests each, on one persistent keep-alive connection
#      per daemon (Python's http.client over the unix socket, the same code for both:
#      scripts/bench_api.py), the two daemons' requests interleaved one by one, the log
#      requests going round the containers. Each side runs N busybox containers that printed
#      LOG_LINES lines each and then sleep, with no network (berth: no network key, i.e.
#      loopback only; docker: `--network none`).
#   2. Memory (Rss and Pss of /proc/PID/smaps_rollup): the agent idle (before any request)
#      and while serving (the larger of two samples in each series), against dockerd +
#      containerd; and the per-container processes (berth-monitor against
#      containerd-shim-runc-v2). Also the daemons' CPU time per request.
#
#   BERTH=target/release/berth scripts/bench-api.sh          (as root)
#   N=10 LOG_LINES=1000 REQUESTS=2000 WARMUP=100 ...          (the defaults)
#   BERTH_API=berth-v1 ...   berth side through berth's own API (`/v1/containers`, on
#                            berth.sock) instead of its Docker API (docker.sock, the default)
#
# BERTH is the `berth` binary to measure (`berth-monitor` must sit next to it); by default
# this checkout's release build, which is not built here: `cargo build --release --bins`.
#
# dockerd is Debian 12's docker.io (20.10) with its containerd (1.6), never installed: their
# packages are fetched once with `apt-get download` and unpacked with `dpkg -x` into
# BENCH_PKG_DIR (default /opt/berth-bench), so no maintainer script runs and no service is
# registered or started. The script starts its own dockerd (which starts its own containerd)
# with its data root, exec root, socket, pidfile, config file and cgroup parent under one
# temporary directory, and `--iptables=false --ip6tables=false --ip-forward=false
# --bridge=none`: it never touches the host's firewall, sysctls or links. berth runs from
# its own state root (so its run root /run/berth-<hash> and cgroups are its own), its agent
# started here and stopped with SIGTERM, its containers then removed by applying an empty
# directory. Everything is removed at the end, on failure or interruption too (the
# benchmark runs in a child process group; this script waits for it and cleans up): both
# sides' containers, dockerd and containerd (nothing of theirs is left running), their
# data, mounts and cgroups, and the directories containerd and dockerd create under /run
# (/run/containerd/s, /run/docker/plugins) when they were not there before.
set -euo pipefail
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
# A relative BERTH is relative to where the script was started from.
[[ -z ${BERTH:-} ]] || BERTH=$(realpath -m -- "$BERTH")
cd "$(dirname "$0")/.."
N=${N:-10}
LOG_LINES=${LOG_LINES:-1000}
REQUESTS=${REQUESTS:-2000}
WARMUP=${WARMUP:-100}
TAIL=100
BERTH=${BERTH:-$PWD/target/release/berth}
BERTH_API=${BERTH_API:-docker}
PYTHON=${PYTHON:-/usr/bin/python3}
PKG_DIR=${BENCH_PKG_DIR:-/opt/berth-bench}
DOCKER_BIN=$PKG_DIR/docker.io/usr/bin
DOCKERD_BIN=$PKG_DIR/docker.io/usr/sbin
CONTAINERD_BIN=$PKG_DIR/containerd/usr/bin

# The benchmark (child) is handed its directory in BENCH_API_WORK.
if [[ -z ${BENCH_API_WORK:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "$0: run as root" >&2; exit 1; }
  for v in N LOG_LINES REQUESTS WARMUP; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$0: $v must be a positive integer" >&2; exit 1; }
  done
  ((LOG_LINES >= TAIL)) || { echo "$0: LOG_LINES must be at least $TAIL" >&2; exit 1; }
  [[ $BERTH_API == docker || $BERTH_API == berth-v1 ]] ||
    { echo "$0: BERTH_API must be docker or berth-v1" >&2; exit 1; }
  [[ -x $BERTH && -x $(dirname "$BERTH")/berth-monitor ]] ||
    { echo "$0: $BERTH (and berth-monitor next to it) missing: cargo build --release --bins, or set BERTH" >&2; exit 1; }
  scripts/install-deps busybox-static runc python3
  # docker.io and containerd unpacked, never installed (their scripts would start services).
  for pkg in docker.io containerd; do
    case $pkg in
      docker.io) probe=$DOCKERD_BIN/dockerd ;;
      containerd) probe=$CONTAINERD_BIN/containerd-shim-runc-v2 ;;
    esac
    [[ -x $probe ]] && continue
    echo "== unpacking Debian's $pkg into $PKG_DIR/$pkg (apt-get download + dpkg -x)"
    scratch=$(mktemp -d)
    (cd "$scratch" && apt-get download -qq "$pkg" 2>/dev/null) ||
      { apt-get update -qq && (cd "$scratch" && apt-get download -qq "$pkg"); }
    rm -rf "$PKG_DIR/$pkg.partial" && mkdir -p "$PKG_DIR/$pkg.partial"
    dpkg -x "$scratch/${pkg}"_*.deb "$PKG_DIR/$pkg.partial"
    rm -rf "$scratch" "$PKG_DIR/$pkg" && mv -T "$PKG_DIR/$pkg.partial" "$PKG_DIR/$pkg"
  done
  WORK=$(mktemp -d /var/tmp/berth-bench-api.XXXXXX)
else
  WORK=$BENCH_API_WORK
fi
ROOT=$WORK/berth-root
DIR=$WORK/desired
EMPTY=$WORK/empty
# berth's run root and cgroup scope for a non-default state root (state/layout.rs).
SCOPE=berth-$(printf %s "$ROOT" | sha256sum | cut -c1-12)
RUN_ROOT=/run/$SCOPE
DOCKER_SOCK=$WORK/docker.sock
DOCKER_EXEC=$WORK/docker-exec
CONTAINERD_SOCK=$DOCKER_EXEC/containerd/containerd.sock
# dockerd's containers' cgroup parent: this run's own (cgroupfs driver: no systemd here).
CGROUP_PARENT=berth-bench-api-${WORK##*.}
export DOCKER_HOST=unix://$DOCKER_SOCK DOCKER_CONFIG=$WORK/docker-config
export PATH=$CONTAINERD_BIN:$DOCKERD_BIN:$DOCKER_BIN:$PATH
docker() { timeout 120 "$DOCKER_BIN/docker" "$@"; }
berth() { timeout 120 "$BERTH" "$@"; }

# Stop PID with SIGTERM, SIGKILL after SECS; true if it was running.
stop_pid() { # PID SECS WHAT
  local pid=$1 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "warning: $3 ignored SIGTERM for $2 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null
  sleep 0.2
}

# A pid from FILE if that process's command line mentions WORK (never someone else's).
ours() { # FILE
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  [[ $pid =~ ^[0-9]+$ ]] && grep -qF "$WORK" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
  return 0
}

if [[ -z ${BENCH_API_WORK:-} ]]; then
  BENCH_PID=
  # What containerd and dockerd create under /run is removed only if it was not there.
  created_run_dirs=()
  for d in /run/containerd /run/containerd/s /run/docker /run/docker/plugins; do
    [[ -e $d ]] || created_run_dirs=("$d" "${created_run_dirs[@]}") # deepest first
  done

  # shellcheck disable=SC2317 # run by the EXIT trap
  cleanup() {
    local rc=$? pid d m i ids=() pids=() mounts=()
    set +e
    trap - EXIT
    trap '' INT TERM HUP # finish cleaning up
    if [[ -n $BENCH_PID ]]; then
      kill -TERM -- "-$BENCH_PID" 2>/dev/null
      wait "$BENCH_PID" 2>/dev/null
    fi
    # berth: the agent stopped (its containers keep running), then an empty directory
    # applied, which removes them; `berth rm -f` of whatever is left.
    stop_pid "$(ours "$WORK/agent.pid")" 30 "the agent"
    if [[ -d $ROOT/containers ]]; then
      mkdir -p "$EMPTY"
      timeout 120 "$BERTH" --root "$ROOT" apply --allow-empty "$EMPTY" >"$WORK/cleanup-apply.log" 2>&1 ||
        echo "warning: berth apply --allow-empty failed: $(tail -n 5 "$WORK/cleanup-apply.log")" >&2
      for d in "$ROOT"/containers/*/; do
        [[ -d $d ]] && d=${d%/} && ids+=("${d##*/}")
      done
      if ((${#ids[@]})); then
        timeout 120 "$BERTH" --root "$ROOT" rm -f "${ids[@]}" >/dev/null 2>"$WORK/rm.err" ||
          echo "warning: berth rm -f failed: $(cat "$WORK/rm.err")" >&2
      fi
    fi
    mapfile -t pids < <(pgrep -f -- "berth-monitor $ROOT ")
    if ((${#pids[@]})); then
      echo "warning: monitors still running: ${pids[*]}; killing them" >&2
      kill -KILL "${pids[@]}"
    fi
    # dockerd: its containers removed while it runs, then stopped (it stops its containerd).
    pid=$(ours "$WORK/docker.pid")
    if [[ -n $pid ]]; then
      mapfile -t ids < <(timeout 60 "$DOCKER_BIN/docker" ps -aq 2>/dev/null)
      if ((${#ids[@]})); then
        timeout 120 "$DOCKER_BIN/docker" rm -f "${ids[@]}" >/dev/null 2>"$WORK/rm.err" ||
          echo "warning: docker rm -f failed: $(cat "$WORK/rm.err")" >&2
      fi
      stop_pid "$pid" 30 dockerd
    fi
    stop_pid "$(pgrep -f -- "containerd --config $DOCKER_EXEC/" | head -1)" 10 containerd
    # Shims and container processes that outlived them (only after a failed removal).
    mapfile -t pids < <(pgrep -f -- "-address $CONTAINERD_SOCK")
    if ((${#pids[@]})); then
      echo "warning: containerd shims still running: ${pids[*]}; killing them" >&2
      kill -KILL "${pids[@]}"
    fi
    for d in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/*/"$SCOPE"; do
      [[ -d $d ]] || continue
      mapfile -t pids < <(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null)
      ((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null
    done
    sleep 0.2
    # dockerd's overlay and network-namespace mounts, berth's leftovers.
    mapfile -t mounts < <(awk -v w="$WORK/" -v r="$RUN_ROOT/" 'index($5, w) == 1 || index($5, r) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    for m in "${mounts[@]}"; do
      umount "$m" 2>/dev/null || umount -l "$m"
    done
    for d in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/*/"$SCOPE"; do
      [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
      [[ -d $d ]] && echo "warning: cgroup $d is left (not empty)" >&2
    done
    for d in "${created_run_dirs[@]}"; do
      [[ -d $d ]] && { rmdir "$d" 2>/dev/null || echo "warning: $d is left (not empty)" >&2; }
    done
    rm -rf "$WORK" "$RUN_ROOT"
    for ((i = 0; i < 50; i++)); do
      pgrep -f -- "$WORK/" >/dev/null || break
      sleep 0.1
    done
    pgrep -af -- "$WORK/" >&2 && echo "warning: the processes above are still running" >&2
    exit "$rc"
  }
  trap cleanup EXIT
  trap 'echo "interrupted" >&2; exit 130' INT
  trap 'echo "terminated" >&2; exit 143' TERM

  set -m # the benchmark gets its own process group
  BENCH_API_WORK=$WORK "$BASH" "$SELF" </dev/null &
  BENCH_PID=$!
  set +m
  wait "$BENCH_PID"
  exit 0
fi

# ---------------------------------------------------------------------------------------
# The benchmark (child process).
AGENT_LOG=$WORK/agent.log
DOCKERD_LOG=$WORK/dockerd.log
set -E
trap 'echo "FAILED: line $LINENO: exit status $?" >&2' ERR

fail() {
  echo "FAILED: $*" >&2
  for log in "$AGENT_LOG" "$DOCKERD_LOG"; do
    [[ -s $log ]] || continue
    echo "--- $(basename "$log") (last 20 lines) ---" >&2
    tail -n 20 "$log" >&2
  done
  exit 1
}

# Wait until COMMAND... succeeds, for at most SECS.
wait_for() { # SECS WHAT COMMAND...
  local secs=$1 what=$2 i
  shift 2
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  fail "$what: not within $secs s"
}

# The command of every container: LOG_LINES lines of about 60 bytes, then nothing but
# sleep (and a quick exit on SIGTERM: sh is PID 1).
COMMAND="trap 'exit 0' TERM; seq 1 $LOG_LINES | sed 's/\$/ benchmark log line, about sixty bytes, like a real one/'; sleep 86400 & wait"

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== building the busybox image offline"
mkdir -m 0700 "$WORK/image"
examples/images/build-busybox.sh "$WORK/image/busybox.tar" >/dev/null
"$PYTHON" scripts/bench_api.py layer "$WORK/image/busybox.tar" "$WORK/image/rootfs.tar.gz"

echo "== dockerd: starting it (its own roots, socket and cgroup parent; no iptables, no bridge)"
echo '{}' >"$WORK/daemon.json"
mkdir -p "$DOCKER_CONFIG"
# setsid: the daemons are out of the benchmark's process group, which is killed first on
# an interruption; the clean-up removes their containers before stopping them.
setsid dockerd --config-file "$WORK/daemon.json" --data-root "$WORK/docker-data" \
  --exec-root "$DOCKER_EXEC" -H "unix://$DOCKER_SOCK" --pidfile "$WORK/docker.pid" \
  --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
  --userland-proxy=false --cgroup-parent "/$CGROUP_PARENT" >"$DOCKERD_LOG" 2>&1 &
"$PYTHON" scripts/bench_api.py wait "$DOCKER_SOCK" /_ping 60 || fail "dockerd did not answer"
DOCKERD_PID=$(ours "$WORK/docker.pid")
[[ -n $DOCKERD_PID ]] || fail "no dockerd in $WORK/docker.pid"
docker import "$WORK/image/rootfs.tar.gz" berth-bench/busybox:latest >/dev/null
for ((i = 1; i <= N; i++)); do
  docker run -d --network none --name "bench-$i" berth-bench/busybox:latest sh -c "$COMMAND" >/dev/null
done

echo "== berth: starting the agent on $N containers"
mkdir -p "$DIR" "$EMPTY"
{
  printf '[image.busybox]\nreference = "oci-archive:%s"\n\n' "$WORK/image/busybox.tar"
  for ((i = 1; i <= N; i++)); do
    # TOML basic string: the command has no backslash or double quote.
    printf '[container.bench-%d]\nimage = "busybox"\ncommand = ["sh", "-c", "%s"]\n\n' "$i" "$COMMAND"
  done
} >"$DIR/bench.toml"
berth validate "$DIR" >/dev/null || fail "the desired directory does not validate"
BERTH_LOG=warn setsid "$BERTH" --root "$ROOT" agent "$DIR" 2>>"$AGENT_LOG" &
AGENT_PID=$!
echo "$AGENT_PID" >"$WORK/agent.pid"
# setsid execs in place (this shell is no process group leader): the pid is the agent's.
[[ -n $(ours "$WORK/agent.pid") ]] || { sleep 0.5; [[ -n $(ours "$WORK/agent.pid") ]]; } ||
  fail "pid $AGENT_PID is not the agent"
if [[ $BERTH_API == docker ]]; then
  BERTH_TARGET_SOCK=$RUN_ROOT/docker.sock
else
  BERTH_TARGET_SOCK=$RUN_ROOT/berth.sock
fi
"$PYTHON" scripts/bench_api.py wait "$BERTH_TARGET_SOCK" /_ping 60 ||
  fail "the agent did not answer on $BERTH_TARGET_SOCK"

# Both sides: N running containers whose logs hold every line.
berth_running() {
  kill -0 "$AGENT_PID" 2>/dev/null || fail "the agent exited"
  [[ $(berth --root "$ROOT" ps --json 2>/dev/null | "$PYTHON" -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["state"] == "running"))') == "$N" ]]
}
docker_running() { [[ $(docker ps -q | wc -l) == "$N" ]]; }
logs_complete() {
  local i
  for ((i = 1; i <= N; i++)); do
    [[ $(berth --root "$ROOT" logs "bench-$i" 2>/dev/null | wc -l) == "$LOG_LINES" ]] || return 1
    [[ $(docker logs "bench-$i" 2>/dev/null | wc -l) == "$LOG_LINES" ]] || return 1
  done
}
wait_for 300 "$N running berth containers" berth_running
wait_for 120 "$N running docker containers" docker_running
wait_for 60 "$LOG_LINES log lines in every container's log" logs_complete

MONITORS=$(pgrep -f -- "berth-monitor $ROOT " | paste -sd, -)
CONTAINERD_PID=$(pgrep -f -- "containerd --config $DOCKER_EXEC/" | head -1)
[[ -n $CONTAINERD_PID ]] || fail "dockerd's containerd not found"
SHIMS=$(pgrep -f -- "-address $CONTAINERD_SOCK" | paste -sd, -)
berth_version=$(berth --version)
dockerd_version=$(dockerd --version)
containerd_version=$(containerd --version | awk '{print $3}')
build="release build"
[[ $BERTH == */debug/* ]] && build="DEBUG build: a trial, not a figure to record"

echo "== measuring: $REQUESTS requests per call and daemon, interleaved (berth through $BERTH_API API)"
# Each request times out after 30 s; the whole measurement after 5 ms per request and
# daemon plus 10 minutes.
timeout $((REQUESTS * 20 / 1000 + 600)) "$PYTHON" scripts/bench_api.py run \
  --target berth "$BERTH_API" "$BERTH_TARGET_SOCK" "$AGENT_PID" "$MONITORS" \
  --target dockerd docker "$DOCKER_SOCK" "$DOCKERD_PID,$CONTAINERD_PID" "$SHIMS" \
  --expect "$N" --tail "$TAIL" --requests "$REQUESTS" --warmup "$WARMUP" \
  --json-out "$WORK/results.json" >"$WORK/table.md" ||
  fail "the measurement failed$([[ $BERTH_API == docker ]] && echo " (BERTH_API=berth-v1 measures berth through its own API instead)")"

cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
cat <<EOF

### API benchmark (\`scripts/bench-api.sh\`)

- machine: $(nproc) CPUs ($cpu_model), kernel $(uname -r), $mem_total RAM; load average at start $load_start, at end $(cut -d' ' -f1-3 /proc/loadavg)
- berth: $BERTH ($berth_version, script at $commit; $build), API: $([[ $BERTH_API == docker ]] && echo "Docker API on docker.sock" || echo "berth's own API on berth.sock (/v1/containers, /v1/containers/{id}/logs: a stand-in)")
- dockerd: $dockerd_version, containerd $containerd_version, runc $(runc --version | awk 'NR == 1 {print $3}'); overlay2, json-file logs
- N=$N containers each side, $LOG_LINES log lines each; ratios are berth / dockerd (below 1: berth is faster or smaller)

EOF
cat "$WORK/table.md"
cat <<EOF

Agent memory: berth's agent alone, dockerd's + containerd's. Per-container processes:
berth-monitor against containerd-shim-runc-v2 (all of them, idle). CPU per request: the
daemons' utime + stime over a series (warm-up included) divided by its requests.
EOF
if [[ -s $AGENT_LOG ]]; then
  echo
  echo "The agent logged (BERTH_LOG=warn), last 10 lines:"
  tail -n 10 "$AGENT_LOG"
fi
