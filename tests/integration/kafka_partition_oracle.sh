#!/usr/bin/env bash
# Compares librdkafka's keyed partitioning (murmur2_random, as the producer in
# queue/ uses it) with the Java client's: for keys "0".."999" over 7
# partitions, the partition in each delivery report must equal
# Utils.toPositive(Utils.murmur2(key)) % 7 as computed by kafka-clients itself.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
compat_bin=$1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/Oracle.java" <<'JAVA'
import org.apache.kafka.common.utils.Utils;
import java.nio.charset.StandardCharsets;
public class Oracle {
    public static void main(String[] a) {
        int parts = Integer.parseInt(a[0]), count = Integer.parseInt(a[1]);
        for (int i = 0; i < count; i++) {
            byte[] k = Integer.toString(i).getBytes(StandardCharsets.UTF_8);
            System.out.println(i + " " + Utils.toPositive(Utils.murmur2(k)) % parts);
        }
    }
}
JAVA
java -cp "$ONSALE_KAFKA_LIBS/*" "$tmp/Oracle.java" 7 1000 > "$tmp/java.txt"
"$compat_bin" --partitions-for-keys 7 1000 > "$tmp/rdkafka.txt"
[ "$(wc -l < "$tmp/java.txt")" -eq 1000 ] || { echo "oracle printed $(wc -l < "$tmp/java.txt") lines"; exit 1; }
if diff -q "$tmp/java.txt" "$tmp/rdkafka.txt" >/dev/null; then
    echo "1000 keys: librdkafka and the Java client agree on every partition"
else
    echo "partitioning differs from the Java client:"; diff "$tmp/java.txt" "$tmp/rdkafka.txt" | head; exit 1
fi
