#!/bin/sh
# Build a busybox root filesystem from Debian's busybox-static and import it into the local image
# store as busybox:latest (Cmd ["sh"], like the Docker Hub image).
# Usage: rootfs/build-busybox.sh [SANDBOX]   (SANDBOX: the sandbox command, default .venv/bin/sandbox)
set -eu
sandbox=${1:-.venv/bin/sandbox}
busybox=$(command -v busybox || echo /bin/busybox)
[ -x "$busybox" ] || { echo "busybox-static is not installed" >&2; exit 1; }
if ldd "$busybox" >/dev/null 2>&1; then echo "$busybox is dynamically linked: install busybox-static" >&2; exit 1; fi

tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/bin" "$tree/etc" "$tree/proc" "$tree/sys" "$tree/dev" "$tree/tmp" \
         "$tree/root" "$tree/var/www" "$tree/home" "$tree/usr/bin" "$tree/usr/sbin" "$tree/sbin"
chmod 1777 "$tree/tmp"
chmod 0700 "$tree/root"
cp "$busybox" "$tree/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$tree/bin/$applet"
done
# Debian's busybox-static leaves out two applets the Docker Hub busybox has and the Kubernetes
# documentation's examples use: printenv and nohup. Small scripts stand in for them.
[ -e "$tree/bin/printenv" ] || cat > "$tree/bin/printenv" <<'S'
#!/bin/sh
# printenv [NAME...]: the environment, or the values of the named variables (exit 1 if unset).
[ $# -eq 0 ] && exec env
status=0
for name in "$@"; do
    if env | grep -q "^$name="; then eval "printf '%s\\n' \"\$$name\""; else status=1; fi
done
exit $status
S
[ -e "$tree/bin/nohup" ] || cat > "$tree/bin/nohup" <<'S'
#!/bin/sh
# nohup CMD...: run CMD immune to hangups.
trap '' HUP
exec "$@"
S
chmod 0755 "$tree/bin/printenv" "$tree/bin/nohup"
cat > "$tree/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
P
cat > "$tree/etc/group" <<'G'
root:x:0:
tty:x:5:
nogroup:x:65534:
G
echo "127.0.0.1 localhost" > "$tree/etc/hosts"
# The tests' syscall probe (rootfs/probe.c), static like busybox, and a setuid-root copy of it
# for the no_new_privs check.
musl-gcc -static -Os -Wall -Wextra -Werror -o "$tree/usr/bin/sbx-probe" "$(dirname "$0")/probe.c"
cp "$tree/usr/bin/sbx-probe" "$tree/usr/bin/sbx-probe-suid"
chmod 4755 "$tree/usr/bin/sbx-probe-suid"
# UDP echo server and client for the network tests (rootfs/udp.c): busybox's nc has no -u here.
musl-gcc -static -Os -Wall -Wextra -Werror -o "$tree/usr/bin/sbx-udp" "$(dirname "$0")/udp.c"
# The TCP throughput tool of bench/net_throughput.py (rootfs/netbench.c), static so the host runs
# the same binary for its loopback figure.
musl-gcc -static -O2 -Wall -Wextra -Werror -o "$tree/usr/bin/netbench" "$(dirname "$0")/netbench.c"
"$sandbox" image import "$tree" busybox:latest --cmd sh \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The Kubernetes documentation's examples name busybox by these references; the local store has
# no registry to pull from, so the one busybox image answers to all of them.
for alias in busybox:1.28 busybox:1.36 registry.k8s.io/busybox:latest registry.k8s.io/busybox:1.27.2; do
    "$sandbox" image tag busybox:latest "$alias"
done
