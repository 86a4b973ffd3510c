"""test_reconcile.py - the reconciler against a real PostgreSQL and the fake
trade API (build/fake_api): what ends up in orders, order_snapshots,
order_changes and reconcile_jobs, what the trade API was asked, what the
command line prints (DESIGN.md "Data flow", PROTOCOL.md section 5,
sql/002_reconcile.sql).

Every test gets its own database and its own receiver(s) (stopped with
SIGTERM in tearDown, which asserts exit status 0 and a clean sanitizer
log); every class gets its own fake, reset before each test.  tearDown
also checks that no app secret appears in any receiver log, any command's
output or any row of any table of the test's database.

Backoffs and timeouts are kept small (backoff 50..400 ms, timeout 500 ms)
so the module runs in well under two minutes.  Run with
tests/integration/run.py test_reconcile.
"""

import datetime
import json
import os
import queue
import re
import select
import subprocess
import threading
import time
import unittest

import harness
from harness import (ALL_SECRETS, PG, SHOP, Receiver, envelope, new_msg_id, new_order_id,
                     run_receiver, sql_list, wait_for)
from fakeapi import BUYER_VIEW, FakeApi

# Times of an order's own clock (baseInfo.modifyTime), oldest first.
T1 = "2025-09-02T09:58:02.000+00:00"
T2 = "2025-09-03T09:21:17.000+00:00"
T3 = "2025-09-13T09:21:24.000+00:00"

RECONCILE = {"enabled": True, "max_attempts": 5, "backoff_min_ms": 50,
             "backoff_max_ms": 400, "sweep_interval_s": 0}
UPSTREAM = {"timeout_ms": 500, "max_concurrency": 8, "max_rps": 1000}


def utc(text):
    """'2025-09-02T09:58:02.000+00:00' -> '2025-09-02T09:58:02.000' (as the queries give it)."""
    return datetime.datetime.fromisoformat(text).astimezone(
        datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def iso(dt):
    """An aware datetime as the API writes times (UTC, milliseconds, offset)."""
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")


def readable(text):
    """True when TEXT is a short line of printable text."""
    return isinstance(text, str) and 0 < len(text) <= 300 and text.isprintable()


class Listener:
    """A psql session LISTENing on a channel.

    psql prints a notification only after it ran a command, so collect()
    sends "SELECT 1;" and a marker, then reads up to the marker."""

    def __init__(self, db, channel):
        cmd = ["psql", "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(db.cluster.port),
               "-U", "receiver", "-d", db.name]
        self.proc = harness._register(subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        self.buf = b""
        self.marks = 0
        self.send("LISTEN %s;" % channel)
        self.sync()

    def send(self, text):
        self.proc.stdin.write((text + "\n").encode())
        self.proc.stdin.flush()

    def sync(self, timeout=10):
        """Run a command; return the lines psql printed before the marker."""
        self.marks += 1
        mark = "__listener_mark_%d__" % self.marks
        self.send("SELECT 1;")
        self.send("\\echo " + mark)
        deadline = time.monotonic() + timeout
        while ("\n" + mark + "\n").encode() not in b"\n" + self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("psql listener: no marker within %d s; output %r"
                                     % (timeout, self.buf[-500:]))
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("psql listener exited: %r" % self.buf[-500:])
                self.buf += chunk
        text, _, self.buf = self.buf.partition((mark + "\n").encode())
        return text.decode("utf-8", "replace").splitlines()

    def notifications(self, channel):
        """Payloads (parsed JSON) of the notifications received so far."""
        prefix = 'Asynchronous notification "%s" with payload "' % channel
        out = []
        for line in self.sync():
            if line.startswith(prefix):
                payload = line[len(prefix):line.rindex('" received from server process')]
                out.append(json.loads(payload))
        return out

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"\\q\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        harness._unregister(self.proc)


class ReconcileTest(unittest.TestCase):
    """A fake per class, a database and receivers per test."""

    TLS = False
    API_SECRET = SHOP["secret"]  # what the fake accepts for app_key "shop-key"

    @classmethod
    def setUpClass(cls):
        cls.api = FakeApi(app_key="shop-key", app_secret=cls.API_SECRET).start(tls=cls.TLS)

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()

    def setUp(self):
        self.api.wait_idle(10)
        self.api.reset()
        self.db = PG.create_database(self.id().rsplit(".", 1)[-1][5:40])
        self.receivers = []
        self.outputs = []  # (what, text) of every command run, for the secrets check

    def tearDown(self):
        errors = harness.stop_receivers(self.receivers)
        errors += self.secret_leaks()
        if errors:
            self.fail("\n".join(errors))

    # --- receivers and commands ---------------------------------------------

    def config(self, reconcile=None, upstream=None, api=None, server=None):
        api = api or self.api
        up = dict(UPSTREAM, base_url=api.base_url)
        if api.tls:
            up["ca_file"] = api.ca_file
        up.update(upstream or {})
        rc = dict(RECONCILE)
        rc.update(reconcile or {})
        extra = {"upstream": up, "reconcile": rc}
        if server:
            extra["server"] = server
        return extra

    def new_receiver(self, reconcile=None, upstream=None, api=None, server=None, start=True):
        rx = Receiver(self.db, extra=self.config(reconcile, upstream, api, server),
                      start=start)
        self.receivers.append(rx)
        return rx

    def command(self, rx, *args, timeout=60):
        r = run_receiver([args[0], "-c", rx.config] + [str(a) for a in args[1:]],
                         timeout=timeout)
        self.outputs.append(("receiver %s stdout" % args[0], r.stdout))
        self.outputs.append(("receiver %s stderr" % args[0], r.stderr))
        report = harness.sanitizer_report(r.stderr)
        self.assertIsNone(report, "sanitizer report from receiver %s:\n%s" % (args[0], r.stderr))
        return r

    # --- pushes ---------------------------------------------------------------

    def push(self, rx, order_id, status="waitsellersend", msg_id=None):
        m = msg_id or new_msg_id()
        status_, _, body = rx.push(envelope(m, order_id=order_id, status=status))
        self.assertEqual((status_, body), (200, b"success"), "push of order %d" % order_id)
        return m

    def push_batch(self, rx, order_ids):
        m = new_msg_id()
        data = {"batchPay": [{"orderId": str(o), "status": "successed"} for o in order_ids]}
        status, _, body = rx.push(envelope(m, type="ORDER_BATCH_PAY", data=data))
        self.assertEqual((status, body), (200, b"success"), "batch pay push")
        return m

    # --- queries --------------------------------------------------------------

    def rows(self, query):
        """QUERY's rows as dicts (through row_to_json, so bigints stay exact)."""
        return [json.loads(r[0]) for r in
                self.db.sql("SELECT row_to_json(q)::text FROM (%s) q" % query)]

    def order(self, order_id):
        rows = self.rows(
            "SELECT order_id::text, app, status,"
            " to_char(modify_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')"
            " AS modify_time, total_amount::text AS total_amount,"
            " total_amount = 47.3 AS total_is_47_3,"
            " record->'baseInfo'->>'id' AS record_id,"
            " record->'baseInfo'->>'idOfStr' AS record_id_str,"
            " record->'baseInfo'->>'status' AS record_status"
            " FROM orders WHERE order_id = %d" % order_id)
        return rows[0] if rows else None

    def statuses(self, order_ids):
        return {r["order_id"]: r["status"] for r in self.rows(
            "SELECT order_id::text, status FROM orders WHERE order_id = ANY(%s)"
            % sql_list(order_ids))}

    def job(self, order_id):
        rows = self.rows(
            "SELECT order_id::text, app, state, attempts, last_error, generation"
            " FROM reconcile_jobs WHERE order_id = %d" % order_id)
        return rows[0] if rows else None

    def changes(self, order_id):
        return [(r["old_status"], r["new_status"]) for r in self.rows(
            "SELECT old_status, new_status FROM order_changes WHERE order_id = %d ORDER BY id"
            % order_id)]

    def snapshots(self, order_id):
        return self.rows(
            "SELECT status, source,"
            " to_char(modify_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')"
            " AS modify_time FROM order_snapshots WHERE order_id = %d ORDER BY id" % order_id)

    def views(self, order_id=None):
        """buyerView calls the fake saw, for ORDER_ID or all (dict)."""
        bv = self.api.stats()["buyerView"]
        return bv if order_id is None else bv.get(str(order_id), 0)

    def wait_order(self, order_id, status=None, timeout=5):
        def look():
            row = self.order(order_id)
            return row if row and (status is None or row["status"] == status) else None
        return wait_for(look, timeout, interval=0.02,
                        what="order %d in orders%s" % (order_id,
                                                       " with status " + status if status
                                                       else ""))

    def wait_settled(self, order_id, views, timeout=5):
        """Wait until the fake saw VIEWS buyerView calls for the order and its job is gone."""
        return wait_for(lambda: self.views(order_id) == views and self.job(order_id) is None,
                        timeout, interval=0.02,
                        what="%d fetch(es) of order %d and no job left" % (views, order_id))

    def install_job_history(self):
        """Record every last_error/state the receiver writes to reconcile_jobs.

        A trigger in the test's own database: it sees each failure as it is
        recorded, however short the backoff that follows."""
        self.db.sql("""
            CREATE TABLE test_job_history (
                id bigserial PRIMARY KEY, order_id bigint, state text, attempts integer,
                last_error text, at timestamptz DEFAULT clock_timestamp());
            CREATE FUNCTION test_job_history_fn() RETURNS trigger LANGUAGE plpgsql AS $f$
            BEGIN
                INSERT INTO test_job_history (order_id, state, attempts, last_error)
                VALUES (NEW.order_id, NEW.state, NEW.attempts, NEW.last_error);
                RETURN NEW;
            END $f$;
            CREATE TRIGGER test_job_history AFTER UPDATE OF last_error ON reconcile_jobs
                FOR EACH ROW EXECUTE FUNCTION test_job_history_fn();""")

    def job_errors(self, order_id):
        """The non-NULL last_error values written for the order's job, in order."""
        return [r["last_error"] for r in self.rows(
            "SELECT last_error FROM test_job_history WHERE order_id = %d"
            " AND last_error IS NOT NULL ORDER BY id" % order_id)]

    # --- secrets (DESIGN.md rule 7) -------------------------------------------

    def secrets(self):
        return set(ALL_SECRETS) | {self.API_SECRET}

    def secret_leaks(self):
        """Where an app secret shows: receiver logs, command output, any table row."""
        leaks = []
        texts = [("log of receiver %d" % rx.n, rx.log_text()) for rx in self.receivers]
        texts += self.outputs
        for secret in sorted(self.secrets()):
            for what, text in texts:
                if secret in text:
                    line = next(l for l in text.splitlines() if secret in l)
                    leaks.append("app secret %r in the %s: %s" % (secret, what, line[:300]))
        leaks += self.secrets_in_tables()
        return leaks

    def secrets_in_tables(self):
        tables = [r[0] for r in self.db.sql(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name)"
            " FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('pg_catalog', 'information_schema')")]
        if not tables:
            return []
        conds = []
        for s in sorted(self.secrets()):
            conds.append("row_to_json(scan_row)::text LIKE '%%%s%%'" % s)
            conds.append("row_to_json(scan_row)::text LIKE '%%%s%%'" % s.encode().hex())  # bytea
        query = " UNION ALL ".join(
            "SELECT '%s', count(*) FROM %s AS scan_row WHERE %s" % (t, t, " OR ".join(conds))
            for t in tables)
        return ["an app secret is in %d row(s) of table %s" % (int(n), t)
                for t, n in self.db.sql(query) if int(n) > 0]


# ============================================================================
# 1, 2: a push leads to the API's record; modifyTime guards the row
# ============================================================================


class TestApply(ReconcileTest):

    def test_push_applies_the_api_record_not_the_message(self):
        o = new_order_id()
        self.api.set_orders([{"id": o, "status": "waitbuyerreceive", "modifyTime": T2}])
        rx = self.new_receiver()
        t0 = time.monotonic()
        m = self.push(rx, o, status="waitsellersend")
        row = self.wait_order(o, timeout=1.0)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 1.0)

        self.assertEqual(row["status"], "waitbuyerreceive",
                         "orders.status must be the API's, not the message's")
        self.assertEqual(self.db.value(
            "SELECT current_status FROM trade_events WHERE msg_id = %d" % m), "waitsellersend",
            "the event keeps what the message said")
        self.assertEqual(row["app"], "shop")
        self.assertEqual(row["modify_time"], utc(T2))
        self.assertEqual(row["record_id"], str(o), "record's baseInfo.id is not the exact id")
        self.assertEqual(row["record_id_str"], str(o))
        self.assertEqual(self.db.value(
            "SELECT jsonb_typeof(record->'baseInfo'->'id') FROM orders WHERE order_id = %d" % o),
            "number")

        snaps = self.snapshots(o)
        self.assertEqual(snaps, [{"status": "waitbuyerreceive", "source": "buyerView",
                                  "modify_time": utc(T2)}])
        self.assertEqual(self.db.value(
            "SELECT s.record = o.record FROM order_snapshots s JOIN orders o USING (order_id)"
            " WHERE order_id = %d" % o), "t", "the snapshot is not the applied record")
        self.assertEqual(self.changes(o), [(None, "waitbuyerreceive")])
        self.assertIsNone(self.job(o), "the reconcile_jobs row must be gone once applied")
        self.assertEqual(self.views(o), 1)

        # Amounts stay exact: total_amount is the decimal text the API sent, to
        # the last digit (numeric, never a double) ...
        _, raw = self.api.trade(BUYER_VIEW, {"webSite": "1688", "orderId": str(o)})
        sent = re.search(rb'"totalAmount":([-+0-9.eE]+)[,}]', raw).group(1).decode()
        self.assertEqual(row["total_amount"], sent, "total_amount is not the API's text")
        # ... and that text is the fixture's 47.3 (this needs a fake that sends
        # 47.3 as written, not the double nearest to it printed to 17 digits).
        self.assertEqual(sent, "47.3", "the fake trade API sent totalAmount %s for the"
                         " fixture's 47.3" % sent)
        self.assertEqual(row["total_amount"], "47.3")
        self.assertIs(row["total_is_47_3"], True, "total_amount is not exactly 47.3")

    def test_older_record_does_not_regress_the_row(self):
        o = new_order_id()
        rx = self.new_receiver()

        # T2: applied.
        self.api.set_orders([{"id": o, "status": "waitbuyerreceive", "modifyTime": T2}])
        self.push(rx, o)
        self.wait_order(o, "waitbuyerreceive")
        self.wait_settled(o, 1)

        # An older version (T1, another status) fetched last: kept, not applied.
        self.api.set_orders([{"id": o, "status": "waitsellersend", "modifyTime": T1}])
        self.push(rx, o)
        self.wait_settled(o, 2)
        row = self.order(o)
        self.assertEqual((row["status"], row["modify_time"], row["record_status"]),
                         ("waitbuyerreceive", utc(T2), "waitbuyerreceive"),
                         "an older record replaced a newer one")
        self.assertIn({"status": "waitsellersend", "source": "buyerView",
                       "modify_time": utc(T1)}, self.snapshots(o),
                      "the older version is not kept as a snapshot")
        self.assertEqual(self.changes(o), [(None, "waitbuyerreceive")],
                         "a stale record must not add an order_changes row")

        # The same modifyTime with a new status: applied, one change.
        self.api.set_orders([{"id": o, "status": "confirm_goods", "modifyTime": T2}])
        self.push(rx, o)
        self.wait_order(o, "confirm_goods")
        self.wait_settled(o, 3)
        self.assertEqual(self.changes(o), [(None, "waitbuyerreceive"),
                                           ("waitbuyerreceive", "confirm_goods")])

        # A newer modifyTime with a new status: applied, one change.
        self.api.set_orders([{"id": o, "status": "success", "modifyTime": T3}])
        self.push(rx, o)
        row = self.wait_order(o, "success")
        self.wait_settled(o, 4)
        self.assertEqual(row["modify_time"], utc(T3))
        self.assertEqual(self.changes(o), [(None, "waitbuyerreceive"),
                                           ("waitbuyerreceive", "confirm_goods"),
                                           ("confirm_goods", "success")])

        # The same record once more: no change row, no second snapshot of it.
        self.push(rx, o)
        self.wait_settled(o, 5)
        self.assertEqual(len(self.changes(o)), 3)
        self.assertEqual([(s["status"], s["modify_time"]) for s in self.snapshots(o)],
                         [("waitbuyerreceive", utc(T2)), ("waitsellersend", utc(T1)),
                          ("confirm_goods", utc(T2)), ("success", utc(T3))])


    def test_message_during_a_fetch_causes_exactly_one_more_fetch(self):
        # The answer in flight may predate what the new message announces, so
        # the job must be fetched once more (its generation moved on), no more.
        o = new_order_id()
        self.api.set_orders([{"id": o, "status": "waitbuyerpay", "modifyTime": T1}])
        self.api.add_faults([{"kind": "slow", "delay_ms": 300, "order": o}])
        rx = self.new_receiver()
        self.push(rx, o, status="waitbuyerpay")
        wait_for(lambda: self.api.stats()["concurrent"] == 1, 5, interval=0.005,
                 what="the first fetch in flight")
        self.api.set_orders([{"id": o, "status": "waitsellersend", "modifyTime": T2}])
        self.push(rx, o)
        self.assertEqual(self.views(o), 1, "the first fetch was not in flight any more")
        self.wait_order(o, "waitsellersend")
        self.wait_settled(o, 2)
        time.sleep(0.3)
        self.assertEqual(self.views(o), 2)
        self.assertEqual(self.changes(o), [(None, "waitbuyerpay"),
                                           ("waitbuyerpay", "waitsellersend")])


# ============================================================================
# 3: failures are retried, then dead; bad credentials are dead at once
# ============================================================================

FAULTS = [  # kind, what last_error must say
    ("http500", "HTTP 500"),
    ("http503", "HTTP 503"),
    ("notjson", "not JSON"),
    ("code", "system busy"),
    ("wrongid", "wrong order"),
    ("hang", "timed out"),
    ("close", "no answer"),
]


class TestFailures(ReconcileTest):

    def assertReadable(self, text, what):
        self.assertTrue(readable(text), "%s is not a short readable text: %r" % (what, text))

    def test_each_failure_kind_is_retried_until_it_succeeds(self):
        orders = {kind: new_order_id() for kind, _ in FAULTS}
        self.api.set_orders([{"id": o, "status": "waitbuyerreceive", "modifyTime": T2}
                             for o in orders.values()])
        self.api.add_faults([{"kind": kind, "count": 2, "order": o}
                             for kind, o in orders.items()])
        rx = self.new_receiver(reconcile={"max_attempts": 5})
        self.install_job_history()
        for o in orders.values():
            self.push(rx, o)
        for o in orders.values():
            self.wait_order(o, timeout=15)
        views = self.views()
        for kind, expect in FAULTS:
            o = orders[kind]
            with self.subTest(kind=kind):
                self.assertEqual(self.order(o)["status"], "waitbuyerreceive")
                self.assertEqual(views.get(str(o), 0), 3,
                                 "buyerView calls for the order with two %s faults" % kind)
                errors = self.job_errors(o)
                self.assertEqual(len(errors), 2, "last_error values recorded: %r" % errors)
                for e in errors:
                    self.assertReadable(e, "last_error")
                    self.assertIn(expect, e)
                self.assertIsNone(self.job(o))
                self.assertEqual(self.changes(o), [(None, "waitbuyerreceive")])

    def test_permanent_fault_makes_the_job_dead_after_max_attempts(self):
        o = new_order_id()
        self.api.set_orders([{"id": o, "status": "waitbuyerreceive", "modifyTime": T2}])
        self.api.add_faults([{"kind": "http503", "count": -1, "order": o}])
        rx = self.new_receiver(reconcile={"max_attempts": 3})
        self.push(rx, o)
        job = wait_for(lambda: (lambda j: j if j and j["state"] == "dead" else None)(
            self.job(o)), 10, interval=0.05, what="the job to be dead")
        self.assertEqual(job["attempts"], 3)
        self.assertReadable(job["last_error"], "last_error")
        self.assertIn("HTTP 503", job["last_error"])
        time.sleep(0.8)  # a dead job is not claimed again
        self.assertEqual(self.views(o), 3)
        self.assertIsNone(self.order(o))
        self.assertTrue(any(e.get("event") == "job_dead" and str(o) in e.get("msg", "")
                            for e in rx.log_events()), "no job_dead log line for the order")

        # A new message about a dead order brings it back.
        self.api.reset()
        self.api.set_orders([{"id": o, "status": "waitbuyerreceive", "modifyTime": T2}])
        self.push(rx, o)
        self.wait_order(o, "waitbuyerreceive")
        self.assertEqual(self.views(o), 1)

    def test_shutdown_does_not_count_an_abandoned_fetch_as_failed(self):
        # A fetch still waiting when the daemon stops is no failure: the job
        # stays pending (its lease brings it back), even on its last attempt.
        o = new_order_id()
        self.api.set_orders([{"id": o, "status": "waitbuyerreceive", "modifyTime": T2}])
        self.api.add_faults([{"kind": "hang", "count": 1, "order": o}])
        rx = self.new_receiver(reconcile={"max_attempts": 1},
                               upstream={"timeout_ms": 20000})
        self.push(rx, o)
        wait_for(lambda: self.api.stats().get("concurrent", 0) >= 1, 10, interval=0.05,
                 what="the fetch to hang")
        rx.stop()
        job = self.job(o)
        self.assertEqual(job["state"], "pending", job)
        self.assertIsNone(job["last_error"], job)
        self.assertFalse(any(e.get("event") in ("fetch_failed", "job_dead")
                             for e in rx.log_events()), rx.log_tail())

    def assertCredentialsDead(self, rx, o):
        job = wait_for(lambda: (lambda j: j if j and j["state"] == "dead" else None)(
            self.job(o)), 10, interval=0.05, what="the job to be dead")
        time.sleep(0.5)
        self.assertEqual(self.views(o), 1, "bad credentials must not be retried")
        job = self.job(o)
        self.assertEqual((job["state"], job["attempts"]), ("dead", 1))
        self.assertReadable(job["last_error"], "last_error")
        self.assertIn("credentials", job["last_error"].lower())
        lines = [e for e in rx.log_events()
                 if str(o) in e.get("msg", "") and "credentials" in e.get("msg", "").lower()]
        self.assertTrue(lines, "the log does not say the credentials are bad:\n"
                        + rx.log_tail())
        self.assertIn(lines[0]["level"], ("error", "fatal", "crit", "critical"))

    def test_creds_fault_makes_the_job_dead_at_once(self):
        o = new_order_id()
        self.api.set_orders([{"id": o, "status": "waitbuyerreceive"}])
        self.api.add_faults([{"kind": "creds", "count": -1, "order": o}])
        rx = self.new_receiver(reconcile={"max_attempts": 5})
        self.push(rx, o)
        self.assertCredentialsDead(rx, o)

    def test_wrong_app_secret_makes_the_job_dead_at_once(self):
        api = FakeApi(app_key="shop-key", app_secret="the-fakes-other-secret").start()
        try:
            o = new_order_id()
            api.set_orders([{"id": o, "status": "waitbuyerreceive"}])
            rx = self.new_receiver(reconcile={"max_attempts": 5}, api=api)
            self.push(rx, o)
            saved, self.api = self.api, api
            try:
                self.assertCredentialsDead(rx, o)
                self.assertEqual(api.stats()["rejected_credentials"], 1)
            finally:
                self.api = saved
        except BaseException:
            api.kill()
            raise
        api.stop()


# ============================================================================
# 4: two daemons on one database
# ============================================================================


class TestTwoDaemons(ReconcileTest):

    def test_two_daemons_share_the_jobs_and_never_fetch_one_twice(self):
        ids = [new_order_id() for _ in range(40)]
        api_status = {o: ("waitbuyerreceive", "success", "waitsellersend", "cancel")[i % 4]
                      for i, o in enumerate(ids)}
        self.api.set_orders([{"id": o, "status": s, "modifyTime": T2}
                             for o, s in api_status.items()])
        self.api.add_faults([{"kind": "slow", "delay_ms": 150, "count": -1}])
        up = {"max_concurrency": 4}
        a = self.new_receiver(upstream=up)
        b = self.new_receiver(upstream=up)
        singles, batched = ids[:16], ids[16:]
        for i, o in enumerate(singles):
            self.push((a, b)[i % 2], o)
        for i in range(0, len(batched), 4):
            self.push_batch((a, b)[(i // 4) % 2], batched[i:i + 4])

        wait_for(lambda: len(self.statuses(ids)) == len(ids), 30, interval=0.1,
                 what="all 40 orders in orders")
        wait_for(lambda: self.db.value("SELECT count(*) FROM reconcile_jobs") == "0", 5,
                 what="no reconcile_jobs left")
        self.assertEqual(self.statuses(ids), {str(o): s for o, s in api_status.items()})
        stats = self.api.stats()
        self.assertEqual({o: stats["buyerView"].get(str(o), 0) for o in ids},
                         {o: 1 for o in ids}, "an order was fetched more than once")
        self.assertGreater(stats["max_concurrent"], 1, "the fetches never overlapped")
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM order_changes WHERE order_id = ANY(%s)" % sql_list(ids)),
            "40")

        def applied_by(rx):
            return {e["msg"].split()[1].rstrip(":") for e in rx.log_events()
                    if e.get("event") == "order_status_changed"}
        by_a, by_b = applied_by(a), applied_by(b)
        self.assertEqual(by_a | by_b, {str(o) for o in ids})
        self.assertEqual(by_a & by_b, set(), "both daemons applied the same order")
        if not by_a or not by_b:
            print("\n  note: one daemon did all %d fetches (a: %d, b: %d)"
                  % (len(ids), len(by_a), len(by_b)), flush=True)


# ============================================================================
# 5: NOTIFY order_status_changed
# ============================================================================


class TestNotify(ReconcileTest):

    def test_listen_client_receives_status_changes(self):
        o = new_order_id()
        rx = self.new_receiver()
        listener = Listener(self.db, "order_status_changed")
        try:
            self.api.set_orders([{"id": o, "status": "waitbuyerreceive", "modifyTime": T2}])
            self.push(rx, o)
            self.wait_order(o)
            got = listener.notifications("order_status_changed")
            self.assertEqual(got, [{"order_id": str(o), "old_status": None,
                                    "new_status": "waitbuyerreceive"}])
            self.assertIsInstance(got[0]["order_id"], str)

            self.api.set_orders([{"id": o, "status": "success", "modifyTime": T3}])
            self.push(rx, o)
            self.wait_order(o, "success")
            self.assertEqual(listener.notifications("order_status_changed"),
                             [{"order_id": str(o), "old_status": "waitbuyerreceive",
                               "new_status": "success"}])

            self.push(rx, o)  # fetched again, unchanged: no notification
            self.wait_settled(o, 3)
            self.assertEqual(listener.notifications("order_status_changed"), [])
        finally:
            listener.close()


# ============================================================================
# 6: sweeps
# ============================================================================


class TestSweep(ReconcileTest):

    def test_background_sweep_applies_an_order_no_message_named(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        o, old = new_order_id(), new_order_id()
        self.api.set_orders([
            {"id": o, "status": "waitbuyerreceive", "modifyTime": iso(now),
             "createTime": iso(now - datetime.timedelta(minutes=10))},
            {"id": old, "status": "success", "modifyTime": iso(now),
             "createTime": iso(now - datetime.timedelta(days=2))},  # outside the window
        ])
        self.new_receiver(reconcile={"sweep_interval_s": 1, "sweep_window_s": 3600})
        self.wait_order(o, "waitbuyerreceive", timeout=15)
        state = wait_for(lambda: (lambda r: r[0] if r and r[0]["last_orders"] is not None
                                  else None)(self.rows(
                                      "SELECT last_orders, last_error,"
                                      " last_finished_at IS NOT NULL AS finished"
                                      " FROM sweep_state WHERE app = 'shop'")),
                         5, what="sweep_state.last_orders for app shop")
        self.assertEqual(state["last_orders"], 1)
        self.assertIsNone(state["last_error"])
        self.assertIs(state["finished"], True)
        dj = wait_for(lambda: (lambda r: r[0] if r and r[0]["last_error"] else None)(self.rows(
            "SELECT last_orders, last_error FROM sweep_state WHERE app = 'dj'")), 5,
            what="the dj app's sweep (the fake refuses its credentials)")
        self.assertTrue(readable(dj["last_error"]), dj)
        self.assertIn("credentials", dj["last_error"])
        self.assertIsNone(self.order(old), "an order created outside the window was applied")
        self.assertEqual([s["source"] for s in self.snapshots(o)], ["list"])
        self.assertEqual(self.changes(o), [(None, "waitbuyerreceive")])
        stats = self.api.stats()
        self.assertEqual(stats["buyerView"], {}, "a sweep needs no buyerView call")
        self.assertGreaterEqual(stats["list"], 1)

    def test_sweep_command_pages_through_a_window(self):
        # 2025-09-10 10:00 .. 11:00 Shanghai time is 02:00 .. 03:00 UTC.
        start = datetime.datetime(2025, 9, 10, 2, 0, tzinfo=datetime.timezone.utc)
        inside = [new_order_id() for _ in range(53)]
        before, after = new_order_id(), new_order_id()
        orders = [{"id": o, "status": ("waitbuyerreceive", "success")[i % 2],
                   "modifyTime": T3, "createTime": iso(start + datetime.timedelta(seconds=60 * i))}
                  for i, o in enumerate(inside)]
        orders += [{"id": before, "status": "success", "modifyTime": T3,
                    "createTime": iso(start - datetime.timedelta(seconds=1))},
                   {"id": after, "status": "success", "modifyTime": T3,
                    "createTime": iso(start + datetime.timedelta(hours=1, seconds=1))}]
        self.api.set_orders(orders)
        rx = self.new_receiver(start=False)
        r = self.command(rx, "sweep", "--since", "2025-09-10T10:00", "--until",
                         "2025-09-10T11:00:00")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("53 orders seen in 2 page(s)", r.stdout)
        self.assertEqual(self.statuses(inside),
                         {str(o["id"]): o["status"] for o in orders[:53]})
        self.assertEqual(self.statuses([before, after]), {},
                         "orders created outside the window were applied")
        self.assertEqual(self.api.stats()["list"], 2, "expected two pages of 50")
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM order_changes WHERE source = 'list' AND order_id = ANY(%s)"
            % sql_list(inside)), "53")

        # Again from midnight (a bare date): the order created at 09:59:59 comes
        # in too; the others are unchanged and nothing new is recorded for them.
        r = self.command(rx, "sweep", "--since", "2025-09-10", "--until", "2025-09-10 11:00")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("54 orders seen in 2 page(s)", r.stdout)
        self.assertEqual(self.statuses([before, after]), {str(before): "success"})
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM order_changes WHERE order_id = ANY(%s)" % sql_list(inside)),
            "53")
        self.assertEqual(self.api.stats()["list"], 4)

        self.api.add_faults([{"kind": "http503", "endpoint": "list"}])
        r = self.command(rx, "sweep", "--since", "2025-09-10T10:00", "--until",
                         "2025-09-10T11:00")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("HTTP 503", r.stderr)

        r = self.command(rx, "sweep", "--since", "2025-13-01")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--since", r.stderr)


# ============================================================================
# 7: the reconcile and jobs commands
# ============================================================================


class TestCommands(ReconcileTest):

    def test_reconcile_command(self):
        a, b, unknown = new_order_id(), new_order_id(), new_order_id()
        self.api.set_orders([{"id": a, "status": "waitbuyerreceive", "modifyTime": T2},
                             {"id": b, "status": "success", "modifyTime": T3}])
        rx = self.new_receiver(start=False)
        r = self.command(rx, "reconcile", a)
        self.assertEqual((r.returncode, r.stdout), (0, "%d: waitbuyerreceive (applied)\n" % a),
                         r.stderr)
        self.assertEqual(self.order(a)["status"], "waitbuyerreceive")
        self.assertEqual([s["source"] for s in self.snapshots(a)], ["command"])
        self.assertEqual(self.changes(a), [(None, "waitbuyerreceive")])

        r = self.command(rx, "reconcile", a, b)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.splitlines()),
                         sorted(["%d: waitbuyerreceive (unchanged)" % a,
                                 "%d: success (applied)" % b]))

        r = self.command(rx, "reconcile", unknown)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertIn("order not found", r.stderr)
        self.assertIn(str(unknown), r.stderr, "the error does not name the order")
        self.assertIsNone(self.order(unknown))
        self.assertEqual(self.views(), {str(a): 2, str(b): 1, str(unknown): 1})

        r = self.command(rx, "reconcile", "12x")
        self.assertEqual(r.returncode, 2)

    def test_jobs_command_and_retry_dead(self):
        d = new_order_id()
        self.api.set_orders([{"id": d, "status": "waitbuyerreceive", "modifyTime": T2}])
        self.api.add_faults([{"kind": "http503", "count": 2, "order": d}])
        rx = self.new_receiver(reconcile={"max_attempts": 2})
        self.push(rx, d)
        wait_for(lambda: (self.job(d) or {}).get("state") == "dead", 10, interval=0.05,
                 what="the job to be dead")
        self.assertEqual(self.views(d), 2)

        r = self.command(rx, "jobs")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("jobs by state", r.stdout)
        counts = [l.split("|") for l in r.stdout.splitlines() if l.startswith("dead")]
        self.assertEqual(len(counts), 1, r.stdout)
        self.assertEqual(counts[0][1].strip(), "1", r.stdout)
        self.assertIn(str(d), r.stdout)
        self.assertIn("HTTP 503", r.stdout)

        r = self.command(rx, "jobs", "--retry-dead")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 dead job(s) put back to pending", r.stdout)
        self.wait_order(d, "waitbuyerreceive")
        self.wait_settled(d, 3)

        r = self.command(rx, "jobs")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse([l for l in r.stdout.splitlines()
                          if l.startswith("dead") or l.startswith("pending")], r.stdout)


# ============================================================================
# 8: secrets (tearDown checks every test; this one goes through the error paths)
# ============================================================================


class TestSecrets(ReconcileTest):

    def test_secret_in_no_log_line_and_no_table(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        ok, fails, creds = new_order_id(), new_order_id(), new_order_id()
        self.api.set_orders([{"id": o, "status": "waitbuyerreceive", "modifyTime": T2,
                              "createTime": iso(now - datetime.timedelta(minutes=5))}
                             for o in (ok, fails, creds)])
        self.api.add_faults([{"kind": "http500", "count": 1, "order": fails},
                             {"kind": "creds", "count": 1, "order": creds}])
        rx = self.new_receiver(reconcile={"sweep_interval_s": 1, "sweep_window_s": 3600})
        for o in (ok, fails, creds):
            self.push(rx, o)
        self.wait_order(ok)
        self.wait_order(fails)
        wait_for(lambda: (self.job(creds) or {}).get("state") == "dead", 10,
                 what="the creds job to be dead")
        # The dj app's sweep is refused by the fake (other credentials): an error path too.
        wait_for(lambda: self.db.value(
            "SELECT count(*) FROM sweep_state WHERE last_finished_at IS NOT NULL") == "2",
            15, interval=0.1, what="a sweep of both apps")
        self.command(rx, "reconcile", ok, new_order_id())
        self.command(rx, "jobs")
        rx.stop()
        self.assertEqual(self.secret_leaks(), [])
        # The check itself finds a secret where there is one.
        self.db.sql("CREATE TABLE test_canary (t text); INSERT INTO test_canary"
                    " VALUES ('x %s y')" % SHOP["secret"])
        self.assertEqual(len(self.secrets_in_tables()), 1)
        self.db.sql("DROP TABLE test_canary")


# ============================================================================
# 9: HTTPS
# ============================================================================


class TestHttps(ReconcileTest):

    TLS = True

    def test_push_completes_over_https(self):
        self.assertTrue(self.api.base_url.startswith("https://"))
        o = new_order_id()
        self.api.set_orders([{"id": o, "status": "waitbuyerreceive", "modifyTime": T2}])
        rx = self.new_receiver()
        self.push(rx, o)
        row = self.wait_order(o, "waitbuyerreceive")
        self.assertEqual(row["record_id"], str(o))
        self.assertEqual(self.views(o), 1)

    def test_https_to_an_ip_address_checks_the_ip_in_the_certificate(self):
        o = new_order_id()
        self.api.set_orders([{"id": o, "status": "success", "modifyTime": T2}])
        rx = self.new_receiver(upstream={"base_url": "https://127.0.0.1:%d" % self.api.port})
        self.push(rx, o)
        self.wait_order(o, "success")

    def test_without_ca_file_the_job_fails_with_a_certificate_error(self):
        o = new_order_id()
        self.api.set_orders([{"id": o, "status": "waitbuyerreceive", "modifyTime": T2}])
        rx = self.new_receiver(upstream={"ca_file": ""}, reconcile={"max_attempts": 2})
        self.push(rx, o)
        job = wait_for(lambda: (lambda j: j if j and j["state"] == "dead" else None)(
            self.job(o)), 10, interval=0.05, what="the job to be dead")
        self.assertTrue(readable(job["last_error"]), job["last_error"])
        self.assertIn("TLS", job["last_error"])
        self.assertIn("certificate", job["last_error"])
        self.assertTrue(rx.running, "the receiver died")
        self.assertIsNone(self.order(o))
        self.assertEqual(self.views(o), 0, "a request went out over an unverified connection")


# ============================================================================
# 10: concurrency cap and rate limit
# ============================================================================


class TestLimits(ReconcileTest):

    def test_max_concurrency_is_never_exceeded(self):
        ids = [new_order_id() for _ in range(8)]
        self.api.set_orders([{"id": o, "status": "success", "modifyTime": T2} for o in ids])
        self.api.add_faults([{"kind": "slow", "delay_ms": 200, "count": -1}])
        rx = self.new_receiver(upstream={"max_concurrency": 2})
        self.push_batch(rx, ids)
        wait_for(lambda: len(self.statuses(ids)) == 8, 15, interval=0.05,
                 what="all 8 orders in orders")
        stats = self.api.stats()
        self.assertEqual(stats["calls"], 8)
        self.assertLessEqual(stats["max_concurrent"], 2)
        self.assertEqual(stats["max_concurrent"], 2, "the two slots were never both used")

    def test_max_rps_is_never_exceeded(self):
        ids = [new_order_id() for _ in range(10)]
        self.api.set_orders([{"id": o, "status": "success", "modifyTime": T2} for o in ids])
        rx = self.new_receiver(upstream={"max_rps": 5, "max_concurrency": 10})
        self.push_batch(rx, ids)
        wait_for(lambda: len(self.statuses(ids)) == 10, 15, interval=0.05,
                 what="all 10 orders in orders")
        times = self.api.stats()["call_times_ms"]
        self.assertEqual(len(times), 10)
        # The receiver starts calls at least 200 ms apart, so six calls span at
        # least 1000 ms on its clock.  The fake stamps a call when it has read
        # it (whole milliseconds, after connect and parse), which can move one
        # stamp a few ms against its neighbours: 20 ms of slack for that.
        windows = [(times[i], times[i + 5] - times[i]) for i in range(len(times) - 5)]
        crowded = [w for w in windows if w[1] < 1000 - 20]
        self.assertEqual(crowded, [], "six calls within one second (start, span ms); "
                         "call times %r" % times)
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertGreaterEqual(min(gaps), 200 - 20, "calls closer than 1/max_rps: %r" % gaps)


    def test_job_waiting_for_the_rate_limit_is_not_claimed_twice(self):
        # 28 slots, 2 calls a second: the first claim takes 28 jobs; when the
        # first call returns, the 29th job is claimed for one free slot, but
        # its call waits behind the 27 already queued for the rate limit
        # (about 14 s).  Its lease must outlast that wait, or the job is
        # claimed again while it waits, and fetched twice.
        ids = [new_order_id() for _ in range(29)]
        self.api.set_orders([{"id": o, "status": "success", "modifyTime": T2} for o in ids])
        rx = self.new_receiver(upstream={"max_rps": 2, "max_concurrency": 28})
        self.push_batch(rx, ids)
        wait_for(lambda: len(self.statuses(ids)) == 29, 30, interval=0.2,
                 what="all 29 orders in orders")
        wait_for(lambda: self.db.value("SELECT count(*) FROM reconcile_jobs") == "0", 5,
                 what="no reconcile_jobs left")
        time.sleep(1.5)  # a second claim of a job would be fetched by now
        views = self.views()
        self.assertEqual({o: n for o, n in views.items() if n != 1}, {},
                         "orders named once but fetched more than once")
        self.assertEqual(self.api.stats()["calls"], 29)


# ============================================================================
# 11: a burst
# ============================================================================


class TestBurst(ReconcileTest):

    def test_burst_of_pushes_fetches_each_order_once(self):
        n_single, n_double = 80, 20
        ids = [new_order_id() for _ in range(n_single + n_double)]
        singles, doubles = ids[:n_single], ids[n_single:]
        choices = ("waitbuyerreceive", "success", "waitsellersend", "cancel", "confirm_goods")
        api_status = {o: choices[i % len(choices)] for i, o in enumerate(ids)}
        self.api.set_orders([{"id": o, "status": s, "modifyTime": T2}
                             for o, s in api_status.items()])
        # Two workers: pushes land on either; only worker 0 reconciles, woken
        # by the NOTIFY of the other's commits too.
        rx = self.new_receiver(server={"workers": 2})

        tasks = queue.Queue()
        for i, o in enumerate(singles):
            tasks.put(o)
            if i < n_double:  # each double's two messages go out back to back
                tasks.put(doubles[i])
                tasks.put(doubles[i])
        failures = []

        def worker():
            while True:
                try:
                    o = tasks.get_nowait()
                except queue.Empty:
                    return
                try:
                    self.push(rx, o)
                except BaseException as e:  # noqa: B036 - reported below
                    failures.append(repr(e))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(failures, [])

        wait_for(lambda: len(self.statuses(ids)) == len(ids), 30, interval=0.1,
                 what="all %d orders in orders" % len(ids))
        wait_for(lambda: self.db.value("SELECT count(*) FROM reconcile_jobs") == "0", 10,
                 interval=0.05, what="no reconcile_jobs left")
        self.assertEqual(self.statuses(ids), {str(o): s for o, s in api_status.items()})
        per_order = dict(self.db.sql(
            "SELECT order_id::text, count(*) FROM order_changes"
            " WHERE order_id = ANY(%s) GROUP BY order_id" % sql_list(ids)))
        self.assertEqual(per_order, {str(o): "1" for o in ids},
                         "expected exactly one order_changes row per order")
        views = self.views()
        self.assertEqual(set(views), {str(o) for o in ids}, "fetched an order nobody named")
        self.assertEqual({o: views[str(o)] for o in singles}, {o: 1 for o in singles},
                         "an order named once was fetched more than once")
        too_many = {o: views[str(o)] for o in doubles if views[str(o)] not in (1, 2)}
        self.assertEqual(too_many, {}, "an order named twice was fetched more than twice")


if __name__ == "__main__":
    unittest.main()
