#!/bin/sh
# The README's demo, on a fresh machine without internet (as root):
# installs busybox-static and nftables if missing, builds a busybox root
# file system, imports it as localhost/busybox:latest, brings the
# three-tier example (examples/stacks/threetier: web -> api -> store with
# a volume) up with `stack up --wait` under a temporary state root, shows
# `stack ps`, fetches the page from the published port twice (the visit
# counter kept by the store goes up), shows the logs, and takes it all
# down with `stack down -v`.
#
#   sudo sh examples/demo.sh            # builds stack with cargo first
#   STACK=/path/to/stack sh examples/demo.sh
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
port=${WEB_PORT:-8080}

if [ "$(id -u)" != 0 ]; then
    echo "demo: run as root (stack creates namespaces, bridges and mounts)" >&2
    exit 1
fi
need=""
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 || need="$need busybox-static"
command -v nft >/dev/null 2>&1 || need="$need nftables"
if [ -n "$need" ]; then
    echo "demo: installing$need"
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
if ! ldd /bin/busybox 2>&1 | grep -q "not a dynamic executable"; then
    echo "demo: /bin/busybox is not static; install busybox-static" >&2
    exit 1
fi

if [ -z "${STACK:-}" ]; then
    (cd "$repo" && cargo build -q)
    STACK="$repo/target/debug/stack"
fi

work=$(mktemp -d /tmp/stack-demo.XXXXXX)
root="$work/root"
cleanup() {
    "$STACK" --root "$root" -f "$repo/examples/stacks/threetier/compose.yaml" down -v >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# A busybox root file system (DESIGN.md's recipe).
rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/srv"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
: >"$rootfs/etc/hosts"
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"
find "$rootfs" -exec touch -h -d @0 {} +

"$STACK" --root "$root" image import "$rootfs" localhost/busybox:latest -c 'CMD ["sh"]'

export IMAGE=localhost/busybox:latest WEB_PORT="$port"
stack() { "$STACK" --root "$root" -f "$repo/examples/stacks/threetier/compose.yaml" "$@"; }

echo "+ stack up --wait"
stack up --wait
echo "+ stack ps"
stack ps
echo "+ fetch http://127.0.0.1:$port/ (twice)"
fetch() {
    if command -v curl >/dev/null 2>&1; then curl -fsS -m 2 "$1"
    elif command -v wget >/dev/null 2>&1; then wget -q -T 2 -O - "$1"
    else printf 'GET / HTTP/1.0\r\n\r\n' | /bin/busybox nc -w 2 127.0.0.1 "$port"
    fi
}
ok=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
    if fetch "http://127.0.0.1:$port/"; then ok=1; break; fi
    sleep 0.5
done
[ -z "$ok" ] || fetch "http://127.0.0.1:$port/" || ok=""
echo "+ stack logs --tail 5"
stack logs --tail 5
echo "+ stack down -v"
stack down -v
[ -n "$ok" ] || { echo "demo: the page did not answer" >&2; exit 1; }
echo "demo: done; nothing of it is left."
