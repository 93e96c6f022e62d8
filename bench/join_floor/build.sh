#!/bin/sh
# bench/join_floor/build.sh [BUILD_DIR] - builds the floor server against a
# release build's static libraries (queue/, common/), so its claim script,
# record codec, producer and token check are Onsale's own. Output:
# BUILD_DIR/bench/floor (BUILD_DIR defaults to build).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-$ROOT/build}
mkdir -p "$B/bench"
cc -O2 -g -fno-omit-frame-pointer -std=gnu11 -Wall -Wextra -Werror -I"$ROOT" \
   -o "$B/bench/floor" "$ROOT/bench/join_floor/floor.c" \
   "$B/queue/libonsale_queue.a" "$B/common/libonsale_common.a" \
   $(pkg-config --libs rdkafka hiredis jansson libjwt libcrypto) -lnng -lpthread -lm
echo "$B/bench/floor"
