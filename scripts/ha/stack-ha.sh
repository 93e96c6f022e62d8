# stack-ha.sh - the --ha topology of scripts/stack (sourced by it, not run).
#
#   kafka-1..3      KRaft broker+controller each, quorum of three   ONSALE_HA_KAFKA_PORTS
#   postgres        primary                                         ONSALE_HA_PG_PORT
#   pg-replica      streaming replica (pg_basebackup, slot)          ONSALE_HA_PG_REPLICA_PORT
#   redis           AOF everysec; TLS only                          ONSALE_HA_REDIS_TLS_PORT
#                   (ONSALE_HA_TLS_LINKS=0: plain on ONSALE_HA_REDIS_PORT)
#   redis-tunnel    haproxy (tcp): plain in on loopback, TLS out     ONSALE_HA_REDIS_PORT
#                   to Redis (hiredis 0.14 speaks no TLS)
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
#
# Links (ONSALE_HA_TLS_LINKS=1, the default): every connection to Kafka
# (clients, brokers to brokers, the KRaft quorum), PostgreSQL (clients and
# the replica's stream) and Redis runs over TLS with certificates of the
# stack's own CA (.state/ha/tls/ca.crt), checked by name; no plaintext port
# is left open on them. ONSALE_HA_TLS_LINKS=0 runs them plain (the same
# processes, only the links differ). docs/security.md "Links between the
# processes".
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
# The listeners' security protocol: SSL with TLS links (clients, the brokers'
# replication and the KRaft quorum alike), else PLAINTEXT.
ha_kafka_proto() { if [ "$ONSALE_HA_TLS_LINKS" = 1 ]; then echo SSL; else echo PLAINTEXT; fi; }
# kcat against the brokers, as the Onsale processes reach them.
ha_kcat() {
    if [ "$ONSALE_HA_TLS_LINKS" = 1 ]; then
        kcat -X security.protocol=ssl -X ssl.ca.location="$HA_TLS/ca.crt" "$@"
    else
        kcat "$@"
    fi
}
# The Kafka tools' client settings (TopicCommand --command-config).
ha_kafka_client_properties() {
    if [ "$ONSALE_HA_TLS_LINKS" = 1 ]; then
        printf '%s\n' security.protocol=SSL ssl.truststore.type=PEM "ssl.truststore.location=$HA_TLS/ca.crt"
    else
        echo security.protocol=PLAINTEXT
    fi > "$KDIR/client.properties"
}
ha_kafka_voters() {
    local i v=
    for i in "${!HA_CPORTS[@]}"; do v+=${v:+,}$((i + 1))@$ONSALE_HOST:${HA_CPORTS[$i]}; done
    echo "$v"
}
ha_kafka_config() { # node (1-based)
    local n=$1 d=$KDIR/kafka-$1 p
    p=$(ha_kafka_proto)
    mkdir -p "$d"
    cat > "$d/server.properties" <<CONF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(ha_kafka_voters)
listeners=$p://$ONSALE_HOST:${HA_KPORTS[$((n - 1))]},CONTROLLER://$ONSALE_HOST:${HA_CPORTS[$((n - 1))]}
advertised.listeners=$p://$ONSALE_HOST:${HA_KPORTS[$((n - 1))]}
controller.listener.names=CONTROLLER
listener.security.protocol.map=$p:$p,CONTROLLER:$p
inter.broker.listener.name=$p
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
    # TLS: the broker's key and certificate (PEM, unencrypted key: the file
    # is mode 0600), the stack's CA for the brokers it dials; no client
    # certificates asked; host names checked (Kafka's default, https)
    if [ "$p" = SSL ]; then cat >> "$d/server.properties"; fi <<CONF
ssl.keystore.type=PEM
ssl.keystore.location=$HA_TLS/kafka.pem
ssl.truststore.type=PEM
ssl.truststore.location=$HA_TLS/ca.crt
ssl.client.auth=none
ssl.endpoint.identification.algorithm=https
ssl.enabled.protocols=TLSv1.2,TLSv1.3
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
        meta=$(ha_kcat -b "$ONSALE_KAFKA_BROKERS" -L -t "$t" -m 5 2>/dev/null) || return 1
        echo "$meta" | grep -q "topic \"$t\" with $ONSALE_PARTITIONS partitions" || return 1
        [ "$(echo "$meta" | awk '/partition [0-9]+, leader [0-9]+,/ && /isrs: [0-9]+,[0-9]+/' | wc -l)" = "$ONSALE_PARTITIONS" ] ||
            return 1
    done
}
ha_kafka_up() {
    [ -f "$ONSALE_KAFKA_LIBS/.complete" ] || die "Kafka jars missing: run scripts/setup"
    local n
    ha_kafka_client_properties
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
    # (waiting for these three only: the redis-tunnel runs in the background too)
    local formats=()
    for n in 1 2 3; do
        pid_alive "$RUN/kafka-$n.pid" || ha_kafka_format "$n" &
        formats+=($!)
    done
    wait "${formats[@]}"
    for n in 1 2 3; do ha_kafka_start "$n"; done
    # Deadlines in wall seconds, not loop counts: on a loaded box each kcat
    # call itself may take seconds.
    local end=$((SECONDS + ONSALE_HA_KAFKA_START_S)) ok=0
    while [ "$SECONDS" -lt "$end" ]; do
        if [ "$(ha_kcat -b "$ONSALE_KAFKA_BROKERS" -L -m 5 2>/dev/null | grep -c '^  broker ')" = 3 ]; then
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
        if ! ha_kcat -b "$ONSALE_KAFKA_BROKERS" -L -t "$t" 2>/dev/null | grep -q "topic \"$t\" with [1-9]"; then
            kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$ONSALE_KAFKA_BROKERS" \
                --command-config "$KDIR/client.properties" --create --if-not-exists --topic "$t" --partitions "$ONSALE_PARTITIONS" \
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
        # (no -R: ha_pg_links writes the standby's settings before each start)
        local ci="host=$ONSALE_HOST port=$ONSALE_PG_PORT user=postgres"
        [ "$ONSALE_HA_TLS_LINKS" = 1 ] && ci+=" sslmode=verify-full sslrootcert=$PGDATA/root.crt"
        as_pg "$ONSALE_PG_BIN/pg_basebackup" -d "$ci" \
            -D "$PG_REPLICA" -X stream "${slot[@]}" -S onsale_replica --checkpoint=fast \
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
    ha_pg_links "$PG_REPLICA" replica
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
# The stack's own CA and what it signs, for local use, made once into
# .state/ha/tls (keys mode 0600):
#   ca.crt / ca.key          the CA every client of the stack trusts (ONSALE_HA_CA)
#   onsale.crt / onsale.key  the services' certificate: localhost and 127.0.0.1
#                            (haproxy's public port, the brokers, PostgreSQL, Redis)
#   onsale.pem, kafka.pem    the same key and certificate as haproxy and Kafka read them
#   redis-client.pem         the Redis tunnel's client certificate (Redis asks for one)
ha_tls_sign() { # name subject extendedKeyUsage [subjectAltName]
    local ext="basicConstraints=critical,CA:FALSE"$'\n'"keyUsage=critical,digitalSignature,keyEncipherment"
    ext+=$'\n'"extendedKeyUsage=$3"
    [ -n "${4:-}" ] && ext+=$'\n'"subjectAltName=$4"
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$HA_TLS/$1.key" -out "$HA_TLS/$1.csr" &&
        openssl x509 -req -in "$HA_TLS/$1.csr" -CA "$HA_TLS/ca.crt" -CAkey "$HA_TLS/ca.key" \
            -CAcreateserial -days 825 -sha256 -out "$HA_TLS/$1.crt" -extfile <(printf '%s\n' "$ext") &&
        rm -f "$HA_TLS/$1.csr"
}
ha_tls() {
    [ -s "$HA_TLS/redis-client.pem" ] && return 0
    mkdir -p "$HA_TLS"
    (umask 077 && {
        openssl req -x509 -newkey rsa:2048 -nodes -days 825 -sha256 -subj "/CN=Onsale local CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$HA_TLS/ca.key" -out "$HA_TLS/ca.crt" &&
            ha_tls_sign onsale /CN=localhost serverAuth,clientAuth DNS:localhost,IP:127.0.0.1 &&
            ha_tls_sign redis-client /CN=onsale-redis-tunnel clientAuth
    } 2>> "$LOGS/tls.out") || die "openssl could not make the certificates; see $LOGS/tls.out"
    chmod 644 "$HA_TLS/ca.crt" "$HA_TLS/onsale.crt" "$HA_TLS/redis-client.crt"
    (umask 077 && cat "$HA_TLS/onsale.crt" "$HA_TLS/onsale.key" > "$HA_TLS/onsale.pem" &&
        cat "$HA_TLS/onsale.key" "$HA_TLS/onsale.crt" > "$HA_TLS/kafka.pem" &&
        cat "$HA_TLS/redis-client.crt" "$HA_TLS/redis-client.key" > "$HA_TLS/redis-client.pem")
    log "tls: the stack's CA $HA_TLS/ca.crt, services' certificate $HA_TLS/onsale.crt"
}

# --- TLS links: PostgreSQL and Redis ------------------------------------------------
# PostgreSQL's link settings into data folder d before each start (pg_up and
# ha_replica_up call it): with TLS links ssl on with the services'
# certificate, and pg_hba accepting TCP only over TLS (trust stays the
# authentication, as in the single-node stack); else plain TCP. A replica's
# stream from the primary (role replica) gets the same libpq settings as the
# processes (verify-full against the CA).
ha_pg_links() { # data-folder primary|replica
    local d=$1 role=$2 hostt=host
    grep -q "^include_if_exists 'onsale-links.conf'" "$d/postgresql.conf" ||
        printf '%s\n' "# the --ha stack's link settings (scripts/ha/stack-ha.sh ha_pg_links)" \
            "include_if_exists 'onsale-links.conf'" >> "$d/postgresql.conf"
    if [ "$ONSALE_HA_TLS_LINKS" = 1 ]; then
        hostt=hostssl
        install -m 600 "$HA_TLS/onsale.crt" "$d/server.crt"
        install -m 600 "$HA_TLS/onsale.key" "$d/server.key"
        install -m 644 "$HA_TLS/ca.crt" "$d/root.crt"
        [ "$(id -u)" -eq 0 ] && chown "$PG_USER": "$d/server.crt" "$d/server.key" "$d/root.crt"
        printf '%s\n' "ssl = on" "ssl_cert_file = 'server.crt'" "ssl_key_file = 'server.key'" \
            "ssl_ca_file = 'root.crt'" "ssl_min_protocol_version = 'TLSv1.2'" > "$d/onsale-links.conf"
    else
        echo "ssl = off" > "$d/onsale-links.conf"
    fi
    {
        echo "# written by scripts/ha/stack-ha.sh (ha_pg_links) before each start"
        echo "$hostt all all 127.0.0.1/32 trust"
        echo "$hostt replication all 127.0.0.1/32 trust"
        [ "$hostt" = hostssl ] && printf '%s\n' "hostnossl all all all reject" "hostnossl replication all all reject"
    } > "$d/pg_hba.conf"
    if [ "$role" = replica ]; then
        local ci="host=$ONSALE_HOST port=$ONSALE_PG_PORT user=postgres application_name=onsale-replica"
        [ "$ONSALE_HA_TLS_LINKS" = 1 ] && ci+=" sslmode=verify-full sslrootcert=$d/root.crt"
        printf '%s\n' "primary_conninfo = '$ci'" "primary_slot_name = 'onsale_replica'" >> "$d/onsale-links.conf"
        touch "$d/standby.signal"
        # an older replica's settings from pg_basebackup -R would win over these
        [ -f "$d/postgresql.auto.conf" ] && sed -i '/^primary_conninfo\|^primary_slot_name/d' "$d/postgresql.auto.conf"
    fi
    [ "$(id -u)" -eq 0 ] && chown "$PG_USER": "$d/onsale-links.conf" "$d/pg_hba.conf"
    return 0
}
# Lines appended to redis.conf (redis_up): with TLS links the plain port is
# closed (port 0) and Redis listens on its TLS port only, asking every client
# for a certificate of the stack's CA.
ha_redis_conf() {
    [ "$ONSALE_HA_TLS_LINKS" = 1 ] || return 0
    cat <<CONF
# TLS only (scripts/ha/stack-ha.sh): reached through the redis-tunnel
port 0
tls-port $ONSALE_HA_REDIS_TLS_PORT
tls-cert-file $HA_TLS/onsale.crt
tls-key-file $HA_TLS/onsale.key
tls-ca-cert-file $HA_TLS/ca.crt
tls-auth-clients yes
tls-protocols "TLSv1.2 TLSv1.3"
CONF
}
# hiredis 0.14 (the pinned client) speaks no TLS: a local haproxy in tcp mode
# takes the processes' plain connections on ONSALE_HA_REDIS_PORT (loopback)
# and originates TLS to Redis, verifying its certificate (docs/security.md).
ha_redis_tunnel_up() {
    [ "$ONSALE_HA_TLS_LINKS" = 1 ] || return 0
    if pid_alive "$RUN/redis-tunnel.pid"; then log "redis-tunnel: already running"; return 0; fi
    ha_render "$HA_DIR/redis-tunnel.cfg.in" "$ONSALE_STATE/redis-tunnel.cfg"
    haproxy -c -q -f "$ONSALE_STATE/redis-tunnel.cfg" >> "$LOGS/redis-tunnel.out" 2>&1 ||
        die "redis-tunnel.cfg does not check; see $LOGS/redis-tunnel.out"
    nohup haproxy -db -f "$ONSALE_STATE/redis-tunnel.cfg" >> "$LOGS/redis-tunnel.log" 2>&1 < /dev/null &
    echo $! > "$RUN/redis-tunnel.pid"
    log "redis-tunnel: $ONSALE_HOST:$ONSALE_HA_REDIS_PORT -> TLS $ONSALE_HOST:$ONSALE_HA_REDIS_TLS_PORT"
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
        curl -fsS -o /dev/null --cacert "$HA_TLS/ca.crt" "https://$ONSALE_HOST:$ONSALE_HA_PUBLIC_PORT/readyz" 2>/dev/null && break
        sleep 0.1
    done
    curl -fsS -o /dev/null --cacert "$HA_TLS/ca.crt" "https://$ONSALE_HOST:$ONSALE_HA_PUBLIC_PORT/readyz" ||
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
    local pf name pids=()
    stop_pidfile prometheus "$RUN/prometheus.pid" 15
    stop_pidfile haproxy "$RUN/haproxy.pid" 10
    # All at once: each drains or leaves its group on its own (one by one
    # they took 12 s); nothing here waits on another's shutdown.
    for pf in "$RUN"/ingress-*.pid "$RUN"/worker-*.pid "$RUN"/payments-*.pid "$RUN"/gateway.pid; do
        [ -e "$pf" ] || continue
        name=$(basename "$pf" .pid)
        stop_pidfile "$name" "$pf" 15 &
        pids+=($!)
    done
    [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"
}

ha_up() {
    ha_tls
    ha_redis_tunnel_up
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
    log "ha stack is up: https://$ONSALE_HOST:$ONSALE_HA_PUBLIC_PORT (CA $HA_TLS/ca.crt; TLS links: $ONSALE_HA_TLS_LINKS)"
}
ha_down() {
    ha_procs_down
    local n
    # all brokers at once: one by one, the last would wait for a quorum
    # that is gone before it gives up
    for n in 1 2 3; do stop_pidfile "kafka-$n" "$RUN/kafka-$n.pid" 60 & done
    wait
    redis_down; stop_pidfile redis-tunnel "$RUN/redis-tunnel.pid" 10; ha_replica_down; pg_down
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
    if [ "$ONSALE_HA_TLS_LINKS" = 1 ]; then
        pid_alive "$RUN/redis-tunnel.pid" && s=1 || { s=0; ok=0; }
        status_line redis-tunnel "$s" "$ONSALE_HOST:$ONSALE_HA_REDIS_PORT -> TLS :$ONSALE_HA_REDIS_TLS_PORT"
    fi
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
        ONSALE_KAFKA_SECURITY_PROTOCOL ONSALE_KAFKA_SSL_CA_LOCATION \
        ONSALE_REDIS_HOST ONSALE_REDIS_PORT ONSALE_AUTH_SECRET ONSALE_IDS_SECRET \
        ONSALE_GATEWAY_API_KEY ONSALE_PAYMENTS_API_KEY ONSALE_STATE ONSALE_PARTITIONS "${!ONSALE_HA_@}"; do
        printf 'export %s=%q\n' "$k" "${!k}"
    done
    printf 'export ONSALE_HA_URL=%q ONSALE_HA_INTERNAL_URL=%q ONSALE_HA_CA=%q ONSALE_HA_PROXY_TOKEN=%q\n' \
        "https://localhost:$ONSALE_HA_PUBLIC_PORT" "http://$ONSALE_HOST:$ONSALE_HA_INTERNAL_PORT" \
        "$HA_TLS/ca.crt" "$(ha_proxy_token)"
    # the Kafka tools' client settings (kafka-topics.sh --command-config)
    printf 'export ONSALE_HA_KAFKA_CLIENT_CONFIG=%q\n' "$KDIR/client.properties"
}
ha_start() { # name
    case "$1" in
    kafka-[0-9]) ha_kafka_start "${1#kafka-}" ;;
    pg-replica) ha_replica_up ;;
    haproxy) ha_haproxy_up ;;
    redis-tunnel) ha_redis_tunnel_up ;;
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
