"""test_clock.py - a wall clock stepped back changes no interval.

Every interval, deadline and rate in the daemon runs on the monotonic
clock; the wall clock only stamps what is stored or logged.  These tests
step a running receiver's wall clock back an hour (build/clockshift.so, an
LD_PRELOAD shim: CLOCK_REALTIME, gettimeofday and time move, CLOCK_MONOTONIC
does not, as when an operator or NTP steps the system clock) and check the
two rates that were once measured on the wall clock: the trade API's
max_rps spacing (a step back of X stalled every call for X) and the audit
token bucket of [server] max_rejections_per_s (it stopped auditing
rejections for about X)."""

import os
import tempfile
import time
import unittest

import harness
import test_reconcile
from harness import PG, SHOP, Receiver, envelope, new_msg_id, new_order_id, wait_for

SHIM = os.path.join(harness.REPO, "build", "clockshift.so")
STEP_S = -3600


class Clock:
    """The offset file the shim reads: seconds to add to the wall clock."""

    def __init__(self):
        fd, self.path = tempfile.mkstemp(prefix="receiver-clock-")
        os.close(fd)
        self.set(0)

    def set(self, seconds):
        with open(self.path + ".tmp", "w") as f:
            f.write("%d\n" % seconds)
        os.replace(self.path + ".tmp", self.path)

    def env(self):
        asan = os.environ.get("ASAN_OPTIONS", "")
        return {"LD_PRELOAD": SHIM, "CLOCKSHIFT_FILE": self.path,
                # The shim comes before the sanitizer runtime in the list.
                "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}

    def remove(self):
        os.unlink(self.path)


class ShimTest(unittest.TestCase):

    def test_the_shim_steps_the_wall_clock_of_a_process(self):
        # Without this, the tests below would prove nothing.
        clock = Clock()
        try:
            clock.set(STEP_S)
            env = dict(os.environ, **clock.env())
            out = harness.subprocess.run(
                ["python3", "-c", "import time; print(time.time())"], env=env,
                capture_output=True, text=True, timeout=30).stdout
            self.assertAlmostEqual(float(out), time.time() + STEP_S, delta=60)
        finally:
            clock.remove()


class TradeApiRateTest(test_reconcile.ReconcileTest):

    def setUp(self):
        super().setUp()
        self.clock = Clock()

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            self.clock.remove()

    def test_rate_limit_survives_a_clock_stepped_back(self):
        a, b = new_order_id(), new_order_id()
        self.api.set_orders([{"id": a, "status": "success", "modifyTime": test_reconcile.T2},
                             {"id": b, "status": "success", "modifyTime": test_reconcile.T2}])
        rx = Receiver(self.db, extra=self.config(upstream={"max_rps": 1}), env=self.clock.env())
        self.receivers.append(rx)
        self.assertEqual(rx.push(envelope(new_msg_id(), order_id=a))[0], 200)
        wait_for(lambda: self.statuses([a]) == {str(a): "success"}, 10, what="order a fetched")
        self.clock.set(STEP_S)
        self.assertEqual(rx.push(envelope(new_msg_id(), order_id=b))[0], 200)
        # One call a second: b is due at most a second after a, not an hour.
        wait_for(lambda: self.statuses([b]) == {str(b): "success"}, 10,
                 what="order b fetched after the clock stepped back an hour")
        self.assertEqual(self.api.stats()["calls"], 2)


class AuditRateTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database(cls.__name__)

    def setUp(self):
        self.clock = Clock()
        self.rx = Receiver(self.db, extra={"server": {"max_rejections_per_s": 5}},
                           env=self.clock.env())

    def tearDown(self):
        try:
            self.rx.stop()
        finally:
            self.clock.remove()

    def rejected(self):
        status, headers, _ = self.rx.push(envelope(new_msg_id(), order_id=new_order_id()),
                                          secret="not-the-secret")
        self.assertEqual(status, 401)
        return headers["X-Request-Id"]

    def audited(self, rid):
        return self.db.value("SELECT count(*) FROM deliveries WHERE request_id = '%s'"
                             % rid) == "1"

    def test_rejections_are_still_audited_after_the_clock_stepped_back(self):
        first = self.rejected()
        wait_for(lambda: self.audited(first), 10, what="the first rejection audited")
        self.clock.set(STEP_S)
        time.sleep(0.5)  # the bucket refills 5 a second: well over one token
        after = self.rejected()
        wait_for(lambda: self.audited(after), 10,
                 what="a rejection audited after the clock stepped back an hour")


if __name__ == "__main__":
    unittest.main()
