#!/usr/bin/env bash
# Agent benchmark: what the reconciler costs while it keeps a machine equal to a directory.
#
#   1. File written -> container running, with `berth agent` up: a new `c<i>.toml` is moved
#      into the desired-state directory and the clock stops at the `started_at_ms` the
#      container's monitor records (its monitor.json). Interleaved, in the same run, with
#      `podman run -d --network none IMG sh -c ...` (wall time of the command, which returns
#      once the container runs). The image is imported beforehand for both.
#   2. A no-op pass with N running containers: K passes forced with SIGHUP, their CPU time
#      and wall time from the agent's own report (<root>/reconcile/status.json); then the
#      agent's RSS and PSS, and the monitors' memory per container.
#
# and a Markdown summary for an issue note.
#
#   RUNS=20 N=200 K=20 scripts/bench-agent.sh    (as root; installs what it needs from Debian)
#   BERTH_BIN_DIR=DIR ...                         (another build, e.g. a previous release)
#
# AGENT_ARGS adds arguments to `berth agent` (e.g. AGENT_ARGS="--parallel 8"). The latency of
# part 1 is what a user of the agent gets: it includes the watch's debounce and any wait
# for a file still being written; the summary splits it into the wait until the pass that
# acted began and the time in that pass.
#
# Everything lives under one temporary directory in /var/tmp (berth's state root is a
# non-default one, so its run root and cgroups are its own too); it is all removed at the end,
# on failure or interruption as well: the agent, every container, podman's containers and
# storage. The benchmark itself runs in a child process (its own process group); this script
# waits for it and cleans up, so an interruption (Ctrl-C, SIGTERM) never has to unwind the
# benchmark's shell functions (bash 5.2 crashes doing that in a trap). The agent is restarted
# between the two parts so that part 2 runs with exactly N containers.
#
# Quirks of these machines (docs/benchmarks.md): RLIMIT_NOFILE hard limit 20000 (podman
# gets a private containers.conf) and cgroup v1 hybrid (crun needs hugetlb mounted as a v1
# hierarchy when it sits on cgroup2; it is unmounted afterwards). dockerd is not installed:
# its idle RSS here (75 MiB) is quoted as a reference only.
set -euo pipefail
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
N=${N:-200}
K=${K:-20}
read -r -a AGENT_EXTRA <<<"${AGENT_ARGS:-}"
# BERTH_BIN_DIR: another build's `berth` and `berth-monitor` (e.g. a previous release, for an
# A/B run); by default this checkout's release build.
BIN_DIR=${BERTH_BIN_DIR:-$PWD/target/release}
BERTH=$BIN_DIR/berth

# The benchmark (child) is handed its directory in BENCH_AGENT_WORK.
if [[ -z ${BENCH_AGENT_WORK:-} ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "$0: run as root" >&2; exit 1; }
  for v in RUNS N K; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$0: $v must be a positive integer" >&2; exit 1; }
  done
  scripts/install-deps pkg-config libseccomp-dev podman conmon crun runc jq busybox-static
  [[ -n ${BERTH_BIN_DIR:-} ]] || cargo build --release --locked --bins -q
  [[ -x $BERTH && -x $BIN_DIR/berth-monitor ]] || { echo "$0: release binaries missing in $BIN_DIR" >&2; exit 1; }
  WORK=$(mktemp -d /var/tmp/berth-bench-agent.XXXXXX)
else
  WORK=$BENCH_AGENT_WORK
fi
ROOT=$WORK/root
DIR=$WORK/desired
STATUS=$ROOT/reconcile/status.json
LOG=$WORK/agent.log
# berth's run root and cgroup scope for a non-default state root (runtime/layout.rs).
SCOPE=berth-$(printf %s "$ROOT" | sha256sum | cut -c1-12)
PODMAN=(podman --root "$WORK/podman" --runroot "$WORK/podman-run" --tmpdir "$WORK/podman-tmp")
export CONTAINERS_CONF=$WORK/containers.conf

if [[ -z ${BENCH_AGENT_WORK:-} ]]; then
  BENCH_PID=
  hugetlb_mounted=0
  # podman (cgroupfs manager) makes libpod_parent cgroups on first use; removed if it made them.
  libpod_parent_existed=0
  compgen -G "/sys/fs/cgroup/*/libpod_parent" >/dev/null && libpod_parent_existed=1

  # shellcheck disable=SC2317 # run by the EXIT trap
  cleanup() {
    local rc=$? id d m pid i
    set +e
    trap - EXIT
    trap '' INT TERM HUP # finish cleaning up
    # The benchmark's process group: its shell, whatever it runs, the agent.
    if [[ -n $BENCH_PID ]]; then
      kill -TERM -- "-$BENCH_PID" 2>/dev/null
      wait "$BENCH_PID" 2>/dev/null
    fi
    # The agent (SIGTERM, SIGKILL after 30 s); its containers keep running until removed.
    pid=$(cat "$WORK/agent.pid" 2>/dev/null)
    if [[ -n $pid ]] && grep -qF "$ROOT" "/proc/$pid/cmdline" 2>/dev/null; then
      kill -TERM "$pid"
      for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -0 "$pid" 2>/dev/null && { echo "warning: the agent ignored SIGTERM for 30 s; killing it" >&2; kill -KILL "$pid"; }
    fi
    if [[ -d $ROOT/containers ]]; then
      local ids=()
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
    fi
    # Monitors of this state root only (there should be none left).
    local pids=()
    mapfile -t pids < <(pgrep -f -- "berth-monitor $ROOT ")
    if ((${#pids[@]})); then
      echo "warning: monitors still running after berth rm -f: ${pids[*]}; killing them" >&2
      kill -KILL "${pids[@]}"
    fi
    if [[ -d $WORK/podman ]]; then
      "${PODMAN[@]}" rm -f -t 0 -a >/dev/null 2>&1
      "${PODMAN[@]}" rmi -a -f >/dev/null 2>&1
    fi
    # containers/storage may leave its own mounts under its root.
    local mounts=()
    mapfile -t mounts < <(awk -v w="$WORK/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    for m in "${mounts[@]}"; do
      umount "$m" 2>/dev/null || umount -l "$m"
    done
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
    # conmon exits on its own once its container is removed.
    for ((i = 0; i < 100; i++)); do
      pgrep -f -- "$WORK/" >/dev/null || break
      sleep 0.1
    done
    rm -rf "$WORK" "/run/$SCOPE"
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
  BENCH_AGENT_WORK=$WORK "$BASH" "$SELF" </dev/null &
  BENCH_PID=$!
  set +m
  wait "$BENCH_PID"
  exit 0
fi

# ---------------------------------------------------------------------------------------
# The benchmark (child process).
AGENT_PID=

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

# ---------------------------------------------------------------------------------------
# Helpers. The polling loops use builtins only (no fork per iteration): a read with a
# timeout on a pipe nobody writes to as the sleep, $EPOCHREALTIME as the clock. (The pipe
# is closed for the agent and podman: their long-lived children must not inherit it.)
exec {NAPFD}<> <(:)
nap() { read -r -t "$1" -u "$NAPFD" _ || true; }
clock_ms() { local t=${EPOCHREALTIME/[.,]/}; CLOCK_MS=$((10#$t / 1000)); }

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

start_agent() {
  BERTH_LOG=warn "$BERTH" --root "$ROOT" agent "$DIR" --resync 60s "${AGENT_EXTRA[@]}" 2>>"$LOG" {NAPFD}>&- &
  AGENT_PID=$!
  echo "$AGENT_PID" >"$WORK/agent.pid"
}

# The first "started_at" of the status file (last_pass.started_at), read with builtins.
STARTED_AT=
read_started_at() {
  local line
  STARTED_AT=
  [[ -f $STATUS ]] || return 0
  while IFS= read -r line; do
    if [[ $line == *'"started_at"'* ]]; then
      STARTED_AT=$line
      return 0
    fi
  done <"$STATUS"
}

# Wait until the status file reports a pass other than PREV; POLL seconds between looks.
wait_pass_after() { # PREV TIMEOUT_S POLL
  local deadline
  clock_ms
  deadline=$((CLOCK_MS + $2 * 1000))
  while :; do
    read_started_at
    [[ -n $STARTED_AT && $STARTED_AT != "$1" ]] && return 0
    agent_alive
    clock_ms
    ((CLOCK_MS < deadline)) || fail "no new pass reported in $STATUS within $2 s"
    nap "$3"
  done
}

# Every pass the agent reports, kept as it comes. The status file is replaced by a rename,
# so one read of it is one whole pass. Each look reads its first lines only; a new
# (trigger, started_at) is then read whole into PASS_LINES and copied to
# $WORK/passes/<n>.json, which PASS names. Builtins only: a pass can be replaced by the
# next within a few milliseconds. Returns 1 if there is nothing new.
PASS_ID=
PASS_N=0
PASS=
PASS_LINES=()
pass_id() { # < STATUS FILE -> ID: its trigger and started_at lines
  local line
  ID=
  while IFS= read -r line; do
    case $line in
      *'"trigger"'*) ID+=$line ;;
      *'"started_at"'*) ID+=$line && return 0 ;;
    esac
  done
}
poll_pass() {
  local line
  [[ -f $STATUS ]] || return 1
  pass_id <"$STATUS" 2>/dev/null
  [[ -n $ID && $ID != "$PASS_ID" ]] || return 1
  mapfile -t PASS_LINES <"$STATUS"
  ID=
  for line in "${PASS_LINES[@]}"; do
    case $line in
      *'"trigger"'*) ID+=$line ;;
      *'"started_at"'*) ID+=$line && break ;;
    esac
  done
  PASS_ID=$ID
  PASS_N=$((PASS_N + 1))
  PASS=$WORK/passes/$PASS_N.json
  printf '%s\n' "${PASS_LINES[@]}" >"$PASS"
}

# What the pass in PASS_LINES did: "deferred" (put off: a file is being written), "quiet"
# (nothing to do) or "acting" (ran steps).
pass_kind() {
  local line
  PASS_KIND=acting
  for line in "${PASS_LINES[@]}"; do
    case $line in
      *'"deferred": "'*) PASS_KIND=deferred && return 0 ;;
      *'"outcomes": []'*) PASS_KIND=quiet ;;
    esac
  done
}

# The pass in FILE as "trigger outcomes deferred started_ms duration_ms cpu_us steps failed".
pass_fields() { # FILE
  jq -r '.last_pass | [.trigger, (.outcomes | length), (.deferred != null),
    (.started_at | (.[0:19] + "Z" | fromdateiso8601) * 1000 + (.[20:23] | tonumber)),
    .duration_ms, .cpu_us, (.plan.steps | length),
    ([.outcomes[] | select(.result == "failed")] | length)] | @tsv' "$1"
}

# Wait until the agent is idle again after acting: a quiet pass that started at AFTER_MS or
# later (after an acting pass the agent runs a follow-up pass at once). ACTING is set to
# the last acting pass seen on the way ("started_ms duration_ms cpu_us steps failed
# trigger"), or empty if the follow-up replaced it between two looks.
ACTING=
wait_quiet() { # AFTER_MS TIMEOUT_S POLL
  local deadline acting_file="" trig started dur cpu steps failed
  ACTING=
  clock_ms
  deadline=$((CLOCK_MS + $2 * 1000))
  while :; do
    if poll_pass; then
      pass_kind
      if [[ $PASS_KIND == acting ]]; then
        acting_file=$PASS
      elif [[ $PASS_KIND == quiet ]]; then
        IFS=$'\t' read -r _ _ _ started _ _ _ _ < <(pass_fields "$PASS")
        ((started >= $1)) && break
      fi
    fi
    agent_alive
    clock_ms
    ((CLOCK_MS < deadline)) || fail "the agent was not idle within $2 s"
    nap "$3"
  done
  if [[ -n $acting_file ]]; then
    IFS=$'\t' read -r trig _ _ started dur cpu steps failed < <(pass_fields "$acting_file")
    ACTING="$started $dur $cpu $steps $failed $trig"
  fi
  return 0
}

# Wait until container NAME has a monitor.json (its process runs); sets FOUND to it.
FOUND=
wait_running() { # NAME TIMEOUT_S
  local deadline f
  clock_ms
  deadline=$((CLOCK_MS + $2 * 1000))
  while :; do
    for f in "$ROOT/containers/$1"-*/monitor.json; do
      if [[ -e $f ]]; then
        FOUND=$f
        return 0
      fi
    done
    agent_alive
    clock_ms
    ((CLOCK_MS < deadline)) || fail "container $1 did not start within $2 s"
    nap 0.002
  done
}

# Running containers whose name starts with PREFIX: a monitor.json and no exit.json.
RUNNING=0
count_running() { # PREFIX
  local d
  RUNNING=0
  for d in "$ROOT/containers/$1"*/; do
    [[ -e ${d}monitor.json && ! -e ${d}exit.json ]] && RUNNING=$((RUNNING + 1))
  done
  return 0
}

# Atomic write: a dot-file (ignored by the loader), then a rename.
put() { # NAME CONTENT
  printf '%s' "$2" >"$DIR/.$1"
  mv "$DIR/.$1" "$DIR/$1"
}

container_toml() { # NAME
  printf '[container.%s]\nimage = "busybox"\ncommand = ["sh", "-c", "while true; do sleep 3600; done"]\nnetwork = "none"\n\n' "$1"
}

# Values (one per line) / DIVISOR -> "median p90 min" (p90: nearest rank).
summarize() { # DIVISOR < values
  sort -n | awk -v div="$1" '
    { v[NR] = $1 / div }
    END {
      n = NR
      if (n == 0) { print "n/a n/a n/a"; exit }
      med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      i = int(0.9 * n); if (i < 0.9 * n) i++; if (i < 1) i = 1
      printf "%.1f %.1f %.1f\n", med, v[i], v[1]
    }'
}

mem_kb() { # PID -> "RSS_KB PSS_KB" (VmRSS from status, Pss from smaps_rollup)
  local rss pss
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status")
  pss=$(awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup")
  echo "${rss:-0} ${pss:-0}"
}

# ---------------------------------------------------------------------------------------
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$DIR"
echo "== building the busybox image offline"
examples/images/build-busybox.sh "$WORK/busybox.tar" >/dev/null
ARCHIVE=$WORK/busybox.tar

# podman: private storage, config and temporary directory.
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
EOF
"${PODMAN[@]}" pull -q "oci-archive:$ARCHIVE" >/dev/null
PODMAN_IMAGE=$("${PODMAN[@]}" images -q | head -1)
[[ -n $PODMAN_IMAGE ]] || fail "podman did not load $ARCHIVE"
podman_runtime=$("${PODMAN[@]}" info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null || echo "?")
podman_runtime="$podman_runtime $( ("$podman_runtime" --version 2>/dev/null || true) | awk 'NR == 1 {print $NF}')"

# ---------------------------------------------------------------------------------------
echo "== part 1: file written -> container running ($RUNS runs each, interleaved with podman run -d)"
put images.toml "[image.busybox]
reference = \"oci-archive:$ARCHIVE\"
"
: >"$LOG"
start_agent
clock_ms
deadline=$((CLOCK_MS + 60000))
until [[ -f $STATUS ]]; do
  agent_alive
  clock_ms
  ((CLOCK_MS < deadline)) || fail "the agent wrote no $STATUS within 60 s"
  nap 0.01
done
[[ -s $LOG ]] && echo "note: the agent logged at start: $(head -c 300 "$LOG")"

# Warm-up, not measured: the image is imported, and podman runs once too.
mkdir -p "$WORK/passes"
put warm.toml "$(container_toml warm)"
wait_running warm 300
wait_quiet "$(jq -r .started_at_ms "$FOUND")" 300 0.01
"${PODMAN[@]}" run -d --network none "$PODMAN_IMAGE" sh -c 'while true; do sleep 3600; done' >/dev/null {NAPFD}>&-
nap 0.3

for f in berth.ns seen.ns podman.ns acting.txt; do : >"$WORK/$f"; done
for ((i = 1; i <= RUNS; i++)); do
  agent_alive
  t0=$(date +%s%N)
  put "c$i.toml" "$(container_toml "c$i")"
  wait_running "c$i" 60
  seen=${EPOCHREALTIME/[.,]/}000
  # The agent idle again before the next sample (looked at often: the pass that started
  # the container is soon replaced in the status file by its follow-up).
  wait_quiet $((t0 / 1000000)) 60 0.0005
  started=$(jq -r .started_at_ms "$FOUND")
  echo $((started * 1000000 - t0)) >>"$WORK/berth.ns"
  echo $((seen - t0)) >>"$WORK/seen.ns"
  # Where the time went: from the write to the start of the pass that acted, and from
  # there to the container running.
  if [[ -n $ACTING ]]; then
    read -r a_started a_dur _ a_steps a_failed a_trig <<<"$ACTING"
    echo "$((a_started - t0 / 1000000)) $((started - a_started)) $a_dur $a_steps $a_failed $a_trig" >>"$WORK/acting.txt"
  fi
  nap 0.2

  t0=$(date +%s%N)
  "${PODMAN[@]}" run -d --network none "$PODMAN_IMAGE" sh -c 'while true; do sleep 3600; done' >/dev/null {NAPFD}>&-
  t1=$(date +%s%N)
  echo $((t1 - t0)) >>"$WORK/podman.ns"
  nap 0.2
done

# Cross-check the last sample against `berth ps --json`.
last_started=$(jq -r .started_at_ms "$FOUND")
read -r ps_state ps_started < <("$BERTH" --root "$ROOT" ps --json |
  jq -r --arg n "c$RUNS" '[.[] | select(.name == $n)][0] // {} | "\(.state // "missing") \(.started_at_ms // "none")"')
if [[ $ps_state == running && $ps_started == "$last_started" ]]; then
  crosscheck="\`berth ps --json\` agrees for c$RUNS (running, started_at_ms $ps_started)"
else
  crosscheck="MISMATCH: monitor.json of c$RUNS says started_at_ms $last_started, \`berth ps --json\` says $ps_state / $ps_started"
fi
echo "   $crosscheck"

read -r b_med b_p90 b_min < <(summarize 1000000 <"$WORK/berth.ns")
read -r s_med _ _ < <(summarize 1000000 <"$WORK/seen.ns")
read -r p_med p_p90 p_min < <(summarize 1000000 <"$WORK/podman.ns")
read -r wait_med wait_p90 _ < <(cut -d' ' -f1 "$WORK/acting.txt" | summarize 1)
read -r inpass_med inpass_p90 _ < <(cut -d' ' -f2 "$WORK/acting.txt" | summarize 1)
read -r apass_med _ _ < <(cut -d' ' -f3 "$WORK/acting.txt" | summarize 1)
acting_seen=$(wc -l <"$WORK/acting.txt")
acting_triggers=$(cut -d' ' -f6 "$WORK/acting.txt" | sort | uniq -c | awk '{printf "%s%s x%d", sep, $2, $1; sep = ", "}')
ratio=$(awk -v p="$p_med" -v b="$b_med" 'BEGIN { printf "%.2f", p / b }')
odd_passes=$(awk '$4 != 1 || $5 != 0' "$WORK/acting.txt" | wc -l)
echo "   berth  median $b_med ms, p90 $b_p90 ms, min $b_min ms (seen by the 2 ms poll: median $s_med ms)"
echo "   podman median $p_med ms, p90 $p_p90 ms, min $p_min ms"
echo "   podman / berth = ${ratio}x"
echo "   berth's time, medians of $acting_seen acting passes seen ($acting_triggers): $wait_med ms until the pass began, $inpass_med ms in it until the container ran; the pass took $apass_med ms"
((odd_passes == 0)) || echo "   note: $odd_passes acting pass(es) were not a single successful step: $(awk '$4 != 1 || $5 != 0' "$WORK/acting.txt" | head -3 | tr '\n' ';')"

# podman's containers are not needed any more.
mapfile -t podman_ids < <("${PODMAN[@]}" ps -a -q)
((${#podman_ids[@]} == 0)) || "${PODMAN[@]}" rm -f -t 0 "${podman_ids[@]}" >/dev/null

# ---------------------------------------------------------------------------------------
echo "== part 2: no-op passes with $N running containers ($K passes, SIGHUP)"
# Exactly N containers: stop the agent, remove part 1's containers and files, describe N,
# and start the agent again (its first pass starts them all).
stop_agent
names=(warm)
for ((i = 1; i <= RUNS; i++)); do names+=("c$i"); done
"$BERTH" --root "$ROOT" rm -f "${names[@]}" >/dev/null
rm -f "$DIR"/warm.toml "$DIR"/c*.toml
many=""
for ((i = 1; i <= N; i++)); do many+=$(container_toml "idle$i"); many+=$'\n'; done
put idle.toml "$many"
rm -f "$STATUS"
clock_ms
start_ms=$CLOCK_MS
start_agent
timeout_s=$((N * 2 + 120))
deadline=$((CLOCK_MS + timeout_s * 1000))
acting_files=()
next_count=0
while :; do
  # The status file often (the acting pass is soon replaced by its follow-up), the
  # containers every 50 ms.
  if poll_pass; then
    pass_kind
    [[ $PASS_KIND == acting ]] && acting_files+=("$PASS")
  fi
  clock_ms
  if ((CLOCK_MS >= next_count)); then
    count_running idle
    ((RUNNING >= N)) && break
    next_count=$((CLOCK_MS + 50))
    agent_alive
    ((CLOCK_MS < deadline)) || fail "only $RUNNING of $N containers run after $timeout_s s"
  fi
  nap 0.001
done
all_running_s=$(awk -v ms=$((CLOCK_MS - start_ms)) 'BEGIN { printf "%.1f", ms / 1000 }')
# The passes that started them over and the agent idle (no pass before the one that
# starts them can be quiet: none has to be excluded).
wait_quiet "$start_ms" 120 0.0005
# Every acting pass seen: how many, and their steps, failures, wall and CPU time summed.
[[ -n $ACTING ]] && acting_files+=("$WORK/passes/acting-last") && echo "$ACTING" >"$WORK/passes/acting-last"
start_passes=0 start_pass_ms=0 start_pass_cpu=0 start_pass_steps=0 start_pass_failed=0
for f in "${acting_files[@]}"; do
  if [[ $f == */acting-last ]]; then
    read -r _ dur cpu steps failed _ <"$f"
  else
    IFS=$'\t' read -r _ _ _ _ dur cpu steps failed < <(pass_fields "$f")
  fi
  start_passes=$((start_passes + 1)) start_pass_ms=$((start_pass_ms + dur)) start_pass_cpu=$((start_pass_cpu + cpu))
  start_pass_steps=$((start_pass_steps + steps)) start_pass_failed=$((start_pass_failed + failed))
done
nap 1
ps_count=$("$BERTH" --root "$ROOT" ps --json | jq '[.[] | select(.name | startswith("idle")) | select(.state == "running")] | length')
((ps_count == N)) || fail "berth ps --json lists $ps_count running idle containers, expected $N"
echo "   $N containers running after ${all_running_s} s ($start_passes acting pass(es) seen: ${start_pass_ms} ms wall, $((start_pass_cpu / 1000)) ms CPU, $start_pass_steps steps, $start_pass_failed failed); berth ps --json agrees"

: >"$WORK/noop.tsv"
for ((k = 1; k <= K; k++)); do
  read_started_at
  prev=$STARTED_AT
  kill -HUP "$AGENT_PID"
  wait_pass_after "$prev" 60 0.002
  jq -r '.last_pass | "\(.cpu_us) \(.duration_ms) \(.trigger) \(.plan.steps | length) \(.plan.waits | length)"' "$STATUS" >>"$WORK/noop.tsv"
  nap 0.1
done
read -r c_med c_p90 c_min < <(cut -d' ' -f1 "$WORK/noop.tsv" | summarize 1000)
read -r w_med w_p90 _ < <(cut -d' ' -f2 "$WORK/noop.tsv" | summarize 1)
not_noop=$(awk '$3 != "signal" || $4 != 0 || $5 != 0' "$WORK/noop.tsv" | wc -l)
echo "   CPU per pass: median $c_med ms, p90 $c_p90 ms, min $c_min ms; wall: median $w_med ms, p90 $w_p90 ms"
((not_noop == 0)) || echo "   note: $not_noop of $K passes were not no-op signal passes: $(awk '$3 != "signal" || $4 != 0 || $5 != 0' "$WORK/noop.tsv" | head -3 | tr '\n' ';')"

read -r agent_rss agent_pss < <(mem_kb "$AGENT_PID")
mon_rss=0 mon_pss=0 mon_n=0
for pid in $(pgrep -f -- "berth-monitor $ROOT " || true); do
  read -r r p < <(mem_kb "$pid" 2>/dev/null || echo "0 0")
  mon_rss=$((mon_rss + r)) mon_pss=$((mon_pss + p)) mon_n=$((mon_n + 1))
done
mib() { awk -v kb="$1" -v d="${2:-1}" 'BEGIN { printf "%.2f", kb / d / 1024 }'; }
echo "   agent: RSS $(mib "$agent_rss") MiB, PSS $(mib "$agent_pss") MiB"
echo "   monitors: $mon_n processes, per container RSS $(mib "$mon_rss" "$N") MiB, PSS $(mib "$mon_pss" "$N") MiB"
((mon_n == N)) || echo "   note: $mon_n berth-monitor processes for $N containers"

# ---------------------------------------------------------------------------------------
below() { # A B -> "yes" if A < B, numerically
  if awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; then echo "yes"; else echo "**no**"; fi
}
commit=$(git rev-parse --short HEAD)
[[ -z $(git status --porcelain -- src Cargo.toml Cargo.lock) ]] || commit="$commit (with uncommitted changes in src/ or Cargo.*)"
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
log_lines=$(wc -l <"$LOG")

cat <<EOF

### berth agent benchmark (\`scripts/bench-agent.sh\`)

- machine: $(nproc) CPUs ($cpu_model), kernel $(uname -r), $mem_total RAM; load average at start $load_start
- berth $commit, release build; podman $(podman --version | awk '{print $3}') ($podman_runtime)
- RUNS=$RUNS, N=$N, K=$K; agent \`--resync 60s${AGENT_ARGS:+ $AGENT_ARGS}\`, its defaults otherwise

| measurement | berth | podman | target | met |
|---|---|---|---|---|
| file written → container running, median | $b_med ms | $p_med ms (\`podman run -d\`) | berth faster | $(below "$b_med" "$p_med") |
| … p90 | $b_p90 ms | $p_p90 ms | | |
| … min | $b_min ms | $p_min ms | | |
| ratio of medians, podman / berth | ${ratio}× | | > 1 | $(below 1 "$ratio") |
| no-op pass, $N running: CPU median / p90 | $c_med / $c_p90 ms | | < 10 ms | $(below "$c_med" 10) |
| no-op pass, $N running: wall median / p90 | $w_med / $w_p90 ms | | | |
| agent RSS / PSS, $N running | $(mib "$agent_rss") / $(mib "$agent_pss") MiB | dockerd idle: 75 MiB RSS (reference, not measured) | RSS < 30 MiB | $(below "$agent_rss" $((30 * 1024))) |
| monitor per container, RSS / PSS | $(mib "$mon_rss" "$N") / $(mib "$mon_pss" "$N") MiB | | | |

Notes:
- berth's latency runs from \`date +%s%N\` before the file is written to the container's
  \`started_at_ms\` (monitor.json), so it includes the agent's watch debounce and any
  wait for a file being written (the file is moved into place whole). Medians over the
  $acting_seen acting passes seen ($acting_triggers): $wait_med ms (p90 $wait_p90) from the
  write to the start of the pass that started the container, then $inpass_med ms (p90
  $inpass_p90) in that pass until the container ran; the pass took $apass_med ms in all.
  A 2 ms poll saw monitor.json at a median $s_med ms. $crosscheck.
- $N containers were running ${all_running_s} s after the agent started ($start_passes acting
  pass(es) seen: $start_pass_ms ms wall, $((start_pass_cpu / 1000)) ms CPU, $start_pass_steps steps, $start_pass_failed failed).
- no-op passes: $((K - not_noop)) of $K were signal passes with no step and no wait; their
  wall time is the report's \`duration_ms\` (whole milliseconds), CPU its \`cpu_us\` (all threads).
- agent log (BERTH_LOG=warn): $log_lines line(s).
EOF
if ((log_lines)); then
  echo
  echo "Agent log (last 20 lines):"
  echo '```'
  tail -n 20 "$LOG"
  echo '```'
fi
