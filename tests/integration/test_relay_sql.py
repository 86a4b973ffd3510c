"""test_relay_sql.py - the relay's outbox in SQL (sql/007_relay.sql), through psql.

What the daemon's relay (relay.c) builds on, tested at the level of the
functions it calls: the events receiver_ingest and receiver_apply_order
write in the transaction of their change (bodies, ids as strings, filters,
nothing without a subscriber, nothing when the change rolls back); claiming
(per-order order, leases, SKIP LOCKED, disabled subscribers); the outcomes
(delivered, failed, gone, enable, retry_dead, replay; stale attempts change
nothing); the views.  Each class gets its own migrated database; each test
starts from empty relay tables and uses fresh order ids beyond 2^53, so an
id that lost precision anywhere would not match.  Pushes that must go the
daemon's own way go through a real `receiver serve`; the rest call
receiver_ingest with a batch shaped as store.c's put_delivery writes it.
Run with tests/integration/run.py.
"""

import datetime
import json
import re
import subprocess
import threading
import time
import unittest

import harness
from harness import (DJ, PG, SHOP, Receiver, envelope, new_msg_id, new_order_id,
                     stop_receivers)
from test_reconcile import Listener

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
# The order's own clock, with an offset: bodies give it back in UTC.
T1 = "2025-09-02T17:58:02.000+08:00"
T1_UTC = "2025-09-02T09:58:02.000000Z"
T2 = "2025-09-03T09:21:17.000+00:00"
T2_UTC = "2025-09-03T09:21:17.000000Z"
T3 = "2025-09-13T09:21:24.500+00:00"
T3_UTC = "2025-09-13T09:21:24.500000Z"
LEASE = 60000  # ms: a claimed delivery stays claimed for the whole test


def lit(text):
    """TEXT as a SQL literal (dollar quoted)."""
    assert "$lit$" not in text
    return "$lit$" + text + "$lit$"


def record(order_id, status, modify_time, **more):
    """An order record as the trade API writes one (baseInfo.id a number)."""
    base = {"id": order_id, "status": status, "modifyTime": modify_time,
            "buyerID": "b2b-2217533334e9c00"}
    base.update(more)
    return {"baseInfo": base, "productItems": [{"skuID": 5_000_000_000_000_000_001,
                                                "quantity": 2}]}


def delivery(msg_id, orders, app=SHOP, type="ORDER_BUYER_VIEW_ORDER_PAY", message=None):
    """One element of receiver_ingest's batch, as store.c's put_delivery writes it."""
    if message is None:
        message = envelope(msg_id, type=type, order_id=orders[0] if orders else None)
    ev = {"msg_id": msg_id, "type": type, "status": "waitsellersend",
          "user_info": "b2b-2217533334e9c00", "send_time": "2025-09-02 17:58:02",
          "gmt_born_ms": 1756807082000}
    if orders:
        ev["order_id"] = orders[0]
    ev["orders"] = list(orders)
    d = {"at": int(time.time() * 1e6), "status": 200, "body_bytes": 300,
         "rid": "rid-%d" % msg_id, "app": app["name"], "method": "POST", "path": app["path"],
         "remote": "127.0.0.1", "sig_field": app["field"], "sig_ok": True, "msg_id": msg_id}
    # The envelope goes in as it came, not re-encoded (store.c put_event).
    text = json.dumps(d, separators=(",", ":"))[:-1]
    text += ',"ev":' + json.dumps(ev, separators=(",", ":"))[:-1] + ',"payload":' + message + "}}"
    return text


def batch(*deliveries):
    return "[" + ",".join(deliveries) + "]"


def body_of(text):
    """A body parsed, with its key order checked against the documented shape."""
    pairs = json.loads(text, object_pairs_hook=lambda kv: kv)
    return [k for k, _ in pairs], json.loads(text)


class Session(Listener):
    """A psql session kept open, to hold a transaction across calls and to
    LISTEN (test_reconcile's Listener, listening on relay_deliveries).

    run() sends SQL and returns the rows psql printed for it (split on
    psql's "|"); an ERROR line raises."""

    def __init__(self, db):
        super().__init__(db, "relay_deliveries")

    def run(self, sql):
        self.send(sql)
        lines = self.sync()
        errors = [line for line in lines if "ERROR:" in line]
        if errors:
            raise AssertionError("psql session: %r failed: %s" % (sql, errors))
        # The last line is the "1" of sync()'s own SELECT 1.
        return [tuple(line.split("|")) for line in lines[:-1]
                if line and not line.startswith("Asynchronous notification")]

    def wakeups(self):
        """How many relay_deliveries notifications arrived since the last call."""
        prefix = 'Asynchronous notification "relay_deliveries"'
        return sum(1 for line in self.sync() if line.startswith(prefix))


class RelaySqlTest(unittest.TestCase):
    """A migrated database per class; empty relay tables per test."""

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database(cls.__name__)
        Receiver(cls.db, start=False)  # `receiver migrate`

    def setUp(self):
        self.sessions = []
        self.db.sql("TRUNCATE relay_subscribers, relay_events, relay_deliveries")

    def tearDown(self):
        for s in self.sessions:
            s.close()

    def session(self):
        s = Session(self.db)
        self.sessions.append(s)
        return s

    # --- queries ------------------------------------------------------------

    def rows(self, query):
        """QUERY's rows as dicts (through row_to_json, so bigints stay exact)."""
        out = self.db.sql("SELECT row_to_json(q)::text FROM (%s) q" % query)
        return [json.loads(r[0]) for r in out]

    def subscribe(self, name, events=(), apps=()):
        self.db.sql("SELECT receiver_relay_sync_subscriber(%s, %s::text[], %s::text[])"
                    % (lit(name), lit("{%s}" % ",".join(events)),
                       lit("{%s}" % ",".join(apps))))

    def apply(self, order_id, rec, app="shop"):
        return self.db.sql("SELECT outcome FROM receiver_apply_order(%d, %s, %s::jsonb,"
                           " 'command')" % (order_id, lit(app), lit(json.dumps(rec))))[0][0]

    def ingest(self, text):
        return int(self.db.value("SELECT receiver_ingest(%s::jsonb)" % lit(text)))

    def events(self, where="true"):
        return self.rows("SELECT id, event_id, type, app, order_id::text, body,"
                         " (created_at AT TIME ZONE 'UTC')::text AS created_utc"
                         " FROM relay_events WHERE %s ORDER BY id" % where)

    def deliveries(self, where="true"):
        return self.rows("SELECT id, subscriber, event_id, event_type, order_id::text, state,"
                         " attempts, last_status, last_error, delivered_at IS NOT NULL AS done,"
                         " due_at <= now() AS due FROM relay_deliveries WHERE %s ORDER BY id"
                         % where)

    def claim(self, subscriber, limit=10, lease_ms=LEASE):
        return self.rows("SELECT * FROM receiver_relay_claim(%s, %d, %d)"
                         % (lit(subscriber), limit, lease_ms))

    def call(self, fn, *args):
        text = ", ".join("NULL" if a is None else lit(a) if isinstance(a, str) else str(a)
                         for a in args)
        return self.db.value("SELECT %s(%s)" % (fn, text))

    def enqueue(self, n, type="message.received", app="shop", order_id=None):
        """N events through receiver_relay_enqueue; their event_ids."""
        o = "NULL" if order_id is None else str(order_id)
        return [r[0] for r in self.db.sql(
            "SELECT receiver_relay_enqueue(%s, %s, %s, json_build_object('n', g))"
            " FROM generate_series(1, %d) AS g" % (lit(type), lit(app), o, n))]

    # --- assertions ---------------------------------------------------------

    def assertBody(self, ev, type, data_keys):
        """EV's body: the documented shape, in key order, stamped with created_at."""
        keys, body = body_of(ev["body"])
        self.assertEqual(keys, ["type", "timestamp", "data"])
        self.assertEqual(body["type"], type)
        self.assertEqual(ev["type"], type)
        self.assertRegex(body["timestamp"], TS_RE)
        self.assertEqual(datetime.datetime.strptime(body["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ"),
                         datetime.datetime.fromisoformat(ev["created_utc"]),
                         "the body's timestamp is the event's created_at, in UTC")
        data_pairs = json.loads(ev["body"], object_pairs_hook=lambda kv: kv)[2][1]
        self.assertEqual([k for k, _ in data_pairs], data_keys)
        return body["data"]


# ============================================================================
# Event sources
# ============================================================================


class TestMessageReceived(RelaySqlTest):

    def setUp(self):
        super().setUp()
        self.rx = None

    def tearDown(self):
        errors = stop_receivers([self.rx] if self.rx else [])
        super().tearDown()
        if errors:
            self.fail("\n".join(errors))

    def test_push_records_its_event_and_deliveries_in_its_transaction(self):
        self.subscribe("all")
        self.subscribe("orders_only", events=["order.updated", "order.status_changed"])
        self.subscribe("dj_only", apps=["dj"])
        self.rx = Receiver(self.db)
        m, o = new_msg_id(), new_order_id()
        message = envelope(m, order_id=o)
        status, _, answer = self.rx.push(message)
        self.assertEqual((status, answer), (200, b"success"))

        evs = self.events("type = 'message.received' AND order_id = %d" % o)
        self.assertEqual(len(evs), 1, evs)
        ev = evs[0]
        self.assertEqual((ev["app"], ev["order_id"], ev["event_id"]),
                         ("shop", str(o), "evt_%d" % ev["id"]))
        data = self.assertBody(ev, "message.received",
                               ["app", "msg_id", "type", "order_ids", "message"])
        self.assertEqual(data, {"app": "shop", "msg_id": str(m),
                                "type": "ORDER_BUYER_VIEW_ORDER_PAY", "order_ids": [str(o)],
                                "message": json.loads(message)},
                         "ids as strings; the envelope as received, numbers exact")
        self.assertEqual(json.loads(ev["body"])["data"]["message"]["data"]["orderId"], o)

        self.assertEqual([(d["subscriber"], d["event_id"], d["event_type"], d["order_id"],
                           d["state"], d["attempts"])
                          for d in self.deliveries("event_id = '%s'" % ev["event_id"])],
                         [("all", ev["event_id"], "message.received", str(o), "pending", 0)],
                         "filtered by events (orders_only) and apps (dj_only)")
        tx = self.db.sql(
            "SELECT (SELECT xmin::text FROM trade_events WHERE msg_id = %d),"
            " (SELECT xmin::text FROM deliveries WHERE msg_id = %d),"
            " (SELECT xmin::text FROM relay_events WHERE event_id = '%s'),"
            " (SELECT xmin::text FROM relay_deliveries WHERE event_id = '%s')"
            % (m, m, ev["event_id"], ev["event_id"]))[0]
        self.assertEqual(len(set(tx)), 1, "one transaction for the push and its event: %r"
                         % (tx,))

        m2, o2 = new_msg_id(), new_order_id()
        status, _, _ = self.rx.push(envelope(m2, order_id=o2), app=DJ)
        self.assertEqual(status, 200)
        ev2 = self.events("order_id = %d" % o2)
        self.assertEqual([e["app"] for e in ev2], ["dj"])
        self.assertEqual([d["subscriber"] for d in self.deliveries(
            "event_id = '%s'" % ev2[0]["event_id"])], ["all", "dj_only"])

        # A duplicate push stores nothing new, so no new event.
        self.assertEqual(self.rx.push(message)[0], 200)
        self.assertEqual(len(self.events("type = 'message.received' AND order_id = %d" % o)), 1)

    def test_refused_batch_leaves_no_event(self):
        self.subscribe("all")
        # The relay's last insert fails: the whole batch rolls back, its
        # event (inserted before) included, and the push hears 503.
        self.db.sql(
            "CREATE FUNCTION relay_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " RAISE EXCEPTION 'relay poisoned'; END $$;"
            " CREATE TRIGGER relay_poison BEFORE INSERT ON relay_deliveries"
            " FOR EACH ROW EXECUTE FUNCTION relay_poison()")
        try:
            self.rx = Receiver(self.db)
            m, o = new_msg_id(), new_order_id()
            message = envelope(m, order_id=o)
            self.assertEqual(self.rx.push(message)[0], 503)
            self.assertEqual(self.db.sql(
                "SELECT (SELECT count(*) FROM trade_events WHERE msg_id = %d),"
                " (SELECT count(*) FROM relay_events), (SELECT count(*) FROM relay_deliveries)"
                % m), [("0", "0", "0")])
        finally:
            self.db.sql("DROP TRIGGER relay_poison ON relay_deliveries;"
                        " DROP FUNCTION relay_poison()")
        # The same push now commits with its event: the one above was refused
        # because of the relay step, nothing else.
        self.assertEqual(self.rx.push(message)[0], 200)
        self.assertEqual([e["order_id"] for e in self.events()], [str(o)])
        self.assertEqual(len(self.deliveries()), 1)

    def test_batch_events_in_batch_order_with_the_stored_delivery_orders(self):
        self.subscribe("all")
        a, b, c = new_msg_id(), new_msg_id(), new_msg_id()
        o1, o2, o3 = new_order_id(), new_order_id(), new_order_id()
        batch_pay = envelope(a, type="ORDER_BATCH_PAY",
                             data={"batchPay": [{"orderId": str(o1), "status": "successed"},
                                                {"orderId": str(o2), "status": "successed"}]})
        no_order = envelope(c, type="LOGISTICS_BUYER_VIEW_TRACE", data={"mailNo": "SF1"})
        n = self.ingest(batch(
            delivery(b, [o3]),
            delivery(a, [o1, o2], type="ORDER_BATCH_PAY", message=batch_pay),
            delivery(a, [o3]),                                   # same msgId: not stored
            delivery(c, [], type="LOGISTICS_BUYER_VIEW_TRACE", message=no_order)))
        self.assertEqual(n, 3)
        evs = self.events()
        got = [(e["order_id"], json.loads(e["body"])["data"]["msg_id"],
                json.loads(e["body"])["data"]["order_ids"]) for e in evs]
        self.assertEqual(got, [(str(o3), str(b), [str(o3)]),
                               (str(o1), str(a), [str(o1), str(o2)]),
                               (None, str(c), [])],
                         "one event per stored delivery, in batch order, its own orders")
        self.assertEqual(json.loads(evs[1]["body"])["data"]["message"], json.loads(batch_pay))
        self.assertEqual(len({e["created_utc"] for e in evs}), 1)
        self.assertEqual([d["event_id"] for d in self.deliveries()], [e["event_id"] for e in evs])
        # Stored before: nothing new.
        self.assertEqual(self.ingest(batch(delivery(b, [o3]))), 0)
        self.assertEqual(len(self.events()), 3)


class TestNoSubscriber(RelaySqlTest):

    def test_nothing_recorded_without_a_subscriber(self):
        listener = self.session()
        m, o = new_msg_id(), new_order_id()
        self.assertEqual(self.ingest(batch(delivery(m, [o]))), 1)
        self.assertEqual(self.apply(o, record(o, "waitbuyerpay", T1)), "applied")
        self.assertEqual(self.apply(o, record(o, "waitsellersend", T2)), "applied")
        self.assertEqual(self.db.sql(
            "SELECT (SELECT count(*) FROM trade_events WHERE msg_id = %d),"
            " (SELECT count(*) FROM order_changes WHERE order_id = %d),"
            " (SELECT count(*) FROM relay_events), (SELECT count(*) FROM relay_deliveries)"
            % (m, o)), [("1", "2", "0", "0")])
        self.assertEqual(listener.wakeups(), 0)

        # A subscriber that wants none of them: events are stored (for a
        # replay), no delivery is made, nobody is woken.
        self.subscribe("only_dj", apps=["dj"])
        m2, o2 = new_msg_id(), new_order_id()
        self.ingest(batch(delivery(m2, [o2])))
        self.assertEqual([e["type"] for e in self.events()], ["message.received"])
        self.assertEqual(self.deliveries(), [])
        self.assertEqual(listener.wakeups(), 0)

        self.subscribe("all")
        self.ingest(batch(delivery(new_msg_id(), [new_order_id()])))
        self.assertEqual([d["subscriber"] for d in self.deliveries()], ["all"])
        self.assertGreaterEqual(listener.wakeups(), 1)


class TestOrderEvents(RelaySqlTest):

    def order_events(self, o):
        return [(e["type"], json.loads(e["body"])["data"]) for e in self.events(
            "order_id = %d" % o)]

    def test_apply_records_updated_and_status_changed_with_exact_data(self):
        self.subscribe("all")
        o = new_order_id()
        r1 = record(o, "waitbuyerpay", T1)
        self.assertEqual(self.apply(o, r1), "applied")
        evs = self.events("order_id = %d" % o)
        self.assertEqual([e["type"] for e in evs], ["order.updated", "order.status_changed"],
                         "order.updated first")
        self.assertEqual(self.assertBody(evs[0], "order.updated", [
            "app", "order_id", "status", "modify_time", "record"]),
            {"app": "shop", "order_id": str(o), "status": "waitbuyerpay",
             "modify_time": T1_UTC, "record": r1})
        self.assertEqual(self.assertBody(evs[1], "order.status_changed", [
            "app", "order_id", "old_status", "new_status", "modify_time", "record"]),
            {"app": "shop", "order_id": str(o), "old_status": None,
             "new_status": "waitbuyerpay", "modify_time": T1_UTC, "record": r1})
        rec = json.loads(evs[0]["body"])["data"]["record"]
        self.assertEqual((rec["baseInfo"]["id"], rec["productItems"][0]["skuID"]),
                         (o, 5_000_000_000_000_000_001), "numbers of the record exact")
        tx = self.db.sql("SELECT DISTINCT xmin::text FROM (SELECT xmin FROM order_changes"
                         " WHERE order_id = %d UNION ALL SELECT xmin FROM relay_events"
                         " WHERE order_id = %d UNION ALL SELECT xmin FROM relay_deliveries"
                         " WHERE order_id = %d) AS t" % (o, o, o))
        self.assertEqual(len(tx), 1, "the change and its events in one transaction")

        # The same record again: no new version, no event.
        self.assertEqual(self.apply(o, r1), "unchanged")
        # A new version, same status: order.updated alone.
        r2 = record(o, "waitbuyerpay", T2, totalAmount="12.50")
        self.assertEqual(self.apply(o, r2), "unchanged")
        # A new status.
        r3 = record(o, "waitsellersend", T3)
        self.assertEqual(self.apply(o, r3), "applied")
        # An older version: kept as a snapshot, stale, no event.
        self.assertEqual(self.apply(o, record(o, "cancel", T2)), "stale")

        self.assertEqual(self.order_events(o)[2:], [
            ("order.updated", {"app": "shop", "order_id": str(o), "status": "waitbuyerpay",
                               "modify_time": T2_UTC, "record": r2}),
            ("order.updated", {"app": "shop", "order_id": str(o), "status": "waitsellersend",
                               "modify_time": T3_UTC, "record": r3}),
            ("order.status_changed", {"app": "shop", "order_id": str(o),
                                      "old_status": "waitbuyerpay",
                                      "new_status": "waitsellersend", "modify_time": T3_UTC,
                                      "record": r3})])
        self.assertEqual(self.db.sql(
            "SELECT (SELECT count(*) FROM order_snapshots WHERE order_id = %d),"
            " (SELECT count(*) FROM order_changes WHERE order_id = %d)" % (o, o)),
            [("4", "2")], "four versions stored (one stale), two changes")
        self.assertEqual([(d["event_type"], d["subscriber"]) for d in self.deliveries(
            "order_id = %d" % o)], [(t, "all") for t, _ in self.order_events(o)])

    def test_unparseable_modify_time_is_null(self):
        self.subscribe("all")
        o = new_order_id()
        self.apply(o, record(o, "waitbuyerpay", "not a time"))
        self.assertEqual([d["modify_time"] for _, d in self.order_events(o)], [None, None])

    def test_apply_that_rolls_back_leaves_no_event(self):
        self.subscribe("all")
        self.db.sql(
            "CREATE FUNCTION relay_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.event_type = 'order.status_changed' THEN"
            " RAISE EXCEPTION 'relay poisoned'; END IF; RETURN NEW; END $$;"
            " CREATE TRIGGER relay_poison BEFORE INSERT ON relay_deliveries"
            " FOR EACH ROW EXECUTE FUNCTION relay_poison()")
        o = new_order_id()
        try:
            # receiver_apply_records applies each record in a subtransaction:
            # the failing one is unusable, and leaves nothing at all.
            got = self.db.sql("SELECT applied, unusable FROM receiver_apply_records('shop',"
                              " %s::jsonb, 'list')" % lit(json.dumps(
                                  [record(o, "waitbuyerpay", T1)])))
        finally:
            self.db.sql("DROP TRIGGER relay_poison ON relay_deliveries;"
                        " DROP FUNCTION relay_poison()")
        self.assertEqual(got, [("0", "1")])
        self.assertEqual(self.db.sql(
            "SELECT (SELECT count(*) FROM orders WHERE order_id = %d),"
            " (SELECT count(*) FROM order_snapshots WHERE order_id = %d),"
            " (SELECT count(*) FROM order_changes WHERE order_id = %d),"
            " (SELECT count(*) FROM relay_events), (SELECT count(*) FROM relay_deliveries)"
            % (o, o, o)), [("0", "0", "0", "0", "0")])

    def test_filters_by_events_and_apps(self):
        self.subscribe("all")
        self.subscribe("changes", events=["order.status_changed"])
        self.subscribe("dj", apps=["dj"])
        self.subscribe("shop_updates", events=["order.updated", "message.received"],
                       apps=["shop"])
        o_shop, o_dj = new_order_id(), new_order_id()
        self.apply(o_shop, record(o_shop, "waitbuyerpay", T1), app="shop")
        self.apply(o_dj, record(o_dj, "waitbuyerpay", T1), app="dj")
        self.ingest(batch(delivery(new_msg_id(), [o_dj], app=DJ)))
        got = {}
        for d in self.deliveries():
            got.setdefault(d["subscriber"], []).append(
                (d["event_type"], "shop" if d["order_id"] == str(o_shop) else "dj"))
        self.assertEqual(got, {
            "all": [("order.updated", "shop"), ("order.status_changed", "shop"),
                    ("order.updated", "dj"), ("order.status_changed", "dj"),
                    ("message.received", "dj")],
            "changes": [("order.status_changed", "shop"), ("order.status_changed", "dj")],
            "dj": [("order.updated", "dj"), ("order.status_changed", "dj"),
                   ("message.received", "dj")],
            "shop_updates": [("order.updated", "shop")]})


# ============================================================================
# Claiming
# ============================================================================


class TestClaim(RelaySqlTest):

    def test_claim_leases_counts_attempts_and_stale_outcomes_change_nothing(self):
        self.subscribe("a")
        [eid] = self.enqueue(1, order_id=new_order_id())
        [c] = self.claim("a", lease_ms=LEASE)
        body = self.rows("SELECT body FROM relay_events WHERE event_id = '%s'" % eid)[0]["body"]
        self.assertEqual((c["event_id"], c["event_type"], c["attempts"], c["body"]),
                         (eid, "message.received", 1, body))
        lease = self.db.value("SELECT round(extract(epoch FROM due_at - last_attempt_at))"
                              " FROM relay_deliveries WHERE id = %d" % c["id"])
        self.assertEqual(lease, "60", "due_at is the end of the lease")
        self.assertEqual(self.claim("a"), [], "leased: not claimed again")

        # A lease that ran out: claimed again, the attempt counted.
        self.db.sql("UPDATE relay_deliveries SET due_at = now() WHERE id = %d" % c["id"])
        [c2] = self.claim("a")
        self.assertEqual((c2["id"], c2["attempts"]), (c["id"], 2))
        # The first attempt's outcome arrives late: nothing changes.
        self.call("receiver_relay_delivered", c["id"], 1, 200)
        self.assertIsNone(self.call("receiver_relay_failed", c["id"], 1, 500, "late", 1000, 1))
        self.call("receiver_relay_gone", c["id"], 1, "a", "late 410")
        self.assertEqual(self.db.value("SELECT enabled FROM relay_subscribers"), "f",
                         "a 410 disables the subscriber, however late")
        self.call("receiver_relay_enable", "a")
        [d] = self.deliveries()
        self.assertEqual((d["state"], d["attempts"], d["last_status"], d["last_error"],
                          d["due"]), ("pending", 2, None, None, False))
        self.call("receiver_relay_delivered", c["id"], 2, 204)
        [d] = self.deliveries()
        self.assertEqual((d["state"], d["last_status"], d["done"]), ("delivered", 204, True))
        # Delivered is final.
        self.assertIsNone(self.call("receiver_relay_failed", c["id"], 2, 500, "x", 0, 10))
        self.assertEqual(self.deliveries()[0]["state"], "delivered")

    def test_per_order_order(self):
        self.subscribe("a")
        self.subscribe("b")
        x, y = new_order_id(), new_order_id()
        self.apply(x, record(x, "waitbuyerpay", T1))    # x: updated, status_changed
        self.apply(y, record(y, "waitbuyerpay", T1))    # y: updated, status_changed
        self.apply(x, record(x, "waitsellersend", T2))  # x: updated, status_changed
        self.enqueue(2)                                 # no order: no constraint
        first = self.claim("a")
        self.assertEqual([(c["event_type"], c["order_id"]) for c in first], [
            ("order.updated", x), ("order.updated", y),
            ("message.received", None), ("message.received", None)],
            "the first of each order, and every delivery of no order")
        self.assertEqual(self.claim("a"), [], "the next of an order waits, though leased")
        self.assertEqual([(c["event_type"], c["order_id"]) for c in self.claim("b", limit=1)],
                         [("order.updated", x)], "another subscriber does not wait for a")

        # Not leased any more but failed, waiting for its retry: still first.
        ax = first[0]
        self.assertEqual(self.call("receiver_relay_failed", ax["id"], 1, 500, "boom", 60000,
                                   5), "pending")
        self.db.sql("UPDATE relay_deliveries SET due_at = now() + interval '1 hour'"
                    " WHERE id = %d" % first[1]["id"])
        self.assertEqual(self.claim("a"), [])

        # Delivered: the next of x.
        self.db.sql("UPDATE relay_deliveries SET due_at = now() WHERE id = %d" % ax["id"])
        [again] = self.claim("a")
        self.assertEqual((again["id"], again["attempts"]), (ax["id"], 2))
        self.call("receiver_relay_delivered", ax["id"], 2, 200)
        [nxt] = self.claim("a")
        self.assertEqual((nxt["event_type"], nxt["order_id"]), ("order.status_changed", x))
        # Dead: the next of x.
        self.assertEqual(self.call("receiver_relay_failed", nxt["id"], 1, 400, "bad", 0, 1),
                         "dead")
        [nxt2] = self.claim("a")
        self.assertEqual((nxt2["event_type"], nxt2["order_id"],
                          json.loads(nxt2["body"])["data"]["status"]),
                         ("order.updated", x, "waitsellersend"))
        self.assertEqual(self.claim("a"), [])

    def test_limit_takes_the_earliest_due(self):
        self.subscribe("a")
        ids = self.enqueue(5)
        self.db.sql("UPDATE relay_deliveries SET due_at = due_at - interval '1 minute'"
                    " WHERE event_id = '%s'" % ids[3])
        self.assertEqual([c["event_id"] for c in self.claim("a", limit=2)], [ids[0], ids[3]],
                         "the two due earliest (returned in id order)")
        self.assertEqual([c["event_id"] for c in self.claim("a", limit=10)],
                         [ids[1], ids[2], ids[4]])

    def test_two_sessions_never_claim_one_delivery(self):
        self.subscribe("a")
        x = new_order_id()
        self.apply(x, record(x, "waitbuyerpay", T1))
        self.enqueue(3)
        s1 = self.session()
        s1.run("BEGIN;")
        held = s1.run("SELECT id, event_type FROM receiver_relay_claim('a', 2, %d);" % LEASE)
        self.assertEqual([t for _, t in held], ["order.updated", "message.received"])
        # Session 1 has not committed: its lease is invisible, its row locks
        # are not.  This claim must neither wait nor take a locked row, nor
        # the next delivery of the order session 1 holds.
        t0 = time.monotonic()
        other = self.claim("a")
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(sorted(c["event_type"] for c in other),
                         ["message.received", "message.received"])
        self.assertFalse({str(c["id"]) for c in other} & {i for i, _ in held})
        s1.run("COMMIT;")
        self.assertEqual(self.claim("a"), [])

    def test_concurrent_claimers_share_without_duplicates(self):
        self.subscribe("a")
        n = 240
        self.enqueue(n // 2)
        for _ in range(n // 8):  # and orders of four deliveries each
            self.enqueue(4, order_id=new_order_id())
        # Six sessions, each claiming three at a time in a tight loop of
        # transactions, as receivers do, each delivery delivered in the
        # transaction that claimed it (so the next of its order is due).
        step = ("SELECT id FROM (SELECT id, receiver_relay_delivered(id, attempts, 200)"
                " FROM receiver_relay_claim('a', 3, %d)) AS c;\n" % LEASE)
        cmd = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
               "-p", str(self.db.cluster.port), "-U", "receiver", "-d", self.db.name,
               "-f", "-"]
        procs = [harness._register(subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)) for _ in range(6)]
        outs = []
        threads = []
        for p in procs:
            def talk(p=p):
                outs.append(p.communicate(step * 120, timeout=120))
            threads.append(threading.Thread(target=talk))
            threads[-1].start()
        for t in threads:
            t.join(130)
        for p in procs:
            harness._unregister(p)
        self.assertEqual([(p.returncode, err) for p, (_, err) in zip(procs, outs)],
                         [(0, "")] * 6)
        got = [int(line) for out, _ in outs for line in out.split()]
        self.assertEqual(len(set(got)), n, "every delivery claimed")
        self.assertEqual(len(got), n, "none claimed twice")
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM relay_deliveries WHERE state = 'delivered' AND attempts = 1"),
            str(n))

    def test_disabled_subscriber_gets_nothing_until_enabled(self):
        self.subscribe("a")
        self.subscribe("b")
        x = new_order_id()
        self.apply(x, record(x, "waitbuyerpay", T1))  # two deliveries of x each
        [ca] = self.claim("a")
        self.call("receiver_relay_gone", ca["id"], 1, "a", "410 Gone: unsubscribed")
        self.assertEqual(self.rows("SELECT enabled, disabled_reason, disabled_at IS NOT NULL"
                                   " AS since, last_error FROM relay_subscribers"
                                   " WHERE name = 'a'"),
                         [{"enabled": False, "disabled_reason": "410 Gone: unsubscribed",
                           "since": True, "last_error": "410 Gone: unsubscribed"}])
        [d] = self.deliveries("id = %d" % ca["id"])
        self.assertEqual((d["state"], d["attempts"], d["last_status"], d["due"]),
                         ("pending", 1, 410, True), "back to pending, due, attempts unchanged")
        self.assertEqual(self.claim("a"), [], "a disabled subscriber is never claimed")
        self.assertEqual([c["event_type"] for c in self.claim("b")], ["order.updated"],
                         "another subscriber goes on")
        # New events still wait for it.
        [late] = self.enqueue(1)
        self.assertEqual(len(self.deliveries("subscriber = 'a' AND state = 'pending'")), 3)
        self.assertEqual(self.claim("a"), [])
        # A later sync of the configuration keeps it disabled.
        self.subscribe("a", events=["order.updated", "order.status_changed",
                                    "message.received"])
        self.assertEqual(self.claim("a"), [])

        self.assertEqual(self.call("receiver_relay_enable", "a"), "t")
        self.assertEqual(self.call("receiver_relay_enable", "nobody"), "f")
        self.assertEqual(self.rows("SELECT enabled, disabled_reason, disabled_at"
                                   " FROM relay_subscribers WHERE name = 'a'"),
                         [{"enabled": True, "disabled_reason": None, "disabled_at": None}])
        self.assertEqual([(c["id"], c["event_id"], c["attempts"]) for c in self.claim("a")],
                         [(ca["id"], ca["event_id"], 2),
                          (self.deliveries("subscriber = 'a' AND event_id = '%s'" % late)[0]["id"],
                           late, 1)],
                         "the waiting deliveries, the 410 one first")


# ============================================================================
# Outcomes and commands
# ============================================================================


class TestOutcomes(RelaySqlTest):

    def test_failed_retries_then_dead_at_max_attempts(self):
        self.subscribe("a")
        [eid] = self.enqueue(1, order_id=new_order_id())
        [c] = self.claim("a")
        self.assertEqual(self.call("receiver_relay_failed", c["id"], 1, 500,
                                   "HTTP 500 Internal Server Error", 30000, 3), "pending")
        [d] = self.deliveries()
        self.assertEqual((d["state"], d["attempts"], d["last_status"], d["last_error"],
                          d["due"]), ("pending", 1, 500, "HTTP 500 Internal Server Error",
                                      False))
        self.assertEqual(self.db.value(
            "SELECT round(extract(epoch FROM due_at - now())) FROM relay_deliveries"), "30")
        self.assertEqual(self.claim("a"), [], "not due before its retry")
        self.db.sql("UPDATE relay_deliveries SET due_at = now()")
        [c] = self.claim("a")
        self.assertEqual(self.call("receiver_relay_failed", c["id"], 2, None,
                                   "connection refused", 0, 3), "pending")
        self.assertEqual((self.deliveries()[0]["last_status"],
                          self.deliveries()[0]["last_error"]), (None, "connection refused"))
        [c] = self.claim("a")
        self.assertEqual(c["attempts"], 3)
        self.assertEqual(self.call("receiver_relay_failed", c["id"], 3, 503, "HTTP 503", 0, 3),
                         "dead")
        self.assertEqual(self.claim("a"), [])
        self.assertEqual(self.rows("SELECT subscriber, event_id, type, attempts, last_status,"
                                   " last_error FROM relay_dead"),
                         [{"subscriber": "a", "event_id": eid, "type": "message.received",
                           "attempts": 3, "last_status": 503, "last_error": "HTTP 503"}])
        # Dead is final too: a late outcome changes nothing.
        self.call("receiver_relay_delivered", c["id"], 3, 200)
        self.assertEqual(self.deliveries()[0]["state"], "dead")

    def test_retry_dead_by_subscriber_and_for_all(self):
        self.subscribe("a")
        self.subscribe("b")
        self.enqueue(2)
        for c in self.claim("a") + self.claim("b"):
            self.call("receiver_relay_failed", c["id"], 1, 500, "down", 0, 1)
        self.assertEqual(self.db.value("SELECT count(*) FROM relay_dead"), "4")
        listener = self.session()
        self.assertEqual(self.call("receiver_relay_retry_dead", "a"), "2")
        self.assertEqual(listener.wakeups(), 1)
        self.assertEqual(sorted((d["subscriber"], d["state"], d["attempts"])
                                for d in self.deliveries()),
                         [("a", "pending", 0), ("a", "pending", 0),
                          ("b", "dead", 1), ("b", "dead", 1)],
                         "a's back, attempts counted afresh; b's still dead")
        self.assertEqual([d["due"] for d in self.deliveries("subscriber = 'a'")],
                         [True, True], "due now")
        self.assertEqual([c["attempts"] for c in self.claim("a")], [1, 1])
        self.assertEqual(self.call("receiver_relay_retry_dead", None), "2")
        self.assertEqual(self.db.value("SELECT count(*) FROM relay_dead"), "0")
        self.assertEqual(len(self.claim("b")), 2)

    def test_replay_enqueues_the_window_again_with_the_same_event_ids(self):
        self.subscribe("a")
        x = new_order_id()
        self.apply(x, record(x, "waitbuyerpay", T1))         # day 1: updated, changed
        self.enqueue(1)                                       # day 1: message.received
        self.apply(x, record(x, "waitsellersend", T2))       # day 2: updated, changed
        self.enqueue(1, app="dj")                             # day 3
        evs = self.events()
        days = ["2030-01-01 12:00:00+00"] * 3 + ["2030-01-02 12:00:00+00"] * 2 \
            + ["2030-01-03 12:00:00+00"]
        for e, day in zip(evs, days):
            self.db.sql("UPDATE relay_events SET created_at = '%s' WHERE id = %d"
                        % (day, e["id"]))
        for c in self.claim("a"):
            self.call("receiver_relay_delivered", c["id"], c["attempts"], 200)

        # A new consumer, changes only: day 1 and 2, not 3.
        self.subscribe("late", events=["order.status_changed", "message.received"],
                       apps=["shop"])
        mark = int(self.db.value("SELECT max(id) FROM relay_deliveries"))
        listener = self.session()
        n = self.call("receiver_relay_replay", "late", "2030-01-01 00:00:00+00",
                      "2030-01-03 00:00:00+00")
        self.assertEqual(n, "3")
        self.assertEqual(listener.wakeups(), 1)
        new = self.deliveries("id > %d" % mark)
        self.assertEqual([(d["subscriber"], d["event_id"], d["event_type"], d["state"],
                           d["attempts"]) for d in new],
                         [("late", evs[i]["event_id"], evs[i]["type"], "pending", 0)
                          for i in (1, 2, 4)])
        self.assertEqual([c["body"] for c in self.claim("late")][:1], [evs[1]["body"]])

        # A consumer that lost data: everything since day 2, same event ids.
        mark = int(self.db.value("SELECT max(id) FROM relay_deliveries"))
        self.assertEqual(self.call("receiver_relay_replay", "a", "2030-01-02 00:00:00+00",
                                   None), "3")
        self.assertEqual([d["event_id"] for d in self.deliveries("id > %d" % mark)],
                         [e["event_id"] for e in evs[3:]])
        self.assertEqual(self.call("receiver_relay_replay", "a", "2031-01-01", None), "0")
        with self.assertRaisesRegex(RuntimeError, 'no relay subscriber named "nobody"'):
            self.call("receiver_relay_replay", "nobody", "2030-01-01", None)


class TestViewsAndSync(RelaySqlTest):

    def test_relay_lag(self):
        self.subscribe("a")
        self.subscribe("b")
        self.subscribe("idle", apps=["nothing"])
        self.enqueue(3)
        self.db.sql("UPDATE relay_deliveries SET created_at = now() - interval '2 hours'"
                    " WHERE id = (SELECT min(id) FROM relay_deliveries WHERE subscriber = 'a')")
        [c1, c2, _] = self.claim("a")
        self.call("receiver_relay_delivered", c1["id"], 1, 200)
        self.call("receiver_relay_failed", c2["id"], 1, 502, "HTTP 502 Bad Gateway", 0, 1)
        [cb, _, _] = self.claim("b")
        self.call("receiver_relay_gone", cb["id"], 1, "b", "410 Gone")
        lag = {r["subscriber"]: r for r in self.rows(
            "SELECT subscriber, enabled, disabled_reason, pending, dead,"
            " extract(epoch FROM oldest_pending_age) AS age, last_error FROM relay_lag")}
        self.assertEqual(set(lag), {"a", "b", "idle"})
        a, b, idle = lag["a"], lag["b"], lag["idle"]
        self.assertEqual((a["enabled"], a["pending"], a["dead"], a["last_error"]),
                         (True, 1, 1, "HTTP 502 Bad Gateway"))
        self.assertLess(a["age"], 600, "the two-hour-old one was delivered")
        self.assertEqual((b["enabled"], b["disabled_reason"], b["pending"], b["dead"],
                          b["last_error"]), (False, "410 Gone", 3, 0, "410 Gone"))
        self.assertEqual((idle["enabled"], idle["pending"], idle["dead"], idle["age"],
                          idle["last_error"]), (True, 0, 0, None, None))
        self.db.sql("UPDATE relay_deliveries SET created_at = now() - interval '3 hours'"
                    " WHERE subscriber = 'b'")
        age = float(self.db.value("SELECT extract(epoch FROM oldest_pending_age)"
                                  " FROM relay_lag WHERE subscriber = 'b'"))
        self.assertGreaterEqual(age, 3 * 3600)
        self.assertLess(age, 3 * 3600 + 600)

    def test_sync_subscriber_updates_filters_and_keeps_enabled(self):
        self.db.sql("SELECT receiver_relay_sync_subscriber('a', NULL, NULL)")
        self.assertEqual(self.rows("SELECT events, apps, enabled FROM relay_subscribers"),
                         [{"events": [], "apps": [], "enabled": True}])
        self.db.sql("UPDATE relay_subscribers SET enabled = false, disabled_reason = '410'")
        self.subscribe("a", events=["order.updated"], apps=["shop", "dj"])
        self.assertEqual(self.rows("SELECT events, apps, enabled, disabled_reason"
                                   " FROM relay_subscribers"),
                         [{"events": ["order.updated"], "apps": ["shop", "dj"],
                           "enabled": False, "disabled_reason": "410"}])
        # Unchanged: no new row version.
        xmin = self.db.value("SELECT xmin::text FROM relay_subscribers")
        self.subscribe("a", events=["order.updated"], apps=["shop", "dj"])
        self.assertEqual(self.db.value("SELECT xmin::text FROM relay_subscribers"), xmin)


if __name__ == "__main__":
    unittest.main()
