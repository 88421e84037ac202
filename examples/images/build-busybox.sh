#!/usr/bin/env bash
# Build a small OCI image archive offline from the host's static busybox
# (Debian: apt-get install busybox-static), for the shipped examples and the quick start.
#
#   examples/images/build-busybox.sh OUT.tar
#
# The result is an `oci-archive:` image berth can run: /bin/busybox with its applets, a
# minimal /etc, `CMD ["/bin/sh"]`. Same input, same bytes: timestamps and owners are fixed.
#
# Run as root, this must not write where another user could redirect it: OUT's directory must
# be a real directory (not a symlink) owned by the running user and writable by nobody else
# (it is created 0755 if absent), OUT itself a regular file if it exists. The archive is
# written to a mktemp name in that directory and renamed over OUT. Only that directory is
# checked: its ancestors must not be writable by another user either (true of /var/lib).
set -euo pipefail
out=${1:?usage: $0 OUT.tar}
busybox=${BUSYBOX:-/bin/busybox}
[[ -x $busybox ]] || { echo "$0: $busybox not found; apt-get install busybox-static" >&2; exit 1; }

refuse() { echo "$0: refusing to write $out: $*" >&2; exit 1; }
dir=$(dirname -- "$out")
# Not -p: if someone else creates it meanwhile, mkdir fails and the checks below decide.
[[ -e $dir || -L $dir ]] || mkdir -m 0755 -- "$dir" 2>/dev/null || [[ -e $dir || -L $dir ]] \
  || refuse "cannot create $dir"
[[ ! -L $dir ]] || refuse "$dir is a symlink"
[[ -d $dir ]] || refuse "$dir is not a directory"
[[ $(stat -c %u -- "$dir") == "$(id -u)" ]] \
  || refuse "$dir is owned by uid $(stat -c %u -- "$dir"), not by the running user ($(id -u))"
(( (8#$(stat -c %a -- "$dir") & 8#022) == 0 )) \
  || refuse "$dir is writable by group or others (mode $(stat -c %a -- "$dir"))"
[[ ! -L $out ]] || refuse "it is a symlink"
[[ ! -e $out || -f $out ]] || refuse "it exists and is not a regular file"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,etc,tmp,root,home/app,var/www,usr/bin}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
done
ln -sf /bin/busybox "$root/usr/bin/env"
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\napp:x:1000:\nnogroup:x:65534:\n' >"$root/etc/group"
printf '<h1>served by berth</h1>\n' >"$root/var/www/index.html"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"

layout=$work/layout
mkdir -p "$layout/blobs/sha256"
blob() { # FILE -> prints digest hex, moves the file into blobs/
  local hex
  hex=$(sha256sum "$1" | cut -d' ' -f1)
  mv "$1" "$layout/blobs/sha256/$hex"
  echo "$hex"
}

tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$root" -cf "$work/layer.tar" .
# home/app belongs to the app user.
tar --delete -f "$work/layer.tar" ./home/app/ 2>/dev/null || true
tar --sort=name --mtime=@0 --numeric-owner --owner=1000 --group=1000 --no-recursion \
  -C "$root" -rf "$work/layer.tar" ./home/app
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -6 "$work/layer.tar"
layer_size=$(stat -c %s "$work/layer.tar.gz")
layer=$(blob "$work/layer.tar.gz")

case $(uname -m) in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac
printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"examples/images/build-busybox.sh"}]}' \
  "$arch" "$diff_id" >"$work/config.json"
config_size=$(stat -c %s "$work/config.json")
config=$(blob "$work/config.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$config" "$config_size" "$layer" "$layer_size" >"$work/manifest.json"
manifest_size=$(stat -c %s "$work/manifest.json")
manifest=$(blob "$work/manifest.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
  "$manifest" "$manifest_size" >"$layout/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

# An unpredictable name, created exclusively (0600) in the checked directory; then renamed
# over OUT, which replaces the name and never follows what it pointed at.
tmp=$(mktemp -- "$dir/.busybox.tar.XXXXXXXX")
trap 'rm -rf "$work"; rm -f -- "$tmp"' EXIT
tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 -C "$layout" -cf "$tmp" .
chmod 0644 -- "$tmp"
mv -T -- "$tmp" "$out"
echo "$out: busybox image, manifest sha256:$manifest"
