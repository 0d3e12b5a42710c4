#!/usr/bin/env python3
"""Local stand-ins for the images our compose file pulls, built with no registry at all.

Our machines reach Debian's packages and Maven Central but not Docker Hub, so `python:3.11-slim` and
`apache/kafka:4.1.1` cannot be pulled. This script builds, into the local engine's storage:

- `localhost/backflush-python-base:bookworm`: Debian 12 minbase with python3 (3.11), venv, pip and ca-certificates
  (mmdebstrap | import). This machine's extra certificate authorities (/usr/local/share/ca-certificates) are added
  to its trust store HERE ONLY: the network of our machines presents its own CA, and pip inside a service build
  fails TLS verification without it. Never put that into the project's Dockerfiles.
- `localhost/backflush-jvm-base:bookworm`: Debian 12 minbase with openjdk-17-jre-headless.
- `localhost/backflush-kafka:<version>`: Apache Kafka from the same Maven Central jars as
  `backflush_shared.local_kafka.fetch_kafka()` (plus the `kafka-tools` jar for the command-line tools), whose
  entrypoint turns the `KAFKA_*` environment variables the official image understands into server.properties
  (KAFKA_FOO_BAR -> foo.bar; `__` -> `_`, `___` -> `-`), formats the storage on first start (CLUSTER_ID honoured)
  and runs the broker; `/opt/kafka/bin/kafka-topics.sh`, `kafka-broker-api-versions.sh` and a few more call the
  right Java main classes, so that the compose file's healthcheck and kafka-init work unchanged.

    .venv/bin/python scripts/local_images.py [--rebuild] [--only python|jvm|kafka]

On stdout: `export PYTHON_IMAGE=...` and `export KAFKA_IMAGE=...` (what docker-compose.yml reads); progress on
stderr. An image is rebuilt only when missing or when its recipe changed (a label holds the recipe's hash), or
with --rebuild. Uses `podman` when installed (see scripts/container_engine.sh), else `docker`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    from backflush_shared.local_kafka import KafkaDistribution, cache_dir, fetch_kafka, kafka_version
except ImportError:  # run by a python without the venv: the module needs the standard library only
    sys.path.insert(0, str(ROOT / "shared" / "src"))
    from backflush_shared.local_kafka import KafkaDistribution, cache_dir, fetch_kafka, kafka_version

SUITE = "bookworm"
PYTHON_BASE = f"localhost/backflush-python-base:{SUITE}"
JVM_BASE = f"localhost/backflush-jvm-base:{SUITE}"
KAFKA_REPO = "localhost/backflush-kafka"
RECIPE_LABEL = "backflush.recipe"
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
STATE = ROOT / ".cache" / "containers"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# Bumped whenever the way an image is made changes in a way its inputs below do not show.
RECIPE_VERSION = "1"

# Errors of the engine or the network that a second attempt usually gets past.
TRANSIENT = (
    "database is locked",
    "connection reset",
    "connection refused",
    "timeout",
    "temporary failure",
    "i/o timeout",
    "resource temporarily unavailable",
    "error creating overlay mount",
    "layer not known",
    "hash sum mismatch",
    "could not resolve",
    "unable to fetch",
)

_print_lock = threading.Lock()


def say(message: str) -> None:
    with _print_lock:
        print(f"local_images: {message}", file=sys.stderr, flush=True)


class ImageError(RuntimeError):
    pass


def engine_cli() -> str:
    for name in ("podman", "docker"):
        if shutil.which(name):
            return name
    raise ImageError("neither podman nor docker is installed: run scripts/container_engine.sh start first")


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run(command: Sequence[str], *, what: str, timeout: float = 900, attempts: int = 3, **kwargs: object) -> str:
    """Run a command, retrying errors that look transient; raise ImageError with the output's tail otherwise."""
    for attempt in range(1, attempts + 1):
        try:
            done = subprocess.run(
                list(command), capture_output=True, text=True, timeout=timeout, check=False, **kwargs  # type: ignore[call-overload]
            )
        except subprocess.TimeoutExpired as exc:
            raise ImageError(f"{what}: timed out after {timeout:.0f} s: {' '.join(command)}") from exc
        if done.returncode == 0:
            return done.stdout
        output = (done.stdout or "") + "\n" + (done.stderr or "")
        if attempt < attempts and any(marker in output.lower() for marker in TRANSIENT):
            say(f"{what}: transient failure (attempt {attempt}), retrying: {_tail(output, 3)}")
            time.sleep(2 * attempt)
            continue
        raise ImageError(f"{what} failed (exit {done.returncode}): {' '.join(command)}\n{_tail(output)}")
    raise AssertionError("unreachable")


def image_recipe(cli: str, tag: str) -> str | None:
    """The recipe label of a local image, "" when it has none, None when the image does not exist."""
    done = subprocess.run([cli, "image", "inspect", tag], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        return None
    try:
        info = json.loads(done.stdout)[0]
    except (ValueError, IndexError):
        return ""
    labels = (info.get("Config") or {}).get("Labels") or info.get("Labels") or {}
    return str(labels.get(RECIPE_LABEL, ""))


def image_id(cli: str, tag: str) -> str | None:
    done = subprocess.run([cli, "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True,
                          timeout=60, check=False)
    return done.stdout.strip() or None if done.returncode == 0 else None


def up_to_date(cli: str, tag: str, recipe: str, rebuild: bool) -> bool:
    found = image_recipe(cli, tag)
    if found is None or rebuild:
        return False
    if found != recipe:
        say(f"{tag}: recipe changed ({found or 'none'} -> {recipe}), rebuilding")
        return False
    return True


# ------------------------------------------------------------------------------------------------ Debian bases


def _extra_cas() -> list[Path]:
    return sorted(EXTRA_CA_DIR.glob("*.crt")) if EXTRA_CA_DIR.is_dir() else []


def debian_base(cli: str, tag: str, packages: Sequence[str], *, with_extra_cas: bool, rebuild: bool) -> None:
    """mmdebstrap a minbase Debian with `packages` into a tarball and import it as `tag`."""
    cas = _extra_cas() if with_extra_cas else []
    hooks: list[str] = []
    if cas:
        # This machine's CAs, in this local image only (see the module docstring).
        hooks.append("copy-in " + " ".join(str(ca) for ca in cas) + " /usr/local/share/ca-certificates")
        hooks.append('chroot "$1" update-ca-certificates')
    command = [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--format=tar",
        f"--include={','.join(packages)}",
        "--aptopt=Acquire::Retries \"3\"",
        # Documentation is of no use in an image: smaller and quicker to import.
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        # Postinst scripts (openjdk's update-alternatives) still link man pages into these folders.
        '--essential-hook=mkdir -p "$1/usr/share/man/man1" "$1/usr/share/man/man7"',
        *[f"--customize-hook={hook}" for hook in hooks],
        SUITE,
        "-",
        "http://deb.debian.org/debian",
        f"deb http://deb.debian.org/debian {SUITE}-updates main",
        f"deb http://deb.debian.org/debian-security {SUITE}-security main",
    ]
    fingerprint = hashlib.sha256()
    fingerprint.update((RECIPE_VERSION + "\0" + "\0".join(command)).encode())
    for ca in cas:
        fingerprint.update(ca.read_bytes())
    recipe = fingerprint.hexdigest()[:16]
    if up_to_date(cli, tag, recipe, rebuild):
        say(f"{tag}: up to date")
        return
    if not shutil.which("mmdebstrap"):
        raise ImageError("mmdebstrap is not installed (apt-get install mmdebstrap; container_engine.sh does it)")
    if os.geteuid() != 0:
        raise ImageError("building a Debian base with mmdebstrap --mode=root needs root")
    changes = [
        'CMD ["/bin/bash"]',
        "ENV LANG=C.UTF-8",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"LABEL {RECIPE_LABEL}={recipe}",
        "LABEL org.opencontainers.image.description=local stand-in built by backflush scripts/local_images.py",
    ]
    # Imported under a temporary name first: a tarball cut short by a failing mmdebstrap still imports fine, and
    # must never carry the real tag (the next run would take it for a finished image).
    staging_tag = f"{tag}-staging-{os.getpid()}"
    import_command = [cli, "import", *[arg for change in changes for arg in ("--change", change)], "-", staging_tag]
    STATE.mkdir(parents=True, exist_ok=True)
    log_path = STATE / f"mmdebstrap-{tag.rsplit('/', 1)[-1].replace(':', '-')}.log"
    started = time.monotonic()
    for attempt in range(1, 4):
        say(f"{tag}: mmdebstrap {SUITE} with {', '.join(packages)}{' + extra CAs' if cas else ''} (attempt {attempt})")
        with log_path.open("w") as log, tempfile.TemporaryFile() as import_output:
            debootstrap = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
            assert debootstrap.stdout is not None
            importer = subprocess.Popen(import_command, stdin=debootstrap.stdout, stdout=import_output,
                                        stderr=subprocess.STDOUT)
            debootstrap.stdout.close()  # the importer holds the only reader now
            try:
                importer.wait(timeout=900)
                debootstrap.wait(timeout=60)
            except subprocess.TimeoutExpired as exc:
                debootstrap.kill()
                importer.kill()
                raise ImageError(
                    f"{tag}: mmdebstrap | {cli} import took more than 15 minutes (log {log_path})"
                ) from exc
            import_output.seek(0)
            imported = import_output.read().decode(errors="replace")
        if debootstrap.returncode == 0 and importer.returncode == 0:
            previous = image_id(cli, tag)
            run([cli, "tag", staging_tag, tag], what=f"tagging {tag}")
            run([cli, "rmi", staging_tag], what=f"removing the name {staging_tag}")
            if previous and previous != image_id(cli, tag):
                # The image this one replaces, unless something still uses it (then the engine refuses).
                subprocess.run([cli, "rmi", previous], capture_output=True, timeout=120, check=False)
            say(f"{tag}: built in {time.monotonic() - started:.0f} s")
            return
        subprocess.run([cli, "rmi", "--force", staging_tag], capture_output=True, timeout=120, check=False)
        seen = log_path.read_text(errors="replace") + "\n" + imported
        if attempt < 3:
            say(f"{tag}: failed (mmdebstrap exit {debootstrap.returncode}, import exit {importer.returncode}), "
                f"retrying: {_tail(seen, 3)}")
            time.sleep(3 * attempt)
            continue
        raise ImageError(
            f"{tag}: mmdebstrap exit {debootstrap.returncode}, {cli} import exit {importer.returncode} "
            f"(log {log_path}):\n{_tail(seen)}"
        )


def python_base(cli: str, rebuild: bool) -> str:
    debian_base(cli, PYTHON_BASE, ["python3", "python3-venv", "python3-pip", "ca-certificates"],
                with_extra_cas=True, rebuild=rebuild)
    return PYTHON_BASE


def jvm_base(cli: str, rebuild: bool) -> str:
    debian_base(cli, JVM_BASE, ["openjdk-17-jre-headless"], with_extra_cas=False, rebuild=rebuild)
    return JVM_BASE


# ---------------------------------------------------------------------------------------------------- Kafka

_ENTRYPOINT = r"""#!/bin/sh
# Entrypoint of the local Kafka stand-in (scripts/local_images.py): the official apache/kafka image's contract.
# Every KAFKA_* environment variable (except the JVM ones) becomes a server.properties line: strip KAFKA_, lower
# case, `___` -> `-`, `__` -> `_`, `_` -> `.`. Without any, a single combined node on localhost:9092 is run. The
# storage is formatted on first start with CLUSTER_ID (else a fixed default), then the broker runs in foreground.
set -eu

KAFKA_HOME=/opt/kafka
CONFIG_DIR="${KAFKA_CONFIG_DIR:-/opt/kafka/config/run}"
PROPS="$CONFIG_DIR/server.properties"
mkdir -p "$CONFIG_DIR"

is_jvm_variable() {
    case "$1" in
        KAFKA_HEAP_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_OPTS|KAFKA_LOG4J_OPTS|KAFKA_GC_LOG_OPTS|KAFKA_JMX_OPTS|\
        KAFKA_DEBUG|KAFKA_HOME|KAFKA_VERSION|KAFKA_CONFIG_DIR|KAFKA_LOG4J_ROOT_LOGLEVEL|KAFKA_LOG4J_LOGGERS|\
        KAFKA_TOOLS_LOG4J_LOGLEVEL) return 0 ;;
    esac
    return 1
}

: >"$PROPS.tmp"
count=0
for name in $(env | sed -n 's/^\(KAFKA_[A-Za-z0-9_]*\)=.*/\1/p' | sort -u); do
    is_jvm_variable "$name" && continue
    key=$(printf '%s' "${name#KAFKA_}" | tr 'A-Z' 'a-z' \
        | sed -e 's/___/-/g' -e 's/__/\x01/g' -e 's/_/./g' -e 's/\x01/_/g')
    eval "value=\${$name}"
    printf '%s=%s\n' "$key" "$value" >>"$PROPS.tmp"
    count=$((count + 1))
done
if [ "$count" -eq 0 ]; then
    cat >"$PROPS.tmp" <<'EOF'
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
controller.quorum.voters=1@localhost:9093
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
EOF
fi
grep -q '^log\.dirs=' "$PROPS.tmp" || echo "log.dirs=/tmp/kraft-combined-logs" >>"$PROPS.tmp"
mv "$PROPS.tmp" "$PROPS"

LOG_DIRS=$(sed -n 's/^log\.dirs=//p' "$PROPS" | tail -n 1)
FIRST_DIR=${LOG_DIRS%%,*}
if [ ! -f "$FIRST_DIR/meta.properties" ]; then
    STANDALONE=""
    # A dynamic quorum (bootstrap servers, no static voters) is formatted as a standalone controller.
    if ! grep -q '^controller\.quorum\.voters=' "$PROPS" \
        && grep -q '^controller\.quorum\.bootstrap\.servers=' "$PROPS"; then
        STANDALONE="--standalone"
    fi
    echo "formatting $LOG_DIRS with cluster id ${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}"
    # `--cluster-id=ID`, not `-t ID`: a base64 id may start with "-" and would be read as an option.
    "$KAFKA_HOME/bin/kafka-storage.sh" format --ignore-formatted --cluster-id="${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" \
        --config "$PROPS" $STANDALONE
fi

# shellcheck disable=SC2086 # the *_OPTS variables are lists of flags
exec java ${KAFKA_HEAP_OPTS:--Xmx512m} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1} \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_HOME/config/log4j2.xml" ${KAFKA_OPTS:-} \
    -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$PROPS"
"""

_RUN_CLASS = r"""#!/bin/sh
# Runs a Kafka command-line tool's main class on the image's classpath (the stand-in for kafka-run-class.sh).
# Tools log warnings to stderr only, so their answers on stdout stay clean.
exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -Djava.awt.headless=true \
    -Dlog4j2.configurationFile=/opt/kafka/config/tools-log4j2.xml -cp "/opt/kafka/libs/*" "$@"
"""

# The wrappers the compose file (and people debugging a container) call, with their main classes.
_TOOLS = {
    "kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
    "kafka-broker-api-versions.sh": "org.apache.kafka.tools.BrokerApiVersionsCommand",
    "kafka-storage.sh": "kafka.tools.StorageTool",
    "kafka-console-producer.sh": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer.sh": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-consumer-groups.sh": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-get-offsets.sh": "org.apache.kafka.tools.GetOffsetShell",
}

_BROKER_LOG4J = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="STDOUT"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
  </Loggers>
</Configuration>
"""

_TOOLS_LOG4J = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="STDERR" target="SYSTEM_ERR"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console>
  </Appenders>
  <Loggers><Root level="WARN"><AppenderRef ref="STDERR"/></Root></Loggers>
</Configuration>
"""

_CONTAINERFILE = """# Written by scripts/local_images.py: Apache Kafka {version} from Maven Central jars, tests only.
FROM {base}
RUN groupadd --system --gid 1000 appuser \\
    && useradd --system --uid 1000 --gid appuser --home-dir /home/appuser --create-home appuser \\
    && mkdir -p /opt/kafka/config/run /tmp/kraft-combined-logs \\
    && chown appuser:appuser /opt/kafka/config/run /tmp/kraft-combined-logs
COPY libs/ /opt/kafka/libs/
COPY config/ /opt/kafka/config/
COPY bin/ /opt/kafka/bin/
RUN chmod 0755 /opt/kafka/bin/*
ENV KAFKA_HOME=/opt/kafka PATH=/opt/kafka/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL {label}={recipe} org.opencontainers.image.version={version}
USER appuser
WORKDIR /opt/kafka
EXPOSE 9092
ENTRYPOINT ["/opt/kafka/bin/entrypoint.sh"]
"""


def _kafka_tools_jar(version: str) -> Path:
    """The kafka-tools jar (TopicCommand, BrokerApiVersionsCommand, ...), not part of the broker's classpath.

    Only the jar itself: its own dependencies that the tools need (clients, server-common, argparse4j, jopt) are in
    the broker's classpath already, and the rest (Connect, Jetty, Jersey) is not needed by the tools we wrap.
    """
    target = STATE / f"kafka-tools-{version}"
    jar = target / f"kafka-tools-{version}.jar"
    if jar.is_file():
        return jar
    if not shutil.which("mvn"):
        raise ImageError("Maven (mvn) is needed once to fetch org.apache.kafka:kafka-tools from Maven Central")
    target.mkdir(parents=True, exist_ok=True)
    say(f"fetching org.apache.kafka:kafka-tools:{version} from Maven Central")
    run(["mvn", "-B", "-q", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact=org.apache.kafka:kafka-tools:{version}",
         f"-DoutputDirectory={target}"], what="mvn dependency:copy kafka-tools", cwd=str(target))
    if not jar.is_file():
        raise ImageError(f"Maven finished but {jar} is missing")
    return jar


def kafka_image(cli: str, rebuild: bool) -> str:
    version = kafka_version()
    tag = f"{KAFKA_REPO}:{version}"
    dist: KafkaDistribution = fetch_kafka(version, cache=cache_dir())
    tools_jar = _kafka_tools_jar(version)
    jars = sorted(dist.libs_dir.glob("*.jar")) + [tools_jar]
    files: dict[str, str] = {
        "bin/entrypoint.sh": _ENTRYPOINT,
        "bin/kafka-run-class.sh": _RUN_CLASS,
        "config/log4j2.xml": _BROKER_LOG4J,
        "config/tools-log4j2.xml": _TOOLS_LOG4J,
    }
    for script, main_class in _TOOLS.items():
        files[f"bin/{script}"] = f'#!/bin/sh\nexec /opt/kafka/bin/kafka-run-class.sh {main_class} "$@"\n'
    fingerprint = hashlib.sha256(RECIPE_VERSION.encode())
    for name in sorted(files):
        fingerprint.update(f"{name}\0{files[name]}\0".encode())
    for jar in jars:
        fingerprint.update(f"{jar.name}\0{jar.stat().st_size}\0".encode())
    fingerprint.update(_CONTAINERFILE.encode())
    # The base is part of the recipe: a rebuilt JVM base means a rebuilt Kafka image.
    fingerprint.update((image_recipe(cli, JVM_BASE) or "").encode())
    recipe = fingerprint.hexdigest()[:16]
    if up_to_date(cli, tag, recipe, rebuild):
        say(f"{tag}: up to date")
        return tag
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="backflush-kafka-image-") as context_dir:
        context = Path(context_dir)
        (context / "libs").mkdir()
        for jar in jars:
            # Hard links when the cache is on the same file system: nothing to copy.
            try:
                os.link(jar, context / "libs" / jar.name)
            except OSError:
                shutil.copy2(jar, context / "libs" / jar.name)
        for name, text in files.items():
            path = context / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        (context / "Containerfile").write_text(
            _CONTAINERFILE.format(version=version, base=JVM_BASE, label=RECIPE_LABEL, recipe=recipe), encoding="utf-8"
        )
        say(f"{tag}: building from {len(jars)} jars on {JVM_BASE}")
        # Never pull: the base exists locally (and no registry answers here). Docker format keeps HEALTHCHECK &co.
        build = [cli, "build", "--pull=false", "-t", tag, "-f", str(context / "Containerfile")]
        if cli == "podman":
            build.insert(2, "--format=docker")
        previous = image_id(cli, tag)
        run([*build, str(context)], what=f"building {tag}")
        if previous and previous != image_id(cli, tag):
            subprocess.run([cli, "rmi", previous], capture_output=True, timeout=120, check=False)
    say(f"{tag}: built in {time.monotonic() - started:.0f} s")
    return tag


# ----------------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="build even when an up-to-date image exists")
    parser.add_argument("--only", choices=("python", "jvm", "kafka"), action="append",
                        help="build only these (repeatable); kafka implies jvm")
    args = parser.parse_args(argv)
    wanted = set(args.only or ("python", "jvm", "kafka"))
    started = time.monotonic()
    try:
        cli = engine_cli()
        lines: list[str] = []
        with ThreadPoolExecutor(max_workers=2) as pool:
            # The two Debian bases are independent: mostly downloads, so they overlap well.
            python_job = pool.submit(python_base, cli, args.rebuild) if "python" in wanted else None
            jvm_job = pool.submit(jvm_base, cli, args.rebuild) if wanted & {"jvm", "kafka"} else None
            if jvm_job is not None:
                jvm_job.result()
                if "kafka" in wanted:
                    lines.append(f"export KAFKA_IMAGE={kafka_image(cli, args.rebuild)}")
            if python_job is not None:
                lines.insert(0, f"export PYTHON_IMAGE={python_job.result()}")
    except ImageError as exc:
        say(f"error: {exc}")
        return 1
    except Exception as exc:  # noqa: BLE001 - LocalKafkaError (Maven) and friends: one clear line
        say(f"error: {type(exc).__name__}: {exc}")
        return 1
    say(f"done in {time.monotonic() - started:.0f} s")
    for line in lines:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
