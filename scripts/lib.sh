# lib.sh - shared settings for scripts/*: folders, ports, versions.
# Sourced, not run. Every setting can be overridden from the environment;
# the defaults keep all services on 127.0.0.1 and off their usual ports so a
# developer's own PostgreSQL/Redis/Kafka are never touched.

ONSALE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The production topology on one box (`scripts/stack up --ha`, docs/scaling.md):
# three Kafka brokers, PostgreSQL primary + streaming replica, two ingress nodes
# behind haproxy (TLS), two workers, two payments relays, Prometheus; the links
# to Kafka, PostgreSQL and Redis run over TLS (ONSALE_HA_TLS_LINKS). Its ports
# differ from the single-node stack's so both run side by side; its state lives
# in .state/ha. ONSALE_HA=1 (set by `scripts/stack --ha`) makes the settings
# below the ones every script and binary uses, whatever the environment holds
# for the single-node stack.
: "${ONSALE_HA_STATE:=$ONSALE_ROOT/.state/ha}"
: "${ONSALE_HA_KAFKA_PORTS:=29092 29094 29096}"             # broker listeners, one per node
: "${ONSALE_HA_KAFKA_CONTROLLER_PORTS:=29093 29095 29097}"  # the KRaft quorum
: "${ONSALE_HA_PG_PORT:=25432}"                             # primary
: "${ONSALE_HA_PG_REPLICA_PORT:=25433}"                     # streaming replica
: "${ONSALE_HA_REDIS_PORT:=26379}"     # where the processes reach Redis (with TLS links: the local tunnel)
: "${ONSALE_HA_REDIS_TLS_PORT:=26380}" # redis-server's TLS port (TLS links only; its plain port is closed)
# 1: every link to Kafka, PostgreSQL and Redis over TLS, checked against the
# stack's own CA (.state/ha/tls/ca.crt; docs/security.md "Links between the
# processes"); 0: plaintext links (the topology before TLS links, for comparison)
: "${ONSALE_HA_TLS_LINKS:=1}"
: "${ONSALE_HA_PUBLIC_PORT:=28443}"     # haproxy, TLS: the public port
: "${ONSALE_HA_PLAIN_PORT:=28080}"      # haproxy, plain http: redirects to https
: "${ONSALE_HA_INTERNAL_PORT:=28088}"   # haproxy, plain http for clients on this box (onsale-sim)
: "${ONSALE_HA_HAPROXY_STATS_PORT:=28404}"  # haproxy's own /metrics and /stats
: "${ONSALE_HA_INGRESS_PORTS:=28081 28082}"
: "${ONSALE_HA_WORKER_METRICS_PORTS:=29101 29111}"
: "${ONSALE_HA_PAYMENTS_METRICS_PORTS:=29102 29112}"
: "${ONSALE_HA_GATEWAY_PORT:=29300}"
: "${ONSALE_HA_PROMETHEUS_PORT:=29090}"
: "${ONSALE_HA_PARTITIONS:=8}"
: "${ONSALE_HA_KAFKA_HEAP:=384m}"
: "${ONSALE_HA_KAFKA_START_S:=240}"   # brokers up and the topic led, at most (a loaded box is slow)
: "${ONSALE_HA_REPLICA_MAX_LAG_MS:=1000}"  # reads go to the replica only this fresh
: "${ONSALE_HA_HAPROXY_MAXCONN:=8000}"     # haproxy needs 2 files per connection (ulimit -n)
if [ "${ONSALE_HA:-0}" = 1 ]; then
    ONSALE_STATE=$ONSALE_HA_STATE
    ONSALE_KAFKA_PORT=${ONSALE_HA_KAFKA_PORTS%% *}
    ONSALE_KAFKA_CONTROLLER_PORT=${ONSALE_HA_KAFKA_CONTROLLER_PORTS%% *}
    ONSALE_PG_PORT=$ONSALE_HA_PG_PORT
    ONSALE_REDIS_PORT=$ONSALE_HA_REDIS_PORT
    ONSALE_INGRESS_PORT=$ONSALE_HA_PUBLIC_PORT
    ONSALE_GATEWAY_PORT=$ONSALE_HA_GATEWAY_PORT
    ONSALE_WORKER_METRICS_PORT=${ONSALE_HA_WORKER_METRICS_PORTS%% *}
    ONSALE_PAYMENTS_METRICS_PORT=${ONSALE_HA_PAYMENTS_METRICS_PORTS%% *}
    ONSALE_PARTITIONS=$ONSALE_HA_PARTITIONS
    ONSALE_KAFKA_HEAP=$ONSALE_HA_KAFKA_HEAP
    ONSALE_KAFKA_BROKERS=
    for _p in $ONSALE_HA_KAFKA_PORTS; do ONSALE_KAFKA_BROKERS+=${ONSALE_KAFKA_BROKERS:+,}127.0.0.1:$_p; done
    ONSALE_PG_DSN="host=127.0.0.1 port=$ONSALE_HA_PG_PORT dbname=onsale user=postgres connect_timeout=5"
    ONSALE_PG_READ_DSN="host=127.0.0.1 port=$ONSALE_HA_PG_REPLICA_PORT dbname=onsale user=postgres connect_timeout=2"
    ONSALE_REDIS_HOST=127.0.0.1
    if [ "$ONSALE_HA_TLS_LINKS" = 1 ]; then
        # libpq: TLS required, the server's certificate signed by the stack's
        # CA and naming the host dialled; librdkafka: the same for the brokers
        _ca=$ONSALE_HA_STATE/tls/ca.crt
        ONSALE_PG_DSN+=" sslmode=verify-full sslrootcert='$_ca'"
        ONSALE_PG_READ_DSN+=" sslmode=verify-full sslrootcert='$_ca'"
        ONSALE_KAFKA_SECURITY_PROTOCOL=ssl ONSALE_KAFKA_SSL_CA_LOCATION=$_ca
    else
        ONSALE_KAFKA_SECURITY_PROTOCOL=plaintext ONSALE_KAFKA_SSL_CA_LOCATION=
    fi
    export ONSALE_PG_READ_DSN ONSALE_KAFKA_SECURITY_PROTOCOL ONSALE_KAFKA_SSL_CA_LOCATION "${!ONSALE_HA_@}"
fi
: "${ONSALE_STATE:=$ONSALE_ROOT/.state}"   # data, logs, pids (git-ignored)
: "${ONSALE_DEPS:=$ONSALE_ROOT/.deps}"     # fetched Kafka jars (git-ignored)
: "${ONSALE_BUILD:=$ONSALE_ROOT/build}"

: "${ONSALE_HOST:=127.0.0.1}"
: "${ONSALE_KAFKA_PORT:=19092}"
: "${ONSALE_KAFKA_CONTROLLER_PORT:=19093}"
: "${ONSALE_PG_PORT:=15432}"
: "${ONSALE_REDIS_PORT:=16379}"
: "${ONSALE_INGRESS_PORT:=8080}"
: "${ONSALE_GATEWAY_PORT:=9300}"   # payment gateway simulator
: "${ONSALE_WORKER_METRICS_PORT:=9101}"
: "${ONSALE_PAYMENTS_METRICS_PORT:=9102}"
: "${ONSALE_PARTITIONS:=4}"
: "${ONSALE_KAFKA_HEAP:=768m}"
: "${ONSALE_TOPIC:=intents}"
: "${ONSALE_CONTROL_TOPIC:=$ONSALE_TOPIC.control}"  # the control lane (docs/pipeline.md)

ONSALE_KAFKA_VERSION=3.9.1
ONSALE_KAFKA_LIBS="$ONSALE_DEPS/kafka-$ONSALE_KAFKA_VERSION/libs"
ONSALE_PG_BIN=/usr/lib/postgresql/15/bin

# The connection settings the Onsale binaries read (see each binary's --help).
export ONSALE_KAFKA_BROKERS="${ONSALE_KAFKA_BROKERS:-$ONSALE_HOST:$ONSALE_KAFKA_PORT}"
export ONSALE_PG_DSN="${ONSALE_PG_DSN:-host=$ONSALE_HOST port=$ONSALE_PG_PORT dbname=onsale user=postgres connect_timeout=5}"
export ONSALE_REDIS_HOST="${ONSALE_REDIS_HOST:-$ONSALE_HOST}"
export ONSALE_REDIS_PORT ONSALE_PG_PORT ONSALE_KAFKA_PORT ONSALE_INGRESS_PORT ONSALE_PARTITIONS
export ONSALE_GATEWAY_PORT ONSALE_WORKER_METRICS_PORT ONSALE_PAYMENTS_METRICS_PORT ONSALE_KAFKA_CONTROLLER_PORT
export ONSALE_KAFKA_TOPIC="$ONSALE_TOPIC"
export ONSALE_KAFKA_CONTROL_TOPIC="$ONSALE_CONTROL_TOPIC"

# The local stack's secrets (docs/security.md): random per stack, made once
# into $ONSALE_STATE/secrets.env (mode 0600, wiped by `scripts/stack reset`)
# and exported, so every process of the stack, onsale-sim and onsalectl
# agree without any development default (the binaries refuse those unless
# ONSALE_DEV_MODE=1). A value already in the environment wins.
ONSALE_SECRETS_FILE=$ONSALE_STATE/secrets.env
rand_hex() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
stack_secrets() {
    if [ ! -s "$ONSALE_SECRETS_FILE" ]; then
        mkdir -p "$ONSALE_STATE"
        local gw tmp=$ONSALE_SECRETS_FILE.$$
        gw=sk_local_$(rand_hex)
        (umask 077 && printf '%s\n' "ONSALE_AUTH_SECRET=jwt-$(rand_hex)" "ONSALE_IDS_SECRET=ids-$(rand_hex)" \
            "ONSALE_GATEWAY_API_KEY=$gw" "ONSALE_PAYMENTS_API_KEY=$gw" > "$tmp") &&
            mv "$tmp" "$ONSALE_SECRETS_FILE"
    fi
    # Keys added after the file was made are appended to it (tickets.secret).
    grep -q '^ONSALE_TICKETS_SECRET=' "$ONSALE_SECRETS_FILE" ||
        printf '%s\n' "ONSALE_TICKETS_SECRET=tix-$(rand_hex)" >> "$ONSALE_SECRETS_FILE"
    local k v
    while IFS='=' read -r k v; do
        case "$k" in ONSALE_[A-Z_]*) [ -n "${!k:-}" ] || export "$k=$v" ;; esac
    done < "$ONSALE_SECRETS_FILE"
}

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }
