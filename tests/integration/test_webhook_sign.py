"""test_webhook_sign.py - our Standard Webhooks signatures, checked by the
reference library, and the test consumer the relay's tests use.

SignedByUsTest signs with the relay's own code (receiver/webhook.c, through
build/webhook_sign from tests/helpers/webhook_sign.c) and verifies with the
`standardwebhooks` npm package (tests/relay/verify.js), which shares no
code with ours: a good signature verifies for secrets of 24, 32 and 64
bytes; a changed body, id or timestamp does not; with two secrets
(rotation) the library accepts given either one; a malformed secret is
refused with its reason and without being echoed.

ConsumerTest drives tests/relay/consumer.js (through consumer.py): requests
signed by our binary and POSTed with http.client are recorded as verified,
forged ones as not, and the scripted answers (statuses, Retry-After,
delays, hangs, closed connections) are what the client gets.

WEBHOOK_SIGN_BIN picks the binary; by default webhook_sign next to
RECEIVER_BIN (build/asan/webhook_sign for the sanitizer build).
"""

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from consumer import Consumer, node_bin, relay_script  # noqa: E402
from harness import REPO, receiver_bin, sanitizer_report  # noqa: E402


def sign_bin():
    b = os.environ.get("WEBHOOK_SIGN_BIN") or os.path.join(
        os.path.dirname(receiver_bin()), "webhook_sign")
    return b if os.path.isabs(b) else os.path.join(REPO, b)


def new_secret(n=32):
    return "whsec_" + base64.b64encode(os.urandom(n)).decode()


def sign(msg_id, ts, body, *secrets):
    """(exit status, stdout, stderr) of webhook_sign; fails on a sanitizer report."""
    r = subprocess.run([sign_bin(), msg_id, str(ts), *secrets], input=body,
                       capture_output=True, timeout=30)
    err = r.stderr.decode(errors="replace")
    report = sanitizer_report(err)
    if report:
        raise AssertionError("webhook_sign: %s\n%s" % (report, err))
    return r.returncode, r.stdout.decode(), err


def signature(msg_id, ts, body, *secrets):
    rc, out, err = sign(msg_id, ts, body, *secrets)
    if rc != 0:
        raise AssertionError("webhook_sign exited %d: %s" % (rc, err))
    return out.rstrip("\n")


def verify(secret, msg_id, ts, sig, body):
    """(exit status, stderr) of the reference library's verdict."""
    r = subprocess.run([node_bin(), relay_script("verify.js"), "--secret", secret, "--id", msg_id,
                        "--timestamp", str(ts), "--signature", sig], input=body,
                       capture_output=True, timeout=30)
    return r.returncode, r.stderr.decode(errors="replace")


def event_body(order_id="2908059205527363456"):
    return json.dumps({"type": "order.status_changed", "timestamp": "2026-01-02T03:04:05.000006Z",
                       "data": {"app": "shop", "order_id": order_id, "old_status": "waitbuyerpay",
                                "new_status": "waitsellersend", "note": "订单 ✓"}},
                      ensure_ascii=False, separators=(",", ":")).encode()


class SignedByUsTest(unittest.TestCase):

    def setUp(self):
        if not os.access(sign_bin(), os.X_OK):
            self.fail("%s is missing: run `make helper-bins` (or SAN=1)" % sign_bin())

    def assertVerifies(self, secret, msg_id, ts, sig, body):
        rc, err = verify(secret, msg_id, ts, sig, body)
        self.assertEqual(rc, 0, "the library refused our signature %s: %s" % (sig, err))

    def assertRejected(self, secret, msg_id, ts, sig, body):
        rc, err = verify(secret, msg_id, ts, sig, body)
        self.assertEqual(rc, 1, err)
        self.assertIn("No matching signature found", err)

    def test_good_signature_verifies(self):
        for n in (24, 32, 64):
            with self.subTest(key_bytes=n):
                secret, ts, body = new_secret(n), int(time.time()), event_body()
                sig = signature("evt_%d" % n, ts, body, secret)
                self.assertRegex(sig, r"^v1,[A-Za-z0-9+/]{43}=$")
                self.assertVerifies(secret, "evt_%d" % n, ts, sig, body)

    def test_empty_body_verifies(self):
        secret, ts = new_secret(), int(time.time())
        self.assertVerifies(secret, "evt_1", ts, signature("evt_1", ts, b"", secret), b"")

    def test_tampered_body_id_or_timestamp_is_rejected(self):
        secret, ts, body = new_secret(), int(time.time()), event_body()
        sig = signature("evt_42", ts, body, secret)
        self.assertVerifies(secret, "evt_42", ts, sig, body)
        self.assertRejected(secret, "evt_42", ts, sig, event_body("2908059205527363457"))
        self.assertRejected(secret, "evt_42", ts, sig, body + b" ")
        self.assertRejected(secret, "evt_43", ts, sig, body)
        # One second off: well inside the library's 5-minute tolerance, so
        # only the signature can refuse it.
        self.assertRejected(secret, "evt_42", ts + 1, sig, body)
        self.assertRejected(new_secret(), "evt_42", ts, sig, body)

    def test_rotation_either_secret_verifies(self):
        new, old, ts, body = new_secret(), new_secret(48), int(time.time()), event_body()
        sig = signature("evt_7", ts, body, new, old)
        parts = sig.split(" ")
        self.assertEqual(len(parts), 2, sig)
        self.assertEqual(parts[0], signature("evt_7", ts, body, new))
        self.assertEqual(parts[1], signature("evt_7", ts, body, old))
        self.assertVerifies(new, "evt_7", ts, sig, body)
        self.assertVerifies(old, "evt_7", ts, sig, body)
        self.assertRejected(new_secret(), "evt_7", ts, sig, body)

    def test_malformed_secret_is_refused_and_not_echoed(self):
        good = new_secret()
        bare = good[len("whsec_"):]  # what the reference libraries would take
        cases = [
            (bare, "must start with whsec_"),
            ("whsec_" + bare[:-4] + "!!!!", "not base64"),
            ("whsec_" + bare.rstrip("="), "not base64"),
            ("whsec_" + base64.b64encode(os.urandom(23)).decode(), "must decode to 24 to 64 bytes"),
            ("whsec_" + base64.b64encode(os.urandom(65)).decode(), "must decode to 24 to 64 bytes"),
        ]
        for secret, why in cases:
            with self.subTest(why=why, secret=secret):
                rc, out, err = sign("evt_1", int(time.time()), b"{}", good, secret)
                self.assertEqual(rc, 2, err)
                self.assertEqual(out, "")
                self.assertIn("webhook_sign: secret 2: " + why, err)
                self.assertNotIn(secret[len("whsec_"):][:16], err)
                self.assertNotIn(bare[:16], err)

    def test_id_with_a_dot_is_refused(self):
        rc, out, err = sign("evt.1", int(time.time()), b"{}", new_secret())
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, "")


class ConsumerTest(unittest.TestCase):
    """One consumer for the class, with two secrets; each test starts from reset."""

    @classmethod
    def setUpClass(cls):
        cls.secrets = [new_secret(), new_secret(64)]
        cls.c = Consumer(cls.secrets).start()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()

    def setUp(self):
        if not os.access(sign_bin(), os.X_OK):
            self.fail("%s is missing: run `make helper-bins` (or SAN=1)" % sign_bin())
        self.c.control(reset=True)

    def post(self, body, headers, path="/hooks/erp", timeout=10, conn=None):
        """POST BODY -> (status, Retry-After or None, body bytes)."""
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.c.port, timeout=timeout)
        try:
            conn.request("POST", path, body=body,
                         headers=dict({"Content-Type": "application/json"}, **headers))
            r = conn.getresponse()
            return r.status, r.getheader("Retry-After"), r.read()
        finally:
            if own:
                conn.close()

    def signed(self, msg_id, body, *secrets, ts=None):
        ts = int(time.time()) if ts is None else ts
        return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
                "webhook-signature": signature(msg_id, ts, body, *(secrets or self.secrets[:1]))}

    def test_signed_request_is_recorded_as_verified(self):
        body = event_body()
        before = time.time() * 1000
        status, _, _ = self.post(body, self.signed("evt_100", body), path="/hooks/erp?x=1")
        after = time.time() * 1000
        self.assertEqual(status, 200)
        [r] = self.c.requests()
        self.assertTrue(r["verified"], r)
        self.assertEqual(r["secret_index"], 0)
        self.assertIsNone(r["error"])
        self.assertEqual((r["method"], r["path"]), ("POST", "/hooks/erp?x=1"))
        self.assertEqual(r["webhook_id"], "evt_100")
        self.assertEqual(r["body"], json.loads(body))
        self.assertEqual(r["raw"].encode(), body)
        self.assertEqual(r["headers"]["content-type"], "application/json")
        self.assertEqual(r["status"], 200)
        self.assertTrue(before - 1 <= r["arrived_ms"] <= r["answered_ms"] <= after + 1, r)

    def test_either_secret_verifies_and_rotation_header_too(self):
        body = event_body()
        self.post(body, self.signed("evt_1", body, self.secrets[1]))
        self.post(body, self.signed("evt_2", body, new_secret(), self.secrets[1]))
        self.post(body, self.signed("evt_3", body, *self.secrets))
        got = self.c.wait_requests(3)
        self.assertEqual([(r["webhook_id"], r["verified"], r["secret_index"]) for r in got],
                         [("evt_1", True, 1), ("evt_2", True, 1), ("evt_3", True, 0)])

    def test_forged_requests_are_recorded_as_not_verified(self):
        body = event_body()
        old = int(time.time()) - 600
        forged = [
            ("unknown secret", body, self.signed("evt_1", body, new_secret())),
            ("body changed", body + b" ", self.signed("evt_2", body)),
            ("id changed", body, dict(self.signed("evt_3", body), **{"webhook-id": "evt_4"})),
            ("no signature", body, {"webhook-id": "evt_5", "webhook-timestamp": str(old + 600)}),
            ("too old", body, self.signed("evt_6", body, ts=old)),
        ]
        for what, b, headers in forged:
            status, _, _ = self.post(b, headers)
            self.assertEqual(status, 200, what)
        got = self.c.wait_requests(len(forged))
        for (what, _, _), r in zip(forged, got):
            with self.subTest(what):
                self.assertFalse(r["verified"], r)
                self.assertIsNone(r["secret_index"])
                self.assertTrue(r["error"], r)
        self.assertIn("too old", got[4]["error"])
        self.assertIsNone(got[3]["webhook_signature"])

    def test_scripted_statuses_then_the_default(self):
        self.c.control(responses=[{"status": 500, "count": 2}, {"status": 410},
                                  {"status": 429, "retry_after": 2},
                                  {"status": 503, "retry_after": "7"}])
        body = event_body()
        answers = [self.post(body, self.signed("evt_%d" % i, body))[:2] for i in range(6)]
        self.assertEqual(answers, [(500, None), (500, None), (410, None), (429, "2"),
                                   (503, "7"), (200, None)])
        self.assertEqual([r["status"] for r in self.c.requests()], [500, 500, 410, 429, 503, 200])

    def test_default_answer_until_reset(self):
        self.c.control(status=503, retry_after=1)
        body = event_body()
        for i in range(3):
            self.assertEqual(self.post(body, self.signed("evt_%d" % i, body))[:2], (503, "1"))
        self.c.control(reset=True)
        self.assertEqual(self.c.requests(), [])
        self.assertEqual(self.post(body, self.signed("evt_9", body))[:2], (200, None))
        [r] = self.c.requests()
        self.assertEqual(r["webhook_id"], "evt_9")
        self.assertGreater(r["seq"], 3)  # seq goes on counting across a reset

    def test_delay(self):
        self.c.control(responses=[{"status": 202, "delay_ms": 400}])
        body = event_body()
        t0 = time.monotonic()
        status, _, _ = self.post(body, self.signed("evt_1", body))
        self.assertEqual(status, 202)
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        [r] = self.c.requests()
        self.assertGreaterEqual(r["answered_ms"] - r["arrived_ms"], 399)

    def test_hang_then_close_then_answer(self):
        self.c.control(responses=[{"hang": True}, {"close": True}])
        body = event_body()
        t0 = time.monotonic()
        with self.assertRaises(socket.timeout):
            self.post(body, self.signed("evt_1", body), timeout=0.5)
        self.assertGreaterEqual(time.monotonic() - t0, 0.5)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.post(body, self.signed("evt_2", body))
        self.assertEqual(self.post(body, self.signed("evt_3", body))[0], 200)
        got = self.c.requests()
        self.assertEqual([(r["webhook_id"], r["status"], r["answered_ms"] is None) for r in got],
                         [("evt_1", None, True), ("evt_2", None, True), ("evt_3", 200, False)])
        self.assertTrue(got[0]["answer"]["hang"])
        self.assertTrue(all(r["verified"] for r in got), got)

    def test_keep_alive_connection_is_numbered_once(self):
        body = event_body()
        conn = http.client.HTTPConnection("127.0.0.1", self.c.port, timeout=10)
        try:
            for i in range(3):
                self.post(body, self.signed("evt_%d" % i, body), conn=conn)
        finally:
            conn.close()
        self.post(body, self.signed("evt_9", body))
        got = self.c.wait_requests(4)
        self.assertEqual(len({r["connection"] for r in got[:3]}), 1, got)
        self.assertNotEqual(got[3]["connection"], got[0]["connection"])

    def test_since(self):
        body = event_body()
        for i in range(3):
            self.post(body, self.signed("evt_%d" % i, body))
        got = self.c.wait_requests(3)
        later = self.c.requests(since=got[0]["seq"])
        self.assertEqual([r["webhook_id"] for r in later], ["evt_1", "evt_2"])

    def test_bad_control_is_refused_and_changes_nothing(self):
        self.c.control(responses=[{"status": 418}])
        for bad in ({"responses": [{"status": "500"}]}, {"responses": [{"count": 0}]},
                    {"responses": [{"stauts": 500}]}, {"nope": 1}, {"delay_ms": -1}):
            with self.subTest(bad=bad):
                status, raw = self.c.request("POST", "/_control", bad)
                self.assertEqual(status, 400, raw)
                self.assertFalse(json.loads(raw)["ok"])
        body = event_body()
        self.assertEqual(self.post(body, self.signed("evt_1", body))[0], 418)


class ConsumerSecretsTest(unittest.TestCase):

    def test_comma_separated_secrets(self):
        a, b = new_secret(), new_secret()
        body = event_body()
        with Consumer(["%s,%s" % (a, b)]).start() as c:
            for i, s in enumerate((b, a, new_secret())):
                ts = int(time.time())
                conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
                conn.request("POST", "/", body=body, headers={
                    "webhook-id": "evt_%d" % i, "webhook-timestamp": str(ts),
                    "webhook-signature": signature("evt_%d" % i, ts, body, s)})
                self.assertEqual(conn.getresponse().status, 200)
                conn.close()
            got = c.wait_requests(3)
        self.assertEqual([(r["verified"], r["secret_index"]) for r in got],
                         [(True, 1), (True, 0), (False, None)])


if __name__ == "__main__":
    unittest.main()
