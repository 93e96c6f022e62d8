"""test_secrets.py - no process runs on a public development secret by
accident (docs/security.md): every binary that holds a key refuses to start
when the key is its built-in default (or two purposes share one key), with
an error naming the option and exit status 2, unless dev_mode is on; with
dev_mode the same configuration starts. The harness's own runs cover the
third case: distinct, non-default keys and dev_mode off.
"""
import hashlib
import hmac
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, IDS_SECRET, Stack, free_port  # noqa: E402

AUTH_DEV = "onsale-dev-secret-change-me"  # common/auth.h ONS_AUTH_SECRET_DEV
IDS_DEV = "onsale-dev-ids-secret-change-me"  # ONS_IDS_SECRET_DEV
GATEWAY_DEV = "sk_test_onsale"  # ONS_GATEWAY_KEY_DEV


@pytest.fixture(scope="module")
def st():
    with Stack(partitions=1) as s:
        yield s


def defaults_env(st, **extra):
    """The Stack's environment with every secret back at its default."""
    e = st.env()
    for k in ("ONSALE_AUTH_SECRET", "ONSALE_IDS_SECRET", "ONSALE_TICKETS_SECRET",
              "ONSALE_GATEWAY_API_KEY", "ONSALE_PAYMENTS_API_KEY", "ONSALE_DEV_MODE"):
        e.pop(k, None)
    e.update({"ONSALE_" + k.upper(): str(v) for k, v in extra.items()})
    return e


def refused(argv, env, option):
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, (argv, p.returncode, p.stdout, p.stderr)
    assert option in p.stderr and "ONSALE_DEV_MODE=1" in p.stderr, p.stderr
    env_name = "ONSALE_" + option.upper().replace(".", "_")
    assert env_name in p.stderr, p.stderr
    return p.stderr


DAEMONS = [
    ("onsale-ingress", ["auth.secret", "ids.secret"], {"http_port": 0}),
    ("onsale-worker", ["ids.secret"], {"metrics_port": 0}),
    ("onsale-payments", ["payments.api_key"], {"metrics_port": 0}),
    ("onsale-gateway", ["gateway.api_key"], {"gateway_port": 0}),
]


@pytest.mark.parametrize("binary,options,extra", DAEMONS, ids=[d[0] for d in DAEMONS])
def test_daemon_refuses_default_secret(st, binary, options, extra):
    env = defaults_env(st, **extra)
    err = refused([os.path.join(BIN, binary)], env, options[0])
    assert "development default" in err
    # each secret on its own: set the others, leave one at its default
    if len(options) == 2:
        env2 = dict(env, ONSALE_AUTH_SECRET="a-real-jwt-key-0123456789")
        refused([os.path.join(BIN, binary)], env2, "ids.secret")


def test_ingress_refuses_one_key_for_two_purposes(st):
    env = defaults_env(st, http_port=free_port())
    env["ONSALE_AUTH_SECRET"] = env["ONSALE_IDS_SECRET"] = "one-key-for-both-0123456789"
    err = refused([os.path.join(BIN, "onsale-ingress")], env, "ids.secret")
    assert "same value as auth.secret" in err


def test_ingress_refuses_default_or_shared_tickets_secret(st):
    """tickets.secret (the gate codes' key) is a key of its own too."""
    env = defaults_env(st, http_port=free_port(), auth_secret="a-real-jwt-key-0123456789",
                       ids_secret="a-real-ids-key-0123456789")
    err = refused([os.path.join(BIN, "onsale-ingress")], env, "tickets.secret")
    assert "development default" in err
    env["ONSALE_TICKETS_SECRET"] = env["ONSALE_IDS_SECRET"]
    err = refused([os.path.join(BIN, "onsale-ingress")], env, "tickets.secret")
    assert "same value as ids.secret" in err


# Each key's shortest accepted length (common/auth.h ONS_AUTH_SECRET_MIN,
# ONS_GATEWAY_KEY_MIN) and the binaries holding it, with the other keys of
# that binary set to good, distinct values.
GOOD = {"auth_secret": "a-real-jwt-key-0123456789", "ids_secret": "a-real-ids-key-0123456789",
        "tickets_secret": "a-real-tickets-key-0123456789"}
SHORT = [
    ("onsale-ingress", "auth.secret", 16, {"http_port": 0}),
    ("onsale-ingress", "ids.secret", 16, {"http_port": 0}),
    ("onsale-ingress", "tickets.secret", 16, {"http_port": 0}),
    ("onsale-worker", "ids.secret", 16, {"metrics_port": 0}),
    ("onsale-payments", "payments.api_key", 8, {"metrics_port": 0}),
    ("onsale-gateway", "gateway.api_key", 8, {"gateway_port": 0}),
]


@pytest.mark.parametrize("binary,option,minimum,extra", SHORT,
                         ids=[f"{b}-{o}" for b, o, _, _ in SHORT])
def test_daemon_refuses_empty_or_short_secret(st, binary, option, minimum, extra):
    """An empty key and a key one character short of the minimum stop the
    process at start (exit 2), dev_mode on or off, with a message naming the
    option, its variable and the accepted lengths; the key at its minimum
    length gets past that check (to the next refusal, or to a start)."""
    key = option.replace(".", "_")
    env_name = "ONSALE_" + key.upper()
    for value in ("", "k" * (minimum - 1)):
        for dev in ("0", "1"):
            env = defaults_env(st, **extra, **{k: v for k, v in GOOD.items() if k != key},
                               dev_mode=dev)
            env[env_name] = value
            try:
                p = subprocess.run([os.path.join(BIN, binary)], env=env, capture_output=True,
                                   text=True, timeout=10)
            except subprocess.TimeoutExpired as e:
                raise AssertionError(f"{binary} started with {env_name}={value!r} "
                                     f"(dev_mode={dev}): {e.stderr!r}")
            assert p.returncode == 2, (binary, value, dev, p.returncode, p.stderr)
            assert option in p.stderr and env_name in p.stderr, p.stderr
            assert f"length {len(value)} is outside {minimum}.." in p.stderr, p.stderr
    env = defaults_env(st, **extra, **{k: v for k, v in GOOD.items() if k != key})
    env[env_name] = "k" * minimum
    try:
        p = subprocess.run([os.path.join(BIN, binary)], env=env, capture_output=True, text=True,
                           timeout=3)
        assert "is outside" not in p.stderr, p.stderr
    except subprocess.TimeoutExpired:
        pass  # started: every key accepted


def exited_within(procs, seconds):
    """The processes of procs that exit within seconds from now, watched
    together (one after another, four daemons took 6 s)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        dead = [p for p in procs if p.popen.poll() is not None]
        if dead:
            return dead
        time.sleep(0.1)
    return []


def test_dev_mode_starts_on_the_defaults(st):
    """The same defaults with dev_mode on: every daemon starts (ingress
    answers /healthz) and logs a warning naming the development keys."""
    env_keys = ("auth_secret", "ids_secret", "gateway_api_key", "payments_api_key")
    dev = {k: v for k, v in zip(env_keys, (AUTH_DEV, IDS_DEV, GATEWAY_DEV, GATEWAY_DEV))}
    base = st.start_ingress(dev_mode="true", **dev)
    assert base
    procs = [st.procs[-1], st.start_worker(dev_mode="true", **dev),
             st.start("gateway", "onsale-gateway", gateway_port=free_port(), dev_mode="true",
                      gateway_api_key=GATEWAY_DEV),
             st.start("payments", "onsale-payments", metrics_port=0, dev_mode="true",
                      payments_api_key=GATEWAY_DEV)]
    dead = exited_within(procs, 1.5)
    assert not dead, [(p.name, p.output()) for p in dead]
    for p in procs:
        assert "dev_mode:" in p.output(), (p.name, p.output())


def test_onsalectl_token(st):
    ctl = os.path.join(BIN, "onsalectl")
    argv = [ctl, "token", "--user", "7", "--role", "fan"]
    refused(argv, defaults_env(st), "auth.secret")
    p = subprocess.run(argv, env=defaults_env(st, dev_mode="1"), capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0 and p.stdout.count(".") == 2, p.stderr
    p = subprocess.run(argv, env=st.env(), capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
    # A flag given twice is refused (exit 2, nothing printed), not the last
    # one taken: "--role fan ... --role admin" minted an admin token.
    for extra in (["--role", "admin"], ["--user", "8"], ["--ttl", "60", "--ttl", "61"]):
        p = subprocess.run(argv + extra, env=st.env(), capture_output=True, text=True,
                           timeout=30)
        assert (p.returncode, p.stdout) == (2, ""), (extra, p.stdout, p.stderr)
        assert f"{extra[0]} is given more than once" in p.stderr, p.stderr


def test_sim_refuses_default_secret(st):
    sim = os.path.join(BIN, "onsale-sim")
    argv = [sim, "--ingress", "http://127.0.0.1:1", "--fans", "1", "--seats", "1"]
    refused(argv, defaults_env(st), "auth.secret")
    # the gateway's key counts only when the sim sets the gateway's knobs
    env = dict(defaults_env(st), ONSALE_AUTH_SECRET="a-real-jwt-key-0123456789")
    refused(argv + ["--gateway-decline-rate", "0.5"], env, "gateway.api_key")


def test_public_ids_signed_with_ids_secret_and_reservations_match():
    """Public ids carry HMAC-SHA256(ids.secret, "<kind>:<seq>:<user>"), not
    an auth.secret tag; the worker's reservation ids (its ids.secret) decode
    at ingress (ids.secret): DELETE of the reservation is accepted."""
    with Stack(partitions=1) as st:  # its own: the module's Stack runs dev-mode workers
        ids_round_trip(st)


def ids_round_trip(st):
    st.start_worker(worker_id="ids-worker")
    st.start_ingress()
    ev = st.create_event(sections=[("A", 1, 4, 1000)])
    tok = st.token(4242, "fan")
    status, _, body = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=tok)
    assert status == 202, body
    iid = body["intent_id"]
    seq = int(iid[:16], 16)

    def tag(secret, kind, seq):
        return hmac.new(secret.encode(), f"{kind}:{seq}:4242".encode(),
                        hashlib.sha256).hexdigest()[:16]

    assert iid[16:] == tag(IDS_SECRET, "intent", seq)
    assert iid[16:] != tag(st.secret, "intent", seq)
    deadline = time.time() + 30
    while time.time() < deadline:
        status, _, body = st.http("GET", f"/v1/intents/{iid}", token=tok)
        if status == 200 and body.get("state") == "reserved":
            break
        time.sleep(0.2)
    assert body.get("state") == "reserved", body
    rid = body["reservation"]["reservation_id"]
    assert rid[16:] == tag(IDS_SECRET, "reservation", int(rid[:16], 16))
    status, _, body = st.http("DELETE", f"/v1/reservations/{rid}", token=tok)
    assert status == 202, body
