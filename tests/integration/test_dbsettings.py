"""test_dbsettings.py - database settings that would break the receiver's
promises, and what it does about them (receiver/db.c, receiver/migrate.c).

Every connection pins synchronous_commit=on ("200 means durable") and
client_encoding=UTF8 in its startup packet, which wins over ALTER DATABASE
and ALTER ROLE ... SET: the tests set the database's defaults to off and
LATIN1 and read the session's settings back from the daemon's own log line,
as the server reported them.  A database not in UTF8 (where jsonb refuses
a \\u escape beyond ASCII, failing a whole batch) is refused by `receiver
migrate` and by the daemon (/readyz 503, pushes 503).  A session whose pins
did not hold (something between the receiver and PostgreSQL dropping
startup parameters, as a pooler may) is refused as well: a small proxy here
drops them.  Run with tests/integration/run.py.
"""

import glob
import os
import re
import socket
import struct
import threading
import time
import unittest

from harness import (PG, REPO, Receiver, envelope, free_port, new_msg_id, new_order_id,
                     run_receiver, stop_receivers, wait_for)

MEMO = "\u4e2d\u6587 ok"  # what the push below stores, as text
NOT_UTF8 = "ENCODING '%s' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"


def non_ascii_message(msg_id, order_id):
    """An envelope whose buyerMemo is MEMO: its first character as a JSON
    \\u escape (jsonb makes it a character), the second as raw UTF-8."""
    text = envelope(msg_id, data={"orderId": order_id, "buyerMemo": "@@" + MEMO[1:]})
    return text.replace("@@", "\\u4e2d")


def connected_lines(rx, name="ingest"):
    """The settings each db_connected line of connection NAME reports."""
    out = []
    for e in rx.log_events():
        if e.get("event") == "db_connected" and e.get("msg", "").startswith(name + ":"):
            m = re.search(r"synchronous_commit (\S+), client_encoding (\S+)$", e["msg"])
            out.append(m.groups() if m else e["msg"])
    return out


def load_schema_by_hand(db):
    """The schema of sql/*.sql and its schema_migrations rows, without
    `receiver migrate` (which refuses a database not in UTF8)."""
    db.sql("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
           " applied_at timestamptz NOT NULL DEFAULT now())")
    for path in sorted(glob.glob(os.path.join(REPO, "sql", "*.sql"))):
        name = os.path.basename(path)[:-4]
        with open(path, encoding="utf-8") as f:
            db.sql(f.read())
        db.sql("INSERT INTO schema_migrations (version, name) VALUES (%d, '%s')"
               % (int(name.split("_")[0]), name))


class StartupParameterDropper:
    """A TCP proxy to the cluster that removes the startup parameters named
    in DROP from every connection's startup packet, as a connection pooler
    may, and then relays bytes both ways.  An SSL or GSS encryption request
    is answered 'N' (no), as a server without them would."""

    ENCRYPTION_REQUESTS = (80877103, 80877104)

    def __init__(self, drop):
        self.drop = set(drop)
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.socks = [self.sock]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def url(self, db):
        return "postgresql://receiver@127.0.0.1:%d/%s" % (self.port, db.name)

    def close(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.socks.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _read(sock, n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    def _serve(self, client):
        try:
            while True:
                head = self._read(client, 8)
                length, code = struct.unpack("!ii", head)
                rest = self._read(client, length - 8)
                if code not in self.ENCRYPTION_REQUESTS:
                    break
                client.sendall(b"N")
            fields = rest.split(b"\0")
            pairs = [(fields[i], fields[i + 1]) for i in range(0, len(fields) - 2, 2)]
            body = b"".join(k + b"\0" + v + b"\0" for k, v in pairs
                            if k.decode() not in self.drop) + b"\0"
            server = socket.create_connection(("127.0.0.1", PG.port))
            self.socks.append(server)
            server.sendall(struct.pack("!ii", 8 + len(body), code) + body)
        except OSError:
            client.close()
            return
        threading.Thread(target=self._pipe, args=(server, client), daemon=True).start()
        self._pipe(client, server)

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class SettingsTest(unittest.TestCase):

    def setUp(self):
        self.receivers = []

    def tearDown(self):
        errors = stop_receivers(self.receivers)
        if errors:
            self.fail("\n".join(errors))

    def new_receiver(self, db, **kw):
        rx = Receiver(db, **kw)
        self.receivers.append(rx)
        return rx

    def assertRefused(self, rx, reason):
        """Not ready for REASON, logged, retried with backoff; pushes 503."""
        wait_for(lambda: re.search(r'"event":"(db_settings_refused|db_connected)"',
                                   rx.log_text()), 10, what="the first connection's outcome")
        status, _, body = rx.get("/readyz")
        self.assertEqual((status, body), (503, reason.encode() + b"\n"))
        status, headers, _ = rx.push(envelope(new_msg_id(), order_id=new_order_id()))
        self.assertEqual(status, 503, "a push was accepted")
        self.assertIsNotNone(headers.get("Retry-After"))
        # Retried, with backoff: after 0.1, 0.2, 0.4, 0.8 s (jittered), a
        # handful of attempts in the next second or so, not a loop; one
        # refusal logged per attempt.
        time.sleep(1.2)
        events = rx.log_events()
        refusals = [e["msg"] for e in events if e.get("event") == "db_settings_refused"]
        downs = [e["msg"] for e in events if e.get("event") == "db_down"]
        self.assertTrue(all(reason in m for m in refusals + downs), refusals + downs)
        self.assertTrue(2 <= len(refusals) <= 8, "refused %d times" % len(refusals))
        self.assertEqual(len(refusals), len(downs), "one refusal logged per attempt")


class TestPinnedSettings(SettingsTest):
    """A database whose defaults are synchronous_commit = off and
    client_encoding = LATIN1: the receiver's sessions are on and UTF8."""

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database(cls.__name__)
        cls.db.sql('ALTER DATABASE "%s" SET synchronous_commit = off' % cls.db.name)
        cls.db.sql("ALTER DATABASE \"%s\" SET client_encoding = 'LATIN1'" % cls.db.name)

    def test_session_reports_synchronous_commit_on_and_client_encoding_utf8(self):
        # The trap is armed: a session that pins nothing gets the defaults.
        self.assertEqual(self.db.value("SHOW synchronous_commit"), "off")
        rx = self.new_receiver(self.db)
        self.assertEqual(connected_lines(rx), [("on", "UTF8")])

    def test_push_with_non_ascii_text_is_stored_exactly(self):
        rx = self.new_receiver(self.db)
        m = new_msg_id()
        status, _, body = rx.push(non_ascii_message(m, new_order_id()))
        self.assertEqual((status, body), (200, b"success"))
        self.assertEqual(self.db.value(
            "SELECT encode(convert_to(payload->'data'->>'buyerMemo', 'UTF8'), 'hex')"
            " FROM trade_events WHERE msg_id = %d" % m), MEMO.encode().hex())

    def test_jobs_prints_non_ascii_errors(self):
        rx = self.new_receiver(self.db, start=False)
        o = new_order_id()
        self.db.sql("INSERT INTO reconcile_jobs (order_id, app, last_error)"
                    " VALUES (%d, 'shop', U&'\\4E2D\\6587 error')" % o)
        r = run_receiver(["jobs", "-c", rx.config])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("%d" % o, r.stdout)
        self.assertIn("\u4e2d\u6587 error", r.stdout)


class TestUrlOptionsKept(SettingsTest):
    """The pins are added to the URL's own startup options, not in their
    place: a schema chosen with options=-c search_path=... still works."""

    def test_migrate_and_serve_in_the_schema_the_url_names(self):
        db = PG.create_database("url_options")
        db.sql("CREATE SCHEMA rx")
        url = db.url + "?options=-c%20search_path%3Drx"
        rx = self.new_receiver(db, extra={"database": {"url": url}})
        m = new_msg_id()
        status, _, _ = rx.push(envelope(m, order_id=new_order_id()))
        self.assertEqual(status, 200)
        self.assertEqual(db.value("SELECT count(*) FROM rx.trade_events WHERE msg_id = %d" % m),
                         "1")
        self.assertEqual(connected_lines(rx), [("on", "UTF8")])


class TestEncodingRefused(SettingsTest):
    """A database not in UTF8."""

    def test_migrate_refuses_sql_ascii_and_latin1(self):
        for encoding in ("SQL_ASCII", "LATIN1"):
            db = PG.create_database("migrate_" + encoding, NOT_UTF8 % encoding)
            rx = self.new_receiver(db, migrate=False, start=False)
            rx.write_config(free_port())
            r = run_receiver(["migrate", "-c", rx.config])
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            lines = r.stderr.splitlines()
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertIn("database encoding is %s, not UTF8" % encoding, lines[0])
            self.assertEqual(r.stdout, "")
            self.assertIsNone(db.value("SELECT to_regclass('schema_migrations')"),
                              "migrate wrote into a database it refused")

    def test_daemon_refuses_a_sql_ascii_database_with_a_current_schema(self):
        db = PG.create_database("serve_sql_ascii", NOT_UTF8 % "SQL_ASCII")
        load_schema_by_hand(db)
        rx = self.new_receiver(db, migrate=False, start=False)
        rx.start(ready=False)
        self.assertRefused(rx, "database encoding is SQL_ASCII, not UTF8")
        self.assertEqual(db.value("SELECT count(*) FROM deliveries"), "0")


class TestPinsDropped(SettingsTest):
    """Something between the receiver and PostgreSQL drops the pins: the
    session has the database's defaults, and the receiver will not serve."""

    def setUp(self):
        super().setUp()
        self.proxies = []

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            for p in self.proxies:
                p.close()

    def proxied_receiver(self, setting, value, drop):
        db = PG.create_database("dropped_" + drop)
        self.new_receiver(db, start=False)  # migrated directly
        db.sql("ALTER DATABASE \"%s\" SET %s = '%s'" % (db.name, setting, value))
        proxy = StartupParameterDropper([drop])
        self.proxies.append(proxy)
        rx = self.new_receiver(db, migrate=False, start=False,
                               extra={"database": {"url": proxy.url(db)}})
        rx.start(ready=False)
        return rx

    def test_synchronous_commit_off_is_refused(self):
        rx = self.proxied_receiver("synchronous_commit", "off", "options")
        self.assertRefused(rx, "database session has synchronous_commit off")

    def test_client_encoding_latin1_is_refused(self):
        rx = self.proxied_receiver("client_encoding", "LATIN1", "client_encoding")
        self.assertRefused(rx, "database session's client_encoding is LATIN1, not UTF8")

