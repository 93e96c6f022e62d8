#!/usr/bin/env bash
# stack_from_private_dir.sh - the local stack runs from a checkout in a folder
# only its owner can enter (mode 0700, like root's home or any `mktemp -d`).
#
# Copies this checkout's files (git ls-files: tracked plus new, unignored
# ones) into a fresh `mktemp -d` folder, links the already fetched Kafka jars
# (.deps) and the already built binaries, brings the stack up there on free
# ports (never the defaults: a shared stack may run there), checks
# PostgreSQL (a query), Redis (PING), Kafka (a metadata request) and ingress
# (/readyz), then takes it down and wipes it, PostgreSQL's relocated data
# folder (/var/tmp/onsale-*) included. As root, PostgreSQL runs as the
# 'postgres' user, who cannot enter the checkout: the case this guards.
# After `down`, nothing listens on any of the stack's ports any more.
#
#   tests/integration/stack_from_private_dir.sh [--as-new-user] [BUILD_BIN]
# BUILD_BIN: the folder of the built binaries (default $ONSALE_BUILD_BIN,
# else build/bin of this checkout). Exit 0 when every check passed.
# --as-new-user: the same as a user who is not root (a user with sudo running
# the README's commands: PostgreSQL then runs as that user, from the
# checkout's .state). Run as root (CI), it makes a throwaway user, copies the
# checkout, the binaries and the Kafka jars into a 0700 folder of its home
# (root's build folder may be out of its reach), runs every scripts/stack
# command as that user, checks that `down` leaves no process of that user
# behind, and removes the user and its home. Run as a user who is not root,
# that user is the one: nothing is made.
set -euo pipefail

as_new_user=0
if [ "${1:-}" = --as-new-user ]; then as_new_user=1; shift; fi
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-${ONSALE_BUILD_BIN:-$SRC/build/bin}}
BIN=$(cd "$BIN" && pwd)
name=stack_from_private_dir; [ "$as_new_user" = 1 ] && name+=" (as a new user)"
say() { printf '[%s] %s\n' "$name" "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

[ -x "$BIN/onsale-ingress" ] || fail "no built binaries in $BIN"
deps=$(readlink -f "$SRC/.deps" 2>/dev/null || true)
[ -n "$deps" ] && [ -f "$deps/kafka-3.9.1/libs/.complete" ] || fail "Kafka jars missing in $SRC/.deps (scripts/setup)"

# Nothing of an outer stack's settings may leak into this one: only the ports
# below and what the copy's own scripts/lib.sh derives from them.
while read -r v; do unset "$v"; done < <(env | sed -n 's/^\(ONSALE_[A-Z0-9_]*\)=.*/\1/p' | grep -v '^ONSALE_BUILD_BIN$')

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A used=()
pick() { # VAR...: each a distinct free port away from the defaults (not in
    # a subshell, so that `used` remembers every port handed out)
    local p v
    for v in "$@"; do
        while :; do
            p=$(free_port)
            case "$p" in 19092 | 19093 | 15432 | 16379 | 8080 | 9101 | 9102 | 9300) continue ;; esac
            [ -z "${used[$p]:-}" ] && break
        done
        used[$p]=1
        printf -v "$v" %s "$p"
    done
}
pick ONSALE_KAFKA_PORT ONSALE_KAFKA_CONTROLLER_PORT ONSALE_PG_PORT ONSALE_REDIS_PORT ONSALE_INGRESS_PORT \
    ONSALE_GATEWAY_PORT ONSALE_WORKER_METRICS_PORT ONSALE_PAYMENTS_METRICS_PORT
export ONSALE_KAFKA_PORT ONSALE_KAFKA_CONTROLLER_PORT ONSALE_PG_PORT ONSALE_REDIS_PORT ONSALE_INGRESS_PORT
export ONSALE_GATEWAY_PORT ONSALE_WORKER_METRICS_PORT ONSALE_PAYMENTS_METRICS_PORT
export ONSALE_PARTITIONS=1 ONSALE_KAFKA_HEAP=384m
export ONSALE_BUILD=$(dirname "$BIN")
ports=("$ONSALE_KAFKA_PORT" "$ONSALE_KAFKA_CONTROLLER_PORT" "$ONSALE_PG_PORT" "$ONSALE_REDIS_PORT"
    "$ONSALE_INGRESS_PORT" "$ONSALE_GATEWAY_PORT" "$ONSALE_WORKER_METRICS_PORT" "$ONSALE_PAYMENTS_METRICS_PORT")

# A command in the checkout's folder, as the stack's user would type it.
in_co() {
    if [ -n "$made_user" ]; then
        (cd / && runuser -u "$made_user" -- env PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
            bash -c 'cd "$1" && shift && "$@"' - "$co" "$@")
    else (cd "$co" && "$@"); fi
}
outer= co= pghome= made_user= decoy_pid= decoy_dir= http_pid=
# Whether process pid is one the copy's stack started: its command line or
# its working folder names the copy (or PostgreSQL's relocated folder).
ours() {
    local args cwd
    args=$(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null) || return 1
    cwd=$(readlink "/proc/$1/cwd" 2>/dev/null) || cwd=
    case "$args $cwd" in *"$co"* | *"$pghome"*) return 0 ;; esac
    return 1
}
# The processes of user still running (a zombie is not: it has exited and
# waits for init to reap it), "pid args" one per line.
user_procs() { ps -u "$1" -o pid=,stat=,args= 2>/dev/null | awk '$2 !~ /^Z/ {$2 = ""; print}' || true; }
cleanup() {
    local rc=$?
    [ -z "$decoy_pid" ] || kill "$decoy_pid" 2>/dev/null || true
    [ -z "$http_pid" ] || kill "$http_pid" 2>/dev/null || true
    [ -z "$decoy_dir" ] || rm -rf "$decoy_dir"
    if [ -n "$co" ] && [ -x "$co/scripts/stack" ]; then
        in_co scripts/stack reset >"$outer/reset.out" 2>&1 || { cat "$outer/reset.out" >&2; rc=1; }
    fi
    # whatever of the copy's still listens on the stack's ports after reset
    # is a process the stack under test started and failed to stop: named,
    # then stopped
    local port pid
    for port in "${ports[@]}"; do
        pid=$(ss -Hltnp "sport = :$port" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1)
        [ -n "$pid" ] && [ -n "$co" ] && ours "$pid" || continue
        say "FAIL: port $port still listened on after reset: $(ps -o pid=,user=,args= -p "$pid")"
        kill -INT "$pid" 2>/dev/null || true; rc=1
    done
    # the copy's PostgreSQL data folder when it had to move out of the checkout
    if [ -n "$pghome" ] && [ -e "$pghome" ]; then say "FAIL: $pghome left behind by scripts/stack reset"; rm -rf "$pghome"; rc=1; fi
    if [ -n "$made_user" ]; then
        local left; left=$(user_procs "$made_user")
        if [ -n "$left" ]; then
            say "FAIL: processes of $made_user left after reset: $left"
            kill -9 $(awk '{print $1}' <<< "$left") 2>/dev/null || true; rc=1
        fi
        userdel -r "$made_user" 2>/dev/null || { say "FAIL: userdel -r $made_user"; rc=1; }
        rm -rf "/tmp/hsperfdata_$made_user"   # the JVM's (Kafka's), kept after it exits
    elif [ -n "$outer" ]; then
        rm -rf "$outer"
    fi
    exit "$rc"
}
trap cleanup EXIT

# The user the stack runs as: this one, or (--as-new-user, as root) a fresh
# one, with a home of its own (mode 0700) holding everything it needs.
user=$(id -un)
if [ "$as_new_user" = 1 ] && [ "$(id -u)" -eq 0 ]; then
    user=onsale-t$$
    useradd -m -s /bin/bash "$user" || fail "useradd $user"
    made_user=$user   # removed by cleanup from here on
    home=$(getent passwd "$user" | cut -d: -f6)
    chmod 700 "$home"
    outer=$(runuser -u "$user" -- mktemp -d -p "$home")
    mkdir -p "$outer/build" "$outer/deps"
    cp -a "$BIN" "$outer/build/bin"
    cp -a "$deps/kafka-3.9.1" "$outer/deps/"
    chown -R "$user": "$outer"
    BIN=$outer/build/bin deps=$outer/deps
    export ONSALE_BUILD=$outer/build
else
    outer=$(mktemp -d)
fi
[ "$(stat -c %a "$outer")" = 700 ] || fail "mktemp -d made $(stat -c %a "$outer"), want 700"
co=$outer/onsale
pghome=/var/tmp/onsale-$(printf '%s' "$co" | md5sum | cut -c1-12)

mkdir "$co"
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -C "$co" -xf -
ln -sfn "$deps" "$co/.deps"
[ -z "$made_user" ] || chown -hR "$made_user": "$co"
say "checkout copied to $co (folder mode $(stat -c %a "$outer"), stack run by $user), ports pg $ONSALE_PG_PORT redis $ONSALE_REDIS_PORT kafka $ONSALE_KAFKA_PORT ingress $ONSALE_INGRESS_PORT"

h=127.0.0.1
# A Redis of no stack (what another checkout's stack is, to this one) on
# port $1, its files in decoy_dir; its pid in decoy_pid.
decoy_redis() {
    decoy_dir=$(mktemp -d)
    redis-server --bind $h --port "$1" --save '' --appendonly no --daemonize yes \
        --pidfile "$decoy_dir/redis.pid" --dir "$decoy_dir" --logfile "$decoy_dir/redis.log"
    for _ in $(seq 1 50); do [ -s "$decoy_dir/redis.pid" ] && break; sleep 0.1; done
    decoy_pid=$(cat "$decoy_dir/redis.pid")
    for _ in $(seq 1 50); do [ "$(redis-cli -h $h -p "$1" PING 2>/dev/null)" = PONG ] && break; sleep 0.1; done
}
# up where another process listens on a port of the stack (another
# checkout's stack: every clone has the same defaults) stops and names the
# setting to change, instead of taking what answers there as its own: a
# decoy Redis on the Redis port (up stops at once), then an HTTP server
# answering 200 to everything, as another ingress answers /readyz, on the
# ingress port (up stops there, the other services up; a second up after it
# has gone starts ingress).
decoy_redis "$ONSALE_REDIS_PORT"
! in_co scripts/stack up >"$outer/up-taken.out" 2>&1 ||
    fail "scripts/stack up succeeded with another process on its Redis port (it used that Redis)"
grep -q "port $ONSALE_REDIS_PORT is already in use.*ONSALE_REDIS_PORT=" "$outer/up-taken.out" ||
    { cat "$outer/up-taken.out" >&2; fail "scripts/stack up on a taken Redis port: no message naming ONSALE_REDIS_PORT"; }
kill "$decoy_pid"; decoy_pid=
for _ in $(seq 1 50); do [ -z "$(ss -Hltn "sport = :$ONSALE_REDIS_PORT")" ] && break; sleep 0.1; done
python3 -c 'import http.server as hs, sys
class H(hs.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
hs.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' "$ONSALE_INGRESS_PORT" &
http_pid=$!
for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://$h:$ONSALE_INGRESS_PORT/readyz" 2>/dev/null && break; sleep 0.1; done
! in_co scripts/stack up >"$outer/up-taken.out" 2>&1 ||
    fail "scripts/stack up succeeded with another process on its ingress port (another ingress answered)"
grep -q "port $ONSALE_INGRESS_PORT is already in use.*ONSALE_INGRESS_PORT=" "$outer/up-taken.out" ||
    { cat "$outer/up-taken.out" >&2; fail "scripts/stack up on a taken ingress port: no message naming ONSALE_INGRESS_PORT"; }
kill "$http_pid"; wait "$http_pid" 2>/dev/null || true; http_pid=
say "up refuses ports taken by others (Redis, ingress), naming the setting"

if ! in_co scripts/stack up >"$outer/up.out" 2>&1; then
    cat "$outer/up.out" >&2
    for f in "$co"/.state/logs/*; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
    fail "scripts/stack up failed from a 0700 folder"
fi

n=$(psql "host=$h port=$ONSALE_PG_PORT dbname=onsale user=postgres connect_timeout=5" -X -qtA \
    -c "SELECT count(*) FROM schema_migrations") || fail "PostgreSQL query failed"
[ "$n" -ge 1 ] || fail "no migrations applied ($n)"
[ "$(redis-cli -h $h -p "$ONSALE_REDIS_PORT" PING)" = PONG ] || fail "Redis PING failed"
kcat -b "$h:$ONSALE_KAFKA_PORT" -L -t intents -m 5 | grep -q 'topic "intents" with 1 partitions' ||
    fail "Kafka metadata: no topic intents"
curl -fsS -o /dev/null "http://$h:$ONSALE_INGRESS_PORT/readyz" || fail "ingress /readyz failed"
in_co scripts/stack status >&2 || fail "scripts/stack status reports a service down"
# The stack runs on its own keys (.state/secrets.env, no development
# default): a token minted with them, as scripts/demo does, is accepted.
[ "$(stat -c %a "$co/.state/secrets.env")" = 600 ] || fail "secrets.env is not mode 0600"
tok=$(set -a && . "$co/.state/secrets.env" && "$BIN/onsalectl" token --user 42 --role fan) ||
    fail "onsalectl token with the stack's secrets"
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" \
    "http://$h:$ONSALE_INGRESS_PORT/v1/me/tickets")
[ "$code" = 200 ] || fail "GET /v1/me/tickets with the stack's token answered $code"
say "postgres ($n migrations), redis, kafka and ingress answer; the stack's token is accepted"

# down from a shell without the stack's settings (a new shell after
# `ONSALE_..._PORT=... scripts/demo`): here every port names something else,
# the Redis one a decoy Redis, as the defaults may name another checkout's
# stack. down stops this stack (its pid files and data folder) and leaves
# the decoy alone.
pick other_redis other_pg other_kafka other_ingress
rm -rf "$decoy_dir"
decoy_redis "$other_redis"
in_co env ONSALE_REDIS_PORT="$other_redis" ONSALE_PG_PORT="$other_pg" ONSALE_KAFKA_PORT="$other_kafka" \
    ONSALE_INGRESS_PORT="$other_ingress" scripts/stack down >"$outer/down.out" 2>&1 ||
    { cat "$outer/down.out" >&2; fail "scripts/stack down failed"; }
[ "$(redis-cli -h $h -p "$other_redis" PING 2>/dev/null)" = PONG ] ||
    fail "scripts/stack down stopped another Redis (the one its shell's settings named)"
kill "$decoy_pid"; decoy_pid=
! pg_isready -q -h $h -p "$ONSALE_PG_PORT" || fail "postgres still running after down"
! redis-cli -h $h -p "$ONSALE_REDIS_PORT" PING >/dev/null 2>&1 || fail "redis still running after down"
# down stops every process the stack started, and nothing else: none of its
# ports is still listened on (the JVM may take a moment to let go)
for _ in $(seq 1 50); do
    busy=$(ss -Hltn | awk '{print $4}' | sed 's/.*://' | grep -xF -f <(printf '%s\n' "${ports[@]}") || true)
    [ -z "$busy" ] && break
    sleep 0.2
done
[ -z "$busy" ] || fail "ports still listened on after down: $busy"
if [ -n "$made_user" ]; then
    for _ in $(seq 1 50); do
        left=$(user_procs "$made_user")
        [ -z "$left" ] && break
        sleep 0.1
    done
    [ -z "$left" ] || fail "processes of $made_user still running after down: $left"
fi
say "ok"
