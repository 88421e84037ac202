#!/usr/bin/env bash
# Health check benchmark: the CPU one health check costs, berth against podman, in one run.
#
#   1. berth, as it really runs its checks: the release agent (`berth --root R agent DIR
#      --resync 1h`) keeps K containers running, each with a check every second, for a
#      window of WINDOW seconds once all are healthy. Three checks, one after the other:
#        exec   health = { exec = ["true"], interval = "1s" }        on `sleep 3600`
#        tcp    health = { tcp = 80, interval = "1s" }               on busybox httpd
#        http   health = { http = "http://127.0.0.1:80/", ... }      on busybox httpd
#      (httpd on a bridge network, subnet 10.213.240.0/24, no published port; the image has
#      /var/www, not /www, so httpd serves -h /var/www). The agent's CPU: utime + stime of
#      the agent, all its threads (from its process CPU clock, in ns: /proc/PID/stat's 10 ms
#      ticks are too coarse for a tcp check), plus cutime + cstime of the children it reaped
#      (the `berth exec` of an exec check, from /proc/PID/stat), sampled every SLICE seconds;
#      the checks run are read from each container's health.json (`checks`) at the same
#      moments. CPU per check = (CPU in the window - the idle CPU) / checks. The idle CPU is
#      the agent's over a window of the same length with the same K httpd containers on the
#      same network and no check (a baseline taken first, and subtracted; with --resync 1h
#      the agent runs no pass in it, yet it is not 0: notify's debouncer thread wakes about
#      80 times a second).
#   2. One check run directly, N rounds, interleaved: `berth --root R exec ID -- true` (what
#      each exec check of the agent runs) and `podman healthcheck run CTR` (what podman's
#      systemd timer starts every interval) on K busybox `sleep 3600` containers started
#      with `podman run -d --health-cmd true --health-interval 1s`. Each sample is the
#      user + system CPU of the command and of every process it leaves behind (podman's
#      exec conmon double-forks away from it): a small python3 wrapper becomes a child
#      subreaper, runs the command, reaps every descendant and reports getrusage(CHILDREN).
#      The same wrapper for both tools. The agent is stopped first (its containers keep
#      running under their monitors), so nothing else of berth or podman runs meanwhile.
#
# and a Markdown summary for an issue note (medians, p90, the ratio podman / berth).
#
#   K=10 WINDOW=30 SLICE=5 N=20 scripts/bench-health.sh   (as root; installs what it needs)
#
# About 3-4 minutes with the defaults. CPU time rather than wall time is measured, so a busy
# machine disturbs the figures less (they still grow a little under contention: caches,
# migrations); the load average at the start and at the end is reported.
#
# Everything lives under one temporary directory in /tmp (berth's state root is a non-default
# one, so its bridge alias, nftables table `berth-<hash>`, run root and cgroups are its own).
# It is all removed at the end, on failure or interruption as well: the agent, berth's
# containers (`rm -f`), its network (`apply` of an empty directory with --allow-empty prunes
# it: the bridge and the table; the script then checks that no link aliased `berth
# berth-<hash> ...` and no table `ip berth-<hash>` is left, and removes and reports any),
# podman's containers, image and storage. podman runs its containers with --network none,
# so it makes no CNI bridge or rules. The benchmark itself runs in a child process (its own
# process group) that this script waits for and cleans up after, as in bench-agent.sh.
#
# Quirks of these machines (docs/benchmarks.md): RLIMIT_NOFILE hard limit 20000 (podman
# gets a private containers.conf) and cgroup v1 hybrid (crun, podman's runtime, needs hugetlb
# mounted as a v1 hierarchy when it sits on cgroup2; it is unmounted afterwards). There is no
# systemd here, so `podman run --health-cmd` cannot add its timers (it says so and runs the
# container anyway): podman runs no check by itself, only the ones this script starts.
set -euo pipefail
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."
K=${K:-10}
WINDOW=${WINDOW:-30}
SLICE=${SLICE:-5}
N=${N:-20}
SUBNET=10.213.240.0/24
ARCHIVE=/var/lib/berth-examples/busybox.tar
BERTH=$PWD/target/release/berth

# The benchmark (child) is handed its directory in BENCH_HEALTH_WORK.
if [[ -z ${BENCH_HEALTH_WORK:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "$0: run as root" >&2; exit 1; }
  for v in K WINDOW SLICE N; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$0: $v must be a positive integer" >&2; exit 1; }
  done
  ((K <= 200)) || { echo "$0: K must be at most 200 (one /24 network)" >&2; exit 1; }
  ((SLICE <= WINDOW)) || { echo "$0: SLICE must not exceed WINDOW" >&2; exit 1; }
  scripts/install-deps pkg-config libseccomp-dev podman conmon crun runc jq busybox-static python3
  cargo build --release --locked --bins -q
  [[ -x $BERTH && -x $PWD/target/release/berth-monitor ]] || { echo "$0: release binaries missing" >&2; exit 1; }
  if [[ ! -f $ARCHIVE ]]; then
    echo "== building the busybox image offline ($ARCHIVE)"
    examples/images/build-busybox.sh "$ARCHIVE" >/dev/null
  fi
  WORK=$(mktemp -d /tmp/bench-health.XXXXXX)
else
  WORK=$BENCH_HEALTH_WORK
fi
ROOT=$WORK/root
DIR=$WORK/desired
EMPTY=$WORK/empty
LOG=$WORK/agent.log
STATUS=$ROOT/reconcile/status.json
# berth's scope for a non-default state root (runtime/layout.rs): bridge and veth aliases
# start with "berth $SCOPE ", its nftables table is `ip $SCOPE`, its run root /run/$SCOPE.
SCOPE=berth-$(printf %s "$ROOT" | sha256sum | cut -c1-12)
PODMAN=(podman --root "$WORK/podman" --runroot "$WORK/podman-run" --tmpdir "$WORK/podman-tmp")
export CONTAINERS_CONF=$WORK/containers.conf
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || PYTHON=python3

had_link() { ip link show dev "$1" >/dev/null 2>&1; }
had_table() { nft list table "$1" "$2" >/dev/null 2>&1; }
# Links of this state root (bridges and host-side veths), by their alias.
berth_links() { # [KIND: network|container]
  ip -j link show | jq -r --arg p "berth $SCOPE ${1:-}" '.[] | select((.ifalias // "") | startswith($p)) | .ifname'
}

if [[ -z ${BENCH_HEALTH_WORK:-} ]]; then
  BENCH_PID=
  hugetlb_mounted=0
  ip_forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
  # podman (cgroupfs manager) makes libpod_parent cgroups on first use; removed if it made them.
  libpod_parent_existed=0
  compgen -G "/sys/fs/cgroup/*/libpod_parent" >/dev/null && libpod_parent_existed=1

  # shellcheck disable=SC2317 # run by the EXIT trap
  cleanup() {
    local rc=$? id d m pid i bridge="" ids=() pids=() left=() mounts=()
    set +eu
    trap - EXIT
    trap '' INT TERM HUP # finish cleaning up
    # The benchmark's process group: its shell and whatever it runs (the agent too).
    if [[ -n $BENCH_PID ]]; then
      kill -TERM -- "-$BENCH_PID" 2>/dev/null
      wait "$BENCH_PID" 2>/dev/null
    fi
    # The agent (SIGTERM, SIGKILL after 30 s), if it still runs; its containers keep running
    # until removed.
    pid=$(cat "$WORK/agent.pid" 2>/dev/null)
    if [[ -n $pid ]] && grep -qF "$ROOT" "/proc/$pid/cmdline" 2>/dev/null; then
      kill -TERM "$pid"
      for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -0 "$pid" 2>/dev/null && { echo "warning: the agent ignored SIGTERM for 30 s; killing it" >&2; kill -KILL "$pid"; }
    fi
    bridge=$(cat "$WORK/bridge" 2>/dev/null)
    # berth: its containers, then its network (an empty directory prunes it), then a check.
    if [[ -d $ROOT ]]; then
      for d in "$ROOT"/containers/*/; do
        [[ -d $d ]] || continue
        d=${d%/}
        ids+=("${d##*/}")
      done
      if ((${#ids[@]})) && ! "$BERTH" --root "$ROOT" rm -f "${ids[@]}" >/dev/null 2>"$WORK/rm.err"; then
        for id in "${ids[@]}"; do
          [[ -d $ROOT/containers/$id ]] || continue
          "$BERTH" --root "$ROOT" rm -f "$id" >/dev/null 2>"$WORK/rm.err" ||
            echo "warning: berth rm -f $id failed: $(cat "$WORK/rm.err")" >&2
        done
      fi
      mkdir -p "$EMPTY"
      "$BERTH" --root "$ROOT" apply "$EMPTY" --allow-empty >"$WORK/prune.out" 2>&1 ||
        { echo "warning: berth apply EMPTY --allow-empty failed:" >&2; sed 's/^/  /' "$WORK/prune.out" >&2; }
      mapfile -t pids < <(pgrep -f -- "berth-monitor $ROOT ")
      if ((${#pids[@]})); then
        echo "warning: berth monitors still running after rm -f: ${pids[*]}; killing them" >&2
        kill -KILL "${pids[@]}"
      fi
    fi
    mapfile -t left < <(berth_links)
    if ((${#left[@]})); then
      echo "warning: berth left links of $SCOPE after pruning its network: ${left[*]}; deleting them" >&2
      for m in "${left[@]}"; do ip link del "$m"; done
    fi
    if had_table ip "$SCOPE"; then
      echo "warning: berth left its nftables table ip $SCOPE after pruning its network; deleting it" >&2
      nft delete table ip "$SCOPE"
    fi
    # podman: containers, image, storage (and containers/storage's mounts under $WORK).
    if [[ -d $WORK/podman ]]; then
      "${PODMAN[@]}" rm -f -t 0 -a >/dev/null 2>&1
      "${PODMAN[@]}" rmi -a -f >/dev/null 2>&1
    fi
    mapfile -t mounts < <(awk -v w="$WORK/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    for m in "${mounts[@]}"; do
      umount "$m" 2>/dev/null || umount -l "$m"
    done
    # conmon and podman's cleanup processes exit on their own once the containers are gone.
    for ((i = 0; i < 300; i++)); do
      pgrep -f -- "$WORK/" >/dev/null || break
      sleep 0.1
    done
    pgrep -f -- "$WORK/" >/dev/null && echo "warning: processes of $WORK still run: $(pgrep -f -- "$WORK/" | tr '\n' ' ')" >&2
    if ((!libpod_parent_existed)); then
      for d in /sys/fs/cgroup/*/libpod_parent; do
        [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
      done
    fi
    if ((hugetlb_mounted)); then umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb; fi
    for d in /sys/fs/cgroup/*/"$SCOPE"; do
      [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
      [[ -d $d ]] && echo "warning: cgroup $d is left (not empty)" >&2
    done
    # ip_forward back to 0 if it was, and no other bridge routes through this host.
    if [[ $ip_forward_before == 0 && $(cat /proc/sys/net/ipv4/ip_forward) == 1 ]]; then
      if [[ -z $(ip -j link show type bridge | jq -r '.[] | select((.ifalias // "") | startswith("berth ")) | .ifname') ]] &&
        ! had_link cni-podman0; then
        echo 0 >/proc/sys/net/ipv4/ip_forward
      else
        echo "note: net.ipv4.ip_forward was 0 and is left at 1 (other bridges route)" >&2
      fi
    fi
    rm -rf "$WORK" "/run/$SCOPE"
    # The check the benchmark promises: nothing of this state root is left.
    left=()
    [[ -n $(berth_links) ]] && left+=("links: $(berth_links | tr '\n' ' ')")
    [[ -n $bridge ]] && ip -br link | grep -qw -- "^$bridge" && left+=("bridge $bridge in ip -br link")
    nft list tables | grep -qw -- "$SCOPE" && left+=("nftables table ip $SCOPE")
    [[ -e /run/$SCOPE ]] && left+=("/run/$SCOPE")
    compgen -G "/sys/fs/cgroup/*/$SCOPE" >/dev/null && left+=("cgroups $SCOPE")
    [[ -e $WORK ]] && left+=("$WORK")
    if ((${#left[@]})); then
      echo "cleanup: LEFT OVER: ${left[*]}" >&2
    else
      echo "cleanup: nothing of $SCOPE is left (bridge ${bridge:-?} gone from ip -br link, no link aliased 'berth $SCOPE', no table ip $SCOPE in nft list tables, $WORK removed)"
    fi
    exit "$rc"
  }
  trap cleanup EXIT
  trap 'echo "interrupted" >&2; exit 130' INT
  trap 'echo "terminated" >&2; exit 143' TERM

  # crun refuses a cgroup v1 hybrid with hugetlb on cgroup2 (docs/benchmarks.md).
  if [[ ! -d /sys/fs/cgroup/hugetlb ]] && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then
    mkdir /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb none /sys/fs/cgroup/hugetlb && hugetlb_mounted=1
  fi

  set -m # the benchmark gets its own process group
  BENCH_HEALTH_WORK=$WORK "$BASH" "$SELF" </dev/null &
  BENCH_PID=$!
  set +m
  wait "$BENCH_PID"
  exit 0
fi

# ---------------------------------------------------------------------------------------
# The benchmark (child process).
AGENT_PID=
TICK=$(getconf CLK_TCK)

fail() {
  echo "FAILED: $*" >&2
  if [[ -s $LOG ]]; then
    echo "--- agent log (last 30 lines) ---" >&2
    tail -n 30 "$LOG" >&2
  fi
  if [[ -d $DIR && -f $STATUS ]]; then
    echo "--- berth status ---" >&2
    "$BERTH" --root "$ROOT" status "$DIR" 2>&1 | head -n 40 >&2
  fi
  exit 1
}

agent_alive() {
  if [[ -z $AGENT_PID ]] || ! kill -0 "$AGENT_PID" 2>/dev/null; then fail "the agent exited"; fi
}

# Stop the agent: SIGTERM, then SIGKILL after 30 s. Its containers keep running.
stop_agent() {
  local pid=$AGENT_PID i
  [[ -n $pid ]] || return 0
  AGENT_PID=
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && { echo "warning: the agent ignored SIGTERM for 30 s; killing it" >&2; kill -KILL "$pid"; }
  wait "$pid" 2>/dev/null || true
  rm -f "$WORK/agent.pid"
}

# Atomic write: a dot-file (ignored by the loader), then a rename.
put() { # NAME FILE
  cp "$2" "$DIR/.$1"
  mv "$DIR/.$1" "$DIR/$1"
}

# Values (one per line) / DIVISOR -> "median p90 min" (p90: nearest rank).
summarize() { # DIVISOR [DECIMALS] < values
  sort -g | awk -v div="$1" -v d="${2:-1}" '
    { v[NR] = $1 / div }
    END {
      n = NR
      if (n == 0) { print "n/a n/a n/a"; exit }
      med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      i = int(0.9 * n); if (i < 0.9 * n) i++; if (i < 1) i = 1
      printf "%." d "f %." d "f %." d "f\n", med, v[i], v[1]
    }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; } # EXPR [DECIMALS]

# The agent's CPU so far, in microseconds: "SELF CHILDREN". SELF is utime + stime of all its
# threads, read from its process CPU clock (clock_gettime of clock id (~pid << 3) | 2, what
# clock_getcpuclockid gives: nanoseconds, threads that ended included) rather than from
# /proc/PID/stat's 10 ms ticks, too coarse for a tcp check; CHILDREN is cutime + cstime
# from /proc/PID/stat (the `berth exec` children it reaped), in ticks.
agent_cpu() {
  "$PYTHON" "$WORK/cpu.py" "$AGENT_PID" "$TICK"
}

# Checks run so far by the containers in IDS (health.json `checks`), and how many of them
# are healthy.
IDS=()
checks_sum() {
  local files=() id
  for id in "${IDS[@]}"; do
    [[ -f $ROOT/containers/$id/health.json ]] && files+=("$ROOT/containers/$id/health.json")
  done
  if ((${#files[@]} == 0)); then echo "0 0" && return 0; fi # no check (the baseline)
  jq -rs '"\(map(.checks) | add // 0) \(map(select(.status == "healthy")) | length)"' "${files[@]}"
}

# The started_at of the agent's last pass (status.json), to see whether a pass ran.
last_pass() { jq -r '.last_pass.started_at // "none"' "$STATUS" 2>/dev/null || echo none; }

# Wait until exactly K containers run, all named PREFIX<n>, all healthy (or, with WANT =
# none, without a check); sets IDS.
wait_ready() { # PREFIX WANT(healthy|none) TIMEOUT_S
  local deadline=$((SECONDS + $3)) json total ready
  while :; do
    agent_alive
    json=$("$BERTH" --root "$ROOT" ps --json)
    read -r total ready < <(jq -r --arg p "$1" --arg want "$2" '
      [length, ([.[] | select((.name | startswith($p)) and .state == "running"
        and (if $want == "none" then .health == null else .health == $want end))] | length)] | @tsv' <<<"$json")
    if ((total == K && ready == K)); then
      mapfile -t IDS < <(jq -r '.[].id' <<<"$json")
      return 0
    fi
    ((SECONDS < deadline)) || fail "after $3 s, $ready of $K containers $1* are running and $2 ($total running in all): $(jq -c '[.[] | {name, state, health, health_output}]' <<<"$json" | head -c 1500)"
    sleep 0.5
  done
}

# One measurement window: samples every SLICE s of the agent's CPU and the checks run. Writes
# $WORK/<kind>.slices ("wall_us self_us child_us checks" per slice) and
# $WORK/<kind>.total (the same over the whole window, then the healthy count at the end and
# whether the agent ran a pass in the window).
measure() { # KIND
  local kind=$1 t0 t1 tprev self0 child0 chk0 selfp childp chkp self child chk healthy pass0 pass1 i slices
  : >"$WORK/$kind.slices"
  slices=$((WINDOW / SLICE))
  pass0=$(last_pass)
  t0=${EPOCHREALTIME/[.,]/}
  read -r self0 child0 < <(agent_cpu)
  read -r chk0 _ < <(checks_sum)
  tprev=$t0 selfp=$self0 childp=$child0 chkp=$chk0
  for ((i = 1; i <= slices; i++)); do
    # Sleep until the slice's end (not SLICE after the last sample: the samples take time).
    sleep "$(awk -v e=$((t0 + i * SLICE * 1000000)) -v n="${EPOCHREALTIME/[.,]/}" 'BEGIN { d = (e - n) / 1e6; if (d < 0) d = 0; printf "%.3f", d }')"
    agent_alive
    t1=${EPOCHREALTIME/[.,]/}
    read -r self child < <(agent_cpu)
    read -r chk healthy < <(checks_sum)
    echo "$((t1 - tprev)) $((self - selfp)) $((child - childp)) $((chk - chkp))" >>"$WORK/$kind.slices"
    tprev=$t1 selfp=$self childp=$child chkp=$chk
  done
  pass1=$(last_pass)
  echo "$((t1 - t0)) $((self - self0)) $((child - child0)) $((chk - chk0)) $healthy $([[ $pass0 == "$pass1" ]] && echo no || echo yes)" >"$WORK/$kind.total"
}

# The scenario files: the image and the network in all of them, K containers of one kind.
scenario() { # KIND -> its desired file on stdout
  local kind=$1 i
  cat <<EOF
[image.busybox]
reference = "oci-archive:$ARCHIVE"
pull = "missing"

[network.hcnet]
subnet = "$SUBNET"
EOF
  for ((i = 1; i <= K; i++)); do
    echo
    echo "[container.$kind$i]"
    echo 'image = "busybox"'
    echo 'stop_signal = "SIGKILL"'
    case $kind in
      exec)
        echo 'command = ["sleep", "3600"]'
        echo 'network = "none"'
        echo 'health = { exec = ["true"], interval = "1s" }'
        ;;
      *)
        echo 'command = ["httpd", "-f", "-p", "80", "-h", "/var/www"]'
        echo 'networks = ["hcnet"]'
        ;;
    esac
    case $kind in
      tcp) echo 'health = { tcp = 80, interval = "1s" }' ;;
      http) echo 'health = { http = "http://127.0.0.1:80/", interval = "1s" }' ;;
    esac
  done
}

# The subreaper: runs a command (output to /dev/null), reaps it and every process it left
# behind (re-parented to the wrapper), and prints "EXIT USER_US SYS_US WALL_US LEFT" with the
# CPU of all of them (getrusage(RUSAGE_CHILDREN); the wrapper's own CPU is not in it). WALL
# is the command's own wall time; LEFT is 1 if descendants still ran 10 s after it ended.
cat >"$WORK/reap.py" <<'EOF'
import ctypes, os, resource, sys, time
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER): errno %d" % ctypes.get_errno())
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(fd, 0)
    os.dup2(fd, 1)
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
rc = None
while rc is None:
    p, st = os.waitpid(-1, 0)
    if p == pid:
        rc = os.waitstatus_to_exitcode(st)
wall = time.monotonic() - t0
deadline = time.monotonic() + 10
left = 0
while True:
    try:
        p, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if p == 0:
        if time.monotonic() > deadline:
            left = 1
            break
        time.sleep(0.002)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%d %d %d %d %d" % (rc, round(ru.ru_utime * 1e6), round(ru.ru_stime * 1e6), round(wall * 1e6), left))
EOF

cat >"$WORK/cpu.py" <<'EOF'
import sys, time
pid, tick = int(sys.argv[1]), int(sys.argv[2])
own = time.clock_gettime_ns(((~pid) << 3) | 2) // 1000
with open("/proc/%d/stat" % pid) as f:
    fields = f.read().rsplit(")", 1)[1].split()
children = (int(fields[13]) + int(fields[14])) * 1000000 // tick
print(own, children)
EOF

# ---------------------------------------------------------------------------------------
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$DIR" "$EMPTY" "$WORK/scenarios"
KINDS=(idle tcp http exec)
for kind in "${KINDS[@]}"; do
  mkdir -p "$WORK/scenarios/$kind"
  scenario "$kind" >"$WORK/scenarios/$kind/bench.toml"
  "$BERTH" validate "$WORK/scenarios/$kind" >/dev/null 2>"$WORK/validate.err" ||
    fail "berth validate ($kind): $(cat "$WORK/validate.err")"
done

echo "== berth: agent with $K containers, checks every 1 s; $WINDOW s windows sampled every $SLICE s"
put bench.toml "$WORK/scenarios/idle/bench.toml"
: >"$LOG"
BERTH_LOG=info "$BERTH" --root "$ROOT" agent "$DIR" --resync 1h >>"$LOG" 2>&1 &
AGENT_PID=$!
echo "$AGENT_PID" >"$WORK/agent.pid"

declare -A DESC=(
  [idle]="httpd on bridge hcnet, no check (baseline)"
  [tcp]="tcp = 80, httpd on bridge hcnet"
  [http]="http = \"http://127.0.0.1:80/\", httpd on bridge hcnet"
  [exec]="exec = [\"true\"], sleep 3600, network none"
)
for kind in "${KINDS[@]}"; do
  [[ $kind == idle ]] || put bench.toml "$WORK/scenarios/$kind/bench.toml"
  t0=$SECONDS
  if [[ $kind == idle ]]; then wait_ready idle none 180; else wait_ready "$kind" healthy 180; fi
  if [[ $kind == idle ]]; then
    bridge=$(berth_links network)
    [[ -n $bridge ]] || fail "berth made no bridge aliased 'berth $SCOPE network ...'"
    echo "$bridge" >"$WORK/bridge"
  fi
  sleep 2 # the passes that followed the last change of status are over
  echo "   $kind: $K running$([[ $kind == idle ]] || echo ", healthy") after $((SECONDS - t0)) s; measuring ${WINDOW} s ($kind: ${DESC[$kind]})"
  measure "$kind"
  read -r w s c n h p <"$WORK/$kind.total"
  echo "      agent CPU $(calc "($s + $c) / 1000") ms (self $(calc "$s / 1000"), reaped children $(calc "$c / 1000")) in $(calc "$w / 1e6") s; $n checks; healthy at the end: $h/$K; a pass ran in the window: $p"
  if [[ $kind == exec ]]; then
    # The containers the direct measurement runs `berth exec` in.
    printf '%s\n' "${IDS[@]}" >"$WORK/exec.ids"
  fi
done

# The agent's baseline CPU per second (idle window), subtracted from the others.
read -r w s c _ <"$WORK/idle.total"
IDLE_MS_PER_S=$(awk -v w="$w" -v t=$((s + c)) 'BEGIN { printf "%.4f", t / 1000 / (w / 1e6) }')

# Per kind: the whole window, and per slice ("ms per check" per slice, for median / p90).
declare -A CPU_MS NET_MS CHECKS RATE PER_CHECK SL_MED SL_P90 SELF_PCT HEALTHY PASS
for kind in "${KINDS[@]}"; do
  read -r w s c n h p <"$WORK/$kind.total"
  CPU_MS[$kind]=$(calc "($s + $c) / 1000")
  NET_MS[$kind]=$(calc "($s + $c) / 1000 - $IDLE_MS_PER_S * $w / 1e6")
  CHECKS[$kind]=$n
  RATE[$kind]=$(calc "$n / ($w / 1e6)")
  HEALTHY[$kind]=$h
  PASS[$kind]=$p
  SELF_PCT[$kind]=$( ((s + c)) && calc "100 * $s / ($s + $c)" || echo n/a)
  [[ $kind == idle ]] && continue
  PER_CHECK[$kind]=$( ((n)) && calc "(($s + $c) / 1000 - $IDLE_MS_PER_S * $w / 1e6) / $n" 3 || echo n/a)
  read -r "SL_MED[$kind]" "SL_P90[$kind]" _ < <(awk -v idle="$IDLE_MS_PER_S" '
    $4 > 0 { printf "%.6f\n", (($2 + $3) / 1000 - idle * $1 / 1e6) / $4 }' "$WORK/$kind.slices" | summarize 1 3)
done
log_warn=$(grep -cE '(WARN|ERROR)' "$LOG" || true)
stop_agent
echo "   agent stopped (its containers keep running); idle CPU $(calc "$IDLE_MS_PER_S" 2) ms/s, subtracted below"
for kind in tcp http exec; do
  echo "   $kind: ${PER_CHECK[$kind]} ms CPU per check over the window (slices: median ${SL_MED[$kind]}, p90 ${SL_P90[$kind]}); ${RATE[$kind]} checks/s for $K containers"
done

# ---------------------------------------------------------------------------------------
echo "== podman: $K containers, podman run -d --network none --health-cmd true --health-interval 1s"
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
EOF
"${PODMAN[@]}" pull -q "oci-archive:$ARCHIVE" >/dev/null
PODMAN_IMAGE=$("${PODMAN[@]}" images -q | head -1)
[[ -n $PODMAN_IMAGE ]] || fail "podman did not load $ARCHIVE"
podman_runtime=$("${PODMAN[@]}" info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null || echo "?")
PODMAN_IDS=()
: >"$WORK/podman-run.err"
for ((i = 1; i <= K; i++)); do
  id=$("${PODMAN[@]}" run -d --network none --health-cmd true --health-interval 1s "$PODMAN_IMAGE" sleep 3600 2>>"$WORK/podman-run.err") ||
    fail "podman run -d --health-cmd true: $(tail -n 5 "$WORK/podman-run.err")"
  PODMAN_IDS+=("$id")
done
if grep -q "systemd" "$WORK/podman-run.err"; then
  podman_timers="no systemd here: podman could not add its healthcheck timers (\"$(grep -m1 -o 'unable to get systemd connection to add healthchecks' "$WORK/podman-run.err" || echo "systemd")\"), so it runs no check by itself"
  echo "   note: $podman_timers"
else
  podman_timers="podman's systemd timers ran its own checks meanwhile (not measured)"
fi

mapfile -t BERTH_IDS <"$WORK/exec.ids"
echo "== one check run directly: $N rounds, each: berth exec ID -- true, podman healthcheck run CTR (CPU of the command and all it leaves behind)"
# Warm-up, not measured.
"$PYTHON" "$WORK/reap.py" "$BERTH" --root "$ROOT" exec "${BERTH_IDS[0]}" -- true >/dev/null
"$PYTHON" "$WORK/reap.py" "${PODMAN[@]}" healthcheck run "${PODMAN_IDS[0]}" >/dev/null
for f in berth podman; do : >"$WORK/direct-$f.txt"; done
for ((i = 0; i < N; i++)); do
  for tool in berth podman; do
    if [[ $tool == berth ]]; then
      cmd=("$BERTH" --root "$ROOT" exec "${BERTH_IDS[i % K]}" -- true)
    else
      cmd=("${PODMAN[@]}" healthcheck run "${PODMAN_IDS[i % K]}")
    fi
    out=$("$PYTHON" "$WORK/reap.py" "${cmd[@]}" 2>"$WORK/direct.err") || fail "reap.py ${cmd[*]}: $(cat "$WORK/direct.err")"
    read -r rc u sy wall left <<<"$out"
    ((rc == 0)) || fail "round $((i + 1)): ${cmd[*]} exited $rc: $(cat "$WORK/direct.err")"
    ((left == 0)) || echo "   note: round $((i + 1)), $tool: processes were still running 10 s after the command ended"
    echo "$((u + sy)) $wall $u $sy" >>"$WORK/direct-$tool.txt"
    sleep 0.05
  done
done
declare -A D_MED D_P90 D_MIN D_WALL D_USR D_SYS
for tool in berth podman; do
  read -r "D_MED[$tool]" "D_P90[$tool]" "D_MIN[$tool]" < <(cut -d' ' -f1 "$WORK/direct-$tool.txt" | summarize 1000)
  read -r "D_WALL[$tool]" _ _ < <(cut -d' ' -f2 "$WORK/direct-$tool.txt" | summarize 1000)
  read -r "D_USR[$tool]" _ _ < <(cut -d' ' -f3 "$WORK/direct-$tool.txt" | summarize 1000)
  read -r "D_SYS[$tool]" _ _ < <(cut -d' ' -f4 "$WORK/direct-$tool.txt" | summarize 1000)
done
direct_ratio=$(ratio "${D_MED[podman]}" "${D_MED[berth]}")
agent_ratio=$(ratio "${D_MED[podman]}" "${PER_CHECK[exec]}")
printf '   %-34s %9s %9s %9s %11s\n' "CPU per check (user + sys)" median p90 min "wall median"
printf '   %-34s %6s ms %6s ms %6s ms %8s ms\n' \
  "berth exec ID -- true" "${D_MED[berth]}" "${D_P90[berth]}" "${D_MIN[berth]}" "${D_WALL[berth]}" \
  "podman healthcheck run CTR" "${D_MED[podman]}" "${D_P90[podman]}" "${D_MIN[podman]}" "${D_WALL[podman]}"
echo "   podman / berth, exec check run directly: ${direct_ratio}x"
echo "   podman (direct) / berth agent's exec check: ${agent_ratio}x; berth agent's tcp check: $(ratio "${D_MED[podman]}" "${PER_CHECK[tcp]}")x, http check: $(ratio "${D_MED[podman]}" "${PER_CHECK[http]}")x"
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------
commit=$(git rev-parse --short HEAD)
[[ -z $(git status --porcelain -- src Cargo.toml Cargo.lock) ]] || commit="$commit (with uncommitted changes in src/ or Cargo.*)"
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
row() { # KIND LABEL
  printf '| %s | %s | %s/s | %s ms | %s ms | **%s ms** | %s / %s ms | %s%% | %s/%s | %s |\n' \
    "$2" "${CHECKS[$1]}" "${RATE[$1]}" "${CPU_MS[$1]}" "${NET_MS[$1]}" "${PER_CHECK[$1]}" "${SL_MED[$1]}" "${SL_P90[$1]}" \
    "${SELF_PCT[$1]}" "${HEALTHY[$1]}" "$K" "${PASS[$1]}"
}
cat <<EOF

### berth health check benchmark (\`scripts/bench-health.sh\`)

- machine: $(nproc) CPUs ($cpu_model), kernel $(uname -r); load average at start $load_start, at end $load_end
- berth $commit, release build; podman $(podman --version | awk '{print $3}') ($podman_runtime)
- K=$K containers, checks every 1 s; WINDOW=$WINDOW s sampled every SLICE=$SLICE s; N=$N direct rounds, interleaved

**The agent running the checks** (CPU of the agent, all threads, from its process CPU clock, plus
that of the children it reaped, /proc/PID/stat in 1/$TICK s ticks; the idle agent's $(calc "$IDLE_MS_PER_S" 2) ms/s —
${CPU_MS[idle]} ms in its window, with the same K httpd containers on the bridge and no check — is subtracted):

| check | checks in window | rate | agent CPU | minus idle | **CPU per check** | slices median / p90 | in the agent itself | healthy at end | pass in window |
|---|---|---|---|---|---|---|---|---|---|
$(row exec 'exec `true` (sleep 3600, no network)')
$(row tcp 'tcp 80 (httpd, bridge)')
$(row http 'http GET / (httpd, bridge)')

**One check run directly** (user + sys CPU of the command and every process it left behind,
reaped by a subreaper; medians of $N):

| one check | CPU median | p90 | min | user / sys median | wall median | podman / berth |
|---|---|---|---|---|---|---|
| \`berth exec ID -- true\` | ${D_MED[berth]} ms | ${D_P90[berth]} ms | ${D_MIN[berth]} ms | ${D_USR[berth]} / ${D_SYS[berth]} ms | ${D_WALL[berth]} ms | |
| \`podman healthcheck run CTR\` | ${D_MED[podman]} ms | ${D_P90[podman]} ms | ${D_MIN[podman]} ms | ${D_USR[podman]} / ${D_SYS[podman]} ms | ${D_WALL[podman]} ms | **${direct_ratio}×** |

- podman / berth, exec check: **${direct_ratio}×** run directly; ${agent_ratio}× against the agent's exec check
  (${PER_CHECK[exec]} ms per check, \`berth exec\` included); against the agent's tcp check
  (${PER_CHECK[tcp]} ms) $(ratio "${D_MED[podman]}" "${PER_CHECK[tcp]}")×, its http check (${PER_CHECK[http]} ms) $(ratio "${D_MED[podman]}" "${PER_CHECK[http]}")×.
- podman: $podman_timers; a timer would start one \`podman healthcheck run\` per check.
- agent log (BERTH_LOG=info): $(wc -l <"$LOG") line(s), $log_warn WARN/ERROR.
EOF
if ((log_warn)); then
  echo
  echo "Agent log, WARN/ERROR lines (first 10):"
  echo '```'
  grep -E '(WARN|ERROR)' "$LOG" | head -n 10
  echo '```'
fi
