#!/usr/bin/env bash
# Pull + unpack benchmark: an ~80 MB image of 4 layers from a local registry (Debian's
# docker-registry on 127.0.0.1), measured side by side in one run with hyperfine:
#   berth pull                       fetch, verify every digest, unpack every layer
#   podman pull                      the same into containers/storage (overlay)
#   skopeo copy + umoci unpack       fetch into an OCI layout, then unpack a rootfs
# Each run starts from an empty store, after `sync`: berth fsyncs what it commits, and must not
# pay for the previous command's dirty pages. Run as root on Debian 12: `scripts/bench-pull.sh`.
# Environment: RUNS (default 5), LAYER_MB (default 20), KEEP=1 to keep the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
LAYER_MB=${LAYER_MB:-20}
PACKAGES=(docker-registry podman skopeo umoci hyperfine jq)

[[ $(id -u) -eq 0 ]] || { echo "bench-pull: run as root" >&2; exit 1; }
scripts/install-deps "${PACKAGES[@]}"

WORK=$(mktemp -d /var/tmp/berth-bench-pull.XXXXXX)
REGISTRY_PID=
cleanup() {
  [[ -n $REGISTRY_PID ]] && kill "$REGISTRY_PID" 2>/dev/null || true
  podman --root "$WORK/podman-root" --runroot "$WORK/podman-run" --storage-driver overlay rmi -af >/dev/null 2>&1 || true
  umount -R "$WORK/podman-root/overlay" 2>/dev/null || true
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/registry.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$PORT
YAML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done

# Four layers of incompressible data, built offline with umoci, pushed with skopeo.
LAYOUT="$WORK/layout"
umoci init --layout "$LAYOUT"
umoci new --image "$LAYOUT:bench"
for i in 1 2 3 4; do
  # Unpack afresh each time: a second repack of the same bundle would not stack a layer.
  rm -rf "$WORK/build"
  umoci unpack --image "$LAYOUT:bench" "$WORK/build" >/dev/null
  mkdir -p "$WORK/build/rootfs/data/layer$i"
  head -c "$((LAYER_MB * 1024 * 1024))" /dev/urandom >"$WORK/build/rootfs/data/layer$i/blob"
  for j in $(seq 200); do
    head -c 1300 /dev/urandom | base64 >"$WORK/build/rootfs/data/layer$i/file$j.txt"
  done
  umoci repack --image "$LAYOUT:bench" "$WORK/build" >/dev/null
done
IMAGE="127.0.0.1:$PORT/bench/app:v1"
skopeo copy -q --dest-tls-verify=false "oci:$LAYOUT:bench" "docker://$IMAGE"
SIZE=$(du -sm "$WORK/registry" | cut -f1)

cargo build --release -q
BERTH="$PWD/target/release/berth"
PODMAN="podman --root $WORK/podman-root --runroot $WORK/podman-run --storage-driver overlay"

LAYERS=$(skopeo inspect --tls-verify=false "docker://$IMAGE" | jq '.Layers | length')
[[ $LAYERS == 4 ]] || { echo "bench-pull: expected 4 layers, built $LAYERS" >&2; exit 1; }
echo "image: $IMAGE, $LAYERS layers, ${SIZE} MB in the registry; $RUNS runs each"
hyperfine --warmup 1 --runs "$RUNS" --export-json "$WORK/result.json" \
  --command-name "berth pull" \
  --prepare "rm -rf $WORK/berth-root && sync" \
  "$BERTH --root $WORK/berth-root pull $IMAGE" \
  --command-name "podman pull" \
  --prepare "$PODMAN rmi -af >/dev/null 2>&1; sync" \
  "$PODMAN pull -q --tls-verify=false $IMAGE" \
  --command-name "skopeo copy + umoci unpack" \
  --prepare "rm -rf $WORK/skopeo-oci $WORK/umoci-bundle && sync" \
  "skopeo copy -q --src-tls-verify=false docker://$IMAGE oci:$WORK/skopeo-oci:v1 && umoci unpack --image $WORK/skopeo-oci:v1 $WORK/umoci-bundle >/dev/null"

jq -r '
  (.results[] | select(.command == "berth pull") | .median) as $berth
  | .results[] | "\(.command): median \(.median * 1000 | floor) ms (\(.median / $berth * 100 | floor / 100)x berth)"
' "$WORK/result.json"
