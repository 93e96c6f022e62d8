# stack-ha.sh - the --ha topology of scripts/stack (sourced by it, not run).
#
#   kafka-1..3      KRaft broker+controller each, quorum of three   ONSALE_HA_KAFKA_PORTS
#   postgres        primary                                         ONSALE_HA_PG_PORT
#   pg-replica      streaming replica (pg_basebackup, slot)          ONSALE_HA_PG_REPLICA_PORT
#   redis           AOF everysec                                    ONSALE_HA_REDIS_PORT
#   gateway         payment gateway simulator                       ONSALE_HA_GATEWAY_PORT
#   payments-1..2   payments relays (share the outbox by leases)    ONSALE_HA_PAYMENTS_METRICS_PORTS
#   worker-1..2     one consumer group                              ONSALE_HA_WORKER_METRICS_PORTS
#   ingress-1..2    behind haproxy                                  ONSALE_HA_INGRESS_PORTS
#   haproxy         TLS on ONSALE_HA_PUBLIC_PORT, plain on ONSALE_HA_INTERNAL_PORT
#   prometheus      ONSALE_HA_PROMETHEUS_PORT, rules in scripts/ha/rules.yml
#
# Topic: ONSALE_HA_PARTITIONS partitions, replication factor 3,
# min.insync.replicas 2 (the producers use acks=all). `scripts/stack --ha
# start NAME` / `stop NAME` start or stop one process (failure tests), e.g.
# `start worker-3` adds a third worker on the next free metrics port.
# Uses the helpers of scripts/stack (pid_alive, stop_pidfile, pg_up, ...).

HA_DIR=$ONSALE_ROOT/scripts/ha
HA_RUN=$RUN
HA_TLS=$ONSALE_STATE/tls
read -r -a HA_KPORTS <<< "$ONSALE_HA_KAFKA_PORTS"
read -r -a HA_CPORTS <<< "$ONSALE_HA_KAFKA_CONTROLLER_PORTS"
read -r -a HA_IPORTS <<< "$ONSALE_HA_INGRESS_PORTS"
read -r -a HA_WPORTS <<< "$ONSALE_HA_WORKER_METRICS_PORTS"
read -r -a HA_PPORTS <<< "$ONSALE_HA_PAYMENTS_METRICS_PORTS"
PG_REPLICA=$PGHOME/pg-replica

# --- Kafka: three brokers ------------------------------------------------------
ha_kafka_voters() {
    local i v=
    for i in "${!HA_CPORTS[@]}"; do v+=${v:+,}$((i + 1))@$ONSALE_HOST:${HA_CPORTS[$i]}; done
    echo "$v"
}
ha_kafka_config() { # node (1-based)
    local n=$1 d=$KDIR/kafka-$1
    mkdir -p "$d"
    cat > "$d/server.properties" <<CONF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(ha_kafka_voters)
listeners=PLAINTEXT://$ONSALE_HOST:${HA_KPORTS[$((n - 1))]},CONTROLLER://$ONSALE_HOST:${HA_CPORTS[$((n - 1))]}
advertised.listeners=PLAINTEXT://$ONSALE_HOST:${HA_KPORTS[$((n - 1))]}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$d/data
num.partitions=$ONSALE_PARTITIONS
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
replica.lag.time.max.ms=10000
CONF
    cat > "$d/log4j.properties" <<CONF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$LOGS/kafka-$n.log
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
CONF
}
# Writes the node's configuration and formats its log folder once.
ha_kafka_format() { # node
    local n=$1 d=$KDIR/kafka-$1
    ha_kafka_config "$n"
    [ -f "$KDIR/cluster.id" ] || kafka_java kafka.tools.StorageTool random-uuid > "$KDIR/cluster.id"
    if [ ! -f "$d/data/meta.properties" ]; then
        kafka_java kafka.tools.StorageTool format -t "$(cat "$KDIR/cluster.id")" \
            -c "$d/server.properties" >> "$LOGS/kafka-$n.out" 2>&1
    fi
}
ha_kafka_start() { # node
    local n=$1 d=$KDIR/kafka-$1
    if pid_alive "$RUN/kafka-$n.pid"; then log "kafka-$n: already running"; return 0; fi
    ha_kafka_format "$n"
    nohup java -Xms128m -Xmx"$ONSALE_KAFKA_HEAP" -XX:+UseG1GC -XX:TieredStopAtLevel=1 \
        -cp "$ONSALE_KAFKA_LIBS/*" -Dlog4j.configuration="file:$d/log4j.properties" \
        kafka.Kafka "$d/server.properties" >> "$LOGS/kafka-$n.out" 2>&1 < /dev/null &
    echo $! > "$RUN/kafka-$n.pid"
    log "kafka-$n: starting (pid $(cat "$RUN/kafka-$n.pid"))"
}
# Every partition has a leader and at least min.insync.replicas (2) in sync:
# joins can be acknowledged. (A broker restarted after a crash may take a
# while longer to catch up into the third replica; it does in the background.)
ha_kafka_topic_ready() {
    local meta t
    for t in "$ONSALE_TOPIC" "$ONSALE_CONTROL_TOPIC"; do
        meta=$(kcat -b "$ONSALE_KAFKA_BROKERS" -L -t "$t" -m 5 2>/dev/null) || return 1
        echo "$meta" | grep -q "topic \"$t\" with $ONSALE_PARTITIONS partitions" || return 1
        [ "$(echo "$meta" | awk '/partition [0-9]+, leader [0-9]+,/ && /isrs: [0-9]+,[0-9]+/' | wc -l)" = "$ONSALE_PARTITIONS" ] ||
            return 1
    done
}
ha_kafka_up() {
    [ -f "$ONSALE_KAFKA_LIBS/.complete" ] || die "Kafka jars missing: run scripts/setup"
    local n
    # the Kafka tools (StorageTool, TopicCommand) log through $KDIR/log4j.properties
    cat > "$KDIR/log4j.properties" <<CONF
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$LOGS/kafka-tools.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
CONF
    # one JVM per format: the three side by side (the cluster id first)
    [ -f "$KDIR/cluster.id" ] || kafka_java kafka.tools.StorageTool random-uuid > "$KDIR/cluster.id"
    for n in 1 2 3; do pid_alive "$RUN/kafka-$n.pid" || ha_kafka_format "$n" & done
    wait
    for n in 1 2 3; do ha_kafka_start "$n"; done
    # Deadlines in wall seconds, not loop counts: on a loaded box each kcat
    # call itself may take seconds.
    local end=$((SECONDS + ONSALE_HA_KAFKA_START_S)) ok=0
    while [ "$SECONDS" -lt "$end" ]; do
        if [ "$(kcat -b "$ONSALE_KAFKA_BROKERS" -L -m 5 2>/dev/null | grep -c '^  broker ')" = 3 ]; then
            ok=1
            break
        fi
        for n in 1 2 3; do pid_alive "$RUN/kafka-$n.pid" || die "kafka-$n exited; see $LOGS/kafka-$n.out"; done
        sleep 0.5
    done
    [ "$ok" = 1 ] || die "kafka: not three brokers after $ONSALE_HA_KAFKA_START_S s; see $LOGS/kafka-*.log"
    # the intents topic and its control lane, same partition count (docs/pipeline.md)
    local t
    for t in "$ONSALE_TOPIC" "$ONSALE_CONTROL_TOPIC"; do
        if ! kcat -b "$ONSALE_KAFKA_BROKERS" -L -t "$t" 2>/dev/null | grep -q "topic \"$t\" with [1-9]"; then
            kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$ONSALE_KAFKA_BROKERS" \
                --create --if-not-exists --topic "$t" --partitions "$ONSALE_PARTITIONS" \
                --replication-factor 3 --config min.insync.replicas=2 >> "$LOGS/kafka.out" 2>&1
            log "kafka: created topic $t ($ONSALE_PARTITIONS partitions, RF 3, min ISR 2)"
        fi
    done
    end=$((SECONDS + ONSALE_HA_KAFKA_START_S)) ok=0
    while [ "$SECONDS" -lt "$end" ]; do if ha_kafka_topic_ready; then ok=1; break; fi; sleep 0.5; done
    [ "$ok" = 1 ] ||
        die "kafka: topic $ONSALE_TOPIC has partitions without a leader or 2 in-sync replicas after $ONSALE_HA_KAFKA_START_S s"
    log "kafka: ready on $ONSALE_KAFKA_BROKERS"
}

# --- PostgreSQL: primary (pg_up of scripts/stack) + streaming replica ------------
ha_replica_ready() { "$ONSALE_PG_BIN/pg_isready" -q -h "$ONSALE_HOST" -p "$ONSALE_HA_PG_REPLICA_PORT"; }
ha_replica_up() {
    if [ ! -f "$PG_REPLICA/PG_VERSION" ]; then
        mkdir -p "$PG_REPLICA"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$PG_REPLICA"
        chmod 700 "$PG_REPLICA"
        local slot=()
        psql "host=$ONSALE_HOST port=$ONSALE_PG_PORT dbname=postgres user=postgres" -X -qtA \
            -c "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'onsale_replica'" | grep -q 1 ||
            slot=(-C)
        # --checkpoint=fast: the default (spread) waits out most of a
        # checkpoint_timeout on an idle primary (100 s here) before copying
        as_pg "$ONSALE_PG_BIN/pg_basebackup" -h "$ONSALE_HOST" -p "$ONSALE_PG_PORT" -U postgres \
            -D "$PG_REPLICA" -X stream -R "${slot[@]}" -S onsale_replica --checkpoint=fast \
            >> "$LOGS/postgres.out" 2>&1 ||
            die "pg_basebackup failed; see $LOGS/postgres.out"
        cat >> "$PG_REPLICA/postgresql.conf" <<CONF
# the streaming replica of the --ha stack
port = $ONSALE_HA_PG_REPLICA_PORT
hot_standby = on
hot_standby_feedback = on
shared_buffers = 256MB
max_standby_streaming_delay = 5s
CONF
        log "pg-replica: base backup taken into $PG_REPLICA"
    fi
    if ha_replica_ready; then log "pg-replica: already running"; return 0; fi
    local rlog=$PGHOME/pg-replica.log
    touch "$rlog"; [ "$(id -u)" -eq 0 ] && chown postgres: "$rlog"
    [ "$rlog" = "$LOGS/pg-replica.log" ] || ln -sfn "$rlog" "$LOGS/pg-replica.log"
    as_pg "$ONSALE_PG_BIN/pg_ctl" -D "$PG_REPLICA" -l "$rlog" -w -t 60 start >> "$LOGS/postgres.out" 2>&1 ||
        die "pg-replica failed to start; see $rlog"
    echo "$PG_REPLICA" > "$RUN/pg-replica.started"
    log "pg-replica: streaming on $ONSALE_HOST:$ONSALE_HA_PG_REPLICA_PORT"
}
ha_replica_down() {
    if [ -f "$RUN/pg-replica.started" ] && ha_replica_ready; then
        as_pg "$ONSALE_PG_BIN/pg_ctl" -D "$PG_REPLICA" -m fast -w stop >> "$LOGS/postgres.out" 2>&1 || true
        log "pg-replica: stopped"
    fi
    rm -f "$RUN/pg-replica.started"
}

# --- TLS, haproxy, Prometheus ----------------------------------------------------
# A self-signed certificate for local use (localhost and 127.0.0.1), made once.
ha_tls() {
    [ -s "$HA_TLS/onsale.pem" ] && return 0
    mkdir -p "$HA_TLS"
    (umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$HA_TLS/onsale.key" -out "$HA_TLS/onsale.crt" 2>> "$LOGS/haproxy.out") ||
        die "openssl could not make the certificate"
    (umask 077 && cat "$HA_TLS/onsale.crt" "$HA_TLS/onsale.key" > "$HA_TLS/onsale.pem")
    log "tls: self-signed certificate in $HA_TLS/onsale.crt"
}
# The token haproxy adds to every request: an ingress node believes
# X-Forwarded-For only next to it (http.proxy_token).
ha_proxy_token() {
    [ -s "$ONSALE_STATE/proxy.token" ] || (umask 077 && rand_hex > "$ONSALE_STATE/proxy.token")
    cat "$ONSALE_STATE/proxy.token"
}
ha_render() { # template output
    local servers= i targets_i= targets_w= targets_p=
    for i in "${!HA_IPORTS[@]}"; do
        servers+="    server ingress-$((i + 1)) $ONSALE_HOST:${HA_IPORTS[$i]} check"$'\n'
        targets_i+="${targets_i:+, }'$ONSALE_HOST:${HA_IPORTS[$i]}'"
    done
    for i in "${!HA_WPORTS[@]}"; do targets_w+="${targets_w:+, }'$ONSALE_HOST:${HA_WPORTS[$i]}'"; done
    # a third worker (failure tests) is scraped on the next port
    local spare="'$ONSALE_HOST:$(ha_extra_port "${HA_WPORTS[@]}")'"
    for i in "${!HA_PPORTS[@]}"; do targets_p+="${targets_p:+, }'$ONSALE_HOST:${HA_PPORTS[$i]}'"; done
    HA_RUN=$RUN HA_TLS=$HA_TLS HA_PROXY_TOKEN=$(ha_proxy_token) HA_INGRESS_SERVERS=$servers \
        HA_INGRESS_TARGETS=$targets_i HA_WORKER_TARGETS=$targets_w HA_PAYMENTS_TARGETS=$targets_p HA_SPARE_TARGETS=$spare \
        HA_RULES=$HA_DIR/rules.yml ONSALE_HOST=$ONSALE_HOST envsubst < "$1" > "$2"
}
# The port after the last of a list of ports spaced evenly (29101 29111 -> 29121).
ha_extra_port() {
    local n=$# last=${!#}
    if [ "$n" -ge 2 ]; then echo $((last + last - ${@: -2:1})); else echo $((last + 1)); fi
}
ha_haproxy_up() {
    if pid_alive "$RUN/haproxy.pid"; then log "haproxy: already running"; return 0; fi
    ha_tls
    ha_render "$HA_DIR/haproxy.cfg.in" "$ONSALE_STATE/haproxy.cfg"
    haproxy -c -q -f "$ONSALE_STATE/haproxy.cfg" >> "$LOGS/haproxy.out" 2>&1 ||
        die "haproxy.cfg does not check; see $LOGS/haproxy.out"
    nohup haproxy -db -f "$ONSALE_STATE/haproxy.cfg" >> "$LOGS/haproxy.log" 2>&1 < /dev/null &
    echo $! > "$RUN/haproxy.pid"
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null --cacert "$HA_TLS/onsale.crt" "https://$ONSALE_HOST:$ONSALE_HA_PUBLIC_PORT/readyz" 2>/dev/null && break
        sleep 0.1
    done
    curl -fsS -o /dev/null --cacert "$HA_TLS/onsale.crt" "https://$ONSALE_HOST:$ONSALE_HA_PUBLIC_PORT/readyz" ||
        die "haproxy: no ready ingress behind https://$ONSALE_HOST:$ONSALE_HA_PUBLIC_PORT; see $LOGS/haproxy.log"
    log "haproxy: https://$ONSALE_HOST:$ONSALE_HA_PUBLIC_PORT (plain for this box: :$ONSALE_HA_INTERNAL_PORT)"
}
ha_prometheus_up() {
    if pid_alive "$RUN/prometheus.pid"; then log "prometheus: already running"; return 0; fi
    command -v prometheus >/dev/null || die "prometheus missing: run scripts/setup"
    ha_render "$HA_DIR/prometheus.yml.in" "$ONSALE_STATE/prometheus.yml"
    promtool check config "$ONSALE_STATE/prometheus.yml" >> "$LOGS/prometheus.out" 2>&1 ||
        die "prometheus.yml does not check; see $LOGS/prometheus.out"
    mkdir -p "$ONSALE_STATE/prometheus"
    nohup prometheus --config.file="$ONSALE_STATE/prometheus.yml" \
        --storage.tsdb.path="$ONSALE_STATE/prometheus" --storage.tsdb.retention.time=7d \
        --web.listen-address="$ONSALE_HOST:$ONSALE_HA_PROMETHEUS_PORT" --log.format=json \
        >> "$LOGS/prometheus.log" 2>&1 < /dev/null &
    echo $! > "$RUN/prometheus.pid"
    for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://$ONSALE_HOST:$ONSALE_HA_PROMETHEUS_PORT/-/ready" 2>/dev/null && break; sleep 0.2; done
    curl -fsS -o /dev/null "http://$ONSALE_HOST:$ONSALE_HA_PROMETHEUS_PORT/-/ready" ||
        die "prometheus not ready; see $LOGS/prometheus.log"
    log "prometheus: http://$ONSALE_HOST:$ONSALE_HA_PROMETHEUS_PORT"
}

# --- Onsale processes ------------------------------------------------------------
HA_PROCS=(gateway payments-1 payments-2 worker-1 worker-2 ingress-1 ingress-2)
ha_proc_start() { # name
    local name=$1 kind=${1%-*} n=${1##*-} bin url=- env=()
    [ "$name" = gateway ] && kind=gateway
    case "$kind" in
    gateway) bin=onsale-gateway; url=http://$ONSALE_HOST:$ONSALE_HA_GATEWAY_PORT/healthz ;;
    payments) bin=onsale-payments
        env=(ONSALE_METRICS_PORT="$(ha_nth_port "$n" "${HA_PPORTS[@]}")"
             ONSALE_PAYMENTS_GATEWAY_URL="http://$ONSALE_HOST:$ONSALE_HA_GATEWAY_PORT") ;;
    worker) bin=onsale-worker
        # a dead worker's partitions move after the session timeout (6 s)
        env=(ONSALE_METRICS_PORT="$(ha_nth_port "$n" "${HA_WPORTS[@]}")" ONSALE_WORKER_ID="$name"
             ONSALE_KAFKA_SESSION_TIMEOUT_MS="${ONSALE_KAFKA_SESSION_TIMEOUT_MS:-6000}") ;;
    ingress) bin=onsale-ingress
        local port; port=$(ha_nth_port "$n" "${HA_IPORTS[@]}")
        url=http://$ONSALE_HOST:$port/readyz
        env=(ONSALE_HTTP_PORT="$port" ONSALE_PG_READ_DSN="$ONSALE_PG_READ_DSN"
             ONSALE_PG_READ_MAX_LAG_MS="$ONSALE_HA_REPLICA_MAX_LAG_MS"
             ONSALE_HTTP_PROXY_TOKEN="$(ha_proxy_token)" ONSALE_CLIENT_TRUSTED_PROXIES="$ONSALE_HOST"
             ONSALE_OPS_PROMETHEUS_URL="http://$ONSALE_HOST:$ONSALE_HA_PROMETHEUS_PORT") ;;
    *) die "unknown process $name (gateway, payments-N, worker-N, ingress-N)" ;;
    esac
    [ -x "$ONSALE_BUILD/bin/$bin" ] || die "$name: not built ($ONSALE_BUILD/bin/$bin)"
    if pid_alive "$RUN/$name.pid"; then log "$name: already running"; return 0; fi
    # ONSALE_HA_FAKETIME_<NAME> (e.g. ONSALE_HA_FAKETIME_INGRESS_2="+5m") runs
    # the process under libfaketime: a node whose clock is off.
    local fk=ONSALE_HA_FAKETIME_${name//-/_}; fk=${fk^^}
    env+=(ONSALE_LOG_INTENTS=true)  # every intent's trail in the logs (docs/scaling.md)
    local pre=()
    [ -n "${!fk:-}" ] && pre=(env FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "${!fk}")
    env "${env[@]}" nohup "${pre[@]}" "$ONSALE_BUILD/bin/$bin" \
        >> "$LOGS/$name.log" 2>&1 < /dev/null &
    echo $! > "$RUN/$name.pid"
    if [ "$url" != - ]; then
        for _ in $(seq 1 150); do curl -fsS -o /dev/null "$url" 2>/dev/null && break; sleep 0.1; done
        curl -fsS -o /dev/null "$url" || die "$name not ready at $url; see $LOGS/$name.log"
    fi
    sleep 0.2
    pid_alive "$RUN/$name.pid" || die "$name exited at start; see $LOGS/$name.log"
    log "$name: running (pid $(cat "$RUN/$name.pid"))"
}
# The n-th port of a list; past its end, evenly spaced further ports.
ha_nth_port() { # n ports...
    local n=$1; shift
    local ports=("$@")
    while [ "${#ports[@]}" -lt "$n" ]; do ports+=("$(ha_extra_port "${ports[@]}")"); done
    echo "${ports[$((n - 1))]}"
}
ha_procs_down() {
    local pf name
    stop_pidfile prometheus "$RUN/prometheus.pid" 15
    stop_pidfile haproxy "$RUN/haproxy.pid" 10
    for pf in "$RUN"/ingress-*.pid "$RUN"/worker-*.pid "$RUN"/payments-*.pid "$RUN"/gateway.pid; do
        [ -e "$pf" ] || continue
        name=$(basename "$pf" .pid)
        stop_pidfile "$name" "$pf" 15
    done
}

ha_up() {
    ha_tls
    redis_up; pg_up; ha_replica_up; ha_kafka_up
    local p f
    # each stack start begins fresh logs of the processes it starts (the
    # previous run's stay as NAME.log.1)
    for f in "$LOGS"/{gateway,payments-*,worker-*,ingress-*,haproxy}.log; do
        [ -e "$f" ] || continue
        p=$(basename "$f" .log)
        pid_alive "$RUN/$p.pid" || mv -f "$f" "$f.1"
    done
    for p in "${HA_PROCS[@]}"; do ha_proc_start "$p"; done
    ha_haproxy_up
    ha_prometheus_up
    log "ha stack is up: https://$ONSALE_HOST:$ONSALE_HA_PUBLIC_PORT (certificate $HA_TLS/onsale.crt)"
}
ha_down() {
    ha_procs_down
    local n
    # all brokers at once: one by one, the last would wait for a quorum
    # that is gone before it gives up
    for n in 1 2 3; do stop_pidfile "kafka-$n" "$RUN/kafka-$n.pid" 60 & done
    wait
    redis_down; ha_replica_down; pg_down
    log "ha stack is down"
}
ha_status() {
    local ok=1 s n pf name
    for n in 1 2 3; do
        pid_alive "$RUN/kafka-$n.pid" && s=1 || { s=0; ok=0; }
        status_line "kafka-$n" "$s" "$ONSALE_HOST:${HA_KPORTS[$((n - 1))]}"
    done
    pg_ready && s=1 || { s=0; ok=0; }; status_line postgres "$s" "$ONSALE_HOST:$ONSALE_PG_PORT"
    ha_replica_ready && s=1 || { s=0; ok=0; }; status_line pg-replica "$s" "$ONSALE_HOST:$ONSALE_HA_PG_REPLICA_PORT"
    redis_ready && s=1 || { s=0; ok=0; }; status_line redis "$s" "$ONSALE_HOST:$ONSALE_REDIS_PORT"
    for name in "${HA_PROCS[@]}" haproxy prometheus; do
        pid_alive "$RUN/$name.pid" && s=1 || { s=0; ok=0; }
        status_line "$name" "$s" "$(pid_alive "$RUN/$name.pid" && echo "pid $(cat "$RUN/$name.pid")")"
    done
    for pf in "$RUN"/worker-*.pid "$RUN"/ingress-*.pid "$RUN"/payments-*.pid; do
        [ -e "$pf" ] || continue
        name=$(basename "$pf" .pid)
        case " ${HA_PROCS[*]} " in *" $name "*) continue ;; esac
        pid_alive "$pf" && s=1 || s=0
        status_line "$name" "$s" "(extra)"
    done
    [ "$ok" = 1 ]
}
# The settings a client of this stack needs (onsale-sim, onsalectl, tests),
# as shell assignments: eval "$(scripts/stack --ha env)".
ha_env() {
    local k
    for k in ONSALE_KAFKA_BROKERS ONSALE_KAFKA_TOPIC ONSALE_KAFKA_CONTROL_TOPIC ONSALE_PG_DSN ONSALE_PG_READ_DSN \
        ONSALE_REDIS_HOST ONSALE_REDIS_PORT ONSALE_AUTH_SECRET ONSALE_IDS_SECRET \
        ONSALE_GATEWAY_API_KEY ONSALE_PAYMENTS_API_KEY ONSALE_STATE ONSALE_PARTITIONS "${!ONSALE_HA_@}"; do
        printf 'export %s=%q\n' "$k" "${!k}"
    done
    printf 'export ONSALE_HA_URL=%q ONSALE_HA_INTERNAL_URL=%q ONSALE_HA_CA=%q ONSALE_HA_PROXY_TOKEN=%q\n' \
        "https://localhost:$ONSALE_HA_PUBLIC_PORT" "http://$ONSALE_HOST:$ONSALE_HA_INTERNAL_PORT" \
        "$HA_TLS/onsale.crt" "$(ha_proxy_token)"
}
ha_start() { # name
    case "$1" in
    kafka-[0-9]) ha_kafka_start "${1#kafka-}" ;;
    pg-replica) ha_replica_up ;;
    haproxy) ha_haproxy_up ;;
    prometheus) ha_prometheus_up ;;
    *) ha_proc_start "$1" ;;
    esac
}
ha_stop() { # name
    case "$1" in
    pg-replica) ha_replica_down ;;
    *) stop_pidfile "$1" "$RUN/$1.pid" "${2:-30}" ;;
    esac
}
