#!/usr/bin/env bash
# Build the bridge and worker images with podman and check that they work together:
# a bridge container in a test netns with a tap, a worker container with no network and
# no privileges, an MTU change on the tap, and the worker's replica showing it.
#
# Needs root, podman, runc, debootstrap (apt) and the project's venv (make venv).
# The base image cannot be pulled here: it is made once with debootstrap and imported.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
BASE=${BASE:-localhost/ifpx-base:bookworm}
MIRROR=${MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
WORK=$(mktemp -d /tmp/ifpx-docker-XXXXXX)
NS=ifpx-docker-$$
BRIDGE=ifpx-bridge-$$
WORKER=ifpx-worker-$$

# podman as this machine runs it: runc, and no default ulimits (they cannot be set here).
export CONTAINERS_CONF=$WORK/containers.conf
printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n' > "$CONTAINERS_CONF"
PROJECT=ifpx-compose-$$
pm() { podman --runtime runc "$@"; }

cleanup() {
    pm rm -f "$BRIDGE" "$WORKER" >/dev/null 2>&1 || true
    if [ -x "$WORK/compose/bin/podman-compose" ]; then
        "$WORK/compose/bin/podman-compose" -p "$PROJECT" -f docker/compose.yaml down -v \
            >/dev/null 2>&1 || true
    fi
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Wait (10 s at most) for the bridge at $IFPX_CONTROL to answer, then bind port 0 to tap0.
bind_when_up() {
    for _ in $(seq 100); do
        "$PY" -m ifpx.subscribers ctl --timeout 0.2 --retries 0 hello >/dev/null 2>&1 && break
        sleep 0.1
    done
    "$PY" -m ifpx.subscribers ctl bind 0 tap0
}

if ! pm image exists "$BASE"; then
    echo "== base image $BASE: debootstrap from $MIRROR"
    debootstrap --variant=minbase --include=python3,python3-venv bookworm "$WORK/rootfs" "$MIRROR" >/dev/null
    tar -C "$WORK/rootfs" -c . | pm import - "$BASE" >/dev/null
    rm -rf "$WORK/rootfs"
fi

echo "== wheels"
mkdir -p "$WORK/context/wheels"
"$PY" -m pip wheel -q --wheel-dir "$WORK/context/wheels" ".[bridge]" 2>&1 | grep -v '^WARNING' || true

echo "== images"
pm build -q --build-arg BASE="$BASE" -f docker/Dockerfile -t ifpx-bridge "$WORK/context" >/dev/null
pm build -q --build-arg BASE="$BASE" -f docker/worker.Dockerfile -t ifpx-worker "$WORK/context" >/dev/null

echo "== bridge container in netns $NS"
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" tuntap add dev tap0 mode tap multi_queue
RUN_DIR=$WORK/run
mkdir -p "$RUN_DIR/dump"
chmod 0750 "$RUN_DIR"
chmod 0777 "$RUN_DIR/dump"
pm run -d --name "$BRIDGE" --network "ns:/run/netns/$NS" --cap-add NET_ADMIN \
    -v "$RUN_DIR:/run/ifpx" ifpx-bridge --ipc-group users --state /run/ifpx/state.json >/dev/null
export IFPX_CONTROL=ipc://$RUN_DIR/control.sock IFPX_EVENTS=ipc://$RUN_DIR/events.sock
bind_when_up

echo "== worker container (uid 10001, no network)"
pm run -d --name "$WORKER" --network none -v "$RUN_DIR:/run/ifpx" ifpx-worker \
    --worker-id 0 --quiet --dump-dir /run/ifpx/dump >/dev/null
for _ in $(seq 150); do [ -e "$RUN_DIR/dump/worker-0.ready" ] && break; sleep 0.1; done
[ -e "$RUN_DIR/dump/worker-0.ready" ] || { pm logs "$WORKER"; echo "worker did not sync"; exit 1; }

echo "== ip link set tap0 mtu 1400"
ip -n "$NS" link set tap0 mtu 1400
for _ in $(seq 100); do
    rm -f "$RUN_DIR/dump/worker-0.json"
    pm kill --signal USR1 "$WORKER" >/dev/null
    for _ in $(seq 20); do [ -e "$RUN_DIR/dump/worker-0.json" ] && break; sleep 0.05; done
    if [ -e "$RUN_DIR/dump/worker-0.json" ] && "$PY" - "$RUN_DIR/dump/worker-0.json" <<'EOF'
import json, sys
ports = json.load(open(sys.argv[1]))["state"]["ports"]
sys.exit(0 if ports and ports[0]["mtu"] == 1400 else 1)
EOF
    then
        saw=1
        break
    fi
    sleep 0.1
done
if [ -z "${saw:-}" ]; then
    pm logs "$BRIDGE" | tail -20
    pm logs "$WORKER" | tail -20
    echo "FAILED: the worker never saw mtu 1400"
    exit 1
fi
echo "OK: the worker container saw the MTU change made on the bridge container's tap"
pm rm -f "$BRIDGE" "$WORKER" >/dev/null

echo "== compose: docker/compose.yaml with podman-compose (bridge + two workers on a volume)"
"$PY" -m venv "$WORK/compose"
"$WORK/compose/bin/pip" install -q podman-compose
compose() { "$WORK/compose/bin/podman-compose" -p "$PROJECT" -f docker/compose.yaml "$@"; }
ip -n "$NS" link set tap0 mtu 1500
IFPX_BRIDGE_NETWORK="ns:/run/netns/$NS" compose up -d bridge worker-0 worker-1 >/dev/null 2>&1
VOLUME=$(pm volume inspect "${PROJECT}_ifpx-run" --format '{{.Mountpoint}}')
export IFPX_CONTROL=ipc://$VOLUME/control.sock IFPX_EVENTS=ipc://$VOLUME/events.sock
bind_when_up
ip -n "$NS" link set tap0 mtu 1280
for _ in $(seq 300); do
    logs=$(compose logs worker-0 worker-1 2>&1 || true)
    if grep -q 'worker 0.*mtu.*1280' <<<"$logs" && grep -q 'worker 1.*mtu.*1280' <<<"$logs"; then
        echo "OK: both compose workers saw the MTU change"
        exit 0
    fi
    sleep 0.1
done
compose logs 2>&1 | tail -40
echo "FAILED: the compose workers never saw mtu 1280"
exit 1
