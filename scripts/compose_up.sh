#!/usr/bin/env bash
# `make up`: `docker compose up` of docker-compose.yml, after checking that the images it names can be had.
#
#   scripts/compose_up.sh             # check the images, make the secrets, then `docker compose up --build --detach --wait`
#   scripts/compose_up.sh --check     # only check the images (exit 1 with the image and its variable if one fails)
#
# `docker compose build` on its own fails deep in a registry error ("pinging container registry ... no such host")
# that does not say which setting picks the image; this says which image, which variable, and what to do.
# The images are the compose file's: PYTHON_IMAGE (the base of the three services' Dockerfiles) and KAFKA_IMAGE
# (the broker and the topic job), each defaulting to the official image written in docker-compose.yml.
# The secrets (SCRAM passwords in the git-ignored .env, a throwaway CA and the broker's certificate in var/compose/)
# are made by backflush_shared.compose_secrets where missing, and kept where present (README, "Security").
# DOCKER_HOST is used as set; where no Docker engine answers, `make up` runs scripts/container_engine.sh first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPOSE_FILE="$ROOT/docker-compose.yml"

die() { printf 'compose_up: error: %s\n' "$*" >&2; exit 1; }

# The default the compose file gives a variable: `${NAME:-default}` as written there (one source of truth).
compose_default() {
    grep -oE "\\\$\\{$1:-[^}]+\\}" "$COMPOSE_FILE" | head -n 1 | sed -E "s/^\\\$\\{$1:-(.*)\\}$/\\1/"
}

# check_image VARIABLE WHAT: the image in $VARIABLE (or the compose default) is on the engine or can be pulled.
check_image() {
    local variable="$1" what="$2" default image output
    default="$(compose_default "$variable")"
    [[ -n "$default" ]] || die "docker-compose.yml names no default for $variable"
    image="${!variable:-$default}"
    if docker image inspect "$image" >/dev/null 2>&1; then
        printf 'compose_up: %s=%s (on the engine)\n' "$variable" "$image" >&2
        return 0
    fi
    if output="$(timeout 300 docker pull "$image" 2>&1)"; then
        printf 'compose_up: %s=%s (pulled)\n' "$variable" "$image" >&2
        return 0
    fi
    printf 'compose_up: error: cannot get image %s (%s, %s): %s\n' "$image" "$variable" "$what" \
        "$(printf '%s\n' "$output" | grep -v '^[[:space:]]*$' | tail -n 1)" >&2
    printf 'compose_up:   set %s to an image this engine has or can pull (%s=<image> make up); where no registry answers, `.venv/bin/python scripts/local_images.py` (after `make install`) builds local stand-ins and prints the two exports\n' \
        "$variable" "$variable" >&2
    return 1
}

main() {
    local check_only=false
    case "${1:-}" in
        --check) check_only=true ;;
        "") ;;
        *) die "unknown argument '$1' (use --check, or nothing)" ;;
    esac
    command -v docker >/dev/null 2>&1 || die "no docker client on PATH"
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
        || die "no Docker engine answers at ${DOCKER_HOST:-the default socket}; \`make engine-up\` sets up Podman where Docker is absent"
    local failed=0
    check_image PYTHON_IMAGE "the base image of the three services' Dockerfiles" || failed=1
    check_image KAFKA_IMAGE "the broker and the kafka-init job" || failed=1
    [[ "$failed" == 0 ]] || exit 1
    "$check_only" && return 0
    cd "$ROOT"
    "${BACKFLUSH_PYTHON:-$ROOT/.venv/bin/python}" -m backflush_shared.compose_secrets generate --root "$ROOT" >&2 \
        || die "could not make the deployment's secrets (\`make install\` first?)"
    exec docker compose up --build --detach --wait
}

main "$@"
