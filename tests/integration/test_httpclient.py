"""test_httpclient.py - receiver/httpclient.c itself, for the relay (issue 12).

build/httpclient_drive (tests/helpers/httpclient_drive.c) makes the calls
a script says, through httpclient.c in an event loop, and prints each
answer; a local HTTP/1.1 server here (http.server, threaded) records
every connection it accepts, the requests on each (path, headers as they
came, body) and who closed it.  Checked, over HTTP and again over TLS
(HttpClientTlsTest, a throw-away CA from fakeapi.make_certs):

  - keep_alive: sequential calls share one connection; without it each
    call has its own and says "Connection: close"; concurrent calls open
    at most max_concurrency; an answer saying "Connection: close", an
    HTTP/1.0 answer or one framed by the close alone is never reused; an
    idle connection is closed after idle_ms, sooner when the server
    announced a shorter Keep-Alive timeout, and one the server closed is
    not used; a timed-out call's connection is closed, never reused; a
    reused connection the server closed as the call went out is resent
    once on a fresh one (and only once), a fresh one never; max_rps still
    spaces call starts; httpclient_free closes idle connections too;
  - extra headers arrive exactly, per call, and bad ones are refused
    before anything is sent;
  - Retry-After of a 429 or 503 in delta-seconds, -1 otherwise;
  - HttpClientValgrindTest, HttpClientTlsValgrindTest: one script of all
    that under memcheck (the normal build), no error and no leak.

The driver is HTTPCLIENT_DRIVE_BIN, else httpclient_drive next to
RECEIVER_BIN (build/asan/ for the sanitizer build, whose reports - a use
after free in connection reuse, a leak at exit - fail the test).
"""

import http.server
import json
import os
import shutil
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from fakeapi import make_certs  # noqa: E402
from harness import REPO, SANITIZER_MARKERS, wait_for  # noqa: E402

HTTP_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"


def drive_bin():
    b = os.environ.get("HTTPCLIENT_DRIVE_BIN")
    if not b and os.environ.get("RECEIVER_BIN"):
        b = os.path.join(os.path.dirname(os.environ["RECEIVER_BIN"]), "httpclient_drive")
    b = b or "build/httpclient_drive"
    return b if os.path.isabs(b) else os.path.join(REPO, b)


class ConnInfo:
    def __init__(self, cid):
        self.id = cid
        self.opened_at = time.monotonic()
        self.closed_at = None
        self.closed_by_client = False
        self.requests = []  # {"path", "headers": [(name, value)], "body", "at"}


class Peer:
    """A threaded HTTP/1.1 server that records its connections.

    What a POST gets is said by its query: status=N, retry_after=V,
    keepalive=T (Keep-Alive: timeout=T), close=1 (Connection: close),
    shut=1 (closed after the answer, without saying so), sleep_ms=N, http10=1 (an HTTP/1.0 status line, the connection kept
    open), noframe=1 (no Content-Length: the close ends the body),
    hang=1 (no answer: held until the client hangs up), drop=1 (read,
    then the connection closed without an answer), drop_if_reused=1
    (the same unless it is the connection's first request).  The answer
    is JSON: {"conn", "n" (the request's index on its connection),
    "headers", "body"}."""

    def __init__(self, tls_ctx=None, idle_close_s=None):
        self.lock = threading.Lock()
        self.conns = []
        self.open = self.max_open = self.busy = self.max_busy = 0
        self.server = _Server(("127.0.0.1", 0), _handler(self, tls_ctx, idle_close_s))
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def opened(self):
        with self.lock:
            info = ConnInfo(len(self.conns))
            self.conns.append(info)
            self.open += 1
            self.max_open = max(self.max_open, self.open)
            return info

    def closed(self, info):
        with self.lock:
            info.closed_at = time.monotonic()
            self.open -= 1

    def request(self, info, record):
        with self.lock:
            info.requests.append(record)
            self.busy += 1
            self.max_busy = max(self.max_busy, self.busy)
            return len(info.requests) - 1

    def done(self):
        with self.lock:
            self.busy -= 1

    def requests(self, path):
        """(connection id, index) of every request to PATH, in arrival order."""
        with self.lock:
            found = [(r["at"], c.id, i) for c in self.conns
                     for i, r in enumerate(c.requests) if r["path"] == path]
        return [(cid, i) for _, cid, i in sorted(found)]


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a client that hangs up mid-handshake is no test failure here


def _handler(peer, tls_ctx, idle_close_s):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = idle_close_s  # the server closes a connection idle this long

        def setup(self):
            self.info = peer.opened()
            if tls_ctx is not None:
                try:
                    self.request = tls_ctx.wrap_socket(self.request, server_side=True)
                except (OSError, ssl.SSLError):
                    peer.closed(self.info)
                    raise
            super().setup()

        def finish(self):
            try:
                super().finish()
            finally:
                peer.closed(self.info)

        def handle_one_request(self):
            self.raw_requestline = None
            try:
                super().handle_one_request()
            except (OSError, ssl.SSLError):
                self.close_connection = True
                return
            if self.raw_requestline == b"":
                self.info.closed_by_client = True

        def log_message(self, *args):
            pass

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(url.query))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            n = peer.request(self.info, {"path": self.path, "headers": self.headers.items(),
                                         "body": body, "at": time.monotonic()})
            try:
                self.answer(q, n, body)
            finally:
                peer.done()

        def answer(self, q, n, body):
            if "drop" in q or ("drop_if_reused" in q and n > 0):
                self.close_connection = True
                return
            if "hang" in q:
                self.wait_for_eof()
                return
            if "sleep_ms" in q:
                time.sleep(int(q["sleep_ms"]) / 1000)
            out = json.dumps({"conn": self.info.id, "n": n, "headers": self.headers.items(),
                              "body": body.decode()}).encode()
            if "http10" in q:
                self.protocol_version = "HTTP/1.0"  # this answer's status line only
            self.send_response(int(q.get("status", 200)))
            self.__dict__.pop("protocol_version", None)
            if "retry_after" in q:
                self.send_header("Retry-After", q["retry_after"])
            if "keepalive" in q:
                self.send_header("Keep-Alive", "timeout=%s" % q["keepalive"])
            if "close" in q:
                self.send_header("Connection", "close")
            if "noframe" in q or "shut" in q:
                self.close_connection = True
            if "noframe" not in q:
                self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def wait_for_eof(self):
            self.connection.settimeout(30)
            try:
                while self.connection.recv(4096):
                    pass
            except (OSError, ssl.SSLError):
                pass
            self.info.closed_by_client = True
            self.close_connection = True

    return Handler


def call(path, **req):
    return {"call": dict(req, path=path)}


def submit(path, **req):
    return {"submit": dict(req, path=path)}


class DriverCase(unittest.TestCase):
    """A peer per test, the driver against it; TLS: a CA per class."""

    TLS = False

    @classmethod
    def setUpClass(cls):
        binary = drive_bin()
        if not os.access(binary, os.X_OK):
            raise RuntimeError("%s is missing: run `make helper-bins` (or SAN=1)" % binary)
        cls.tmp = tempfile.mkdtemp(prefix="httpclient-test-")
        cls.ca_file = cls.tls_ctx = None
        if cls.TLS:
            cls.ca_file, crt, key = make_certs(cls.tmp)
            cls.tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cls.tls_ctx.load_cert_chain(crt, key)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.peers = []

    def tearDown(self):
        for p in self.peers:
            p.stop()

    def peer(self, **kw):
        p = Peer(tls_ctx=self.tls_ctx, **kw)
        self.peers.append(p)
        return p

    def url(self, peer):
        if self.TLS:
            return "https://localhost:%d" % peer.port
        return "http://127.0.0.1:%d" % peer.port

    def drive(self, peer, steps, *args, timeout=60, binary=None, wrapper=()):
        """Run the driver; ({call number: answer}, [stats ...])."""
        cmd = [*wrapper, binary or drive_bin(), "--url", self.url(peer), *args]
        if self.TLS:
            cmd += ["--ca-file", self.ca_file]
        script = "".join(json.dumps(s) + "\n" for s in steps)
        p = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=timeout)
        self.exited_at = time.monotonic()
        for marker in SANITIZER_MARKERS:
            self.assertNotIn(marker, p.stderr)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = [json.loads(line) for line in p.stdout.splitlines()]
        answers = {x["call"]: x for x in lines if "call" in x}
        self.assertEqual(sorted(answers), list(range(len(answers))), p.stdout)
        return answers, [x["stats"] for x in lines if "stats" in x]

    def assert_ok(self, answer, status=200):
        self.assertEqual((answer["status"], answer["http_status"]), ("ok", status), answer)
        return json.loads(answer["body"])


class HttpClientTest(DriverCase):

    # --- keep-alive ---------------------------------------------------------

    def test_sequential_calls_share_one_connection_with_keep_alive(self):
        peer = self.peer()
        bodies = ['{"n":%d,"pad":"%s"}' % (i, "x" * (i * 20000)) for i in range(6)]
        answers, stats = self.drive(peer, [call("/ok", body=b) for b in bodies], "--keep-alive")
        for i, b in enumerate(bodies):
            got = self.assert_ok(answers[i])
            self.assertEqual((got["conn"], got["n"], got["body"]), (0, i, b))
        self.assertEqual(len(peer.conns), 1)
        self.assertEqual(stats[-1]["opened"], 1)
        self.assertEqual(stats[-1]["reused"], 5)
        self.assertEqual(stats[-1]["resent"], 0)
        for _, value in peer.conns[0].requests[0]["headers"]:
            self.assertNotEqual(value.lower(), "close")

    def test_without_keep_alive_each_call_has_its_own_connection(self):
        peer = self.peer()
        answers, stats = self.drive(peer, [call("/ok", body="b%d" % i) for i in range(5)])
        self.assertEqual(sorted(self.assert_ok(answers[i])["conn"] for i in range(5)),
                         [0, 1, 2, 3, 4])
        self.assertEqual(len(peer.conns), 5)
        self.assertEqual((stats[-1]["opened"], stats[-1]["reused"]), (5, 0))
        for c in peer.conns:
            self.assertEqual(len(c.requests), 1)
            self.assertIn(("Connection", "close"), c.requests[0]["headers"])

    def test_concurrent_calls_open_at_most_max_concurrency_connections(self):
        peer = self.peer()
        steps = [submit("/ok?sleep_ms=80", body="c%d" % i) for i in range(10)] + [{"wait": 1}]
        answers, stats = self.drive(peer, steps, "--keep-alive", "--concurrency", "2")
        for i in range(10):
            self.assertEqual(self.assert_ok(answers[i])["body"], "c%d" % i)
        self.assertEqual(len(peer.conns), 2)
        self.assertLessEqual(peer.max_open, 2)
        self.assertEqual(peer.max_busy, 2)
        self.assertEqual((stats[-1]["opened"], stats[-1]["reused"]), (2, 8))
        self.assertEqual(sum(len(c.requests) for c in peer.conns), 10)

    def test_answers_saying_close_mean_a_new_connection_each_time(self):
        peer = self.peer()
        answers, stats = self.drive(peer, [call("/ok?close=1") for _ in range(4)],
                                    "--keep-alive")
        self.assertEqual([self.assert_ok(answers[i])["conn"] for i in range(4)], [0, 1, 2, 3])
        self.assertEqual((stats[-1]["opened"], stats[-1]["reused"], stats[-1]["resent"]),
                         (4, 0, 0))

    def test_a_server_closing_after_each_answer_unannounced_fails_no_call(self):
        peer = self.peer()
        answers, stats = self.drive(peer, [call("/ok?shut=1", body="s%d" % i)
                                           for i in range(6)], "--keep-alive")
        for i in range(6):
            self.assertEqual(self.assert_ok(answers[i])["body"], "s%d" % i)
        self.assertEqual(len(peer.conns), 6)
        for c in peer.conns:
            self.assertEqual(len(c.requests), 1)

    def test_http10_answers_are_not_reused(self):
        peer = self.peer()
        answers, stats = self.drive(peer, [call("/ok?http10=1") for _ in range(3)],
                                    "--keep-alive")
        self.assertEqual([self.assert_ok(answers[i])["conn"] for i in range(3)], [0, 1, 2])
        # The server kept each open: the client chose to close them.
        wait_for(lambda: all(c.closed_by_client for c in peer.conns), 10,
                 what="every connection closed by the client")
        self.assertEqual(stats[-1]["reused"], 0)

    def test_answers_ended_by_the_close_are_not_reused(self):
        peer = self.peer()
        answers, stats = self.drive(peer, [call("/ok?noframe=1", body="u%d" % i)
                                           for i in range(3)], "--keep-alive")
        for i in range(3):
            got = self.assert_ok(answers[i])
            self.assertEqual((got["conn"], got["body"]), (i, "u%d" % i))
        self.assertEqual((stats[-1]["reused"], stats[-1]["resent"]), (0, 0))

    def test_a_timed_out_call_frees_its_connection_and_the_next_call_works(self):
        peer = self.peer()
        answers, stats = self.drive(peer, [call("/ok"), call("/ok?hang=1"), call("/ok")],
                                    "--keep-alive", "--timeout-ms", "500")
        self.assertEqual(self.assert_ok(answers[0])["conn"], 0)
        self.assertEqual(answers[1]["status"], "timeout", answers[1])
        self.assertEqual(self.assert_ok(answers[2])["conn"], 1)
        self.assertEqual(peer.requests("/ok?hang=1"), [(0, 1)])  # sent on the reused one
        wait_for(lambda: peer.conns[0].closed_by_client, 10, what="the hung connection closed")
        self.assertEqual(len(peer.conns[1].requests), 1)
        self.assertEqual((stats[-1]["opened"], stats[-1]["reused"]), (2, 1))

    def test_idle_connection_is_closed_after_idle_ms(self):
        peer = self.peer()
        answers, stats = self.drive(peer, [call("/ok"), {"sleep_ms": 900}, call("/ok")],
                                    "--keep-alive", "--idle-ms", "300")
        self.assertEqual([self.assert_ok(answers[i])["conn"] for i in range(2)], [0, 1])
        first, second = peer.conns
        self.assertTrue(first.closed_by_client)
        self.assertLess(first.closed_at, second.opened_at - 0.3)
        self.assertEqual(stats[-1]["reused"], 0)

    def test_a_shorter_keep_alive_timeout_of_the_server_is_kept(self):
        # timeout=2: idle for at most a second.  The same without it: reused.
        steps = [call("/ok?keepalive=2"), {"sleep_ms": 1500}, call("/ok?keepalive=2")]
        hinted = self.peer()
        answers, stats = self.drive(hinted, steps, "--keep-alive")
        self.assertEqual([self.assert_ok(answers[i])["conn"] for i in range(2)], [0, 1])
        self.assertTrue(hinted.conns[0].closed_by_client)
        self.assertLess(hinted.conns[0].closed_at, hinted.conns[1].opened_at)
        plain = self.peer()
        answers, stats = self.drive(plain, [call("/ok"), {"sleep_ms": 1500}, call("/ok")],
                                    "--keep-alive")
        self.assertEqual([self.assert_ok(answers[i])["conn"] for i in range(2)], [0, 0])

    def test_a_connection_the_server_closed_while_idle_is_not_used(self):
        peer = self.peer(idle_close_s=0.3)
        answers, stats = self.drive(peer, [call("/ok"), {"sleep_ms": 900}, call("/ok")],
                                    "--keep-alive")
        self.assertEqual([self.assert_ok(answers[i])["conn"] for i in range(2)], [0, 1])
        self.assertFalse(peer.conns[0].closed_by_client)
        self.assertEqual((stats[-1]["reused"], stats[-1]["resent"]), (0, 0))

    def test_a_reused_connection_closed_as_the_call_goes_out_is_resent_once(self):
        peer = self.peer()
        answers, stats = self.drive(peer, [call("/ok"), call("/ok?drop_if_reused=1", body="r"),
                                           call("/ok")], "--keep-alive")
        got = self.assert_ok(answers[1])
        self.assertEqual((got["conn"], got["n"], got["body"]), (1, 0, "r"))
        self.assertEqual(peer.requests("/ok?drop_if_reused=1"), [(0, 1), (1, 0)])
        self.assertEqual(self.assert_ok(answers[2])["conn"], 1)
        self.assertEqual((stats[-1]["opened"], stats[-1]["reused"], stats[-1]["resent"]),
                         (2, 2, 1))

    def test_a_resend_that_fails_too_is_reported_not_sent_again(self):
        peer = self.peer()
        answers, stats = self.drive(peer, [call("/ok"), call("/ok?drop=1"), call("/ok")],
                                    "--keep-alive")
        self.assertEqual((answers[1]["status"], answers[1]["http_status"]), ("error", 0))
        self.assertIn("no answer", answers[1]["error"])
        self.assertEqual(peer.requests("/ok?drop=1"), [(0, 1), (1, 0)])
        self.assertEqual(self.assert_ok(answers[2])["conn"], 2)
        self.assertEqual(stats[-1]["resent"], 1)

    def test_a_fresh_connection_closed_without_an_answer_is_not_resent(self):
        for args in (["--keep-alive"], []):
            with self.subTest(args=args):
                peer = self.peer()
                answers, stats = self.drive(peer, [call("/ok?drop=1")], *args)
                self.assertEqual(answers[0]["status"], "error", answers[0])
                self.assertEqual(peer.requests("/ok?drop=1"), [(0, 0)])
                self.assertEqual(stats[-1]["resent"], 0)

    def test_max_rps_still_spaces_call_starts(self):
        peer = self.peer()
        steps = [submit("/ok") for _ in range(4)] + [{"wait": 1}]
        answers, stats = self.drive(peer, steps, "--keep-alive", "--rps", "4",
                                    "--concurrency", "4")
        for i in range(4):
            self.assert_ok(answers[i])
        at = sorted(r["at"] for c in peer.conns for r in c.requests)
        for a, b in zip(at, at[1:]):
            self.assertGreater(b - a, 0.2, at)

    def test_free_ends_pending_calls_and_closes_idle_connections(self):
        peer = self.peer()
        steps = [submit("/ok?sleep_ms=100"), submit("/ok?sleep_ms=100"), {"wait": 1},
                 submit("/ok?hang=1"), {"sleep_ms": 300}, {"stats": 1}, {"free": 1},
                 call("/ok"), {"sleep_ms": 700}]
        answers, stats = self.drive(peer, steps, "--keep-alive", "--concurrency", "3")
        self.assert_ok(answers[0])
        self.assert_ok(answers[1])
        self.assertEqual(answers[2]["status"], "shutdown")
        self.assertNotIn("status", answers[3])  # refused: the client is gone
        self.assertEqual((stats[0]["idle"], stats[0]["pending"]), (1, 1))
        self.assertEqual(len(peer.conns), 2)
        wait_for(lambda: all(c.closed_by_client for c in peer.conns), 10,
                 what="the idle and the hung connection closed by the client")
        for c in peer.conns:  # by httpclient_free, not by the driver's exit
            self.assertLess(c.closed_at, self.exited_at - 0.4)

    # --- headers ------------------------------------------------------------

    def test_extra_headers_arrive_exactly_and_only_on_their_call(self):
        peer = self.peer()
        first = [["webhook-id", "evt_123"], ["webhook-timestamp", "1700000000"],
                 ["webhook-signature", "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= v1,x+/="]]
        second = [["webhook-id", "evt_124"], ["X-Tab", "a\tb"]]
        answers, _ = self.drive(peer, [call("/ok", body="one", headers=first),
                                       call("/ok", body="two", headers=second)], "--keep-alive")
        for i, extra in ((0, first), (1, second)):
            got = self.assert_ok(answers[i])
            self.assertEqual(got["conn"], 0)
            headers = got["headers"]
            for name, value in extra:
                self.assertEqual([v for n, v in headers if n == name], [value], headers)
            names = [n.lower() for n, _ in headers]
            for own in ("host", "content-type", "content-length", "accept"):
                self.assertEqual(names.count(own), 1, headers)
            self.assertEqual(len(headers), 4 + len(extra), headers)
            self.assertEqual(got["body"], ["one", "two"][i])

    def test_bad_headers_are_refused_before_anything_is_sent(self):
        peer = self.peer()
        bad = [[["bad name", "v"]], [["X-A", "1\r\nX-Injected: 1"]], [["X-A", "nl\n"]],
               [["Content-Length", "5"]], [["host", "evil"]], [["Connection", "close"]],
               [["", "v"]]]
        steps = [call("/ok", headers=h) for h in bad] + [call("/ok", headers=[["X-A", "1"]])]
        answers, _ = self.drive(peer, steps, "--keep-alive")
        for i in range(len(bad)):
            self.assertEqual(answers[i].get("refused"), "permanent", answers[i])
        self.assertEqual(self.assert_ok(answers[len(bad)])["n"], 0)
        self.assertEqual(sum(len(c.requests) for c in peer.conns), 1)

    # --- Retry-After --------------------------------------------------------

    def test_retry_after_of_429_and_503(self):
        cases = [(429, "7", 7), (503, "120", 120), (429, "0", 0), (429, HTTP_DATE, -1),
                 (429, None, -1), (200, "5", -1), (500, "5", -1), (503, "5x", -1),
                 (503, "-3", -1), (429, "99999999999", 2147483647)]
        peer = self.peer()
        steps = []
        for status, after, _ in cases:
            q = "status=%d" % status
            if after is not None:
                q += "&retry_after=" + urllib.parse.quote(after)
            steps.append(call("/ok?" + q))
        answers, _ = self.drive(peer, steps, "--keep-alive")
        for i, (status, after, want) in enumerate(cases):
            with self.subTest(status=status, retry_after=after):
                self.assert_ok(answers[i], status)
                self.assertEqual(answers[i]["retry_after_s"], want)
        self.assertEqual(len(peer.conns), 1)  # such an answer leaves the connection usable


class HttpClientTlsTest(HttpClientTest):
    """Every test again over TLS: each connection its own session, reused whole."""

    TLS = True


VALGRIND = ("valgrind", "--tool=memcheck", "--leak-check=full",
            "--show-leak-kinds=definite,indirect,possible",
            "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99",
            "--num-callers=30")


@unittest.skipIf(shutil.which("valgrind") is None, "valgrind is not installed")
class HttpClientValgrindTest(DriverCase):
    """Reuse, a resend, a timeout, idle expiry, a 429 and httpclient_free
    with an idle connection and a pending call, under memcheck: no error,
    no leak (its exit status says so).  Always the normal build: valgrind
    and ASan do not mix."""

    def test_memcheck_clean(self):
        peer = self.peer()
        steps = [call("/ok", body="a", headers=[["webhook-id", "evt_1"]]), call("/ok"),
                 call("/ok?drop_if_reused=1"), call("/ok?hang=1"), call("/ok?close=1"),
                 submit("/ok?sleep_ms=50"), submit("/ok?sleep_ms=50"), {"wait": 1},
                 {"sleep_ms": 1500}, call("/ok?status=429&retry_after=3"),
                 submit("/ok?sleep_ms=50"), submit("/ok?sleep_ms=50"), {"wait": 1},
                 submit("/ok?hang=1"),
                 {"sleep_ms": 300}, {"stats": 1}, {"free": 1}]
        answers, stats = self.drive(peer, steps, "--keep-alive", "--idle-ms", "1000",
                                    "--timeout-ms", "2000", "--concurrency", "2",
                                    binary=os.path.join(REPO, "build", "httpclient_drive"),
                                    wrapper=VALGRIND, timeout=300)
        for i in (0, 1, 2, 4, 5, 6, 8, 9):
            self.assert_ok(answers[i])
        self.assertEqual(answers[3]["status"], "timeout")
        self.assertEqual(self.assert_ok(answers[7], 429)["n"], 0)  # after the idle expiry
        self.assertEqual(answers[7]["retry_after_s"], 3)
        self.assertEqual(answers[10]["status"], "shutdown")
        self.assertEqual((stats[0]["resent"], stats[0]["idle"], stats[0]["pending"]), (1, 1, 1))


class HttpClientTlsValgrindTest(HttpClientValgrindTest):
    TLS = True


if __name__ == "__main__":
    unittest.main()
