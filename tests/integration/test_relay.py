"""test_relay.py - order events to the user's own services (issue 12).

A push names an order; the reconciler fetches it from the fake trade API;
the change is recorded with its outbox rows in the same transactions; the
relay sends every event to every matching [[subscriber]] as a Standard
Webhooks request.  The subscribers are tests/relay/consumer.js, which
checks every request with the `standardwebhooks` npm package (the
specification's reference library, not our code) and records it.

Backoffs are kept small (relay backoff 50..200 ms) so retries happen
within a test.
"""

import json
import time
import unittest

import harness
import test_reconcile
from consumer import Consumer
from harness import Receiver, envelope, new_msg_id, new_order_id, run_receiver, wait_for

SECRET_A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="
SECRET_B = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oDC2FVsBQIhrs="
RELAY = {"enabled": True, "max_attempts": 5, "backoff_min_ms": 50, "backoff_max_ms": 200}
# Beyond 2^53: a double would lose them.
BIG_ORDER = 3100000000000000001


class RelayTest(test_reconcile.ReconcileTest):
    """A fake trade API per class, consumers and receivers per test."""

    def setUp(self):
        super().setUp()
        self.consumers = []

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            for c in self.consumers:
                c.stop()

    def secrets(self):
        # tearDown looks for these in every log line, command output and table
        # row, beside the apps' secrets; the base64 part alone must not show either.
        return super().secrets() | {SECRET_A, SECRET_B, SECRET_A[6:], SECRET_B[6:]}

    def consumer(self, secrets=(SECRET_A,)):
        c = Consumer(list(secrets)).start()
        self.consumers.append(c)
        return c

    def relay_receiver(self, subscribers, relay=None, start=True):
        extra = self.config()
        extra["relay"] = dict(RELAY, **(relay or {}))
        extra["subscriber"] = subscribers
        rx = Receiver(self.db, extra=extra, start=start)
        self.receivers.append(rx)
        return rx

    def sub(self, name, consumer, **kw):
        return dict({"name": name, "url": consumer.url("/hooks"), "secret": SECRET_A,
                     "timeout_ms": 2000, "max_concurrency": 2}, **kw)

    def push_order(self, rx, order_id, status="waitbuyerreceive"):
        self.api.set_orders([{"id": order_id, "status": status,
                              "modifyTime": test_reconcile.T2}])
        m = new_msg_id()
        self.assertEqual(rx.push(envelope(m, order_id=order_id))[0], 200)
        return m

    def deliveries(self, subscriber):
        return self.rows("SELECT event_type, state, attempts, last_status FROM relay_deliveries"
                         " WHERE subscriber = '%s' ORDER BY id" % subscriber)

    def relay_cmd(self, rx, *args):
        r = run_receiver(["relay", "-c", rx.config] + list(args), timeout=30)
        self.outputs.append(("relay " + " ".join(args), r.stdout + r.stderr))
        return r


class TestEvents(RelayTest):

    def test_each_event_type_arrives_verified_with_exact_ids(self):
        c = self.consumer()
        rx = self.relay_receiver([self.sub("erp", c)])
        m = self.push_order(rx, BIG_ORDER)
        got = c.wait_requests(3, timeout=20)
        self.assertTrue(all(r["verified"] for r in got), got)
        by_type = {r["body"]["type"]: r for r in got}
        self.assertEqual(sorted(by_type),
                         ["message.received", "order.status_changed", "order.updated"])
        msg = by_type["message.received"]["body"]["data"]
        self.assertEqual(msg["msg_id"], str(m))
        self.assertEqual(msg["order_ids"], [str(BIG_ORDER)])
        self.assertEqual(msg["app"], "shop")
        self.assertEqual(msg["message"]["msgId"], m)
        changed = by_type["order.status_changed"]["body"]["data"]
        self.assertEqual(changed["order_id"], str(BIG_ORDER))
        self.assertIsNone(changed["old_status"])
        self.assertEqual(changed["new_status"], "waitbuyerreceive")
        # The record is the API's own JSON: its id a number, exact in the bytes
        # sent (the consumer's JavaScript parse rounds it to a double).
        self.assertRegex(by_type["order.status_changed"]["raw"],
                         r'"id"\s*:\s*%d[,}]' % BIG_ORDER)
        updated = by_type["order.updated"]["body"]["data"]
        self.assertEqual((updated["order_id"], updated["status"]),
                         (str(BIG_ORDER), "waitbuyerreceive"))
        # The raw body carries the 64-bit ids exactly (a JSON number above
        # 2^53 would already be wrong when parsed).
        self.assertIn('"order_id":"%d"' % BIG_ORDER,
                      by_type["order.updated"]["raw"].replace(" ", ""))
        for r in got:
            self.assertTrue(r["webhook_id"].startswith("evt_"), r["webhook_id"])
            self.assertRegex(r["body"]["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")
        wait_for(lambda: [d["state"] for d in self.deliveries("erp")] == ["delivered"] * 3, 10,
                 what="three deliveries delivered")

    def test_filters_by_events_and_apps(self):
        everything, changes, other_app = self.consumer(), self.consumer(), self.consumer()
        rx = self.relay_receiver([
            self.sub("all", everything),
            self.sub("changes", changes, events=["order.status_changed"]),
            self.sub("dj-only", other_app, apps=["dj"])])
        self.push_order(rx, new_order_id())
        everything.wait_requests(3, timeout=20)
        got = changes.wait_requests(1, timeout=10)
        time.sleep(1.5)
        self.assertEqual([r["body"]["type"] for r in changes.requests()],
                         ["order.status_changed"])
        self.assertEqual(got[0]["verified"], True)
        self.assertEqual(other_app.requests(), [])

    def test_rotation_signs_with_both_secrets(self):
        old_only, new_only = self.consumer([SECRET_A]), self.consumer([SECRET_B])
        rx = self.relay_receiver([
            self.sub("a", old_only, secret=SECRET_B, previous_secrets=[SECRET_A]),
            self.sub("b", new_only, secret=SECRET_B, previous_secrets=[SECRET_A])])
        self.push_order(rx, new_order_id())
        for c in (old_only, new_only):
            got = c.wait_requests(3, timeout=20)
            self.assertTrue(all(r["verified"] for r in got), got)
            self.assertEqual(len(got[0]["webhook_signature"].split(" ")), 2)


class TestOutcomes(RelayTest):

    def test_a_failing_consumer_gets_the_same_webhook_id_until_it_answers_2xx(self):
        c = self.consumer()
        c.control(responses=[{"status": 500, "count": 2}, {"status": 200}])
        rx = self.relay_receiver([self.sub("erp", c, events=["order.status_changed"])])
        self.push_order(rx, new_order_id())
        got = c.wait_requests(3, timeout=20)
        self.assertEqual([r["status"] for r in got], [500, 500, 200])
        self.assertEqual(len({r["webhook_id"] for r in got}), 1, got)
        self.assertTrue(all(r["verified"] for r in got))
        wait_for(lambda: self.deliveries("erp") == [
            {"event_type": "order.status_changed", "state": "delivered", "attempts": 3,
             "last_status": 200}], 10, what="delivered after 3 attempts")

    def test_429_with_retry_after_is_retried_no_sooner(self):
        c = self.consumer()
        c.control(responses=[{"status": 429, "count": 1, "retry_after": 2}, {"status": 200}])
        rx = self.relay_receiver([self.sub("erp", c, events=["order.status_changed"])])
        self.push_order(rx, new_order_id())
        got = c.wait_requests(2, timeout=20)
        self.assertEqual([r["status"] for r in got], [429, 200])
        waited = (got[1]["arrived_ms"] - got[0]["arrived_ms"]) / 1000.0
        # The backoff alone would be 25..50 ms; Retry-After says 2 s.
        self.assertGreaterEqual(waited, 1.9, "retried after %.3f s" % waited)
        self.assertLess(waited, 6.0)

    def test_dead_after_max_attempts_then_retry_dead_brings_it_back(self):
        c = self.consumer()
        c.control(status=500)
        rx = self.relay_receiver([self.sub("erp", c, events=["order.status_changed"])],
                                 relay={"max_attempts": 2})
        self.push_order(rx, new_order_id())
        wait_for(lambda: [d["state"] for d in self.deliveries("erp")] == ["dead"], 20,
                 what="the delivery dead after 2 attempts")
        self.assertEqual(self.deliveries("erp")[0]["last_status"], 500)
        self.assertEqual(len(c.requests()), 2)
        c.control(reset=True)
        r = self.relay_cmd(rx, "--retry-dead")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 dead deliveries put back to pending", r.stdout)
        wait_for(lambda: [d["state"] for d in self.deliveries("erp")] == ["delivered"], 20,
                 what="delivered after --retry-dead")

    def test_410_disables_one_subscriber_while_another_keeps_receiving(self):
        gone, fine = self.consumer(), self.consumer()
        gone.control(status=410)
        rx = self.relay_receiver([self.sub("gone", gone, events=["order.status_changed"]),
                                  self.sub("fine", fine, events=["order.status_changed"])])
        self.push_order(rx, new_order_id())
        fine.wait_requests(1, timeout=20)
        refused = gone.wait_requests(1, timeout=20)[0]
        self.assertEqual(refused["status"], 410)
        self.push_order(rx, new_order_id())
        fine.wait_requests(2, timeout=20)
        time.sleep(1.5)
        self.assertEqual(len(gone.requests()), 1, "a disabled subscriber was sent more")
        self.assertEqual(self.db.value(
            "SELECT enabled FROM relay_subscribers WHERE name = 'gone'"), "f")
        self.assertIn("relay_subscriber_gone", rx.log_text())
        gone.control(reset=True)  # answers 200 again; forgets what it recorded
        r = self.relay_cmd(rx, "--enable", "gone")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("subscriber gone enabled", r.stdout)
        got = gone.wait_requests(2, timeout=20)
        self.assertEqual(len({g["webhook_id"] for g in got}), 2, "both events, after --enable")
        self.assertIn(refused["webhook_id"], [g["webhook_id"] for g in got],
                      "the event refused with 410 is sent again, with its id")

    def test_a_hanging_subscriber_does_not_delay_another(self):
        hang, fine = self.consumer(), self.consumer()
        hang.control(hang=True)
        rx = self.relay_receiver([self.sub("hang", hang, timeout_ms=5000),
                                  self.sub("fine", fine)])
        t0 = time.monotonic()
        self.push_order(rx, new_order_id())
        fine.wait_requests(3, timeout=10)
        self.assertLess(time.monotonic() - t0, 4.0, "the hanging subscriber held the other")


class TestCommands(RelayTest):

    def test_metrics_show_deliveries_by_subscriber_and_outcome(self):
        c = self.consumer()
        c.control(responses=[{"status": 500, "count": 1}, {"status": 200}])
        rx = self.relay_receiver([self.sub("erp", c, events=["order.status_changed"])])
        self.push_order(rx, new_order_id())
        c.wait_requests(2, timeout=20)
        wait_for(lambda: b'receiver_relay_deliveries_total{subscriber="erp",outcome="delivered"} 1'
                 in rx.get("/metrics")[2], 10, what="the delivery counted")
        body = rx.get("/metrics")[2].decode()
        self.assertIn('receiver_relay_deliveries_total{subscriber="erp",outcome="failed"} 1', body)
        self.assertIn('receiver_relay_request_milliseconds_count{subscriber="erp"} 2', body)
        wait_for(lambda: b'receiver_relay_subscriber_disabled{subscriber="erp"} 0'
                 in rx.get("/metrics")[2], 10, what="the gauges read from the database")

    def test_relay_command_shows_the_subscribers_and_test_sends_one_event(self):
        c = self.consumer()
        rx = self.relay_receiver([self.sub("erp", c)])
        r = self.relay_cmd(rx, "--test", "erp")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("subscriber erp answered HTTP 200 to relay.test", r.stdout)
        got = c.wait_requests(1)
        self.assertEqual(got[0]["body"]["type"], "relay.test")
        self.assertTrue(got[0]["verified"])
        r = self.relay_cmd(rx)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("erp", r.stdout)
        r = self.relay_cmd(rx, "--enable", "nobody")
        self.assertEqual(r.returncode, 2)

    def test_replay_sends_a_window_again_with_the_same_ids(self):
        c = self.consumer()
        rx = self.relay_receiver([self.sub("erp", c, events=["order.status_changed"])])
        self.push_order(rx, new_order_id())
        first = c.wait_requests(1, timeout=20)
        wait_for(lambda: [d["state"] for d in self.deliveries("erp")] == ["delivered"], 10,
                 what="delivered")
        r = self.relay_cmd(rx, "--replay", "erp", "--since", "2000-01-01")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 events enqueued again for erp", r.stdout)
        again = c.wait_requests(2, timeout=20)
        self.assertEqual(again[1]["webhook_id"], first[0]["webhook_id"])


class TestDurability(RelayTest):

    def test_per_order_order_holds_while_an_earlier_event_is_retried(self):
        c = self.consumer()
        # The first request fails twice; everything after it is answered at once.
        c.control(responses=[{"status": 500, "count": 2}, {"status": 200}])
        rx = self.relay_receiver([self.sub("erp", c, max_concurrency=4)])
        o = new_order_id()
        self.push_order(rx, o)
        got = c.wait_requests(5, timeout=20)  # 2 failures, then the 3 events
        ok = [r for r in got if r["status"] == 200]
        order_events = [r["body"]["type"] for r in ok
                        if r["body"]["data"].get("order_id") == str(o)]
        # Recorded in this order in one transaction (updated, then status_changed):
        # the second waits for the first however often the first is retried.
        self.assertEqual(order_events, ["order.updated", "order.status_changed"], got)
        first_try = got[0]["webhook_id"]
        self.assertEqual([r["webhook_id"] for r in got[:3]], [first_try] * 3)

    def test_kill_9_with_deliveries_pending_loses_nothing(self):
        c = self.consumer()
        c.control(status=503)
        rx = self.relay_receiver([self.sub("erp", c, events=["order.status_changed"])],
                                 relay={"max_attempts": 1000})
        orders = [new_order_id() for _ in range(5)]
        for o in orders:
            self.push_order(rx, o)
        wait_for(lambda: len(c.requests()) >= 3, 20, what="attempts under way")
        rx.kill()
        c.control(reset=True)
        rx.start()
        # A delivery in flight at the kill waits for its lease: the request's
        # timeout (2 s) and the relay's margin (10 s).
        got = c.wait_requests(5, timeout=45)
        delivered = {r["body"]["data"]["order_id"] for r in got if r["status"] == 200}
        self.assertEqual(delivered, {str(o) for o in orders})
        wait_for(lambda: [d["state"] for d in self.deliveries("erp")] == ["delivered"] * 5, 20,
                 what="every delivery delivered after the restart")

    def test_two_receivers_never_send_one_claimed_delivery_twice(self):
        c = self.consumer()
        c.control(delay_ms=50)
        subs = [self.sub("erp", c, events=["order.status_changed"], max_concurrency=4)]
        a = self.relay_receiver(subs)
        b = self.relay_receiver(subs)
        orders = [new_order_id() for _ in range(30)]
        for i, o in enumerate(orders):
            self.push_order(a if i % 2 else b, o)
        got = c.wait_requests(30, timeout=60)
        ids = [r["webhook_id"] for r in got]
        self.assertEqual(len(ids), len(set(ids)), "a delivery was sent twice")
        self.assertTrue(all(r["verified"] for r in got))
        wait_for(lambda: [d["state"] for d in self.deliveries("erp")] == ["delivered"] * 30, 20,
                 what="30 delivered")
        # Both shared the work (each claims at most 4 at a time).
        sent = [self.delivered_by(rx) for rx in (a, b)]
        self.assertEqual(sum(sent), 30, sent)
        self.assertTrue(all(n > 0 for n in sent), sent)

    def delivered_by(self, rx):
        _, _, body = rx.get("/metrics")
        for line in body.decode().splitlines():
            if line.startswith('receiver_relay_deliveries_total{subscriber="erp",'
                               'outcome="delivered"}'):
                return int(float(line.split()[1]))
        return 0


class TestReadmeConsumer(RelayTest):
    """The Python consumer README.md shows verifies what the relay sends."""

    def test_the_readme_python_consumer_accepts_the_relay_and_refuses_a_forgery(self):
        import os
        import re
        import subprocess
        import sys
        with open(os.path.join(harness.REPO, "README.md")) as f:
            readme = f.read()
        code = re.search(r"Python, with the standard library alone:\n\n```python\n(.*?)```",
                         readme, re.S).group(1)
        port = harness.free_port()
        self.assertIn('("127.0.0.1", 9000)', code)
        code = code.replace('("127.0.0.1", 9000)', '("127.0.0.1", %d)' % port)
        proc = harness._register(subprocess.Popen(
            [sys.executable, "-u", "-c", code], env=dict(os.environ, WEBHOOK_SECRET=SECRET_A),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        try:
            wait_for(lambda: self._listening(port), 10, what="the README consumer listening")
            url = "http://127.0.0.1:%d/hooks" % port
            rx = self.relay_receiver([{"name": "py", "url": url, "secret": SECRET_A,
                                       "events": ["order.status_changed"]}])
            o = new_order_id()
            self.push_order(rx, o)
            wait_for(lambda: [d["state"] for d in self.deliveries("py")] == ["delivered"], 20,
                     what="delivered to the README consumer")
            # A forged request is refused.
            import http.client
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", "/hooks", body=b"{}", headers={
                "webhook-id": "evt_1", "webhook-timestamp": str(int(time.time())),
                "webhook-signature": "v1,AAAA"})
            self.assertEqual(conn.getresponse().status, 401)
        finally:
            proc.terminate()
            out = proc.communicate(timeout=10)[0]
        self.assertIn("order.status_changed %d" % o, out)

    def test_the_readme_node_consumer_accepts_the_relay(self):
        import os
        import re
        import subprocess
        from consumer import node_bin
        with open(os.path.join(harness.REPO, "README.md")) as f:
            readme = f.read()
        code = re.search(r"Node, with the reference library.*?\n\n```js\n(.*?)```", readme,
                         re.S).group(1)
        port = harness.free_port()
        self.assertIn(".listen(9000)", code)
        code = code.replace(".listen(9000)", ".listen(%d)" % port)
        modules = os.path.join(harness.REPO, "tests", "relay", "node_modules")
        proc = harness._register(subprocess.Popen(
            [node_bin(), "-e", code], env=dict(os.environ, WEBHOOK_SECRET=SECRET_A,
                                               NODE_PATH=modules),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        try:
            wait_for(lambda: self._listening(port), 10, what="the README consumer listening")
            rx = self.relay_receiver([{"name": "js", "url": "http://127.0.0.1:%d/" % port,
                                       "secret": SECRET_A, "events": ["order.status_changed"]}])
            o = new_order_id()
            self.push_order(rx, o)
            wait_for(lambda: [d["state"] for d in self.deliveries("js")] == ["delivered"], 20,
                     what="delivered to the README consumer")
        finally:
            proc.terminate()
            out = proc.communicate(timeout=10)[0]
        self.assertIn("order.status_changed %d" % o, out)

    @staticmethod
    def _listening(port):
        import socket
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False


if __name__ == "__main__":
    unittest.main()
