"""test_slowloris.py - clients that hold connections instead of using them.

[server] request_timeout_s is also an absolute deadline: a request's headers
and body must all have arrived within it (counted from the accept, or from
the end of the previous reply on a keep-alive connection), however steadily
they trickle in (a trickled TLS handshake: test_hostile.NativeTlsTest).  At
[server] max_connections an idle keep-alive connection is closed to make
room before new connections are left in the backlog; [server]
max_connections_per_ip closes, at once, a connection beyond it from one
address.  None of this ever closes a connection whose push waits for its
commit.  The admin listener has the same limits, and refuses any body (its
routes take none) before buffering it; neither listener reads on after a
413."""

import socket
import ssl
import threading
import time
import unittest

from harness import (PG, LockSession, Receiver, envelope, free_port, metric, new_msg_id,
                     new_order_id, proc_status_kb, reset_peak_rss, wait_for)

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
MB = 1 << 20


def closed_by_peer(sock, timeout):
    """Seconds until the server closed SOCK (EOF or reset), or None if it did
    not within TIMEOUT.  Whatever the server sends first is discarded."""
    started = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except socket.timeout:
        return None
    return time.monotonic() - started


def healthz_on(sock, timeout=5):
    """GET /healthz on the open keep-alive SOCK: the status, or None if the
    connection was closed instead.  Reads exactly the one reply."""
    sock.settimeout(timeout)
    try:
        sock.sendall(HEALTHZ)
        data = b""
        while b"\r\n\r\nok\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return None
    return int(data.split(b" ", 2)[1])


class Trickler(threading.Thread):
    """A client that sends DATA (a request's header) one byte every INTERVAL
    seconds, never all of it; .closed_after is the seconds from its connect
    until the server closed the connection (None: never, within LIMIT)."""

    HEADER = b"POST /1688/messages HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100

    def __init__(self, port, data=HEADER, interval=0.5, limit=15):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.started = time.monotonic()
        self.data, self.interval, self.limit = data, interval, limit
        self.closed_after = None

    def run(self):
        i = 0
        while time.monotonic() - self.started < self.limit and i < len(self.data) - 1:
            try:
                self.sock.send(self.data[i:i + 1])
            except OSError:
                self.closed_after = time.monotonic() - self.started
                break
            i += 1
            if closed_by_peer(self.sock, self.interval) is not None:
                self.closed_after = time.monotonic() - self.started
                break
        self.sock.close()


class Base(unittest.TestCase):
    server = {}

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database(cls.__name__)

    def setUp(self):
        self.admin = free_port()
        server = dict(self.server, admin_listen="127.0.0.1:%d" % self.admin)
        self.rx = Receiver(self.db, extra={"server": server,
                                           "database": {"commit_timeout_ms": 30000}})
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.rx.stop()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.rx.port))
        self.socks.append(s)
        return s

    def healthz_within(self, timeout):
        """GET /healthz on a new connection: (status, or None when unanswered
        within TIMEOUT, and the seconds it took)."""
        started = time.monotonic()
        try:
            status = self.rx.get("/healthz", timeout=timeout)[0]
        except socket.timeout:
            status = None
        return status, time.monotonic() - started

    def keep_alive(self, n):
        """N connections, each kept open after one GET /healthz answered 200."""
        socks = [self.connect() for _ in range(n)]
        for s in socks:
            self.assertEqual(healthz_on(s), 200)
        return socks

    def metric(self, sample):
        return metric(self.admin, sample) or 0

    def wait_open(self, n):
        wait_for(lambda: self.metric("receiver_open_connections") == n, 5, interval=0.05,
                 what="%d open connections" % n)

    def push_ok(self):
        m = new_msg_id()
        self.assertEqual(self.rx.push(envelope(m, order_id=new_order_id()))[0], 200)


class DeadlineTest(Base):
    """Tricklers at the cap are closed at their absolute deadline."""

    server = {"max_connections": 8, "request_timeout_s": 2}

    def test_trickling_clients_are_closed_at_the_deadline_and_others_served(self):
        tricklers = [Trickler(self.rx.port) for _ in range(8)]
        for t in tricklers:
            t.start()
        self.wait_open(8)
        # At the cap: this one waits in the backlog until the tricklers go.
        status, took = self.healthz_within(8)
        self.assertEqual(status, 200, "GET /healthz unanswered after %.1f s while 8 clients"
                         " trickled their headers" % took)
        self.assertLess(took, 5)
        self.push_ok()
        for t in tricklers:
            t.join(20)
        after = [t.closed_after for t in tricklers]
        self.assertTrue(all(a is not None for a in after),
                        "tricklers never closed: %r" % after)
        # request_timeout_s = 2 from the accept, swept every 200 ms.
        self.assertTrue(all(1.8 <= a <= 4 for a in after), after)
        self.assertGreaterEqual(self.metric('receiver_connections_closed_total{reason="deadline"}'),
                                8)

    def test_the_admin_listener_has_the_same_deadline(self):
        t = Trickler(self.admin)
        t.start()
        t.join(20)
        self.assertIsNotNone(t.closed_after, "a trickler on the admin listener was kept open")
        self.assertLess(t.closed_after, 4)

    def test_keep_alive_deadline_counts_from_the_previous_reply(self):
        s = self.connect()
        for _ in range(3):  # 3 s in all on one connection, each request 1.5 s after the last
            self.assertEqual(healthz_on(s), 200)
            time.sleep(1.5)
        self.assertEqual(healthz_on(s), 200)

    def test_a_body_that_trickles_is_closed_at_the_deadline(self):
        s = self.connect()
        s.sendall(b"POST /1688/messages HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: 1000\r\n\r\n")
        started = time.monotonic()
        closed = None
        while closed is None and time.monotonic() - started < 10:
            try:
                s.send(b"a")
            except OSError:
                break
            closed = closed_by_peer(s, 0.5)
        took = time.monotonic() - started
        self.assertLess(took, 4, "a body trickling one byte every 0.5 s was read for %.1f s"
                        % took)


def client_hello():
    """The first flight of a TLS handshake: a ClientHello (test_hostile
    trickles it to the native TLS listener)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class IdleAtCapTest(Base):
    """At the cap, an idle keep-alive connection makes room for a new one."""

    server = {"max_connections": 4, "request_timeout_s": 30}

    def test_idle_keep_alive_connections_are_closed_before_new_ones_wait(self):
        idle = self.keep_alive(3)
        busy = self.connect()
        busy.sendall(b"GET /healthz HTTP/1.1\r\n")  # a request in progress
        self.wait_open(4)
        status, took = self.healthz_within(5)
        self.assertEqual(status, 200, "a new connection waited at the cap although three"
                         " connections were idle")
        self.assertLess(took, 2)
        closed = [s for s in idle if closed_by_peer(s, 0.5) is not None]
        self.assertGreaterEqual(len(closed), 1)
        self.assertGreaterEqual(
            self.metric('receiver_connections_closed_total{reason="idle_at_cap"}'), 1)
        # The request in progress was not the one closed.
        busy.sendall(b"Host: x\r\n\r\n")
        busy.settimeout(5)
        self.assertTrue(busy.recv(100).startswith(b"HTTP/1.1 200"))


class PerIpTest(Base):
    """[server] max_connections_per_ip."""

    server = {"max_connections_per_ip": 3, "request_timeout_s": 30}

    def test_a_connection_beyond_the_per_ip_limit_is_closed_at_once(self):
        first = self.keep_alive(3)
        fourth = self.connect()
        took = closed_by_peer(fourth, 3)
        self.assertIsNotNone(took, "a 4th connection from 127.0.0.1 was kept open")
        self.assertLess(took, 1)
        for s in first:
            self.assertEqual(healthz_on(s), 200, "one of the first three stopped working")
        self.assertEqual(self.metric('receiver_connections_refused_total{reason="per_ip"}'), 1)
        # The limit counts open connections: one closed, another may come.
        first[0].close()
        self.wait_open(2)
        self.assertEqual(healthz_on(self.connect()), 200)


class WaitingPushTest(Base):
    """A push waiting for its commit outlives every deadline and the cap."""

    server = {"max_connections": 2, "request_timeout_s": 1}

    def test_a_push_waiting_for_a_slow_commit_is_not_cut_off(self):
        self.keep_alive(1)  # an idle keep-alive connection
        result = []
        with LockSession(self.db):
            m = new_msg_id()
            t = threading.Thread(target=lambda: result.append(
                self.rx.push(envelope(m, order_id=new_order_id()), timeout=30)))
            t.start()
            wait_for(lambda: self.db.waiting_ingests() >= 1, 10, what="the commit to wait")
            started = time.monotonic()
            # At the cap (2): the idle one makes room, the waiting push does not.
            self.assertEqual(self.rx.get("/healthz", timeout=5)[0], 200)
            time.sleep(max(0.0, 3.5 - (time.monotonic() - started)))  # 3.5 deadlines
            self.assertEqual(result, [], "the push was answered while its commit waited")
            self.assertTrue(t.is_alive())
        t.join(20)
        self.assertEqual(len(result), 1, "the waiting push got no answer")
        self.assertEqual(result[0][0], 200)
        self.assertEqual(self.db.value("SELECT msg_id FROM trade_events WHERE msg_id = %d" % m),
                         str(m))


class BodyLimitsTest(Base):
    """Bodies and headers past their limits are not buffered: the admin
    listener takes no body at all, and neither listener reads on after its
    413 (while the closed connection waits to be released)."""

    def stream(self, head, total, chunked=False, port=None):
        """Send HEAD, then TOTAL bytes of body (1 MiB chunks, chunk-encoded
        when CHUNKED) to PORT (the admin one): (bytes of body sent, status or None)."""
        s = socket.create_connection(("127.0.0.1", port or self.admin))
        self.socks.append(s)
        s.settimeout(20)
        block = b"a" * MB
        if chunked:
            block = b"%x\r\n%s\r\n" % (len(block), block)
        sent = 0
        try:
            s.sendall(head)
            while sent < total:
                s.sendall(block)
                sent += MB
            s.settimeout(10)
            reply = s.recv(100)
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            reply = b""
        return sent, (int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else None)

    def refused_early(self, what, head, chunked=False, port=None):
        """HEAD and 200 MiB after it are refused before most of it is sent,
        and the receiver's RSS never grows by more than 32 MiB meanwhile."""
        pid = self.rx.proc.pid
        total = 200 * MB
        reset_peak_rss(pid)
        peak = proc_status_kb(pid, "VmHWM")
        sent, status = self.stream(head, total, chunked, port)
        grown = proc_status_kb(pid, "VmHWM") - peak
        self.assertLess(grown, 32 * 1024, "%s: the receiver's peak RSS grew by %d KiB"
                        % (what, grown))
        self.assertLess(sent, total // 2, "%s: %d MiB were read before the refusal"
                        % (what, sent // MB))
        self.assertIn(status, (413, 400, None))
        self.assertLess(proc_status_kb(pid, "VmRSS") - peak, 32 * 1024)

    def test_the_main_listener_reads_no_further_after_its_413(self):
        self.refused_early("a push over max_body_bytes",
                           b"POST /1688/messages HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Type: application/x-www-form-urlencoded\r\n"
                           b"Content-Length: %d\r\n\r\n" % (200 * MB), port=self.rx.port)
        self.push_ok()

    def test_bodies_and_huge_headers_are_refused_before_they_are_buffered(self):
        total = 200 * MB
        cases = [
            ("POST with a body", b"POST /metrics HTTP/1.1\r\nHost: x\r\n"
             b"Content-Length: %d\r\n\r\n" % total, False),
            ("GET with a body", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
             b"Content-Length: %d\r\n\r\n" % total, False),
            ("GET with a chunked body", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n", True),
            ("a header without end", b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Junk: ", False),
        ]
        for what, head, chunked in cases:
            with self.subTest(what):
                self.refused_early(what, head, chunked)
        self.assertTrue(self.rx.running)
        self.assertIsNotNone(metric(self.admin, "receiver_open_connections"))


if __name__ == "__main__":
    unittest.main()
