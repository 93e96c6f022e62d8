"""The links between the processes of the --ha topology run over TLS
(ONSALE_HA_TLS_LINKS=1, its default; docs/security.md "Links between the
processes"), checked from the outside so that a plaintext link fails:
  - PostgreSQL: every connection of the Onsale processes (and the replica's
    stream) is TLS in pg_stat_ssl; a plaintext client is refused;
  - Kafka: the brokers answer a TLS client whose CA is the stack's, and no
    plaintext client on any broker port;
  - Redis: redis-server listens on its TLS port only (the plain port is
    closed), which answers plain Redis with nothing but a failed handshake
    and TLS without a client certificate not at all; the processes reach it
    through the local tunnel.
A sale through the stack over these links: test_ha_stack, test_ha_trail,
test_ha_failures (the same stack)."""
import os, re, socket, ssl, subprocess

import psycopg2
import pytest

from ha_util import (CA, ENV, INGRESS_PORTS, RUN, create_event, http, join, pid, sql, wait_for,
                     wait_intent)

HOST = "127.0.0.1"
REDIS_TLS_PORT = int(ENV["ONSALE_HA_REDIS_TLS_PORT"])
REDIS_PORT = int(ENV["ONSALE_REDIS_PORT"])  # what the processes dial
TLS_DIR = os.path.dirname(CA)
ONSALE_APPS = ("onsale-worker", "onsale-payments", "ingress")
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"  # Debian's store: not the stack's CA


def tls_of_onsale_backends(dsn=None):
    """{application_name: {ssl values}} of the Onsale processes' backends."""
    rows = sql("SELECT a.application_name, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
               "WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()", dsn=dsn)
    seen = {}
    for app, on in rows:
        if app.startswith(ONSALE_APPS):
            seen.setdefault(app.split()[0], set()).add(on)
    return seen


def test_postgres_connections_are_tls():
    seen = tls_of_onsale_backends()
    assert {"onsale-worker", "onsale-payments", "ingress"} <= set(seen), seen
    assert all(v == {True} for v in seen.values()), seen
    # the replica's stream from the primary
    (walsender_ssl,), = sql("SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)")
    assert walsender_ssl is True
    # the replica's readers (the event views of both ingress nodes)
    ev = create_event(seats=50, name="links")
    replica = ENV["ONSALE_PG_READ_DSN"]
    wait_for(lambda: sql("SELECT count(*) FROM events WHERE event_id = %s", (ev,), dsn=replica)[0][0],
             20, "the event on the replica")
    for port in INGRESS_PORTS:
        assert http("GET", f"/v1/events/{ev}", port=port)[0] == 200
    on_replica = wait_for(lambda: tls_of_onsale_backends(replica).get("ingress"), 20,
                          "ingress reading from the replica")
    assert on_replica == {True}, on_replica
    # a plaintext client is refused by both; a client trusting other CAs
    # (the system's) refuses their certificate
    for dsn in (ENV["ONSALE_PG_DSN"], replica):
        base = dsn.split(" sslmode=")[0]
        with pytest.raises(psycopg2.OperationalError, match="no encryption"):
            psycopg2.connect(base + " sslmode=disable").close()
        with pytest.raises(psycopg2.OperationalError, match="certificate verify failed"):
            psycopg2.connect(base + f" sslmode=verify-full sslrootcert={SYSTEM_CAS}").close()


def kcat_metadata(*x, timeout=60):
    """(exit code, the brokers kcat -L lists, its stderr)."""
    p = subprocess.run(["kcat", *x, "-b", ENV["ONSALE_KAFKA_BROKERS"], "-L", "-m", "5"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    return p.returncode, re.findall(r"^  broker (\d+) at ", p.stdout, re.M), p.stderr


def test_kafka_brokers_speak_tls_only():
    rc, brokers, err = kcat_metadata("-X", "security.protocol=ssl", "-X", f"ssl.ca.location={CA}")
    assert rc == 0 and sorted(brokers) == ["1", "2", "3"], (rc, brokers, err[-2000:])
    # every broker's certificate: the stack's CA, the address dialled
    ctx = ssl.create_default_context(cafile=CA)
    for port in ENV["ONSALE_HA_KAFKA_PORTS"].split() + ENV["ONSALE_HA_KAFKA_CONTROLLER_PORTS"].split():
        with socket.create_connection((HOST, int(port)), timeout=10) as s, \
                ctx.wrap_socket(s, server_hostname=HOST) as t:
            assert t.version() in ("TLSv1.2", "TLSv1.3"), port
    # a plaintext client gets no metadata from any of the three, nor a TLS
    # client trusting only the system's CAs (the brokers' certificates are checked)
    for x in ((), ("-X", "security.protocol=ssl", "-X", f"ssl.ca.location={SYSTEM_CAS}")):
        rc, brokers, err = kcat_metadata(*x)
        assert rc != 0 and not brokers, (x, rc, brokers, err[-2000:])


def redis_ping(sock):
    sock.sendall(b"PING\r\n")
    try:
        return sock.recv(64)
    except (OSError, ssl.SSLError):
        return b""


def listening_ports(p):
    """The TCP ports process p listens on (its sockets in /proc/net/tcp{,6})."""
    inodes = set()
    for fd in os.listdir(f"/proc/{p}/fd"):
        try:
            link = os.readlink(f"/proc/{p}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                    ports.add(int(cols[1].split(":")[1], 16))
    return ports


def test_redis_listens_on_tls_only():
    # redis-server: the TLS port, nothing else; the plain port is the tunnel's
    redis_pid = int(open(os.path.join(RUN, "redis.pid")).read())
    assert listening_ports(redis_pid) == {REDIS_TLS_PORT}
    tunnel = pid("redis-tunnel")
    assert tunnel and REDIS_PORT in listening_ports(tunnel)
    # plain Redis to the TLS port: no answer but a failed handshake
    with socket.create_connection((HOST, REDIS_TLS_PORT), timeout=5) as s:
        assert b"PONG" not in redis_ping(s)
    # TLS without a client certificate: refused
    ctx = ssl.create_default_context(cafile=CA)
    with socket.create_connection((HOST, REDIS_TLS_PORT), timeout=5) as s:
        try:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                assert b"PONG" not in redis_ping(t)
        except (ssl.SSLError, OSError):
            pass
    # TLS with the tunnel's certificate: Redis; and the plain port, the
    # tunnel, is Redis behind it (with its plain port configured off)
    ctx.load_cert_chain(os.path.join(TLS_DIR, "redis-client.pem"))
    with socket.create_connection((HOST, REDIS_TLS_PORT), timeout=5) as s, \
            ctx.wrap_socket(s, server_hostname="localhost") as t:
        assert redis_ping(t) == b"+PONG\r\n"
    with socket.create_connection((HOST, REDIS_PORT), timeout=5) as s:
        s.sendall(b"CONFIG GET port\r\n")
        assert s.recv(256) == b"*2\r\n$4\r\nport\r\n$1\r\n0\r\n"


def test_a_join_round_trips_over_the_tls_links():
    """ingress -> Kafka -> worker -> PostgreSQL and Redis -> ingress, all
    over the links above (the sale tests do much more)."""
    ev = create_event(seats=50, name="links join")
    user = 4900 + int.from_bytes(os.urandom(2), "big") % 1000
    s, _, b = join(user, ev)
    assert s == 202, b
    assert wait_intent(user, b["intent_id"])["state"] == "reserved"
    assert http("GET", "/readyz")[0] == 200
