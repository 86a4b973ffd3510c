"""test_ingest_batch.py - what receiver_ingest makes of one batch holding the
same msgId twice, each delivery naming other orders (sql/006).

The first delivery of a msgId in batch order is the one stored: its payload,
its orders, its reconcile jobs; it alone is not marked duplicate.  To put
both deliveries into one batch in a known order, a table lock holds a first
batch at its commit while the two queue behind it, one after the other
(the queue depth on /metrics says when each is queued).  Run with
tests/integration/run.py.
"""

import re
import threading

from harness import LockSession, envelope, new_msg_id, new_order_id, wait_for
from test_ingest import ReceiverTest


class TestSameMsgIdTwiceInOneBatch(ReceiverTest):

    def queue_depth(self):
        _, _, body = self.rx.get("/metrics")
        m = re.search(rb"^receiver_queue_depth (\S+)$", body, re.M)
        return int(float(m.group(1))) if m else None

    def push_in_one_batch(self, messages):
        """Push MESSAGES ({key: message}, in order) so that they form one
        batch, in that order, behind a batch held at its commit; return
        {key: (status, headers, body)}, "blocker" the held batch's push."""
        results = {}

        def push(key, message):
            def client():
                results[key] = self.rx.push(message, timeout=20)
            t = threading.Thread(target=client)
            t.start()
            return t

        with LockSession(self.db) as lock:
            threads = [push("blocker", envelope(new_msg_id(), order_id=new_order_id()))]
            wait_for(lambda: self.db.waiting_ingests() >= 1, 5,
                     what="the first batch to wait for the lock")
            for n, (key, message) in enumerate(messages.items(), 1):
                threads.append(push(key, message))
                wait_for(lambda: self.queue_depth() == n, 5, what="push %r queued" % key)
            lock.release()
        for t in threads:
            t.join(20)
        return results

    def test_first_delivery_is_stored_whole_and_alone(self):
        x = new_msg_id()
        first_orders = [new_order_id(), new_order_id()]
        second_orders = [new_order_id()]
        first = envelope(x, type="ORDER_BATCH_PAY",
                         data={"batchPay": [{"orderId": str(o), "status": "successed"}
                                            for o in first_orders]})
        second = envelope(x, order_id=second_orders[0], status="waitbuyerreceive")
        results = self.push_in_one_batch({"first": first, "second": second})
        self.assertEqual({k: (r[0], r[2]) for k, r in results.items()},
                         {k: (200, b"success") for k in ("blocker", "first", "second")})
        rids = {k: results[k][1].get("X-Request-Id") for k in ("first", "second")}
        deliveries = {r["request_id"]: r for r in self.rows(
            "SELECT request_id, duplicate, xmin::text AS tx FROM deliveries"
            " WHERE msg_id = %d" % x)}
        self.assertEqual(sorted(deliveries), sorted(rids.values()),
                         "one deliveries row per push of msgId %d" % x)
        self.assertEqual(len({r["tx"] for r in deliveries.values()}), 1,
                         "the two deliveries were not in one batch (the test tested nothing)")

        stored = self.rows("SELECT type, order_id::text, payload->>'type' AS payload_type"
                           " FROM trade_events WHERE msg_id = %d" % x)
        self.assertEqual(stored, [{"type": "ORDER_BATCH_PAY", "order_id": str(first_orders[0]),
                                   "payload_type": "ORDER_BATCH_PAY"}],
                         "the first delivery's event is the one stored")
        self.assertEqual(self.event_orders(x), [str(o) for o in first_orders],
                         "trade_event_orders: the stored delivery's orders only")
        self.assertEqual(sorted(self.jobs(first_orders + second_orders)),
                         sorted(str(o) for o in first_orders),
                         "reconcile_jobs: the stored delivery's orders only")
        self.assertEqual({k: deliveries[rid]["duplicate"] for k, rid in rids.items()},
                         {"first": False, "second": True},
                         "the delivery whose event was stored alone is not a duplicate")

    def test_msgid_stored_earlier_adds_nothing_from_a_batch_holding_it_twice(self):
        x = new_msg_id()
        stored_order = new_order_id()
        self.assertSuccess(self.rx.push(envelope(x, order_id=stored_order)), "the first push")
        later = [new_order_id(), new_order_id()]
        results = self.push_in_one_batch({i: envelope(x, order_id=o)
                                          for i, o in enumerate(later)})
        self.assertEqual(sorted(r[0] for r in results.values()), [200, 200, 200])
        self.assertEqual(self.event_orders(x), [str(stored_order)])
        self.assertEqual(sorted(self.jobs([stored_order] + later)), [str(stored_order)])
        self.assertEqual(self.jobs([stored_order])[str(stored_order)]["generation"], 1)
        self.assertEqual([r["duplicate"] for r in self.deliveries_for(x)], [False, True, True])
        self.assertEqual(self.db.value(
            "SELECT count(DISTINCT xmin::text) FROM deliveries WHERE msg_id = %d"
            " AND duplicate" % x), "1", "the two later deliveries were not in one batch")
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM trade_events WHERE msg_id = %d" % x), "1")
