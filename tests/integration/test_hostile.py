"""test_hostile.py - clients that misbehave on purpose, and native TLS.

Slow headers and slow bodies are cut off by [server] request_timeout_s;
huge headers and over-long chunked bodies are refused (the 413 audited); a
flood of bad signatures is answered 401 while its audit rows are capped at
[server] max_rejections_per_s; and through it all, good pushes go through.
Native TLS ([server] tls_cert, tls_key) serves the same, TLS 1.2 or newer."""

import http.client
import socket
import ssl
import tempfile
import threading
import time
import unittest

from fakeapi import make_certs
from harness import (PG, SHOP, Receiver, envelope, free_port, new_msg_id, new_order_id,
                     raw_request, read_raw_response, request, signed_form, wait_for)
from test_slowloris import Trickler, client_hello


class HostileTest(unittest.TestCase):

    extra = {"server": {"request_timeout_s": 1, "max_body_bytes": 4096,
                        "max_rejections_per_s": 20}}

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database(cls.__name__)

    def setUp(self):
        self.rx = Receiver(self.db, extra=self.extra)

    def tearDown(self):
        self.rx.stop()

    def good_push_works(self):
        m = new_msg_id()
        self.assertEqual(self.rx.push(envelope(m, order_id=new_order_id()))[0], 200)

    def closed_within(self, sock, seconds):
        """True when the server closes SOCK within SECONDS (reading EOF or reset)."""
        sock.settimeout(seconds)
        try:
            while sock.recv(4096):
                pass
            return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def test_slow_headers_are_cut_off(self):
        s = socket.create_connection(("127.0.0.1", self.rx.port))
        s.sendall(b"POST /1688/messages HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        started = time.monotonic()
        self.assertTrue(self.closed_within(s, 5), "a half-sent header was kept open")
        self.assertLess(time.monotonic() - started, 4)
        s.close()
        self.good_push_works()

    def test_slow_body_is_cut_off(self):
        s = socket.create_connection(("127.0.0.1", self.rx.port))
        s.sendall(b"POST /1688/messages HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: 1000\r\n\r\nmessage=")
        self.assertTrue(self.closed_within(s, 5), "a body that never came was waited for")
        s.close()
        self.good_push_works()

    def test_many_idle_connections_do_not_block_pushes(self):
        idle = [socket.create_connection(("127.0.0.1", self.rx.port)) for _ in range(200)]
        try:
            self.good_push_works()
            # Idle connections are closed after request_timeout_s.
            self.assertTrue(all(self.closed_within(s, 5) for s in idle[:5]))
        finally:
            for s in idle:
                s.close()
        self.good_push_works()

    def test_huge_headers_are_refused(self):
        s = socket.create_connection(("127.0.0.1", self.rx.port), timeout=10)
        junk = b"X-Junk: " + b"a" * 8000 + b"\r\n"
        try:
            s.sendall(b"POST /1688/messages HTTP/1.1\r\nHost: x\r\n" + junk * 4 + b"\r\n")
            status, _ = read_raw_response(s)
            self.assertIn(status, (400, 413, 431, None))
        except (ConnectionResetError, BrokenPipeError):
            pass  # refused by closing: also fine
        finally:
            s.close()
        self.good_push_works()

    def test_chunked_body_over_the_limit_is_413_and_audited(self):
        mark = int(self.db.value("SELECT coalesce(max(id), 0) FROM deliveries"))
        s = socket.create_connection(("127.0.0.1", self.rx.port), timeout=10)
        chunk = b"a" * 1024
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(8)) + b"0\r\n\r\n"
        try:
            s.sendall(b"POST /1688/messages HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/x-www-form-urlencoded\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n" + body)
            status, _ = read_raw_response(s)
        except (ConnectionResetError, BrokenPipeError):
            status = None
        finally:
            s.close()
        self.assertEqual(status, 413)
        wait_for(lambda: self.db.value("SELECT http_status FROM deliveries WHERE id > %d"
                                       " AND http_status = 413" % mark), 5,
                 what="the 413's audit row")
        self.good_push_works()

    def test_flood_of_bad_signatures_is_answered_and_its_audit_capped(self):
        mark = int(self.db.value("SELECT coalesce(max(id), 0) FROM deliveries"))
        statuses = []
        lock = threading.Lock()

        def flood():
            conn = self.rx.connection()
            for _ in range(100):
                status, _, _ = request(
                    conn, SHOP["path"], signed_form(envelope(new_msg_id()), secret="forged"))
                with lock:
                    statuses.append(status)
            conn.close()

        started = time.monotonic()
        threads = [threading.Thread(target=flood) for _ in range(4)]
        for t in threads:
            t.start()
        self.good_push_works()  # a genuine push gets through during the flood
        for t in threads:
            t.join(60)
        took = time.monotonic() - started
        self.assertEqual(statuses, [401] * 400)
        time.sleep(0.5)
        audited = int(self.db.value("SELECT count(*) FROM deliveries WHERE id > %d"
                                    " AND http_status = 401" % mark))
        # At most the bucket (20) plus 20 per second of flood, and at least some.
        self.assertGreater(audited, 0)
        self.assertLessEqual(audited, 20 + int(20 * took) + 1,
                             "%d audit rows in %.1f s" % (audited, took))
        _, _, body = self.rx.get("/metrics")
        self.assertIn(b"receiver_rejections_not_audited_total", body)
        line = [l for l in body.decode().splitlines()
                if l.startswith("receiver_rejections_not_audited_total ")][0]
        self.assertEqual(int(line.split()[1]), 400 - audited)


    def rejected_log_lines(self):
        return sum(1 for e in self.rx.log_events() if e.get("event") == "push_rejected")

    def test_flood_of_oversized_bodies_is_capped_like_any_rejection(self):
        # evhttp answers a body over max_body_bytes (4096 here) with 413 before
        # any callback runs; its audit row and its log line are still capped
        # by max_rejections_per_s, as every other rejection's.
        mark = int(self.db.value("SELECT coalesce(max(id), 0) FROM deliveries"))
        logged = self.rejected_log_lines()
        body = signed_form(envelope(new_msg_id(), data={"pad": "y" * 8192}))
        statuses = []
        started = time.monotonic()
        for _ in range(200):
            with socket.create_connection(("127.0.0.1", self.rx.port), timeout=10) as s:
                s.sendall(raw_request(self.rx.port, SHOP["path"], body))
                statuses.append(read_raw_response(s)[0])
        took = time.monotonic() - started
        self.assertEqual(statuses, [413] * 200)
        self.good_push_works()
        time.sleep(0.5)
        audited = int(self.db.value("SELECT count(*) FROM deliveries WHERE id > %d"
                                    " AND http_status = 413" % mark))
        cap = 20 + int(20 * took) + 1
        self.assertGreater(audited, 0)
        self.assertLessEqual(audited, cap, "%d audit rows of 413s in %.1f s" % (audited, took))
        lines = self.rejected_log_lines() - logged
        self.assertGreater(lines, 0)
        self.assertLessEqual(lines, cap, "%d push_rejected lines in %.1f s" % (lines, took))

    def test_flood_of_bad_signatures_is_logged_at_the_cap(self):
        logged = self.rejected_log_lines()
        started = time.monotonic()
        conn = self.rx.connection()
        for _ in range(300):
            status, _, _ = request(
                conn, SHOP["path"], signed_form(envelope(new_msg_id()), secret="forged"))
            self.assertEqual(status, 401)
        conn.close()
        took = time.monotonic() - started
        lines = self.rejected_log_lines() - logged
        self.assertGreater(lines, 0)
        self.assertLessEqual(lines, 20 + int(20 * took) + 1,
                             "%d push_rejected lines in %.1f s" % (lines, took))
        # Once the bucket refills, the next line says how many were not written.
        time.sleep(0.2)
        request(self.rx.connection(), SHOP["path"],
                signed_form(envelope(new_msg_id()), secret="forged"))
        last = [e for e in self.rx.log_events() if e.get("event") == "push_rejected"][-1]
        self.assertRegex(last["msg"], r"\(and \d+ more not logged\)")
        _, _, metrics = self.rx.get("/metrics")
        line = [l for l in metrics.decode().splitlines()
                if l.startswith("receiver_rejections_not_logged_total ")][0]
        self.assertGreater(int(line.split()[1]), 0)


class NativeTlsTest(unittest.TestCase):
    """[server] tls_cert / tls_key: HTTPS straight on the receiver's port."""

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database(cls.__name__)
        cls.dir = tempfile.mkdtemp(prefix="receiver-tls-")
        cls.ca, cls.cert, cls.key = make_certs(cls.dir)

    def test_https_push_and_no_plain_http(self):
        rx = Receiver(self.db, start=False,
                      extra={"server": {"tls_cert": self.cert, "tls_key": self.key}})
        rx.tls_ca = self.ca
        rx.start()
        try:
            m = new_msg_id()
            status, _, reply = rx.push(envelope(m, order_id=new_order_id()))
            self.assertEqual((status, reply), (200, b"success"))
            self.assertEqual(self.db.value("SELECT msg_id FROM trade_events WHERE msg_id = %d"
                                           % m), str(m))
            ctx = ssl.create_default_context(cafile=self.ca)
            with socket.create_connection(("127.0.0.1", rx.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    self.assertIn(s.version(), ("TLSv1.2", "TLSv1.3"))
            # Plain HTTP on the TLS port gets no HTTP answer.
            with socket.create_connection(("127.0.0.1", rx.port), timeout=5) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    data = s.recv(100)
                except (ConnectionResetError, socket.timeout):
                    data = b""
                self.assertFalse(data.startswith(b"HTTP/1.1 200"))
        finally:
            rx.stop()

    def test_a_trickled_handshake_is_closed_at_the_deadline(self):
        """request_timeout_s is a deadline for the handshake too."""
        rx = Receiver(self.db, start=False, extra={"server": {
            "tls_cert": self.cert, "tls_key": self.key, "request_timeout_s": 2}})
        rx.tls_ca = self.ca
        rx.start()
        try:
            t = Trickler(rx.port, data=client_hello())
            t.start()
            t.join(20)
            self.assertIsNotNone(t.closed_after, "a trickled TLS handshake was kept open")
            self.assertTrue(1.8 <= t.closed_after <= 4, t.closed_after)
            self.assertEqual(rx.push(envelope(new_msg_id(), order_id=new_order_id()))[0], 200)
        finally:
            rx.stop()

    def test_mismatched_key_is_a_clear_startup_error(self):
        other = tempfile.mkdtemp(prefix="receiver-tls2-")
        _, _, other_key = make_certs(other)
        rx = Receiver(self.db, start=False,
                      extra={"server": {"tls_cert": self.cert, "tls_key": other_key}})
        with self.assertRaises(AssertionError) as ctx:
            rx.start(timeout=5)
        self.assertIn("tls_key", str(ctx.exception))


class ConnectionCapTest(unittest.TestCase):
    """[server] max_connections: at the cap, new connections wait in the
    kernel's backlog until one closes; nothing is lost, nothing crashes."""

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database(cls.__name__)

    def metric(self, port, name):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
        conn.close()
        return int(float([l for l in body.splitlines() if l.startswith(name + " ")][0].split()[1]))

    def test_connections_beyond_the_cap_wait_for_a_free_one(self):
        admin = free_port()
        rx = Receiver(self.db, extra={"server": {"max_connections": 20, "request_timeout_s": 30,
                                                 "admin_listen": "127.0.0.1:%d" % admin}})
        idle = []
        try:
            idle = [socket.create_connection(("127.0.0.1", rx.port)) for _ in range(20)]
            wait_for(lambda: self.metric(admin, "receiver_open_connections") == 20, 5,
                     interval=0.05, what="20 open connections")
            # The 21st connects (the kernel's backlog) but is not served...
            result = []
            m = new_msg_id()
            t = threading.Thread(target=lambda: result.append(
                rx.push(envelope(m, order_id=new_order_id()), timeout=20)))
            t.start()
            time.sleep(1.0)
            self.assertEqual(result, [], "a connection beyond the cap was served")
            self.assertGreaterEqual(self.metric(admin, "receiver_connection_cap_reached_total"),
                                    1)
            # ...until one of the others closes.
            for s in idle[:5]:
                s.close()
            t.join(10)
            self.assertEqual(len(result), 1, "the waiting push was never served")
            self.assertEqual(result[0][0], 200)
            wait_for(lambda: self.metric(admin, "receiver_open_connections") <= 15, 5,
                     interval=0.05, what="closed connections to be released")
        finally:
            for s in idle:
                s.close()
            rx.stop()


class DescriptorExhaustionTest(unittest.TestCase):
    """Out of file descriptors: accept() fails with EMFILE; the daemon pauses
    accepting instead of spinning, keeps serving, and recovers."""

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database(cls.__name__)

    def test_emfile_pauses_accepting_and_recovers(self):
        rx = Receiver(self.db, start=False, extra={"server": {"request_timeout_s": 30}})
        rx.wrapper = ("prlimit", "--nofile=48:48")
        rx.start()
        idle = []
        try:
            for _ in range(80):
                idle.append(socket.create_connection(("127.0.0.1", rx.port)))
            wait_for(lambda: any(e.get("event") == "accept_failed" for e in rx.log_events()),
                     5, interval=0.05, what="accept to fail with EMFILE")
            self.assertTrue(rx.running, "the daemon died out of descriptors")
            n_failed = sum(1 for e in rx.log_events() if e.get("event") == "accept_failed")
            self.assertLess(n_failed, 20, "accept errors are not paused: %d" % n_failed)
            for s in idle:
                s.close()
            idle = []
            m = new_msg_id()
            wait_for(lambda: rx.push(envelope(m, order_id=new_order_id()))[0] == 200, 10,
                     interval=0.2, what="a push once descriptors are free again")
        finally:
            for s in idle:
                s.close()
            rx.stop()
