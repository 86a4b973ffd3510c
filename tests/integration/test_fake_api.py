"""test_fake_api.py - the fake trade API itself, through its HTTP API.

The receiver's reconcile tests rely on build/fake_api answering like the
real dajisaas API (PROTOCOL.md section 5) and failing exactly as told, so
that behaviour is pinned down here, over HTTP and over HTTPS (verified
against the fake's throw-away CA).  FAKE_API_BIN picks the binary
(build/asan/fake_api for the sanitizer build); every class stops its fake
with SIGTERM and fails on a non-zero exit or a sanitizer report.
"""

import http.client
import json
import os
import ssl
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from fakeapi import BUYER_VIEW, ORDER_LIST, FakeApi, fixture_path  # noqa: E402

ORDER = 2908059205527363456          # the protocol's test vector, > 2^53
OTHER = 3100000000000000007
MAX_ID = 9223372036854775807         # the largest 64-bit id
FIXTURE_CREATE_TIME = "2025-09-02T09:56:37.000+00:00"

NO_ANSWER = (http.client.RemoteDisconnected, ConnectionError, ssl.SSLError,
             http.client.BadStatusLine)


def load_fixture_record():
    with open(fixture_path(), encoding="utf-8") as f:
        return json.load(f)["data"]["result"][0]


class FakeApiTest(unittest.TestCase):
    """Everything over plain HTTP; FakeApiHttpsTest runs it all again over TLS."""

    TLS = False

    @classmethod
    def setUpClass(cls):
        cls.api = FakeApi().start(tls=cls.TLS)

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()

    def setUp(self):
        self.api.wait_idle()
        self.api.reset()

    # --- helpers ------------------------------------------------------------

    def view(self, order_id=ORDER, **kw):
        status, body = self.api.buyer_view(order_id, **kw)
        self.assertEqual(status, 200)
        self.assertIsNotNone(body, "answer is not JSON")
        return body

    def list_orders(self, **params):
        params.setdefault("createStartTime", "")
        params.setdefault("createEndTime", "")
        params.setdefault("orderStatus", "")
        params.setdefault("outOrderId", "")
        params.setdefault("productName", "")
        status, raw = self.api.trade(ORDER_LIST, params)
        self.assertEqual(status, 200)
        return json.loads(raw)

    def assert_ok_order(self, body, order_id):
        self.assertEqual(body["code"], 200, body.get("message"))
        self.assertEqual(body["data"]["baseInfo"]["id"], order_id)
        self.assertEqual(body["data"]["baseInfo"]["idOfStr"], str(order_id))

    # --- buyerView ----------------------------------------------------------

    def test_buyer_view_returns_the_order_with_its_exact_id(self):
        self.api.set_orders([{"id": str(ORDER), "status": "waitsellersend",
                              "modifyTime": "2025-09-02T09:58:02.000+00:00"}])
        status, raw = self.api.trade(BUYER_VIEW, {"webSite": "1688", "orderId": str(ORDER)})
        self.assertEqual(status, 200)
        self.assertIn(b'"id":2908059205527363456', raw)  # an integer, not a float
        body = json.loads(raw)
        self.assertEqual(body["code"], 200)
        self.assertEqual(body["message"], "success")
        self.assertIsInstance(body["timestamp"], int)
        self.assertTrue(body["traceId"].startswith("fake-"))
        base = body["data"]["baseInfo"]
        self.assertIs(type(base["id"]), int)
        self.assertEqual(base["id"], ORDER)
        self.assertEqual(base["idOfStr"], "2908059205527363456")
        self.assertEqual(base["status"], "waitsellersend")
        self.assertEqual(base["modifyTime"], "2025-09-02T09:58:02.000+00:00")
        self.assertEqual(base["createTime"], FIXTURE_CREATE_TIME)
        # The rest is the fixture's record.
        record = load_fixture_record()
        self.assertEqual(body["data"]["productItems"], record["productItems"])
        self.assertEqual(base["totalAmount"], record["baseInfo"]["totalAmount"])
        self.assertEqual(set(body["data"]), set(record))

    def test_buyer_view_accepts_an_integer_order_id_and_the_largest_id(self):
        self.api.set_orders([{"id": ORDER}, {"id": MAX_ID, "status": "success"}])
        status, raw = self.api.trade(BUYER_VIEW, {"webSite": "1688", "orderId": ORDER})
        self.assertEqual(status, 200)
        self.assert_ok_order(json.loads(raw), ORDER)
        self.assert_ok_order(self.view(MAX_ID), MAX_ID)

    def test_order_upsert_keeps_what_is_not_given(self):
        self.api.set_orders([{"id": ORDER, "status": "waitbuyerpay",
                              "modifyTime": "2025-09-02T09:56:37.000+00:00",
                              "createTime": "2025-09-02T09:56:37.000+00:00"}])
        self.api.set_orders([{"id": ORDER, "status": "waitsellersend"}])
        base = self.view()["data"]["baseInfo"]
        self.assertEqual(base["status"], "waitsellersend")
        self.assertEqual(base["modifyTime"], "2025-09-02T09:56:37.000+00:00")
        self.api.set_orders([{"id": ORDER, "modifyTime": "2025-09-03T01:00:00.000+00:00",
                              "baseInfo": {"refundStatus": "refundsuccess"}}])
        base = self.view()["data"]["baseInfo"]
        self.assertEqual(base["status"], "waitsellersend")
        self.assertEqual(base["modifyTime"], "2025-09-03T01:00:00.000+00:00")
        self.assertEqual(base["refundStatus"], "refundsuccess")

    def test_bad_orders_are_rejected_whole(self):
        status, raw = self.api.request("POST", "/_control/orders", {"orders": [
            {"id": str(OTHER)}, {"id": ORDER, "createTime": "yesterday"}]})
        self.assertEqual(status, 400, raw)
        self.assertEqual(self.view(OTHER)["code"], 500)  # the good one was not stored either

    def test_wrong_credentials_are_code_401(self):
        self.api.set_orders([{"id": ORDER}])
        for creds in ({"appKey": "demo-app-key", "appSecret": "wrong"},
                      {"appKey": "wrong", "appSecret": "demo-app-secret"},
                      {"appKey": "demo-app-key"}):
            with self.subTest(creds=creds):
                body = {"webSite": "1688", "orderId": str(ORDER), **creds}
                status, raw = self.api.trade(BUYER_VIEW, body, credentials=False)
                self.assertEqual(status, 200)
                answer = json.loads(raw)
                self.assertEqual(answer["code"], 401)
                self.assertEqual(answer["message"], "invalid appKey or appSecret")
        status, raw = self.api.trade(ORDER_LIST, {"appSecret": "wrong"})
        self.assertEqual(json.loads(raw)["code"], 401)
        self.assertEqual(self.api.stats()["rejected_credentials"], 4)

    def test_unknown_order_is_code_500(self):
        body = self.view(OTHER)
        self.assertEqual(body["code"], 500)
        self.assertEqual(body["message"], "order not found")

    def test_malformed_order_id_is_code_400(self):
        for order_id in ("", "12a", "-5", "99999999999999999999"):
            with self.subTest(order_id=order_id):
                status, raw = self.api.trade(BUYER_VIEW, {"orderId": order_id})
                self.assertEqual(json.loads(raw)["code"], 400)

    # --- getBuyerOrderList --------------------------------------------------

    def set_list_orders(self):
        a, b, c = OTHER + 1, ORDER, OTHER  # created in that order
        self.api.set_orders([
            {"id": a, "status": "success", "createTime": "2025-09-01T10:00:00.000+00:00"},
            {"id": b, "status": "waitsellersend", "createTime": "2025-09-02T18:00:00.000+08:00"},
            {"id": c, "status": "success", "createTime": "2025-09-03T00:00:00.000Z"},
            {"id": 1001, "status": "cancel",
             "createTime": "2025-09-01T09:59:59.999+00:00"},  # just before
            {"id": 1002, "status": "cancel",
             "createTime": "2025-09-03T00:00:00.001+00:00"},  # just after
        ])
        return [a, b, c]

    def test_list_filters_by_create_time_and_pages(self):
        expected = self.set_list_orders()
        window = {"createStartTime": "20250901180000000+0800",  # 2025-09-01T10:00Z
                  "createEndTime": "20250903000000000+0000"}
        pages = []
        for page in (1, 2, 3):
            body = self.list_orders(page=page, pageSize=2, **window)
            self.assertEqual(body["code"], 200)
            self.assertEqual(body["data"]["totalRecord"], 3)
            self.assertIsNone(body["data"]["errorCode"])
            pages.append([r["baseInfo"]["id"] for r in body["data"]["result"]])
        self.assertEqual([len(p) for p in pages], [2, 1, 0])
        self.assertEqual(pages[0] + pages[1], expected)
        record = self.list_orders(page=1, pageSize=1, **window)["data"]["result"][0]
        self.assertEqual(record["baseInfo"]["idOfStr"], str(expected[0]))
        self.assertEqual(set(record), set(load_fixture_record()))

    def test_list_filters_by_status_and_breaks_ties_by_id(self):
        self.set_list_orders()
        body = self.list_orders(orderStatus="success", pageSize=10)
        self.assertEqual([r["baseInfo"]["id"] for r in body["data"]["result"]],
                         [OTHER + 1, OTHER])
        same = "2025-09-05T00:00:00.000+00:00"
        self.api.set_orders([{"id": 7, "createTime": same}, {"id": 5, "createTime": same}])
        body = self.list_orders(createStartTime="20250905000000000+0000", page="1",
                                pageSize="50")
        self.assertEqual([r["baseInfo"]["id"] for r in body["data"]["result"]], [5, 7])
        self.assertEqual(self.list_orders()["data"]["totalRecord"], 7)

    def test_list_rejects_a_malformed_window(self):
        for bad in ("2025-09-01", "20250901180000000", "20250901180000000+08"):
            with self.subTest(createStartTime=bad):
                self.assertEqual(self.list_orders(createStartTime=bad)["code"], 400)

    # --- faults -------------------------------------------------------------

    def test_fault_http500_and_http503(self):
        self.api.set_orders([{"id": ORDER}])
        self.api.add_faults([{"kind": "http500"}, {"kind": "http503"}])
        self.assertEqual(self.api.buyer_view(ORDER), (500, None))
        self.assertEqual(self.api.trade(BUYER_VIEW, {"orderId": str(ORDER)}),
                         (503, b"service unavailable"))
        self.assert_ok_order(self.view(), ORDER)  # each was used up

    def test_fault_http500_body(self):
        self.api.add_faults([{"kind": "http500"}])
        self.assertEqual(self.api.trade(BUYER_VIEW, {"orderId": "1"}), (500, b"internal error"))

    def test_fault_notjson(self):
        self.api.add_faults([{"kind": "notjson"}])
        self.assertEqual(self.api.trade(BUYER_VIEW, {"orderId": str(ORDER)}),
                         (200, b"<html>oops</html>"))

    def test_fault_code(self):
        self.api.set_orders([{"id": ORDER}])
        self.api.add_faults([{"kind": "code"}])
        body = self.view()
        self.assertEqual((body["code"], body["message"]), (500, "system busy"))

    def test_fault_wrongid(self):
        self.api.set_orders([{"id": ORDER, "status": "waitsellersend"}])
        self.api.add_faults([{"kind": "wrongid"}])
        body = self.view()
        self.assert_ok_order(body, ORDER + 1)
        self.assertEqual(body["data"]["baseInfo"]["status"], "waitsellersend")

    def test_fault_creds(self):
        self.api.set_orders([{"id": ORDER}])
        self.api.add_faults([{"kind": "creds"}])
        body = self.view()
        self.assertEqual((body["code"], body["message"]), (401, "invalid appKey or appSecret"))
        self.assertEqual(self.api.stats()["rejected_credentials"], 0)  # only real ones count

    def test_fault_hang_until_the_client_gives_up(self):
        self.api.set_orders([{"id": ORDER}])
        self.api.add_faults([{"kind": "hang"}])
        t0 = time.monotonic()
        with self.assertRaises(TimeoutError):
            self.api.buyer_view(ORDER, timeout=1)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        stats = self.api.wait_idle()  # the fake saw the client hang up
        self.assertEqual(stats["max_concurrent"], 1)
        self.assert_ok_order(self.view(), ORDER)

    def test_fault_slow(self):
        self.api.set_orders([{"id": ORDER}])
        self.api.add_faults([{"kind": "slow", "delay_ms": 400}])
        t0 = time.monotonic()
        body = self.view()
        self.assertGreaterEqual(time.monotonic() - t0, 0.38)
        self.assert_ok_order(body, ORDER)
        t0 = time.monotonic()
        self.view()
        self.assertLess(time.monotonic() - t0, 0.38)

    def test_fault_slow_client_gives_up_first(self):
        self.api.set_orders([{"id": ORDER}])
        self.api.add_faults([{"kind": "slow", "delay_ms": 1500}])
        with self.assertRaises(TimeoutError):
            self.api.buyer_view(ORDER, timeout=0.5)
        self.api.wait_idle()
        time.sleep(1.2)  # the timer must not fire for the dropped call
        self.assert_ok_order(self.view(), ORDER)

    def test_fault_delay_applies_to_any_kind(self):
        self.api.add_faults([{"kind": "http503", "delay_ms": 300}])
        t0 = time.monotonic()
        self.assertEqual(self.api.trade(BUYER_VIEW, {"orderId": "1"})[0], 503)
        self.assertGreaterEqual(time.monotonic() - t0, 0.28)

    def test_fault_close(self):
        self.api.set_orders([{"id": ORDER}])
        self.api.add_faults([{"kind": "close"}])
        with self.assertRaises(NO_ANSWER):
            self.api.buyer_view(ORDER)
        self.assertEqual(self.api.wait_idle()["calls"], 1)
        self.assert_ok_order(self.view(), ORDER)

    def test_faults_match_endpoint_and_order_and_count_down(self):
        self.api.set_orders([{"id": ORDER}, {"id": OTHER}])
        self.api.add_faults([{"kind": "http503", "count": 2, "order": str(OTHER)},
                             {"kind": "code", "endpoint": "list"},
                             {"kind": "http500", "endpoint": "buyerView"}])
        self.assertEqual(self.list_orders()["code"], 500)       # the list fault
        self.assertEqual(self.list_orders()["code"], 200)
        self.assertEqual(self.api.buyer_view(OTHER)[0], 503)    # the order's fault first
        self.assertEqual(self.api.buyer_view(ORDER)[0], 500)    # not OTHER: the next one
        self.assertEqual(self.api.buyer_view(OTHER)[0], 503)
        self.assert_ok_order(self.view(OTHER), OTHER)
        self.assert_ok_order(self.view(ORDER), ORDER)

    def test_fault_forever_until_reset(self):
        self.api.set_orders([{"id": ORDER}])
        self.api.add_faults([{"kind": "http503", "count": -1}])
        for _ in range(3):
            self.assertEqual(self.api.buyer_view(ORDER)[0], 503)
        self.api.reset()
        self.api.set_orders([{"id": ORDER}])
        self.assert_ok_order(self.view(), ORDER)

    def test_bad_faults_are_rejected_whole(self):
        for bad in ({"kind": "nope"}, {"kind": "http500", "count": 0},
                    {"kind": "http500", "endpoint": "orders"},
                    {"kind": "http500", "order": "x"}, {"kind": "slow", "delay_ms": -1}):
            with self.subTest(fault=bad):
                status, _ = self.api.request("POST", "/_control/faults",
                                             {"faults": [{"kind": "http503"}, bad]})
                self.assertEqual(status, 400)
        self.api.set_orders([{"id": ORDER}])
        self.assert_ok_order(self.view(), ORDER)

    # --- stats and routing --------------------------------------------------

    def test_stats_count_calls(self):
        self.api.set_orders([{"id": ORDER}])
        self.view()
        self.view()
        self.view(OTHER)
        self.list_orders()
        self.api.trade(BUYER_VIEW, {"orderId": str(ORDER), "appSecret": "x"},
                       credentials=False)
        s = self.api.stats()
        self.assertEqual(s["buyerView"], {str(ORDER): 3, str(OTHER): 1})
        self.assertEqual(s["list"], 1)
        self.assertEqual(s["calls"], 5)
        self.assertEqual(s["rejected_credentials"], 1)
        self.assertEqual((s["concurrent"], s["max_concurrent"]), (0, 1))
        self.assertEqual(len(s["call_times_ms"]), 5)
        self.assertEqual(s["call_times_ms"], sorted(s["call_times_ms"]))
        self.api.reset()
        s = self.api.stats()
        self.assertEqual((s["buyerView"], s["list"], s["calls"], s["call_times_ms"]),
                         ({}, 0, 0, []))

    def test_max_concurrent_counts_calls_in_progress(self):
        self.api.set_orders([{"id": ORDER}])
        self.api.add_faults([{"kind": "slow", "delay_ms": 700, "count": 3}])
        results = []

        def call():
            results.append(self.api.buyer_view(ORDER, timeout=10))

        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([r[0] for r in results], [200, 200, 200])
        s = self.api.stats()
        self.assertEqual((s["max_concurrent"], s["concurrent"], s["calls"]), (3, 0, 3))
        times = s["call_times_ms"]
        self.assertLess(times[-1] - times[0], 600)  # all arrived before the first answer

    def test_other_paths_and_methods(self):
        self.assertEqual(self.api.request("GET", "/nope")[0], 404)
        self.assertEqual(self.api.request("GET", BUYER_VIEW)[0], 405)
        self.assertEqual(self.api.request("GET", "/_control/nope")[0], 405)
        self.assertEqual(self.api.request("POST", "/_control/nope", {})[0], 404)
        status, raw = self.api.request("POST", BUYER_VIEW, b"{not json")
        self.assertEqual(json.loads(raw)["code"], 400)
        self.assertEqual(self.api.stats()["calls"], 1)  # only the POST to a trade path

    def test_base_url_path_prefix_is_accepted(self):
        self.api.set_orders([{"id": ORDER}])
        status, raw = self.api.trade("/api" + BUYER_VIEW, {"orderId": str(ORDER)})
        self.assert_ok_order(json.loads(raw), ORDER)


class FakeApiHttpsTest(FakeApiTest):
    """All of the above over HTTPS, plus certificate checks."""

    TLS = True

    def test_base_url_and_ca_file(self):
        self.assertTrue(self.api.base_url.startswith("https://localhost:"))
        self.assertTrue(os.path.exists(self.api.ca_file))

    def test_client_that_does_not_trust_the_ca_fails(self):
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.api.buyer_view(ORDER, trust=False)

    def test_certificate_names_localhost_and_127_0_0_1(self):
        self.api.set_orders([{"id": ORDER}])
        self.assert_ok_order(self.view(host="127.0.0.1"), ORDER)
        self.assert_ok_order(self.view(host="localhost"), ORDER)

    def test_tls_1_2_is_enough(self):
        ctx = self.api.ssl_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        conn = http.client.HTTPSConnection("localhost", self.api.port, timeout=5, context=ctx)
        try:
            conn.request("GET", "/_control/stats")
            self.assertEqual(conn.getresponse().status, 200)
            self.assertEqual(conn.sock.version(), "TLSv1.2")
        finally:
            conn.close()

    def test_plain_http_gets_no_answer(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.api.port, timeout=5)
        try:
            with self.assertRaises(NO_ANSWER):
                conn.request("GET", "/_control/stats")
                conn.getresponse()
        finally:
            conn.close()


class FakeApiShutdownTest(unittest.TestCase):
    """SIGTERM with calls still held (hang, slow) exits 0 and frees everything."""

    def test_stop_with_calls_in_progress(self):
        for tls in (False, True):
            with self.subTest(tls=tls):
                api = FakeApi().start(tls=tls)
                try:
                    api.set_orders([{"id": ORDER}])
                    api.add_faults([{"kind": "hang"}, {"kind": "slow", "delay_ms": 60000},
                                    {"kind": "close", "delay_ms": 60000}])
                    errors = []

                    def call():
                        try:
                            api.buyer_view(ORDER, timeout=30)
                        except Exception as e:  # the fake goes away under it
                            errors.append(e)

                    threads = [threading.Thread(target=call) for _ in range(3)]
                    for t in threads:
                        t.start()
                    deadline = time.monotonic() + 5
                    while api.stats()["concurrent"] < 3 and time.monotonic() < deadline:
                        time.sleep(0.02)
                    self.assertEqual(api.stats()["concurrent"], 3)
                except BaseException:
                    api.kill()
                    raise
                api.stop()
                for t in threads:
                    t.join(10)
                self.assertEqual(len(errors), 3)

    def test_bad_command_lines_fail(self):
        import subprocess
        from fakeapi import fake_api_bin
        for args in ([], ["--fixture"], ["--fixture", "/nonexistent.json"],
                     ["--fixture", fixture_path(), "--tls-cert", "x"],
                     ["--fixture", fixture_path(), "--port", "70000"],
                     ["--fixture", fixture_path(), "--tls-cert", "/nonexistent",
                      "--tls-key", "/nonexistent"]):
            with self.subTest(args=args):
                p = subprocess.run([fake_api_bin(), *args], capture_output=True, timeout=10)
                self.assertNotEqual(p.returncode, 0)
                self.assertEqual(p.stdout, b"")
                self.assertNotIn(b"Sanitizer", p.stderr)


if __name__ == "__main__":
    unittest.main()
