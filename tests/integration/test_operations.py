"""test_operations.py - what an operator relies on: /metrics, SIGHUP secret
rotation, and the sign / verify tools, against the real binary and a real
PostgreSQL (see harness.py)."""

import http.client
import os
import signal
import subprocess
import time
import unittest

from harness import (PG, REPO, SHOP, VECTOR_MESSAGE, Receiver, free_port, envelope, new_msg_id, new_order_id,
                     run_receiver, signed_form, wait_for)

# Debian's python3-prometheus-client (deploy/setup-debian.sh installs it);
# the system interpreter, since the one on PATH may be another.
SYSTEM_PYTHON = "/usr/bin/python3"
PARSE = r"""
import sys
from prometheus_client.parser import text_string_to_metric_families
families = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
for f in sorted(families.values(), key=lambda f: f.name):
    for s in f.samples:
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        print("%s|%s|%s|%r" % (f.type, s.name, labels, s.value))
"""


class OperationsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database(cls.__name__)

    def setUp(self):
        self.rx = Receiver(self.db)

    def tearDown(self):
        self.rx.stop()

    def parse_metrics(self):
        status, headers, body = self.rx.get("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        r = subprocess.run([SYSTEM_PYTHON, "-c", PARSE], input=body, capture_output=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, "the Prometheus parser refused /metrics:\n%s\n%s"
                         % (r.stderr.decode(), body.decode()[:2000]))
        samples = {}
        for line in r.stdout.decode().splitlines():
            kind, name, labels, value = line.split("|")
            samples[(name, labels)] = (kind, float(value))
        return samples

    def test_metrics_parse_and_count(self):
        for _ in range(3):
            status, _, _ = self.rx.push(envelope(new_msg_id(), order_id=new_order_id()))
            self.assertEqual(status, 200)
        self.rx.push(envelope(new_msg_id()), secret="wrong-secret")
        s = self.parse_metrics()
        self.assertEqual(s[("receiver_requests_total", "app=shop,status=200")], ("counter", 3.0))
        self.assertEqual(s[("receiver_requests_total", "app=shop,status=401")], ("counter", 1.0))
        self.assertEqual(s[("receiver_signature_failures_total", "")][1], 1.0)
        self.assertEqual(s[("receiver_database_up", "")], ("gauge", 1.0))
        self.assertEqual(s[("receiver_batch_size_count", "")][1],
                         s[("receiver_batches_total", "result=committed")][1])
        self.assertGreaterEqual(s[("receiver_batch_size_sum", "")][1], 3.0)
        schema = max(int(f.split("_")[0]) for f in os.listdir(os.path.join(REPO, "sql"))
                     if f.endswith(".sql"))
        info = [k for k in s if k[0] == "receiver_build_info"]
        self.assertEqual(len(info), 1)
        self.assertIn("schema=%d," % schema, info[0][1])
        for (name, _labels), (_kind, value) in s.items():
            self.assertNotIn("secret", name)

    def test_sighup_rotates_secrets_without_dropping_anything(self):
        self.assertEqual(self.rx.push(envelope(new_msg_id()))[0], 200)
        conn = self.rx.connection()  # a keep-alive connection that must survive
        with open(self.rx.config) as f:
            text = f.read()
        self.assertIn('app_secret = "demo-app-secret"', text)
        text = text.replace('app_secret = "demo-app-secret"', 'app_secret = "rotated-secret"')
        text = text.replace('previous_secrets = ["old-secret"]',
                            'previous_secrets = ["demo-app-secret"]')
        with open(self.rx.config, "w") as f:
            f.write(text)
        self.rx.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: any(e.get("event") == "reloaded" for e in self.rx.log_events()), 5,
                 what="the reload")
        self.assertEqual(self.rx.push(envelope(new_msg_id()), secret="rotated-secret")[0], 200)
        self.assertEqual(self.rx.push(envelope(new_msg_id()), secret="demo-app-secret")[0], 200,
                         "the previous secret must still be accepted during the rotation")
        self.assertEqual(self.rx.push(envelope(new_msg_id()), secret="old-secret")[0], 401)
        conn.request("GET", "/healthz")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()
        self.assertNotIn("rotated-secret", self.rx.log_text())

    def test_sighup_with_a_broken_file_keeps_running(self):
        with open(self.rx.config, "a") as f:
            f.write("\n[server]\nbogus = 1\n")
        self.rx.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: any(e.get("event") == "reload_failed"
                             for e in self.rx.log_events()), 5, what="the failed reload")
        self.assertEqual(self.rx.push(envelope(new_msg_id()))[0], 200)

    def test_sign_then_verify_then_push(self):
        r = run_receiver(["sign", "-c", self.rx.config, "--app", "shop"],
                         input_text=VECTOR_MESSAGE + "\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        body = r.stdout.strip()
        self.assertTrue(body.endswith("&_aop_signature=B7921195E2E67B30BDF6B945BB94E391BBE2DD27"),
                        body)
        v = run_receiver(["verify", "-c", self.rx.config], input_text=body)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("genuine: app shop", v.stdout)
        self.assertIn("msgId 130000000001", v.stdout)
        status, _, reply = self.rx.post(SHOP["path"], body.encode())
        self.assertEqual((status, reply), (200, b"success"))
        bad = body[:-1] + ("0" if body[-1] != "0" else "1")
        v = run_receiver(["verify", "-c", self.rx.config], input_text=bad)
        self.assertEqual(v.returncode, 1)
        self.assertIn("bad signature", v.stdout)
        v = run_receiver(["verify", "-c", self.rx.config], input_text="message=%ZZ")
        self.assertEqual(v.returncode, 1)
        self.assertIn("malformed percent escape", v.stdout)

    def test_sign_with_dj_field(self):
        r = run_receiver(["sign", "-c", self.rx.config, "--field", "_dj_signature"],
                         input_text=VECTOR_MESSAGE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("&_dj_signature=B7921195E2E67B30BDF6B945BB94E391BBE2DD27", r.stdout)
        self.assertEqual(self.rx.post(SHOP["path"], r.stdout.strip().encode())[0], 200)

    def test_audit_views_answer_the_operators_questions(self):
        o = new_order_id()
        m = new_msg_id()
        self.assertEqual(self.rx.push(envelope(m, order_id=o))[0], 200)
        self.assertEqual(self.rx.push(envelope(new_msg_id(), order_id=o),
                                      secret="wrong-secret")[0], 401)
        rows = self.db.sql("SELECT kind, ref::text, status FROM order_timeline"
                           " WHERE order_id = %d" % o)
        self.assertEqual([tuple(r) for r in rows], [("message", str(m), "waitsellersend")])
        wait_for(lambda: self.db.value("SELECT error FROM recent_rejections"
                                       " WHERE http_status = 401 LIMIT 1"), 5,
                 what="the rejection in recent_rejections")
        self.assertEqual(self.db.value("SELECT error FROM recent_rejections"
                                       " WHERE http_status = 401 LIMIT 1"), "bad signature")
        self.db.sql("UPDATE reconcile_jobs SET state = 'dead', attempts = 8,"
                    " last_error = 'HTTP 500 from the trade API' WHERE order_id = %d" % o)
        self.assertEqual(self.db.value("SELECT last_error FROM stuck_jobs"
                                       " WHERE order_id = %d" % o),
                         "HTTP 500 from the trade API")


class AdminListenTest(unittest.TestCase):
    """[server] admin_listen moves /metrics off the public listener."""

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database(cls.__name__)

    def test_metrics_only_on_the_admin_address(self):
        port = free_port()
        rx = Receiver(self.db, extra={"server": {"admin_listen": "127.0.0.1:%d" % port}})
        try:
            self.assertEqual(rx.push(envelope(new_msg_id()))[0], 200)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            for path, want in (("/metrics", 200), ("/healthz", 200), ("/readyz", 200),
                               (SHOP["path"], 404)):
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                self.assertEqual(resp.status, want, path)
                if path == "/metrics":
                    self.assertIn(b'receiver_requests_total{app="shop",status="200"} 1', body)
            conn.close()
            self.assertEqual(rx.get("/metrics")[0], 404, "metrics must leave the public port")
        finally:
            rx.stop()


class HostNameTest(unittest.TestCase):
    """A database URL with a host name: looked up with libevent's resolver
    (libpq's own lookup would block the loop), then connected by address."""

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database(cls.__name__)

    def test_database_host_name_is_resolved_and_used(self):
        url = self.db.url.replace("127.0.0.1", "localhost")
        self.assertIn("@localhost:", url)
        rx = Receiver(self.db, extra={"database": {"url": url}})
        try:
            m = new_msg_id()
            self.assertEqual(rx.push(envelope(m, order_id=new_order_id()))[0], 200)
            self.assertEqual(self.db.value("SELECT msg_id FROM trade_events WHERE msg_id = %d"
                                           % m), str(m))
        finally:
            rx.stop()

    def test_unknown_host_name_is_503_not_a_stall(self):
        rx = Receiver(self.db, start=False, migrate=False,
                      extra={"database": {"url": "postgresql://receiver@no-such-host.invalid/x"}})
        rx.start(ready=False)
        try:
            started = time.monotonic()
            status, _, body = rx.get("/readyz")
            self.assertEqual(status, 503, body)
            self.assertEqual(rx.push(envelope(new_msg_id()))[0], 503)
            self.assertLess(time.monotonic() - started, 1.0)
        finally:
            rx.stop()
