#!/bin/bash
# Build the seed notes' redis-php test images as OCI image layouts, offline, from the Debian
# packages installed on this machine: each program is copied with the shared libraries ldd names
# (no package manager, no shell unless the image needs one), then rootfs/build-image-from-dir.py
# packs the tree reproducibly.
#   rootfs/build-test-images.sh redis LAYOUT          kubeguide/redis-master (port 6379)
#   rootfs/build-test-images.sh php-frontend LAYOUT   kubeguide/guestbook-php-frontend:localredis (port 80)
# The manifest digest is printed on stdout. Needs redis-tools, php-cli, tini, busybox-static, curl.
# REF overrides the reference name written to index.json.
set -euo pipefail
umask 022
here=$(cd "$(dirname "$0")" && pwd)
target=${1:?usage: $0 redis|php-frontend LAYOUT}
layout=${2:?usage: $0 redis|php-frontend LAYOUT}
[ ! -e "$layout" ] || { echo "$layout already exists" >&2; exit 1; }
tree=$(mktemp -d)
spec=$(mktemp)
trap 'rm -rf "$tree" "$spec"' EXIT

need() {  # need PROGRAM PACKAGE: the host path of an installed program, or a clear failure
    command -v "$1" >/dev/null || { echo "$1 not found: apt-get install $2" >&2; exit 1; }
    readlink -f "$(command -v "$1")"
}

skeleton() {
    # Debian's merged /usr: /bin, /sbin and /lib are links into /usr, so a library ldd names by
    # either path lands once.
    mkdir -p "$tree"/usr/{bin,sbin,lib,lib64} "$tree"/{etc,proc,sys,dev,tmp,root,run}
    ln -s usr/bin "$tree/bin"; ln -s usr/sbin "$tree/sbin"
    ln -s usr/lib "$tree/lib"; ln -s usr/lib64 "$tree/lib64"
    chmod 1777 "$tree/tmp"; chmod 0700 "$tree/root"
    printf '%s\n' "root:x:0:0:root:/root:/bin/sh" "$1:x:$2:$2:$1:/nonexistent:/usr/sbin/nologin" \
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin" > "$tree/etc/passwd"
    printf '%s\n' "root:x:0:" "$1:x:$2:" "nogroup:x:65534:" > "$tree/etc/group"
    # The runtime bind-mounts its own /etc/hosts; this one serves a plain chroot. files before dns:
    # glibc's default order asks DNS first, and "localhost" must never leave the pod.
    printf '%s\n' "127.0.0.1 localhost" "::1 localhost ip6-localhost ip6-loopback" > "$tree/etc/hosts"
    echo "hosts: files dns" > "$tree/etc/nsswitch.conf"
}

copy_program() {  # copy_program HOST_PATH IMAGE_PATH: the program and every library it loads
    install -D -m 0755 "$1" "$tree$2"
    ldd "$1" | grep -o '/[^ ]*' | while read -r lib; do
        [ -e "$tree$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$tree$lib"
    done
}

add_busybox() {  # Debian's static busybox and its applets, skipping names a real program holds
    local busybox
    busybox=$(need busybox busybox-static)
    ! ldd "$busybox" >/dev/null 2>&1 || { echo "$busybox is dynamic: install busybox-static" >&2; exit 1; }
    install -m 0755 "$busybox" "$tree/usr/bin/busybox"
    for applet in $("$busybox" --list); do
        [ -e "$tree/usr/bin/$applet" ] || ln -s busybox "$tree/usr/bin/$applet"
    done
}

build_redis() {
    skeleton redis 999
    # Debian's redis-tools ships the server as redis-check-rdb (redis-server's package only adds a
    # link and the init script); Redis picks its mode from argv[0], so the copy is named redis-server.
    copy_program "$(need redis-check-rdb redis-tools)" /usr/bin/redis-server
    copy_program "$(need redis-cli redis-tools)" /usr/bin/redis-cli
    # The seed's check runs `curl localhost` in this container; busybox adds sh and wget.
    copy_program "$(need curl curl)" /usr/bin/curl
    add_busybox
    mkdir -p "$tree/data"
    cat > "$spec" <<'J'
{"ref": "docker.io/kubeguide/redis-master:latest",
 "cmd": ["redis-server", "--protected-mode", "no"],
 "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
 "workingDir": "/data", "exposedPorts": ["6379/tcp"]}
J
}

build_php_frontend() {
    skeleton www-data 33
    local php
    php=$(need php php-cli)
    copy_program "$php" "/usr/bin/$(basename "$php")"
    ln -s "$(basename "$php")" "$tree/usr/bin/php"
    # PHP's built-in server installs no SIGTERM handler, and a PID 1 without one ignores SIGTERM:
    # every stop would wait out the grace period and end in SIGKILL (137). tini forwards the
    # signal, reaps, and -e 143 reports the server's death by SIGTERM as the clean stop it is.
    copy_program "$(need tini tini)" /usr/bin/tini
    install -d "$tree/var/www/html"
    install -m 0644 "$here"/guestbook/*.php "$tree/var/www/html/"
    # PHP's built-in server (one process, index.php for "/") instead of Apache: the guestbook page
    # needs nothing more. No php.ini: the compiled-in defaults, no extension to load. "[::]:80"
    # takes IPv4 too (v4-mapped), and "localhost" may resolve to ::1 first.
    cat > "$spec" <<'J'
{"ref": "docker.io/kubeguide/guestbook-php-frontend:localredis",
 "entrypoint": ["tini", "-s", "-e", "143", "--"],
 "cmd": ["php", "-n", "-S", "[::]:80", "-t", "/var/www/html"],
 "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "REDIS_HOST=localhost"],
 "workingDir": "/var/www/html", "exposedPorts": ["80/tcp"]}
J
}

case $target in
    redis) build_redis ;;
    php-frontend) build_php_frontend ;;
    *) echo "unknown target $target: redis or php-frontend" >&2; exit 2 ;;
esac
python3 "$here/build-image-from-dir.py" "$tree" "$spec" "$layout" ${REF:+--ref "$REF"}
