"""test_valgrind.py - the daemon under valgrind's memcheck: a few hundred
pushes (accepted, duplicate, rejected), a client that hangs up while its push
waits, then SIGTERM.  Memcheck must report no error and no leak; its exit
status says so (--error-exitcode), and the summary lines are checked too.

Always runs the normal build, build/receiver, even in the sanitizer pass of
`make test` (valgrind and ASan do not mix).  valgrind must be installed
(deploy/setup-debian.sh does it): a skipped test counts as failed."""

import os
import re
import shutil
import socket
import threading
import unittest

from harness import (PG, SHOP, LockSession, Receiver, envelope, new_msg_id, new_order_id,
                     raw_request, request, signed_form, wait_for)

VALGRIND = ("valgrind", "--tool=memcheck", "--leak-check=full",
            "--show-leak-kinds=definite,indirect,possible",
            "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99",
            "--num-callers=30")


@unittest.skipIf(shutil.which("valgrind") is None, "valgrind is not installed")
class ValgrindTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database(cls.__name__)

    def setUp(self):
        self.saved_bin = os.environ.get("RECEIVER_BIN")
        os.environ["RECEIVER_BIN"] = "build/receiver"

    def tearDown(self):
        if self.saved_bin is None:
            os.environ.pop("RECEIVER_BIN", None)
        else:
            os.environ["RECEIVER_BIN"] = self.saved_bin

    def test_serving_and_shutdown_are_memcheck_clean(self):
        rx = Receiver(self.db, start=False)
        rx.wrapper = VALGRIND
        rx.start(timeout=60)
        try:
            self.exercise(rx)
        finally:
            rx.terminate()
            rc = rx.wait(timeout=120)
        log = rx.log_text()
        summary = "\n".join(l for l in log.splitlines() if l.startswith("=="))[-3000:]
        self.assertEqual(rc, 0, "memcheck found errors or leaks (exit %s):\n%s" % (rc, summary))
        self.assertRegex(log, r"ERROR SUMMARY: 0 errors from 0 contexts", summary)
        self.assertTrue(re.search(r"All heap blocks were freed|definitely lost: 0 bytes", log),
                        summary)

    def exercise(self, rx):
        results = []
        lock = threading.Lock()

        def client(n):
            conn = rx.connection(timeout=60)
            for _ in range(n):
                m = new_msg_id()
                status, _, _ = request(
                    conn, SHOP["path"], signed_form(envelope(m, order_id=new_order_id())))
                with lock:
                    results.append(status)
            conn.close()

        threads = [threading.Thread(target=client, args=(30,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(results, [200] * 240)
        msg = envelope(new_msg_id(), order_id=new_order_id())
        self.assertEqual(rx.push(msg, timeout=60)[0], 200)
        self.assertEqual(rx.push(msg, timeout=60)[0], 200)  # duplicate
        self.assertEqual(rx.push(envelope(new_msg_id()), secret="wrong", timeout=60)[0], 401)
        self.assertEqual(rx.post(SHOP["path"], b"message=%ZZ", timeout=60)[0], 400)
        self.assertEqual(rx.get("/metrics", timeout=60)[0], 200)
        # A client that hangs up while its push waits for the commit.
        m = new_msg_id()
        with LockSession(self.db) as session:
            s = socket.create_connection(("127.0.0.1", rx.port), timeout=30)
            s.sendall(raw_request(rx.port, SHOP["path"],
                                  signed_form(envelope(m, order_id=new_order_id()))))
            wait_for(lambda: self.db.waiting_ingests() >= 1, 30, what="the blocked batch")
            s.close()
            session.release()
        wait_for(lambda: self.db.value("SELECT 1 FROM trade_events WHERE msg_id = %d" % m),
                 30, what="the hung-up push's row")
