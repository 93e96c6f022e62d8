"""fault_util.py - faults for integration tests that must not disturb the
shared stack: a private redis-server that can be restarted (or killed and
brought back from an older snapshot), and a TCP relay to PostgreSQL that can
be paused (every byte held both ways, new connections left waiting: what a
stopped server looks like to its clients)."""
import select
import shutil
import queue
import socket
import subprocess
import tempfile
import threading
import time

import redis as redis_lib

from harness import free_port


class PrivateRedis:
    """A redis-server of its own on a free port: AOF everysec as the stack
    runs it, or (aof=False) snapshots only, taken when the test says SAVE."""

    def __init__(self, aof=True):
        self.aof = aof
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="onsale-redis-")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--appendonly", "yes" if self.aof else "no", "--appendfsync", "everysec",
             "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.time() + 20
        while time.time() < end:
            try:
                if redis_lib.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis_lib.RedisError:
                time.sleep(0.05)
        raise TimeoutError("private redis-server did not start")

    def client(self):
        return redis_lib.Redis(port=self.port, decode_responses=True)

    def stop(self):
        """SIGTERM: the AOF is flushed, the data kept for start()."""
        self.proc.terminate()
        self.proc.wait(20)

    def restart(self, kill=False):
        """SIGTERM (AOF flushed) or SIGKILL (up to a second of writes
        lost), then the same port and data again."""
        self.proc.kill() if kill else self.proc.terminate()
        self.proc.wait(20)
        self.start()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def relay_listen(relay, host, port, backlog):
    """Sets up relay (a TCP relay to host:port): its upstream, a listening
    socket on a free loopback port, and a thread that passes each accepted
    connection to relay._accepted(c)."""
    relay.up = (host, port)
    relay.port = free_port()
    relay.stop = False
    relay.lsock = socket.socket()
    relay.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    relay.lsock.bind(("127.0.0.1", relay.port))
    relay.lsock.listen(backlog)

    def accept():
        while not relay.stop:
            try:
                c, _ = relay.lsock.accept()
            except OSError:
                return
            relay._accepted(c)
    threading.Thread(target=accept, daemon=True).start()


class PausableRelay:
    """A TCP relay to host:port. pause() holds every byte both ways and
    leaves new connections waiting until resume()."""

    def __init__(self, host, port):
        self.running = threading.Event()
        self.running.set()
        relay_listen(self, host, port, 256)

    def pause(self):
        self.running.clear()

    def resume(self):
        self.running.set()

    def _accepted(self, c):
        threading.Thread(target=self._pump, args=(c,), daemon=True).start()

    def _pump(self, c):
        self.running.wait()
        try:
            u = socket.create_connection(self.up)
        except OSError:
            c.close()
            return
        peer = {c: u, u: c}
        try:
            while not self.stop:
                r, _, _ = select.select([c, u], [], [], 0.2)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    self.running.wait()
                    peer[s].sendall(data)
        except OSError:
            return
        finally:
            c.close()
            u.close()

    def close(self):
        self.stop = True
        self.running.set()
        self.lsock.close()


class DelayedRelay:
    """A TCP relay to host:port that holds every byte from the server for
    delay seconds before passing it on (in order): a busy server's round
    trip, as its clients see it. Requests go through at once."""

    def __init__(self, host, port, delay):
        self.delay = delay
        relay_listen(self, host, port, 64)

    def _accepted(self, c):
        try:
            u = socket.create_connection(self.up)
        except OSError:
            c.close()
            return
        held = queue.Queue()
        threading.Thread(target=self._pump, args=(c, u, None), daemon=True).start()
        threading.Thread(target=self._pump, args=(u, c, held), daemon=True).start()
        threading.Thread(target=self._release, args=(held, c), daemon=True).start()

    def _pump(self, src, dst, held):
        try:
            while not self.stop:
                data = src.recv(65536)
                if not data:
                    break
                if held is None:
                    dst.sendall(data)
                else:
                    held.put((time.monotonic() + self.delay, data))
        except OSError:
            pass
        if held is not None:
            held.put(None)
        else:
            dst.close()

    def _release(self, held, dst):
        try:
            while True:
                item = held.get()
                if item is None:
                    break
                due, data = item
                time.sleep(max(0.0, due - time.monotonic()))
                dst.sendall(data)
        except OSError:
            pass
        dst.close()

    def close(self):
        self.stop = True
        self.lsock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
