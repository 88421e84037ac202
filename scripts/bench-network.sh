#!/usr/bin/env bash
# Bridge network benchmark: a container running `true` on a bridge network with a published
# port, from command to exit, beside podman in one run:
#
#   berth --root R run DIR t --rm         (network benchnet 10.89.250.0/24, ports 18099:80)
#   podman run --rm --network bridge -p 18098:80 IMG true     (its `podman` network, CNI)
#
# and, as a reference line, the same without a network (berth `network = "none"` against
# `podman run --rm --network none`). The four are interleaved, one sample of each per round
# (berth bridge, podman bridge, berth none, podman none), so that machine noise hits all of
# them alike. Each sample is the wall time of the command, taken with bash's $EPOCHREALTIME
# (microseconds, no fork) just before and just after it; the same for every tool. One
# untimed warm-up run each comes first (berth's creates its network, podman's its bridge and
# iptables chains; both are reported). The image is imported beforehand for both. Before
# timing, a busybox httpd behind the published port is fetched from 127.0.0.1 once with each
# tool, so both really forward the port. Target: berth at least 5x faster than podman
# (ratio of the medians, bridge line).
#
#   RUNS=20 scripts/bench-network.sh      (as root; installs what it needs from Debian)
#
# Everything lives under one temporary directory in /var/tmp (berth's state root is a
# non-default one, so its bridge alias, nftables table `berth-<hash>`, run root and cgroups
# are its own); at the end, on failure or interruption as well, it is all removed: berth's
# containers (`ps -a`, `rm -f`), its network (`apply` of an empty directory with
# --allow-empty prunes it, which removes the bridge and the table; the script then checks
# that no link aliased `berth berth-<hash> ...` and no table `ip berth-<hash>` is left, and
# removes and reports any), podman's containers, image and storage, and what podman's CNI
# network made on the host if it was not there before (bridge cni-podman0, iptables-nft
# tables holding only CNI chains, /var/lib/cni, the /run/netns mount), each only while no
# container uses it.
#
# Quirks of these machines (docs/benchmarks.md): RLIMIT_NOFILE hard limit 20000 (podman
# gets a private containers.conf) and cgroup v1 hybrid (crun, podman's runtime, needs hugetlb
# mounted as a v1 hierarchy when it sits on cgroup2; it is unmounted afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
BERTH_PORT=${BERTH_PORT:-18099}
PODMAN_PORT=${PODMAN_PORT:-18098}
SUBNET=${SUBNET:-10.89.250.0/24}
BERTH=$PWD/target/release/berth

[[ $(id -u) -eq 0 ]] || { echo "$0: run as root" >&2; exit 1; }
for v in RUNS BERTH_PORT PODMAN_PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$0: $v must be a positive integer" >&2; exit 1; }
done
scripts/install-deps pkg-config libseccomp-dev podman conmon crun runc containernetworking-plugins \
  iptables jq busybox-static
cargo build --release --locked --bins -q
[[ -x $BERTH && -x $PWD/target/release/berth-monitor ]] || { echo "$0: release binaries missing" >&2; exit 1; }
for port in "$BERTH_PORT" "$PODMAN_PORT"; do
  if ss -Htln "sport = :$port" | grep -q .; then
    echo "$0: port $port is in use on this host; set BERTH_PORT / PODMAN_PORT" >&2
    exit 1
  fi
done

WORK=$(mktemp -d /var/tmp/berth-bench-network.XXXXXX)
ROOT=$WORK/root
DIR=$WORK/desired
EMPTY=$WORK/empty
# berth's scope for a non-default state root (runtime/layout.rs): bridge and veth aliases
# start with "berth $SCOPE ", its nftables table is `ip $SCOPE`, its run root /run/$SCOPE.
SCOPE=berth-$(printf %s "$ROOT" | sha256sum | cut -c1-12)
PODMAN=(podman --root "$WORK/podman" --runroot "$WORK/podman-run" --tmpdir "$WORK/podman-tmp")
export CONTAINERS_CONF=$WORK/containers.conf

# What is on the host before podman's CNI network is used: only what is new is removed.
had_link() { ip link show dev "$1" >/dev/null 2>&1; }
had_table() { nft list table "$1" "$2" >/dev/null 2>&1; }
cni_bridge_existed=0 && had_link cni-podman0 && cni_bridge_existed=1
cni_tables_existed=()
for t in "ip nat" "ip filter" "ip6 nat" "ip6 filter"; do
  # shellcheck disable=SC2086
  had_table $t && cni_tables_existed+=("$t")
done
var_lib_cni_existed=0 && [[ -e /var/lib/cni ]] && var_lib_cni_existed=1
cni_lock_existed=0 && [[ -e /etc/cni/net.d/cni.lock ]] && cni_lock_existed=1
run_netns_existed=0 && [[ -e /run/netns ]] && run_netns_existed=1
run_netns_mounted=0 && mountpoint -q /run/netns 2>/dev/null && run_netns_mounted=1
libpod_parent_existed=0
compgen -G "/sys/fs/cgroup/*/libpod_parent" >/dev/null && libpod_parent_existed=1
ip_forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
hugetlb_mounted=0

# Links of this state root (bridges and host-side veths), by their alias.
berth_links() { # [KIND: network|container]
  ip -j link show | jq -r --arg p "berth $SCOPE ${1:-}" '.[] | select((.ifalias // "") | startswith($p)) | .ifname'
}

# An iptables-nft table that holds nothing but CNI's chains and the jumps to them.
only_cni() { # FAMILY TABLE
  nft -j list table "$1" "$2" 2>/dev/null | jq -e '
    [.nftables[]
     | (select(.chain) | .chain | select((.hook == null) and ((.name | startswith("CNI-")) | not))),
       (select(.rule) | .rule | select(((.chain | startswith("CNI-")) | not) and ((.expr | tostring | test("CNI-")) | not)))]
    | length == 0' >/dev/null
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  local rc=$? ids=() id d m t pids=() left=() i
  set +eu
  trap - EXIT
  trap '' INT TERM HUP # finish cleaning up
  # berth: its containers, then its network (an empty directory prunes it), then a check.
  if [[ -d $ROOT ]]; then
    mapfile -t ids < <("$BERTH" --root "$ROOT" ps -a --json 2>/dev/null | jq -r '.[].id' 2>/dev/null)
    for d in "$ROOT"/containers/*/; do # also what ps cannot list
      [[ -d $d ]] || continue
      d=${d%/}
      [[ " ${ids[*]} " == *" ${d##*/} "* ]] || ids+=("${d##*/}")
    done
    for id in "${ids[@]}"; do
      "$BERTH" --root "$ROOT" rm -f "$id" >/dev/null 2>"$WORK/rm.err" ||
        echo "warning: berth rm -f $id failed: $(cat "$WORK/rm.err")" >&2
    done
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
  local mounts=()
  mapfile -t mounts < <(awk -v w="$WORK/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r)
  for m in "${mounts[@]}"; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
  # conmon and podman's own cleanup processes exit on their own once the containers are
  # removed (they can take a while on a loaded machine).
  for ((i = 0; i < 300; i++)); do
    pgrep -f -- "$WORK/" >/dev/null || break
    sleep 0.1
  done
  pgrep -f -- "$WORK/" >/dev/null && echo "warning: processes of $WORK still run: $(pgrep -f -- "$WORK/" | tr '\n' ' ')" >&2
  # What podman's CNI network made on the host, if new and unused.
  local cni_busy=0
  [[ -n $(ip link show master cni-podman0 2>/dev/null) ]] && cni_busy=1
  [[ -n $(find /var/lib/cni/networks -type f ! -name lock ! -name 'last_reserved_ip*' 2>/dev/null) ]] && cni_busy=1
  if ((!cni_busy)); then
    ((cni_bridge_existed)) || ! had_link cni-podman0 || ip link del cni-podman0
    for t in "ip nat" "ip filter" "ip6 nat" "ip6 filter"; do
      [[ " ${cni_tables_existed[*]/%/;} " == *" $t;"* ]] && continue
      # shellcheck disable=SC2086
      if had_table $t; then
        # shellcheck disable=SC2086
        if only_cni $t; then nft delete table $t; else echo "note: table $t (new) holds more than CNI's rules; left" >&2; fi
      fi
    done
    ((var_lib_cni_existed)) || rm -rf /var/lib/cni
    ((cni_lock_existed)) || rm -f /etc/cni/net.d/cni.lock
    # podman bind-mounts /run/netns onto itself (shared), sometimes twice over.
    for ((i = 0; i < 5; i++)); do
      ((!run_netns_mounted)) && mountpoint -q /run/netns 2>/dev/null && [[ -z $(ls -A /run/netns) ]] || break
      umount /run/netns || break
    done
    ((run_netns_existed)) || rmdir /run/netns 2>/dev/null
    if ((!run_netns_mounted)) && mountpoint -q /run/netns 2>/dev/null; then
      echo "note: /run/netns is still a mount point (podman's; not there before): $(ls -A /run/netns | head -5 | tr '\n' ' ')" >&2
    fi
  else
    echo "note: podman's CNI network is in use by other containers; cni-podman0 and its rules left" >&2
  fi
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
  # ip_forward back to 0 if it was, and nothing else routes through this host's bridges.
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
  had_table ip "$SCOPE" && left+=("nftables table ip $SCOPE")
  [[ -e /run/$SCOPE ]] && left+=("/run/$SCOPE")
  compgen -G "/sys/fs/cgroup/*/$SCOPE" >/dev/null && left+=("cgroups $SCOPE")
  if ((${#left[@]})); then
    echo "cleanup: LEFT OVER: ${left[*]}" >&2
  else
    echo "cleanup: nothing of $SCOPE is left (no link aliased 'berth $SCOPE', no table ip $SCOPE)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT
trap 'echo "terminated" >&2; exit 143' TERM

fail() {
  echo "FAILED: $*" >&2
  exit 1
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
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# Fetch http://127.0.0.1:PORT/ (this host only) with bash's /dev/tcp (Debian's static
# busybox wget crashes here), for up to 5 s; prints the last line of the answer.
fetch_local() { # PORT -> the page
  local i out
  for ((i = 0; i < 50; i++)); do
    # shellcheck disable=SC2016
    if out=$(timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET / HTTP/1.0\r\n\r\n" >&3 && cat <&3' _ "$1" 2>/dev/null) &&
      [[ $out == "HTTP/1."*" 200 "* ]]; then
      printf '%s\n' "$out" | tail -n 1
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------------------------------
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== building the busybox image offline"
examples/images/build-busybox.sh "$WORK/busybox.tar" >/dev/null
ARCHIVE=$WORK/busybox.tar

mkdir -p "$DIR" "$EMPTY"
cat >"$DIR/bench.toml" <<EOF
[image.bb]
reference = "oci-archive:$ARCHIVE"

[network.benchnet]
subnet = "$SUBNET"

[container.t]
image = "bb"
command = ["true"]
networks = ["benchnet"]
ports = ["$BERTH_PORT:80"]

[container.none]
image = "bb"
command = ["true"]
network = "none"
EOF
# The port check's web server: the same image and network and the same published port, in
# a directory of its own (one directory may not publish a host port twice).
mkdir -p "$WORK/web"
cat >"$WORK/web/web.toml" <<EOF
[image.bb]
reference = "oci-archive:$ARCHIVE"

[network.benchnet]
subnet = "$SUBNET"

[container.web]
image = "bb"
command = ["httpd", "-f", "-p", "80", "-h", "/var/www"]
networks = ["benchnet"]
ports = ["$BERTH_PORT:80"]
EOF
"$BERTH" validate "$DIR" >/dev/null || fail "berth validate $DIR"
"$BERTH" validate "$WORK/web" >/dev/null || fail "berth validate $WORK/web"
"$BERTH" --root "$ROOT" pull "oci-archive:$ARCHIVE" >/dev/null

# podman: private storage, config and temporary directory.
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
EOF
"${PODMAN[@]}" pull -q "oci-archive:$ARCHIVE" >/dev/null
PODMAN_IMAGE=$("${PODMAN[@]}" images -q | head -1)
[[ -n $PODMAN_IMAGE ]] || fail "podman did not load $ARCHIVE"

# crun refuses a cgroup v1 hybrid with hugetlb on cgroup2 (docs/benchmarks.md).
if [[ ! -d /sys/fs/cgroup/hugetlb ]] && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then
  mkdir /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb none /sys/fs/cgroup/hugetlb && hugetlb_mounted=1
fi
podman_runtime=$("${PODMAN[@]}" info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null || echo "?")
podman_netbackend=$("${PODMAN[@]}" info --format '{{.Host.NetworkBackend}}' 2>/dev/null || echo "?")

# ---------------------------------------------------------------------------------------
echo "== warm-up (not timed)"
t0=${EPOCHREALTIME/[.,]/}
"$BERTH" --root "$ROOT" run "$DIR" t --rm >/dev/null 2>"$WORK/warm.err" || fail "berth run t: $(cat "$WORK/warm.err")"
t1=${EPOCHREALTIME/[.,]/}
bridge=$(berth_links network)
[[ -n $bridge ]] || fail "berth made no bridge aliased 'berth $SCOPE network ...'"
had_table ip "$SCOPE" || fail "berth made no nftables table ip $SCOPE"
echo "   berth  first run, creating network benchnet (bridge $bridge, table ip $SCOPE): $(ratio $((t1 - t0)) 1000) ms"
t0=${EPOCHREALTIME/[.,]/}
"${PODMAN[@]}" run --rm --network bridge -p "$PODMAN_PORT:80" "$PODMAN_IMAGE" true >/dev/null 2>"$WORK/warm.err" ||
  fail "podman run --network bridge: $(cat "$WORK/warm.err")"
t1=${EPOCHREALTIME/[.,]/}
echo "   podman first run on its bridge network (cni-podman0 $( ((cni_bridge_existed)) && echo "existed" || echo "created")): $(ratio $((t1 - t0)) 1000) ms"
"$BERTH" --root "$ROOT" run "$DIR" none --rm >/dev/null 2>"$WORK/warm.err" || fail "berth run none: $(cat "$WORK/warm.err")"
"${PODMAN[@]}" run --rm --network none "$PODMAN_IMAGE" true >/dev/null 2>"$WORK/warm.err" ||
  fail "podman run --network none: $(cat "$WORK/warm.err")"

echo "== published port check: busybox httpd fetched through 127.0.0.1"
"$BERTH" --root "$ROOT" run -d "$WORK/web" web >/dev/null 2>"$WORK/web.err" || fail "berth run -d web: $(cat "$WORK/web.err")"
if page=$(fetch_local "$BERTH_PORT"); then
  echo "   berth  127.0.0.1:$BERTH_PORT -> $page"
else
  fail "berth: nothing answered on 127.0.0.1:$BERTH_PORT (nft list table ip $SCOPE: $(nft list chain ip "$SCOPE" ports 2>&1 | tr '\n' ' '))"
fi
"$BERTH" --root "$ROOT" rm -f web >/dev/null
web_id=$("${PODMAN[@]}" run -d --network bridge -p "$PODMAN_PORT:80" "$PODMAN_IMAGE" httpd -f -p 80 -h /var/www)
if page=$(fetch_local "$PODMAN_PORT"); then
  echo "   podman 127.0.0.1:$PODMAN_PORT -> $page"
else
  echo "   podman: nothing answered on 127.0.0.1:$PODMAN_PORT (its port is still published; timing goes on)"
fi
"${PODMAN[@]}" rm -f -t 0 "$web_id" >/dev/null

# ---------------------------------------------------------------------------------------
echo "== run --rm true: $RUNS rounds, each: berth bridge, podman bridge, berth none, podman none"
KINDS=(berth-bridge podman-bridge berth-none podman-none)
for k in "${KINDS[@]}"; do : >"$WORK/$k.us" && : >"$WORK/$k.err"; done
for ((i = 1; i <= RUNS; i++)); do
  for k in "${KINDS[@]}"; do
    case $k in
      berth-bridge) cmd=("$BERTH" --root "$ROOT" run "$DIR" t --rm) ;;
      podman-bridge) cmd=("${PODMAN[@]}" run --rm --network bridge -p "$PODMAN_PORT:80" "$PODMAN_IMAGE" true) ;;
      berth-none) cmd=("$BERTH" --root "$ROOT" run "$DIR" none --rm) ;;
      podman-none) cmd=("${PODMAN[@]}" run --rm --network none "$PODMAN_IMAGE" true) ;;
    esac
    t0=${EPOCHREALTIME/[.,]/}
    if ! "${cmd[@]}" >/dev/null 2>"$WORK/last.err"; then
      fail "$k, round $i: ${cmd[*]}: $(cat "$WORK/last.err")"
    fi
    t1=${EPOCHREALTIME/[.,]/}
    echo $((t1 - t0)) >>"$WORK/$k.us"
    [[ -s $WORK/last.err ]] && sed "s/^/round $i: /" "$WORK/last.err" >>"$WORK/$k.err"
    sleep 0.05 # what each leaves running in the background settles outside the next sample
  done
done

declare -A MED P90 MIN
for k in "${KINDS[@]}"; do
  read -r "MED[$k]" "P90[$k]" "MIN[$k]" < <(summarize 1000 <"$WORK/$k.us")
done
bridge_ratio=$(ratio "${MED[podman-bridge]}" "${MED[berth-bridge]}")
none_ratio=$(ratio "${MED[podman-none]}" "${MED[berth-none]}")
met=$(awk -v r="$bridge_ratio" 'BEGIN { print (r >= 5) ? "yes" : "NO" }')
printf '   %-28s %9s %9s %9s\n' "" median p90 min
printf '   %-28s %6s ms %6s ms %6s ms\n' \
  "berth  bridge + port" "${MED[berth-bridge]}" "${P90[berth-bridge]}" "${MIN[berth-bridge]}" \
  "podman bridge + port" "${MED[podman-bridge]}" "${P90[podman-bridge]}" "${MIN[podman-bridge]}" \
  "berth  network none" "${MED[berth-none]}" "${P90[berth-none]}" "${MIN[berth-none]}" \
  "podman network none" "${MED[podman-none]}" "${P90[podman-none]}" "${MIN[podman-none]}"
echo "   podman / berth, bridge + port: ${bridge_ratio}x (target >= 5x: $met)"
echo "   podman / berth, network none:  ${none_ratio}x"
echo "   cost of the network (median bridge - none): berth $(awk -v a="${MED[berth-bridge]}" -v b="${MED[berth-none]}" 'BEGIN { printf "%.1f", a - b }') ms, podman $(awk -v a="${MED[podman-bridge]}" -v b="${MED[podman-none]}" 'BEGIN { printf "%.1f", a - b }') ms"
for k in "${KINDS[@]}"; do
  if [[ -s $WORK/$k.err ]]; then
    echo "   note: $k wrote to stderr in $(cut -d: -f1 "$WORK/$k.err" | sort -u | wc -l) of $RUNS runs, e.g.: $(head -n 2 "$WORK/$k.err" | tr '\n' ' ')"
  fi
done

# Nothing of the runs is left behind while the network stays: no container, no veth, no
# lease, no published port in the table.
leaks=()
n=$("$BERTH" --root "$ROOT" ps -a --json | jq length)
((n == 0)) || leaks+=("berth ps -a lists $n container(s)")
n=$(berth_links container | wc -l)
((n == 0)) || leaks+=("$n veth(s) aliased 'berth $SCOPE container'")
n=$(find "$ROOT/networks/benchnet/leases" -mindepth 1 2>/dev/null | wc -l)
((n == 0)) || leaks+=("$n lease(s) in $ROOT/networks/benchnet/leases")
n=$(nft -j list chain ip "$SCOPE" ports 2>/dev/null | jq '[.nftables[] | select(.rule)] | length')
[[ $n == 0 ]] || leaks+=("$n rule(s) in chain ip $SCOPE ports")
n=$("${PODMAN[@]}" ps -a -q | wc -l)
((n == 0)) || leaks+=("podman ps -a lists $n container(s)")
if ((${#leaks[@]})); then
  echo "   LEFT BEHIND by the runs: $(IFS=';' && echo "${leaks[*]}")"
else
  echo "   after the runs: no berth container, veth, lease or published port left; network benchnet stays"
fi

# ---------------------------------------------------------------------------------------
commit=$(git rev-parse --short HEAD)
[[ -z $(git status --porcelain -- src Cargo.toml Cargo.lock) ]] || commit="$commit (with uncommitted changes in src/ or Cargo.*)"
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
cat <<EOF

### berth bridge network benchmark (\`scripts/bench-network.sh\`)

- machine: $(nproc) CPUs ($cpu_model), kernel $(uname -r); load average at start $load_start
- berth $commit, release build; podman $(podman --version | awk '{print $3}') ($podman_runtime, $podman_netbackend)
- RUNS=$RUNS, interleaved; wall time of each command from \$EPOCHREALTIME; one warm-up each

| \`run --rm true\` | berth median | p90 | min | podman median | p90 | min | podman / berth |
|---|---|---|---|---|---|---|---|
| bridge, published port | ${MED[berth-bridge]} ms | ${P90[berth-bridge]} ms | ${MIN[berth-bridge]} ms | ${MED[podman-bridge]} ms | ${P90[podman-bridge]} ms | ${MIN[podman-bridge]} ms | **${bridge_ratio}×** (target ≥ 5×: $met) |
| no network (reference) | ${MED[berth-none]} ms | ${P90[berth-none]} ms | ${MIN[berth-none]} ms | ${MED[podman-none]} ms | ${P90[podman-none]} ms | ${MIN[podman-none]} ms | ${none_ratio}× |

berth: \`berth --root R run DIR t --rm\` (\`networks = ["benchnet"]\`, \`ports = ["$BERTH_PORT:80"]\`,
subnet $SUBNET); podman: \`podman run --rm --network bridge -p $PODMAN_PORT:80 IMG true\`
(default network \`podman\`). Image imported beforehand for both.

EOF
