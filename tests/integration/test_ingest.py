"""test_ingest.py - the receiver against a real PostgreSQL: what it answers,
and what it leaves in the tables (DESIGN.md "Contracts", PROTOCOL.md).

Every test gets its own `receiver serve` (stopped with SIGTERM in tearDown,
which asserts exit status 0 and a clean sanitizer log); every class gets its
own database, so tests use fresh msgIds and order ids and look rows up by
them.  Run with tests/integration/run.py.
"""

import json
import os
import random
import socket
import struct
import threading
import time
import unittest

from harness import (DJ, PG, SHOP, ALL_SECRETS, VECTOR_MESSAGE, VECTOR_MESSAGE_SIG,
                     VECTOR_MSG_ID, VECTOR_ORDER_ID, VECTOR_SECRET, VECTOR_SORTED_SIG, WORK,
                     LockSession, Receiver, envelope, form, new_msg_id, new_order_id,
                     raw_request, read_raw_response, render_config, request, run_receiver,
                     sign, signed_form, sql_list, stop_receivers, wait_for)

AUDIT_TIMEOUT = 5  # rejected requests are audited asynchronously


def lit(text):
    """TEXT as a SQL literal (dollar quoted)."""
    assert "$lit$" not in text
    return "$lit$" + text + "$lit$"


class ReceiverTest(unittest.TestCase):
    """A database per class, a receiver per test."""

    extra = None  # [section] -> {key: value} added to the receiver's config

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database(cls.__name__)

    def setUp(self):
        self.receivers = []
        self.rx = self.new_receiver()

    def new_receiver(self, **kw):
        kw.setdefault("extra", self.extra)
        rx = Receiver(self.db, **kw)
        self.receivers.append(rx)
        return rx

    def tearDown(self):
        errors = stop_receivers(self.receivers)
        if errors:
            self.fail("\n".join(errors))

    # --- queries ------------------------------------------------------------

    def rows(self, query):
        """QUERY's rows as dicts (through row_to_json, so bigints stay exact)."""
        out = self.db.sql("SELECT row_to_json(q)::text FROM (%s) q" % query)
        return [json.loads(r[0]) for r in out]

    def event(self, msg_id):
        rows = self.rows(
            "SELECT msg_id::text, type, order_id::text, current_status, app, user_info,"
            " (gmt_born AT TIME ZONE 'UTC')::text AS gmt_born_utc,"
            " (msg_send_time AT TIME ZONE 'UTC')::text AS msg_send_time_utc,"
            " payload::text AS payload"
            " FROM trade_events WHERE msg_id = %d" % msg_id)
        return rows[0] if rows else None

    def event_orders(self, msg_id):
        return [r["order_id"] for r in self.rows(
            "SELECT order_id::text FROM trade_event_orders WHERE msg_id = %d"
            " ORDER BY position" % msg_id)]

    def jobs(self, order_ids):
        return {r["order_id"]: r for r in self.rows(
            "SELECT order_id::text, state, generation, attempts FROM reconcile_jobs"
            " WHERE order_id = ANY(%s)" % sql_list(order_ids))}

    def deliveries_for(self, msg_id):
        return self.rows(
            "SELECT id, app, http_status, signature_ok, signature_field, msg_id::text,"
            " duplicate, error, body IS NULL AS no_body FROM deliveries"
            " WHERE msg_id = %d ORDER BY id" % msg_id)

    def delivery_mark(self):
        return int(self.db.value("SELECT coalesce(max(id), 0) FROM deliveries"))

    def audited(self, mark, status, timeout=AUDIT_TIMEOUT):
        """Wait for the deliveries row written after MARK with STATUS; return it."""
        def look():
            rows = self.rows(
                "SELECT id, app, method, path, http_status, signature_ok, signature_field,"
                " msg_id::text, duplicate, error, body_bytes, octet_length(body) AS body_len,"
                " encode(body, 'hex') AS body_hex, request_id"
                " FROM deliveries WHERE id > %d ORDER BY id" % mark)
            return rows
        rows = wait_for(look, timeout, interval=0.05,
                        what="a deliveries row with http_status %d" % status)
        statuses = [r["http_status"] for r in rows]
        self.assertEqual(statuses, [status],
                         "expected exactly one new deliveries row, with http_status %d" % status)
        return rows[0]

    # --- assertions ---------------------------------------------------------

    def assertSuccess(self, resp, what="push"):
        status, headers, body = resp
        self.assertEqual((status, body), (200, b"success"),
                         "%s: expected 200 'success', got %d %r" % (what, status, body[:200]))

    def assertShortText(self, body):
        self.assertTrue(0 < len(body) <= 200, "expected a short text body, got %r" % body[:300])
        text = body.decode("utf-8")
        self.assertTrue(text.strip().isprintable(), "not printable text: %r" % text)


# ============================================================================
# Accepted pushes
# ============================================================================


class TestAccepted(ReceiverTest):

    def test_harness_reproduces_protocol_vector(self):
        # The harness's own signing is right, or nothing below means anything.
        f = {"message": VECTOR_MESSAGE}
        self.assertEqual(sign(f, VECTOR_SECRET, "sorted"), VECTOR_SORTED_SIG)
        self.assertEqual(sign(f, VECTOR_SECRET, "message"), VECTOR_MESSAGE_SIG)
        self.assertEqual(envelope(VECTOR_MSG_ID, order_id=VECTOR_ORDER_ID), VECTOR_MESSAGE)

    def test_protocol_vector_with_aop_signature(self):
        body = form({"message": VECTOR_MESSAGE, "_aop_signature": VECTOR_SORTED_SIG})
        self.assertSuccess(self.rx.post("/1688/messages", body))

        # Ack means durable: the rows are there as soon as the 200 is.
        ev = self.event(VECTOR_MSG_ID)
        self.assertIsNotNone(ev, "no trade_events row for msgId %d" % VECTOR_MSG_ID)
        self.assertEqual(ev["msg_id"], "130000000001")
        self.assertEqual(ev["type"], "ORDER_BUYER_VIEW_ORDER_PAY")
        self.assertEqual(ev["order_id"], "2908059205527363456")
        self.assertEqual(ev["current_status"], "waitsellersend")
        self.assertEqual(ev["gmt_born_utc"], "2025-09-02 09:58:02")
        self.assertEqual(ev["msg_send_time_utc"], "2025-09-02 09:58:02",
                         "msgSendTime 17:58:02 is Shanghai time (+08:00)")
        self.assertEqual(ev["app"], "shop")
        self.assertEqual(ev["user_info"], "b2b-2217533334e9c00")
        self.assertEqual(self.db.value(
            "SELECT payload->'data'->>'orderId' FROM trade_events WHERE msg_id = 130000000001"),
            "2908059205527363456")
        self.assertEqual(self.db.value(
            "SELECT payload = %s::jsonb FROM trade_events WHERE msg_id = 130000000001"
            % lit(VECTOR_MESSAGE)), "t", "payload is not the whole envelope")

        self.assertEqual(self.event_orders(VECTOR_MSG_ID), ["2908059205527363456"])
        jobs = self.jobs([VECTOR_ORDER_ID])
        self.assertIn("2908059205527363456", jobs, "no reconcile_jobs row for the order")
        self.assertEqual(jobs["2908059205527363456"]["state"], "pending")

        d = self.deliveries_for(VECTOR_MSG_ID)
        self.assertEqual(len(d), 1, d)
        d = d[0]
        self.assertEqual(d["http_status"], 200)
        self.assertIs(d["signature_ok"], True)
        self.assertEqual(d["signature_field"], "_aop_signature")
        self.assertEqual(d["msg_id"], "130000000001")
        self.assertIsNone(d["error"])
        self.assertEqual(d["app"], "shop")
        self.assertIs(d["duplicate"], False)
        self.assertIs(d["no_body"], True, "an accepted push's body is not kept in deliveries")

    def _accepted(self, msg_id, app="shop", field="_aop_signature"):
        ev = self.event(msg_id)
        self.assertIsNotNone(ev, "no trade_events row for msgId %d" % msg_id)
        self.assertEqual(ev["app"], app)
        d = self.deliveries_for(msg_id)
        self.assertEqual([(r["http_status"], r["signature_ok"], r["signature_field"], r["app"])
                          for r in d], [(200, True, field, app)])

    def test_dj_signature_sorted_form(self):
        m = new_msg_id()
        self.assertSuccess(self.rx.push(envelope(m, order_id=new_order_id()),
                                        field="_dj_signature"))
        self._accepted(m, field="_dj_signature")

    def test_lower_case_hex_signature(self):
        m = new_msg_id()
        self.assertSuccess(self.rx.push(envelope(m, order_id=new_order_id()), lower=True))
        self._accepted(m)

    def test_previous_secret_still_accepted(self):
        m = new_msg_id()
        self.assertSuccess(self.rx.push(envelope(m, order_id=new_order_id()),
                                        secret="old-secret"))
        self._accepted(m)

    def test_dj_app_bare_message_signature(self):
        m = new_msg_id()
        msg = envelope(m, order_id=new_order_id())
        self.assertSuccess(self.rx.push(msg, app=DJ))
        self._accepted(m, app="dj", field="_dj_signature")

    def test_dj_app_refuses_sorted_form_signature(self):
        m = new_msg_id()
        mark = self.delivery_mark()
        status, _, body = self.rx.push(envelope(m, order_id=new_order_id()), app=DJ,
                                       mode="sorted")
        self.assertEqual(status, 401, body)
        row = self.audited(mark, 401)
        self.assertEqual(row["app"], "dj")
        self.assertIs(row["signature_ok"], False)
        self.assertIsNone(self.event(m))

    def test_batch_pay_names_three_orders(self):
        m = new_msg_id()
        ids = [new_order_id() for _ in range(3)]
        data = {"batchPay": [{"orderId": str(ids[0]), "status": "successed"},
                             {"orderId": str(ids[1]), "status": "ACCOUNT_BALANCE_NOT_ENOUGH"},
                             {"orderId": str(ids[2]), "status": "successed"}]}
        self.assertSuccess(self.rx.push(envelope(m, type="ORDER_BATCH_PAY", data=data)))
        ev = self.event(m)
        self.assertIsNotNone(ev)
        self.assertEqual(ev["type"], "ORDER_BATCH_PAY")
        self.assertEqual(ev["order_id"], str(ids[0]), "order_id is the first order named")
        self.assertEqual(self.event_orders(m), [str(i) for i in ids])
        jobs = self.jobs(ids)
        self.assertEqual(sorted(jobs), sorted(str(i) for i in ids))
        self.assertEqual({j["state"] for j in jobs.values()}, {"pending"})

    def test_logistics_trace_names_its_orders(self):
        m = new_msg_id()
        a, b = new_order_id(), new_order_id()
        data = {"OrderLogisticsTracingModel": {
            "logisticsId": "BX2025090300001", "cpCode": "ZTO", "mailNo": "7788990011",
            "statusChanged": "TRANSPORT", "changeTime": "2025-09-03 08:00:00",
            "orderLogsItems": [{"orderId": a, "orderEntryId": a + 1},
                               {"orderId": a, "orderEntryId": a + 2},
                               {"orderId": b, "orderEntryId": b + 1}]}}
        self.assertSuccess(self.rx.push(envelope(m, type="LOGISTICS_BUYER_VIEW_TRACE",
                                                 data=data)))
        ev = self.event(m)
        self.assertIsNotNone(ev)
        self.assertEqual(ev["order_id"], str(a))
        self.assertEqual(self.event_orders(m), [str(a), str(b)],
                         "each order once, in order of appearance")
        self.assertEqual(sorted(self.jobs([a, b])), sorted([str(a), str(b)]))

    def test_unknown_topic_is_stored_without_jobs(self):
        m = new_msg_id()
        jobs_before = self.db.value("SELECT count(*) FROM reconcile_jobs")
        msg = envelope(m, type="SOMETHING_NEW", data={"whatever": "new", "n": 1},
                       extra={"topicGroup": "SOMETHING", "topicName": "NEW"})
        self.assertSuccess(self.rx.push(msg))
        ev = self.event(m)
        self.assertIsNotNone(ev, "an unknown topic must be stored, not rejected")
        self.assertEqual(ev["type"], "SOMETHING_NEW")
        self.assertIsNone(ev["order_id"])
        self.assertEqual(self.event_orders(m), [])
        self.assertEqual(self.db.value("SELECT count(*) FROM reconcile_jobs"), jobs_before)

    def test_unused_huge_integer_is_kept_exactly(self):
        m = new_msg_id()
        o = new_order_id()
        big = 123456789012345678901234567890
        data = {"orderId": o, "currentStatus": "waitsellersend",
                "msgSendTime": "2025-09-02 17:58:02", "big": big}
        msg = envelope(m, data=data)
        self.assertIn('"big":123456789012345678901234567890', msg)
        self.assertSuccess(self.rx.push(msg))
        self.assertEqual(self.db.value(
            "SELECT payload->'data'->>'big' FROM trade_events WHERE msg_id = %d" % m),
            "123456789012345678901234567890")
        ev = self.event(m)
        self.assertEqual(ev["order_id"], str(o))

    def test_duplicate_push_recorded_once(self):
        m = new_msg_id()
        o = new_order_id()
        msg = envelope(m, order_id=o)
        self.assertSuccess(self.rx.push(msg), "first push")
        self.assertSuccess(self.rx.push(msg), "second push")
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM trade_events WHERE msg_id = %d" % m), "1")
        d = self.deliveries_for(m)
        self.assertEqual([(r["http_status"], r["duplicate"]) for r in d],
                         [(200, False), (200, True)])
        self.assertEqual(self.event_orders(m), [str(o)])
        jobs = self.jobs([o])
        self.assertEqual(jobs[str(o)]["generation"], 1, "a duplicate must not re-request")

    def test_form_content_type_with_charset(self):
        m = new_msg_id()
        body = signed_form(envelope(m, order_id=new_order_id()))
        self.assertSuccess(self.rx.post(
            SHOP["path"], body, content_type="application/x-www-form-urlencoded; charset=UTF-8"))
        self._accepted(m)

    def test_utf8_text_and_plus_for_space(self):
        m = new_msg_id()
        memo = "请尽快 发货, 谢谢 + thanks"
        body = signed_form(envelope(m, data={"orderId": new_order_id(), "buyerMemo": memo}))
        self.assertIn(b"+", body, "urlencode writes spaces as '+'")
        self.assertSuccess(self.rx.post(SHOP["path"], body))
        self.assertEqual(self.db.value(
            "SELECT payload->'data'->>'buyerMemo' FROM trade_events WHERE msg_id = %d" % m), memo)

    def test_extra_fields_are_signed_sorted_by_name(self):
        # Byte order: "Alpha" < "_x" < "message" < "zeta".
        m = new_msg_id()
        fields = {"zeta": "z z", "message": envelope(m, order_id=new_order_id()),
                  "Alpha": "A", "_x": "中"}
        fields["_aop_signature"] = sign(fields, SHOP["secret"])
        self.assertSuccess(self.rx.post(SHOP["path"], form(fields)))
        self._accepted(m)

    def test_chunked_body_is_accepted(self):
        m = new_msg_id()
        body = signed_form(envelope(m, order_id=new_order_id()))
        half = len(body) // 2
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % SHOP["path"])
        data = (head.encode() + b"%x\r\n" % half + body[:half] + b"\r\n"
                + b"%x\r\n" % (len(body) - half) + body[half:] + b"\r\n0\r\n\r\n")
        with socket.create_connection(("127.0.0.1", self.rx.port), timeout=10) as sock:
            sock.sendall(data)
            status, raw = read_raw_response(sock)
        self.assertEqual(status, 200, raw[-300:])
        self.assertTrue(raw.endswith(b"\r\n\r\nsuccess"), raw[-300:])
        self._accepted(m)

    def test_healthz_and_readyz(self):
        status, _, body = self.rx.get("/healthz")
        self.assertEqual(status, 200, body)
        status, _, body = self.rx.get("/readyz")
        self.assertEqual(status, 200, body)

    def test_burst_of_500_concurrent_pushes(self):
        threads, per_thread = 50, 10
        ids = [[new_msg_id() for _ in range(per_thread)] for _ in range(threads)]
        bodies = [[signed_form(envelope(m, order_id=new_order_id())) for m in row]
                  for row in ids]
        results = []
        lock = threading.Lock()
        go = threading.Event()

        def client(k):
            conn = self.rx.connection(timeout=30)
            out = []
            go.wait()
            try:
                for m, body in zip(ids[k], bodies[k]):
                    try:
                        status, _, text = request(conn, SHOP["path"], body)
                    except Exception as e:  # noqa: BLE001 - reported below
                        out.append((m, repr(e)))
                        conn.close()
                        conn = self.rx.connection(timeout=30)
                        continue
                    out.append((m, status if text == b"success" else (status, text)))
            finally:
                conn.close()
                with lock:
                    results.extend(out)

        ts = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        go.set()
        for t in ts:
            t.join(60)
        bad = [(m, r) for m, r in results if r != 200]
        self.assertEqual(len(results), threads * per_thread)
        self.assertEqual(bad, [], "%d of %d pushes not answered 200 'success'"
                         % (len(bad), len(results)))
        every = [m for row in ids for m in row]
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM trade_events WHERE msg_id = ANY(%s)" % sql_list(every)),
            str(len(every)))
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM deliveries WHERE http_status = 200 AND msg_id = ANY(%s)"
            % sql_list(every)), str(len(every)))
        # One order row per event, written with its event (no foreign key
        # checks this since sql/004: receiver_ingest is the guarantee).
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM trade_event_orders o JOIN trade_events e USING (msg_id)"
            " WHERE o.msg_id = ANY(%s) AND o.xmin = e.xmin" % sql_list(every)),
            str(len(every)))
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM trade_event_orders o"
            " WHERE NOT EXISTS (SELECT 1 FROM trade_events e WHERE e.msg_id = o.msg_id)"), "0")
        # Group commit: rows written by one transaction share their xmin.
        txns = int(self.db.value(
            "SELECT count(DISTINCT xmin::text) FROM trade_events WHERE msg_id = ANY(%s)"
            % sql_list(every)))
        self.assertLess(txns, len(every), "every push had its own transaction: no batching")

    def test_secrets_stay_out_of_logs_and_audit_rows(self):
        mark = self.delivery_mark()
        self.assertSuccess(self.rx.push(envelope(new_msg_id(), order_id=new_order_id())))
        self.assertSuccess(self.rx.push(envelope(new_msg_id(), order_id=new_order_id()),
                                        secret="old-secret"))
        self.assertSuccess(self.rx.push(envelope(new_msg_id(), order_id=new_order_id()),
                                        app=DJ))
        status, _, _ = self.rx.push(envelope(new_msg_id(), order_id=new_order_id()),
                                    secret="not-the-secret")
        self.assertEqual(status, 401)
        status, _, _ = self.rx.push(envelope(new_msg_id(), order_id=new_order_id()), app=DJ,
                                    mode="sorted")
        self.assertEqual(status, 401)
        wait_for(lambda: int(self.db.value(
            "SELECT count(*) FROM deliveries WHERE id > %d" % mark)) >= 5, AUDIT_TIMEOUT,
            what="5 deliveries rows")
        self.rx.stop()
        log = self.rx.log_text()
        audit = "\n".join(r[0] or "" for r in self.db.sql(
            "SELECT concat_ws(' ', error, path, signature_field, request_id) FROM deliveries"))
        for secret in ALL_SECRETS:
            self.assertNotIn(secret, log, "an app secret appears in the receiver's log")
            self.assertNotIn(secret, audit, "an app secret appears in deliveries")


# ============================================================================
# Rejected requests: a status, a short text, an audit row
# ============================================================================


class TestRejected(ReceiverTest):

    def reject(self, status, body, path="/1688/messages",
               content_type="application/x-www-form-urlencoded", method="POST"):
        mark = self.delivery_mark()
        got, headers, text = self.rx.post(path, body, content_type=content_type, method=method)
        self.assertEqual(got, status, "body: %r" % text[:200])
        self.assertShortText(text)
        row = self.audited(mark, status)
        self.assertIsNotNone(row["error"], "the audit row must say what was wrong")
        return headers, row

    def test_get_is_405_with_allow_post(self):
        headers, row = self.reject(405, None, content_type=None, method="GET")
        self.assertIn("POST", headers.get("Allow", ""), "405 needs an Allow header naming POST")
        self.assertEqual(row["method"], "GET")
        self.assertEqual(row["app"], "shop")

    def test_unknown_path_is_404(self):
        body = signed_form(envelope(new_msg_id(), order_id=new_order_id()))
        _, row = self.reject(404, body, path="/nope")
        self.assertIsNone(row["app"])
        self.assertEqual(row["path"], "/nope")

    def test_json_content_type_is_415(self):
        msg = envelope(new_msg_id(), order_id=new_order_id())
        body = json.dumps({"message": msg,
                           "_aop_signature": sign({"message": msg}, SHOP["secret"])}).encode()
        self.reject(415, body, content_type="application/json")

    def test_malformed_percent_escape_is_400(self):
        body = b"message=%ZZ&_aop_signature=" + sign({"message": "%ZZ"}, SHOP["secret"]).encode()
        self.reject(400, body)

    def test_repeated_field_is_400(self):
        msg = envelope(new_msg_id(), order_id=new_order_id())
        sig = sign({"message": msg}, SHOP["secret"])
        body = form([("message", msg), ("message", msg), ("_aop_signature", sig)])
        self.reject(400, body)

    def test_missing_message_field_is_400(self):
        msg = envelope(new_msg_id(), order_id=new_order_id())
        fields = {"msg": msg}
        fields["_aop_signature"] = sign(fields, SHOP["secret"])
        self.reject(400, form(fields))

    def test_missing_signature_is_401(self):
        m = new_msg_id()
        _, row = self.reject(401, form({"message": envelope(m, order_id=new_order_id())}))
        self.assertIn(row["signature_ok"], (None, False))
        self.assertIsNone(self.event(m))

    def test_wrong_signature_is_401_and_body_kept(self):
        m = new_msg_id()
        body = signed_form(envelope(m, order_id=new_order_id()), secret="wrong-secret")
        _, row = self.reject(401, body)
        self.assertIs(row["signature_ok"], False)
        self.assertIsNone(self.event(m), "a forged push must not become an event")
        self.assertEqual(row["body_bytes"], len(body))
        self.assertEqual(row["body_hex"], body.hex(), "the rejected body is kept as sent")

    def test_signed_json_array_is_400(self):
        _, row = self.reject(400, signed_form("[1,2]"))
        self.assertIs(row["signature_ok"], True)

    def test_signed_object_without_msgid_is_400(self):
        msg = json.loads(envelope(1, order_id=new_order_id()))
        del msg["msgId"]
        _, row = self.reject(400, signed_form(json.dumps(msg, separators=(",", ":"))))
        self.assertIsNone(row["msg_id"])

    def test_signed_object_without_type_is_400(self):
        m = new_msg_id()
        msg = json.loads(envelope(m, order_id=new_order_id()))
        del msg["type"]
        self.reject(400, signed_form(json.dumps(msg, separators=(",", ":"))))
        self.assertIsNone(self.event(m))

    def test_rejected_body_is_truncated_to_4096_bytes(self):
        m = new_msg_id()

        def body_with(pad):
            msg = envelope(m, data={"orderId": 1, "pad": "x" * pad})
            return signed_form(msg, secret="wrong-secret")
        body = body_with(10240 - len(body_with(0)))
        self.assertEqual(len(body), 10240)
        _, row = self.reject(401, body)
        self.assertEqual(row["body_bytes"], 10240)
        self.assertEqual(row["body_len"], 4096)
        self.assertEqual(row["body_hex"], body[:4096].hex())


# ============================================================================
# [server] max_body_bytes
# ============================================================================


class TestBodyLimit(ReceiverTest):
    extra = {"server": {"max_body_bytes": 2048}}

    def big_body(self, size):
        m = new_msg_id()

        def body_with(pad):
            return signed_form(envelope(m, data={"orderId": new_order_id(), "pad": "y" * pad}))
        body = body_with(size - len(body_with(0)))
        self.assertEqual(len(body), size)
        return m, body

    def send_raw(self, body):
        """One request in one write, read until close: (status, raw response)."""
        with socket.create_connection(("127.0.0.1", self.rx.port), timeout=10) as s:
            s.sendall(raw_request(self.rx.port, SHOP["path"], body))
            try:
                return read_raw_response(s)
            except ConnectionResetError:
                self.fail("connection reset before a response to a %d-byte body" % len(body))

    def test_body_over_limit_is_413(self):
        m, body = self.big_body(4096)
        status, raw = self.send_raw(body)
        self.assertEqual(status, 413, raw[:300])
        self.assertIsNone(self.event(m))
        self.assertEqual(self.rx.get("/healthz")[0], 200)

    def test_body_under_limit_is_accepted(self):
        m, body = self.big_body(2000)
        status, raw = self.send_raw(body)
        self.assertEqual(status, 200, raw[:300])
        self.assertIsNotNone(self.event(m))

    def test_413_is_audited(self):
        # evhttp answers 413 itself, before any callback of ours runs; the
        # receiver audits it from the reply it sees leaving.  The body was
        # never read, so its length is unknown (NULL).
        mark = self.delivery_mark()
        _, body = self.big_body(4096)
        status, raw = self.send_raw(body)
        self.assertEqual(status, 413, raw[:300])
        row = self.audited(mark, 413)
        self.assertIsNotNone(row["error"])
        self.assertIsNone(row["body_bytes"])


# ============================================================================
# Commits that wait: hang-ups, SIGTERM, SIGKILL
# ============================================================================


class TestWaitingCommits(ReceiverTest):

    def wait_batch_blocked(self):
        wait_for(lambda: self.db.waiting_ingests() >= 1, 5, interval=0.02,
                 what="the receiver's batch to wait for the table lock")

    def _hang_up_while_waiting(self, reset):
        # Two clients hang up: the first push is in the batch that waits for
        # the lock, the second is queued behind it for the next batch.
        ids = [new_msg_id(), new_msg_id()]
        with LockSession(self.db) as lock:
            socks = []
            for i, m in enumerate(ids):
                s = socket.create_connection(("127.0.0.1", self.rx.port), timeout=10)
                s.sendall(raw_request(self.rx.port, SHOP["path"],
                                      signed_form(envelope(m, order_id=new_order_id()))))
                socks.append(s)
                if i == 0:
                    self.wait_batch_blocked()
            time.sleep(0.2)  # the second push is read and queued
            for s in socks:
                if reset:  # RST instead of FIN
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            time.sleep(0.3)  # the daemon sees the hang-ups while the batch still waits
            self.assertTrue(self.rx.running, "receiver died when the clients hung up:\n"
                            + self.rx.log_tail())
            lock.release()
        for m in ids:
            wait_for(lambda: self.event(m), 5, what="the hung-up push %d's row" % m)
        self.assertEqual(self.rx.get("/healthz")[0], 200)
        self.assertSuccess(self.rx.push(envelope(new_msg_id(), order_id=new_order_id())),
                           "a push after the hang-up")

    def test_push_not_acknowledged_before_commit(self):
        m = new_msg_id()
        result = []
        with LockSession(self.db) as lock:
            t = threading.Thread(target=lambda: result.append(
                self.rx.push(envelope(m, order_id=new_order_id()), timeout=20)))
            t.start()
            self.wait_batch_blocked()
            time.sleep(0.5)
            self.assertEqual([(r[0], r[2]) for r in result], [],
                             "answered while its transaction could not commit")
            self.assertIsNone(self.db.value(
                "SELECT msg_id FROM trade_events WHERE msg_id = %d" % m))
            lock.release()
        t.join(20)
        self.assertEqual(len(result), 1, "no answer after the commit")
        self.assertSuccess(result[0])
        self.assertIsNotNone(self.event(m))

    def test_same_message_twice_in_one_batch_recorded_once(self):
        # The pusher retries while the first attempt still waits: both
        # attempts land in the same batch.  One event, two audit rows, and
        # only one of them may claim to have recorded the message first.
        x = new_msg_id()
        o = new_order_id()
        msg = envelope(x, order_id=o)
        results = []

        def client(message):
            results.append(self.rx.push(message, timeout=20))

        with LockSession(self.db) as lock:
            first = threading.Thread(target=client,
                                     args=(envelope(new_msg_id(), order_id=new_order_id()),))
            first.start()
            self.wait_batch_blocked()  # batch 1 holds this one; the two below queue
            ts = [threading.Thread(target=client, args=(msg,)) for _ in range(2)]
            for t in ts:
                t.start()
            time.sleep(0.3)
            lock.release()
        for t in [first] + ts:
            t.join(20)
        self.assertEqual([(r[0], r[2]) for r in results], [(200, b"success")] * 3)
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM trade_events WHERE msg_id = %d" % x), "1")
        self.assertEqual(self.db.value(
            "SELECT count(DISTINCT xmin::text) FROM deliveries WHERE msg_id = %d" % x), "1",
            "the two attempts were not in one batch (the test did not test anything)")
        d = self.deliveries_for(x)
        self.assertEqual(sorted((r["http_status"], r["duplicate"]) for r in d),
                         [(200, False), (200, True)],
                         "deliveries.duplicate: exactly one attempt recorded the message")
        self.assertEqual(self.event_orders(x), [str(o)])
        self.assertEqual(self.jobs([o])[str(o)]["generation"], 1)

    def test_client_hangs_up_while_push_waits_for_commit(self):
        self._hang_up_while_waiting(reset=False)

    def test_client_resets_while_push_waits_for_commit(self):
        self._hang_up_while_waiting(reset=True)

    def test_sigterm_answers_waiting_pushes_then_exits_0(self):
        ids = [new_msg_id() for _ in range(5)]
        results = {}

        def client(m):
            try:
                results[m] = self.rx.push(envelope(m, order_id=new_order_id()), timeout=20)
            except Exception as e:  # noqa: BLE001 - reported below
                results[m] = (repr(e), None, b"")

        with LockSession(self.db) as lock:
            ts = [threading.Thread(target=client, args=(m,)) for m in ids]
            for t in ts:
                t.start()
            self.wait_batch_blocked()
            time.sleep(0.3)  # let the other four be read and queued behind the first
            self.rx.terminate()
            time.sleep(0.3)
            self.assertTrue(self.rx.running,
                            "receiver exited while pushes were waiting for their commit")
            lock.release()
        for t in ts:
            t.join(20)
        statuses = {m: (r[0], r[2]) for m, r in results.items()}
        self.assertEqual(statuses, {m: (200, b"success") for m in ids})
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM trade_events WHERE msg_id = ANY(%s)" % sql_list(ids)), "5")
        self.rx.check_clean_exit(self.rx.wait(15))

    def test_sigkill_during_burst_loses_no_acknowledged_push(self):
        acked, others = [], []
        lock = threading.Lock()
        stop = threading.Event()

        def client():
            conn = self.rx.connection(timeout=5)
            try:
                while not stop.is_set():
                    m = new_msg_id()
                    try:
                        status, _, text = request(conn, SHOP["path"],
                                                  signed_form(envelope(m, order_id=new_order_id())))
                    except Exception:  # noqa: BLE001 - the daemon was killed
                        return
                    with lock:
                        (acked if (status, text) == (200, b"success") else others).append(
                            (m, status))
            finally:
                conn.close()

        ts = [threading.Thread(target=client) for _ in range(20)]
        for t in ts:
            t.start()
        time.sleep(1.0)
        self.rx.kill()
        stop.set()
        for t in ts:
            t.join(15)
        self.assertGreater(len(acked), 0, "no push was acknowledged before the kill")
        self.assertEqual(others, [], "pushes answered other than 200 before the kill")
        ids = [m for m, _ in acked]
        found = int(self.db.value(
            "SELECT count(*) FROM trade_events WHERE msg_id = ANY(%s)" % sql_list(ids)))
        self.assertEqual(found, len(ids), "acknowledged pushes missing after SIGKILL")
        rx2 = self.new_receiver()
        self.assertSuccess(rx2.push(envelope(new_msg_id(), order_id=new_order_id())),
                           "a push after the restart")
        self.assertEqual(int(self.db.value(
            "SELECT count(*) FROM trade_events WHERE msg_id = ANY(%s)" % sql_list(ids))),
            len(ids))


# ============================================================================
# The database goes away and comes back
# ============================================================================


class TestDatabaseOutage(ReceiverTest):

    def timed_push(self):
        m = new_msg_id()
        t0 = time.monotonic()
        status, headers, body = self.rx.push(envelope(m, order_id=new_order_id()), timeout=10)
        return m, status, headers, body, time.monotonic() - t0

    def test_database_stopped_and_started_during_a_burst(self):
        # Eight clients push without pause while PostgreSQL goes away and
        # comes back: every answer is 200 or 503 within a second, the daemon
        # recovers by itself, and every acknowledged push is stored.
        lock = threading.Lock()
        acked, statuses, slow = [], [], []
        stop = threading.Event()

        def client():
            while not stop.is_set():
                try:
                    m, status, _, _, took = self.timed_push()
                except OSError as e:  # noqa: PERF203 - reported below
                    with lock:
                        statuses.append(repr(e))
                    continue
                with lock:
                    statuses.append(status)
                    if status == 200:
                        acked.append(m)
                    if took >= 1.0:
                        slow.append((status, took))

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            PG.stop()
            time.sleep(1.5)
            during = len(statuses)
        finally:
            PG.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.rx.get("/readyz")[0] != 200:
            time.sleep(0.1)
        time.sleep(1.0)  # a second of pushes after the recovery
        stop.set()
        for t in threads:
            t.join(20)
        self.assertTrue(self.rx.running, "the daemon died:\n" + self.rx.log_tail())
        self.assertEqual(sorted(set(statuses), key=str), [200, 503], statuses[-20:])
        self.assertEqual(slow, [], "answers that took a second or more")
        self.assertGreater(len(statuses), during, "no pushes after the restart")
        self.assertEqual(self.rx.get("/readyz")[0], 200)
        self.assertEqual(int(self.db.value(
            "SELECT count(*) FROM trade_events WHERE msg_id = ANY(%s)" % sql_list(acked))),
            len(acked), "an acknowledged push is missing")

    def test_database_stopped_and_restarted(self):
        acked = []
        m, status, _, body, _ = self.timed_push()
        self.assertEqual((status, body), (200, b"success"))
        acked.append(m)

        try:
            PG.stop()
            for _ in range(3):
                m, status, headers, body, took = self.timed_push()
                if status == 200:
                    acked.append(m)
                self.assertEqual(status, 503, "push with the database stopped: %r" % body)
                self.assertIsNotNone(headers.get("Retry-After"), "503 without Retry-After")
                self.assertLess(took, 1.0, "503 must come at once (took %.2f s)" % took)
                self.assertShortText(body)
            status, _, body = self.rx.get("/readyz")
            self.assertEqual(status, 503, "/readyz with the database stopped: %r" % body)
            self.assertEqual(self.rx.get("/healthz")[0], 200)
        finally:
            PG.start()

        deadline = time.monotonic() + 15
        seen = []
        while True:
            m, status, headers, body, took = self.timed_push()
            seen.append(status)
            self.assertIn(status, (200, 503), body)
            self.assertLess(took, 1.0, "push answered after %.2f s" % took)
            if status == 200:
                acked.append(m)
                break
            self.assertIsNotNone(headers.get("Retry-After"), "503 without Retry-After")
            self.assertLess(time.monotonic(), deadline,
                            "no 200 within 15 s of the database's restart: %s" % seen)
            time.sleep(0.2)
        for _ in range(3):
            m, status, _, body, _ = self.timed_push()
            self.assertEqual((status, body), (200, b"success"), "push after reconnecting")
            acked.append(m)
        self.assertEqual(self.rx.get("/readyz")[0], 200)
        self.assertEqual(int(self.db.value(
            "SELECT count(*) FROM trade_events WHERE msg_id = ANY(%s)" % sql_list(acked))),
            len(acked), "an acknowledged push is missing")


class TestBackpressure(ReceiverTest):
    """A bounded queue: when max_pending pushes wait, the next is 503 at once."""

    extra = {"server": {"max_pending": 2}}

    def test_full_queue_answers_503_at_once_and_loses_nothing(self):
        results = {}

        def client(m):
            results[m] = self.rx.push(envelope(m, order_id=new_order_id()), timeout=20)

        waiting = [new_msg_id() for _ in range(3)]
        with LockSession(self.db) as lock:
            first = threading.Thread(target=client, args=(waiting[0],))
            first.start()
            wait_for(lambda: self.db.waiting_ingests() >= 1, 5, interval=0.02,
                     what="the first batch to wait for the lock")
            queued = [threading.Thread(target=client, args=(m,)) for m in waiting[1:]]
            for t in queued:
                t.start()
            time.sleep(0.3)  # both are read and queued: the queue is now full
            extra = new_msg_id()
            started = time.monotonic()
            status, headers, body = self.rx.push(envelope(extra, order_id=new_order_id()))
            took = time.monotonic() - started
            self.assertEqual(status, 503, body)
            self.assertIsNotNone(headers.get("Retry-After"))
            self.assertLess(took, 1.0, "a full queue must answer at once")
            lock.release()
        for t in [first] + queued:
            t.join(20)
        self.assertEqual(sorted((r[0], r[2]) for r in results.values()),
                         [(200, b"success")] * 3)
        self.assertEqual(int(self.db.value(
            "SELECT count(*) FROM trade_events WHERE msg_id = ANY(%s)" % sql_list(waiting))), 3)
        self.assertIsNone(self.db.value(
            "SELECT msg_id FROM trade_events WHERE msg_id = %d" % extra))


class TestStatementFailure(ReceiverTest):
    """A statement failing mid-batch because of one delivery: the batch is
    split until that delivery fails alone; it hears 503 and nothing of it is
    written, the others of its batch commit and hear 200."""

    def test_refused_delivery_is_answered_alone_and_the_rest_commit(self):
        poison = new_msg_id()
        self.db.sql(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.msg_id = %d THEN RAISE EXCEPTION 'injected failure'; END IF;"
            " RETURN NEW; END $$;"
            " CREATE TRIGGER poison BEFORE INSERT ON trade_event_orders"
            " FOR EACH ROW EXECUTE FUNCTION poison();" % poison)
        try:
            results = {}

            def client(m):
                results[m] = self.rx.push(envelope(m, order_id=new_order_id()), timeout=20)

            blocker = new_msg_id()
            good = [new_msg_id() for _ in range(6)]
            batch = good[:3] + [poison] + good[3:]
            with LockSession(self.db) as lock:
                first = threading.Thread(target=client, args=(blocker,))
                first.start()
                wait_for(lambda: self.db.waiting_ingests() >= 1, 5, interval=0.02,
                         what="the first batch to wait for the lock")
                ts = [threading.Thread(target=client, args=(m,)) for m in batch]
                for t in ts:
                    t.start()
                time.sleep(0.3)  # all seven queue for the same next batch
                lock.release()
            for t in [first] + ts:
                t.join(20)
            self.assertEqual(results[blocker][0], 200)
            self.assertIn("batch of 7 refused", self.rx.log_text(),
                          "the seven were not in one batch: the test proves nothing")
            self.assertEqual(results[poison][0], 503)
            self.assertIsNotNone(results[poison][1].get("Retry-After"))
            for m in good:
                self.assertEqual(results[m][0], 200, "msg %d shared a batch with the culprit" % m)
            self.assertEqual(int(self.db.value(
                "SELECT count(*) FROM trade_events WHERE msg_id = ANY(%s)" % sql_list(good))),
                len(good), "the good ones of the refused batch were not written")
            self.assertEqual(int(self.db.value(
                "SELECT count(*) FROM trade_events WHERE msg_id = %d" % poison)), 0,
                "part of the refused delivery was written")
            self.assertEqual(int(self.db.value(
                "SELECT count(*) FROM deliveries WHERE msg_id = %d" % poison)), 0)
            self.assertIn("injected failure", self.rx.log_text())
            refused = [e for e in self.rx.log_events() if e.get("event") == "delivery_refused"]
            self.assertEqual(len(refused), 1)
            self.assertIn("msgId %d" % poison, refused[0]["msg"])
            _, _, metrics = self.rx.get("/metrics")
            self.assertIn(b"\nreceiver_deliveries_isolated_total 1\n", metrics)
            # The pusher retries: the culprit alone fails again, the others are duplicates.
            self.assertEqual(self.rx.push(envelope(poison, order_id=new_order_id()))[0], 503)
            for m in (good[0], good[-1]):
                self.assertSuccess(self.rx.push(envelope(m, order_id=new_order_id())))
            self.assertEqual(self.rx.get("/readyz")[0], 200)
        finally:
            self.db.sql("DROP TRIGGER poison ON trade_event_orders; DROP FUNCTION poison()")

    def test_overlong_type_is_a_400_not_a_failed_batch(self):
        # trade_events.type is indexed; a btree entry holds ~2.7 KB, so a
        # longer type would fail its batch.  It is refused at parse time.
        m = new_msg_id()
        # 3000 random CJK characters (9000 bytes): incompressible, or PostgreSQL
        # would compress the index entry below the limit.
        rnd = random.Random(m)
        long_type = "".join(chr(0x4e00 + rnd.getrandbits(13)) for _ in range(3000))
        status, headers, body = self.rx.push(envelope(m, type=long_type,
                                                      order_id=new_order_id()))
        self.assertEqual((status, body), (400, b"type longer than 512 bytes\n"))
        self.assertIsNone(self.event(m))
        rid = headers["X-Request-Id"]
        wait_for(lambda: self.db.value("SELECT count(*) FROM deliveries WHERE request_id = '%s'"
                                       % rid) == "1", 10, what="the 400's audit row")
        self.assertEqual(self.db.value(
            "SELECT http_status || ' ' || error FROM deliveries WHERE request_id = '%s'" % rid),
            "400 type longer than 512 bytes")
        # The longest type accepted is stored, and indexed, fine.
        m = new_msg_id()
        self.assertSuccess(self.rx.push(envelope(m, type="T" * 512, order_id=new_order_id())))
        self.assertEqual(self.db.value(
            "SELECT length(type) FROM trade_events WHERE msg_id = %d" % m), "512")


class TestSlowClient(ReceiverTest):
    """A client that sends half a request does not hold up anyone else."""

    def test_half_sent_request_does_not_stall_others(self):
        s = socket.create_connection(("127.0.0.1", self.rx.port), timeout=10)
        try:
            req = raw_request(self.rx.port, SHOP["path"],
                              signed_form(envelope(new_msg_id(), order_id=new_order_id())))
            s.sendall(req[: len(req) // 2])
            for _ in range(5):
                m = new_msg_id()
                started = time.monotonic()
                self.assertSuccess(self.rx.push(envelope(m, order_id=new_order_id())))
                self.assertLess(time.monotonic() - started, 1.0)
        finally:
            s.close()


class TestSchemaNotCurrent(ReceiverTest):
    """A database the migrations never ran on: not ready, pushes 503."""

    def setUp(self):
        self.receivers = []
        self.rx = self.new_receiver(migrate=False, start=False)

    def test_unmigrated_database_is_not_ready_until_migrated(self):
        rx = self.rx
        rx.start(ready=False)
        wait_for(lambda: "db_schema_outdated" in rx.log_text(), 10,
                 what="the schema check to complain")
        status, _, body = rx.get("/readyz")
        self.assertEqual(status, 503)
        self.assertIn(b"migrate", body)
        status, _, _ = rx.push(envelope(new_msg_id(), order_id=new_order_id()))
        self.assertEqual(status, 503)
        # Migrating makes it ready without a restart.
        rx.migrate()
        wait_for(lambda: rx.get("/readyz")[0] == 200, 15, interval=0.1,
                 what="/readyz after migrating")
        self.assertSuccess(rx.push(envelope(new_msg_id(), order_id=new_order_id())))


# ============================================================================
# Configuration errors
# ============================================================================


class TestConfigErrors(unittest.TestCase):

    def assertOneLine(self, text):
        lines = [l for l in text.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "expected a one-line message, got %r" % text)
        return lines[0]

    def test_missing_config_file_exits_2(self):
        path = os.path.join(WORK, "missing.toml")
        r = run_receiver(["serve", "-c", path], timeout=10)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(path, self.assertOneLine(r.stderr))

    def test_unknown_key_exits_2_naming_file_line_and_key(self):
        text = render_config("127.0.0.1:%d" % 1, "postgresql://receiver@127.0.0.1:1/x")
        lines = text.splitlines()
        at = lines.index("[server]") + 2  # after listen
        lines.insert(at, "bogus_key = 1")
        path = os.path.join(WORK, "unknown-key.toml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        for command in ("serve", "migrate"):
            r = run_receiver([command, "-c", path], timeout=10)
            self.assertEqual(r.returncode, 2, "%s: %s" % (command, r.stderr))
            line = self.assertOneLine(r.stderr)
            self.assertIn("%s:%d: " % (path, at + 1), line)
            self.assertIn("bogus_key", line.split("%s:%d: " % (path, at + 1), 1)[1])


if __name__ == "__main__":
    unittest.main()
