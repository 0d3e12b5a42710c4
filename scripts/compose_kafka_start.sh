#!/bin/sh
# Entrypoint of docker-compose.yml's broker (mounted read-only): formats the KRaft storage on first start with the
# SCRAM-SHA-512 credentials of every principal (KRaft keeps them in its metadata from then on), then hands over to
# the image's own entrypoint, which writes server.properties from the KAFKA_* variables and runs the broker.
# Works with the official apache/kafka image and with the local stand-in of scripts/local_images.py.
#
# SCRAM_CREDENTIALS: "name=password name=password ..." (docker-compose.yml builds it from the generated .env).
set -eu

: "${SCRAM_CREDENTIALS:?no SCRAM_CREDENTIALS: run scripts/compose_secrets.py generate (make up does)}"
KAFKA_HOME=/opt/kafka
PROPS=/tmp/backflush-format.properties

# The same KAFKA_* -> property translation as the images (strip KAFKA_, lower case, ___ -> -, __ -> _, _ -> .).
: >"$PROPS"
for name in $(env | sed -n 's/^\(KAFKA_[A-Za-z0-9_]*\)=.*/\1/p' | sort -u); do
    case "$name" in
        KAFKA_HEAP_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_OPTS|KAFKA_LOG4J_OPTS|KAFKA_GC_LOG_OPTS|KAFKA_JMX_OPTS|\
        KAFKA_DEBUG|KAFKA_HOME|KAFKA_VERSION|KAFKA_CONFIG_DIR|KAFKA_LOG4J_ROOT_LOGLEVEL|KAFKA_LOG4J_LOGGERS|\
        KAFKA_TOOLS_LOG4J_LOGLEVEL) continue ;;
    esac
    key=$(printf '%s' "${name#KAFKA_}" | tr 'A-Z' 'a-z' \
        | sed -e 's/___/-/g' -e 's/__/\x01/g' -e 's/_/./g' -e 's/\x01/_/g')
    eval "value=\${$name}"
    printf '%s=%s\n' "$key" "$value" >>"$PROPS"
done

LOG_DIR=${KAFKA_LOG_DIRS%%,*}
if [ ! -f "$LOG_DIR/meta.properties" ]; then
    set --
    users=""
    for credential in $SCRAM_CREDENTIALS; do
        set -- "$@" --add-scram "SCRAM-SHA-512=[name=${credential%%=*},password=${credential#*=}]"
        users="$users ${credential%%=*}"
    done
    echo "formatting $LOG_DIR with cluster id $CLUSTER_ID and the SCRAM-SHA-512 credentials of:$users"
    "$KAFKA_HOME/bin/kafka-storage.sh" format --cluster-id="$CLUSTER_ID" --config "$PROPS" "$@" >/dev/null
fi
rm -f "$PROPS"

# What the healthcheck and people debugging the container use to talk to the broker as its super user.
umask 077
cat >/tmp/backflush-admin.properties <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_SSL_TRUSTSTORE_LOCATION
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$BROKER_PASSWORD";
PROPERTIES
umask 022

unset SCRAM_CREDENTIALS
for entrypoint in /etc/kafka/docker/run /opt/kafka/bin/entrypoint.sh; do
    [ -x "$entrypoint" ] && exec "$entrypoint"
done
echo "error: neither /etc/kafka/docker/run nor /opt/kafka/bin/entrypoint.sh in this image" >&2
exit 1
