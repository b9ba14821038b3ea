#!/bin/bash
# A local Docker Hub mirror serving the seed notes' redis-php images, for the guide (docs/guide.md,
# section 2): the pod in examples/redis-php.yaml names kubeguide/redis-master and
# kubeguide/guestbook-php-frontend:localredis, and an image without a tag is pulled with policy
# Always, so every start asks a registry. This builds stand-ins of both images offline
# (rootfs/build-test-images.sh), serves them with Debian's docker-registry on 127.0.0.1 and writes
# a containerd-style hosts directory that sends docker.io there.
#   rootfs/guestbook-mirror.sh start DIR   then SANDBOX_REGISTRY_CONFIG=DIR/certs.d sends docker.io there
#   rootfs/guestbook-mirror.sh stop DIR    stops the registry and removes DIR
# Needs docker-registry, skopeo and the build's packages (`make demo` installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
action=${1:?usage: $0 start|stop DIR}
dir=${2:?usage: $0 start|stop DIR}

stop() {
    if [ -f "$dir/registry.pid" ]; then
        pid=$(cat "$dir/registry.pid")
        # only the registry this script started: its command line names this directory's config
        if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/config.yml"; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
        fi
    fi
    rm -rf "$dir"
}

free_port() {
    "$here/../.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    [ ! -e "$dir" ] || { echo "$dir already exists (rootfs/guestbook-mirror.sh stop $dir first)" >&2; exit 1; }
    mkdir -p "$dir/storage" "$dir/certs.d/docker.io"
    trap 'stop' ERR
    port=$(free_port)
    cat > "$dir/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/storage}}
http: {addr: 127.0.0.1:$port}
EOF
    setsid docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 < /dev/null &
    echo $! > "$dir/registry.pid"
    for target in redis:kubeguide/redis-master:latest php-frontend:kubeguide/guestbook-php-frontend:localredis; do
        IFS=: read -r name repository tag <<< "$target"
        "$here/build-test-images.sh" "$name" "$dir/$name" > /dev/null
        ref=$(sed -n 's/.*"org.opencontainers.image.ref.name": *"\([^"]*\)".*/\1/p' "$dir/$name/index.json")
        for _ in $(seq 100); do
            (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null && break
            sleep 0.1
        done
        skopeo --insecure-policy copy --quiet --preserve-digests --dest-tls-verify=false \
            "oci:$dir/$name:$ref" "docker://127.0.0.1:$port/$repository:$tag"
        rm -rf "${dir:?}/$name"
    done
    cat > "$dir/certs.d/docker.io/hosts.toml" <<EOF
server = "https://registry-1.docker.io"
[host."http://127.0.0.1:$port"]
capabilities = ["pull", "resolve"]
EOF
}

case "$action" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
