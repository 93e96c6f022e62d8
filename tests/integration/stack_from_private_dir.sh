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
#
#   tests/integration/stack_from_private_dir.sh [BUILD_BIN]
# BUILD_BIN: the folder of the built binaries (default $ONSALE_BUILD_BIN,
# else build/bin of this checkout). Exit 0 when every check passed.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-${ONSALE_BUILD_BIN:-$SRC/build/bin}}
BIN=$(cd "$BIN" && pwd)
say() { printf '[stack_from_private_dir] %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

[ -x "$BIN/onsale-ingress" ] || fail "no built binaries in $BIN"
deps=$(readlink -f "$SRC/.deps" 2>/dev/null || true)
[ -n "$deps" ] && [ -f "$deps/kafka-3.9.1/libs/.complete" ] || fail "Kafka jars missing in $SRC/.deps (scripts/setup)"

# Nothing of an outer stack's settings may leak into this one: only the ports
# below and what the copy's own scripts/lib.sh derives from them.
while read -r v; do unset "$v"; done < <(env | sed -n 's/^\(ONSALE_[A-Z0-9_]*\)=.*/\1/p' | grep -v '^ONSALE_BUILD_BIN$')

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A used=()
pick() { # distinct free ports away from the defaults
    local p
    while :; do
        p=$(free_port)
        case "$p" in 19092 | 19093 | 15432 | 16379 | 8080 | 9101 | 9102 | 9300) continue ;; esac
        [ -z "${used[$p]:-}" ] && break
    done
    used[$p]=1
    echo "$p"
}
export ONSALE_KAFKA_PORT=$(pick) ONSALE_KAFKA_CONTROLLER_PORT=$(pick) ONSALE_PG_PORT=$(pick)
export ONSALE_REDIS_PORT=$(pick) ONSALE_INGRESS_PORT=$(pick) ONSALE_GATEWAY_PORT=$(pick)
export ONSALE_WORKER_METRICS_PORT=$(pick) ONSALE_PAYMENTS_METRICS_PORT=$(pick)
export ONSALE_PARTITIONS=1 ONSALE_KAFKA_HEAP=384m
export ONSALE_BUILD=$(dirname "$BIN")

outer=$(mktemp -d)
[ "$(stat -c %a "$outer")" = 700 ] || fail "mktemp -d made $(stat -c %a "$outer"), want 700"
co=$outer/onsale
mkdir "$co"
cleanup() {
    local rc=$?
    if [ -x "$co/scripts/stack" ]; then
        "$co/scripts/stack" reset >"$outer/reset.out" 2>&1 || { cat "$outer/reset.out" >&2; rc=1; }
    fi
    # the copy's PostgreSQL data folder when it had to move out of the checkout
    local pghome=/var/tmp/onsale-$(printf '%s' "$co" | md5sum | cut -c1-12)
    if [ -e "$pghome" ]; then say "FAIL: $pghome left behind by scripts/stack reset"; rm -rf "$pghome"; rc=1; fi
    rm -rf "$outer"
    exit "$rc"
}
trap cleanup EXIT

(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -C "$co" -xf -
ln -sfn "$deps" "$co/.deps"
say "checkout copied to $co (folder mode $(stat -c %a "$outer")), ports pg $ONSALE_PG_PORT redis $ONSALE_REDIS_PORT kafka $ONSALE_KAFKA_PORT ingress $ONSALE_INGRESS_PORT"

# From the checkout's own folder, as a user would type it.
if ! (cd "$co" && scripts/stack up) >"$outer/up.out" 2>&1; then
    cat "$outer/up.out" >&2
    for f in "$co"/.state/logs/*; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
    fail "scripts/stack up failed from a 0700 folder"
fi

h=127.0.0.1
n=$(psql "host=$h port=$ONSALE_PG_PORT dbname=onsale user=postgres connect_timeout=5" -X -qtA \
    -c "SELECT count(*) FROM schema_migrations") || fail "PostgreSQL query failed"
[ "$n" -ge 1 ] || fail "no migrations applied ($n)"
[ "$(redis-cli -h $h -p "$ONSALE_REDIS_PORT" PING)" = PONG ] || fail "Redis PING failed"
kcat -b "$h:$ONSALE_KAFKA_PORT" -L -t intents -m 5 | grep -q 'topic "intents" with 1 partitions' ||
    fail "Kafka metadata: no topic intents"
curl -fsS -o /dev/null "http://$h:$ONSALE_INGRESS_PORT/readyz" || fail "ingress /readyz failed"
(cd "$co" && scripts/stack status) >&2 || fail "scripts/stack status reports a service down"
# The stack runs on its own keys (.state/secrets.env, no development
# default): a token minted with them, as scripts/demo does, is accepted.
[ "$(stat -c %a "$co/.state/secrets.env")" = 600 ] || fail "secrets.env is not mode 0600"
tok=$(set -a && . "$co/.state/secrets.env" && "$BIN/onsalectl" token --user 42 --role fan) ||
    fail "onsalectl token with the stack's secrets"
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" \
    "http://$h:$ONSALE_INGRESS_PORT/v1/me/tickets")
[ "$code" = 200 ] || fail "GET /v1/me/tickets with the stack's token answered $code"
say "postgres ($n migrations), redis, kafka and ingress answer; the stack's token is accepted"

(cd "$co" && scripts/stack down) >"$outer/down.out" 2>&1 || { cat "$outer/down.out" >&2; fail "scripts/stack down failed"; }
! pg_isready -q -h $h -p "$ONSALE_PG_PORT" || fail "postgres still running after down"
! redis-cli -h $h -p "$ONSALE_REDIS_PORT" PING >/dev/null 2>&1 || fail "redis still running after down"
say "ok"
