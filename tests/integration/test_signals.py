"""test_signals.py - the daemon and its signals, and what it leaves behind
when it dies.

SIGHUP with several workers reloads the supervisor too, so a worker it
restarts later starts from the rotated secrets, not from those read at
start.  A SIGHUP that arrives before the handler is in place (start-up, a
worker being restarted, a one-off command) is held, not fatal.  No process
of the receiver can leave a core dump holding a secret: RLIMIT_CORE is 0
and the process is not dumpable (which /proc shows: its files are root's).

Catching a process in its start-up: nothing can hold a signal before main()
runs (the dynamic loader), so the start-up tests take the app's secret from
"file:" a FIFO and send SIGHUP while the process is certainly in main(),
blocked reading it, then release it and carry on.  A worker restarted by
the supervisor forks without reading a file; worker 0 with [reconcile]
loads a CA bundle (tens of milliseconds) before its loop runs, the window
the SIGHUPs aim at."""

import errno
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import (PG, SHOP, WORK, Receiver, envelope, new_msg_id, receiver_bin,
                     stop_receivers, wait_for)

# The supervisor restarts no worker that dies sooner than this after its start.
RESTART_GUARD_S = 2.0
NOBODY = 65534
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def children(pid):
    """The pids whose parent is PID (from /proc/N/stat, readable whatever dumpable says)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(name))
    return sorted(out)


def hammer(proc, seconds, gap=0.0, until=None):
    """SIGHUP PROC as fast as possible (or every GAP seconds) for SECONDS, or
    until UNTIL() (asked every 50 ms) is true or PROC exits; returns how many
    were sent."""
    sent = 0
    now = time.monotonic()
    end, check = now + seconds, now + 0.05
    while now < end and proc.returncode is None:  # once reaped, the pid is free for reuse
        os.kill(proc.pid, signal.SIGHUP)  # a zombie still takes it: never ESRCH
        sent += 1
        if gap:
            time.sleep(gap)
        now = time.monotonic()
        if now >= check:
            check = now + 0.05
            if proc.poll() is not None or (until is not None and until()):
                break
    return sent


class HeldSecret:
    """A "file:" secret that is a FIFO: whoever loads the configuration blocks
    reading it, inside main(), until release()."""

    def __init__(self, test):
        d = tempfile.mkdtemp(prefix="fifo-", dir=WORK)
        test.addCleanup(shutil.rmtree, d, True)
        self.path = os.path.join(d, "shop.secret")
        os.mkfifo(self.path, 0o600)
        self.fd = None

    def wait_reader(self, proc, timeout=10):
        """Until PROC has opened the FIFO: it is then blocked on it."""
        deadline = time.monotonic() + timeout
        while self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno != errno.ENXIO:  # no reader yet
                    raise
                if proc.poll() is not None:
                    raise AssertionError("exited %d before reading its secret" % proc.returncode)
                if time.monotonic() > deadline:
                    raise AssertionError("the secret was not read within %d s" % timeout)
                time.sleep(0.001)

    def release(self, secret):
        """Hand the reader SECRET; a regular file with it replaces the FIFO
        for the reloads to come."""
        tmp = self.path + ".new"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(secret)
        os.replace(tmp, self.path)
        os.write(self.fd, secret.encode())
        os.close(self.fd)
        self.fd = None


class HeldSecretReceiver(Receiver):
    """SHOP's secret from HELD's file, once HELD is set (after migrate)."""

    held = None

    def write_config(self, port):
        super().write_config(port)
        if self.held is None:
            return
        with open(self.config) as f:
            text = f.read()
        with open(self.config, "w") as f:
            f.write(text.replace('app_secret = "%s"' % SHOP["secret"],
                                 'app_secret = "file:%s"' % self.held.path))


class SignalsBase(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database(cls.__name__)

    def setUp(self):
        self.receivers = []

    def tearDown(self):
        self.assertEqual(stop_receivers(self.receivers), [])

    def receiver(self, workers=1, cls=Receiver, extra=None, **kw):
        extra = dict(extra or {})
        extra["server"] = dict(extra.get("server", {}), workers=workers)
        rx = cls(self.db, extra=extra, **kw)
        self.receivers.append(rx)
        return rx

    def events(self, rx, name, pid=None):
        """RX's log events named NAME (None: any), of PID if given."""
        return [e for e in rx.log_events()
                if name in (None, e.get("event")) and pid in (None, e.get("pid"))]

    def worker_pid(self, rx, index):
        """The pid of the last worker INDEX that logged it was serving."""
        lines = [e for e in self.events(rx, "serving")
                 if e["msg"].startswith("worker %d " % index)]
        return lines[-1]["pid"] if lines else None

    def kill_worker(self, rx, index, started):
        """SIGKILL worker INDEX, late enough for the supervisor to restart it."""
        victim = self.worker_pid(rx, index)
        self.assertIn(victim, children(rx.proc.pid))
        time.sleep(max(0.0, started + RESTART_GUARD_S + 0.5 - time.monotonic()))
        os.kill(victim, signal.SIGKILL)
        return victim

    def restarted(self, rx, index, old_pid):
        """The new pid of worker INDEX once it serves with its database up, or None."""
        pid = self.worker_pid(rx, index)
        if pid in (None, old_pid) or not self.events(rx, "worker_died"):
            return None
        up = any(e["msg"].startswith("ingest: connected") for e in self.events(rx, None, pid))
        return pid if up else None

    def wait_restarted(self, rx, index, old_pid):
        return wait_for(lambda: self.restarted(rx, index, old_pid), 10,
                        what="worker %d restarted" % index)

    def statuses(self, rx, secret, n):
        """Statuses of N pushes signed with SECRET, each on a fresh connection."""
        return [rx.push(envelope(new_msg_id()), secret=secret)[0] for _ in range(n)]


class SupervisorReloadTest(SignalsBase):

    def rotate(self, rx, broken=False):
        """SHOP's secret becomes rotated-secret; the old one is revoked outright
        (not among previous_secrets).  BROKEN: the file no longer loads."""
        with open(rx.config) as f:
            text = f.read()
        self.assertIn('app_secret = "%s"' % SHOP["secret"], text)
        self.assertIn('previous_secrets = ["old-secret"]', text)
        text = text.replace('app_secret = "%s"' % SHOP["secret"], 'app_secret = "rotated-secret"')
        with open(rx.config, "w") as f:
            f.write(text + ("\n[server]\nbogus = 1\n" if broken else ""))

    def test_a_restarted_worker_starts_from_the_rotated_secrets(self):
        rx = self.receiver(workers=2)
        started = time.monotonic()
        workers = children(rx.proc.pid)
        self.assertEqual(len(workers), 2, workers)
        self.rotate(rx)
        rx.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: all(self.events(rx, "reloaded", pid) for pid in workers), 5,
                 what="both workers' reload")
        self.assertEqual(set(self.statuses(rx, SHOP["secret"], 10)), {401})

        victim = self.kill_worker(rx, 1, started)
        new = self.wait_restarted(rx, 1, victim)
        self.assertEqual(children(rx.proc.pid),
                         sorted([pid for pid in workers if pid != victim] + [new]))
        # Fresh connections: SO_REUSEPORT spreads them over both workers.
        self.assertEqual(self.statuses(rx, SHOP["secret"], 40), [401] * 40,
                         "the secret revoked by SIGHUP was accepted after a worker restart")
        self.assertEqual(self.statuses(rx, "rotated-secret", 10), [200] * 10)
        self.assertEqual(len(self.events(rx, "reloaded", rx.proc.pid)), 1,
                         "the supervisor logs its own reload")
        self.assertNotIn("rotated-secret", rx.log_text())

    def test_a_file_that_no_longer_loads_changes_nothing_in_the_supervisor(self):
        rx = self.receiver(workers=2)
        started = time.monotonic()
        self.rotate(rx, broken=True)
        rx.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(self.events(rx, "reload_failed")) == 3, 5,
                 what="the failed reload in the supervisor and both workers")
        self.assertEqual(len(self.events(rx, "reload_failed", rx.proc.pid)), 1)
        victim = self.kill_worker(rx, 1, started)
        self.wait_restarted(rx, 1, victim)
        self.assertEqual(self.statuses(rx, SHOP["secret"], 20), [200] * 20)
        self.assertEqual(set(self.statuses(rx, "rotated-secret", 10)), {401})


class EarlySighupTest(SignalsBase):

    def test_serve_survives_sighup_while_it_starts(self):
        rx = self.receiver(cls=HeldSecretReceiver, start=False)
        rx.held = held = HeldSecret(self)
        sent = []

        def spawned(proc):
            held.wait_reader(proc)
            sent.append(hammer(proc, 0.3))
            self.assertIsNone(proc.poll(), "serve died of SIGHUP while loading its configuration")
            held.release(SHOP["secret"])
            sent.append(hammer(proc, 1.0, gap=0.001))

        rx.start(spawned=spawned)
        self.assertGreater(min(sent), 100)
        self.assertTrue(rx.running, "receiver died of an early SIGHUP")
        # Held, not lost: the loop reloads once the handler is in place.
        wait_for(lambda: self.events(rx, "reloaded"), 5, what="a reload")
        self.assertEqual(rx.push(envelope(new_msg_id()))[0], 200)
        self.assertEqual(rx.push(envelope(new_msg_id()), secret="wrong-secret")[0], 401)

    @unittest.skipUnless(os.path.exists(CA_BUNDLE), "no CA bundle at " + CA_BUNDLE)
    def test_sighup_while_a_worker_restarts_keeps_the_service_up(self):
        rx = self.receiver(workers=2, extra={
            "reconcile": {"enabled": True, "sweep_interval_s": 0},
            "upstream": {"base_url": "https://127.0.0.1:9", "ca_file": CA_BUNDLE}})
        started = time.monotonic()
        victim = self.kill_worker(rx, 0, started)
        sent = hammer(rx.proc, 10, gap=0.001, until=lambda: self.restarted(rx, 0, victim))
        self.assertGreater(sent, 10)
        self.assertTrue(rx.running, "the service stopped:\n" + rx.log_tail())
        new = self.wait_restarted(rx, 0, victim)
        self.assertGreater(len(self.events(rx, "reloaded", new)), 0,
                           "the restarted worker never saw a SIGHUP")
        time.sleep(0.5)  # a worker killed by the SIGHUPs would be gone by now
        self.assertTrue(rx.running, "the service stopped:\n" + rx.log_tail())
        self.assertEqual(len(children(rx.proc.pid)), 2, rx.log_tail())
        self.assertIn(new, children(rx.proc.pid))
        self.assertEqual(self.events(rx, "stopping"), [])
        self.assertEqual(self.statuses(rx, SHOP["secret"], 20), [200] * 20)

    def test_a_tool_survives_sighup(self):
        rx = self.receiver(cls=HeldSecretReceiver, start=False)
        rx.held = held = HeldSecret(self)
        rx.write_config(rx.port)
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)
        # `verify` loads the configuration, then reads a form from its input.
        p = subprocess.Popen([receiver_bin(), "verify", "-c", rx.config], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            held.wait_reader(p)
            self.assertGreater(hammer(p, 0.3), 100)
            self.assertIsNone(p.poll(), "verify died of SIGHUP while loading its configuration")
            held.release(SHOP["secret"])
            self.assertGreater(hammer(p, 0.3), 100)
            self.assertIsNone(p.poll(), "verify died of SIGHUP while reading its input")
        finally:
            _, err = p.communicate(b"", timeout=10)
        self.assertGreaterEqual(p.returncode, 0, err)


class CoreDumpTest(SignalsBase):

    def raise_core_limit(self):
        """Let the receiver inherit a soft core limit as high as it may go."""
        soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_CORE, (soft, hard))
        return hard

    def core_limit(self, pid):
        with open("/proc/%d/limits" % pid) as f:
            for line in f:
                if line.startswith("Max core file size"):
                    return line.split()[4:6]
        raise AssertionError("no core limit in /proc/%d/limits" % pid)

    def test_no_core_file_size(self):
        self.assertNotEqual(self.raise_core_limit(), 0,
                            "the test needs a nonzero hard core limit to inherit")
        rx = self.receiver(workers=2)
        for pid in [rx.proc.pid] + children(rx.proc.pid):
            self.assertEqual(self.core_limit(pid), ["0", "0"], "pid %d" % pid)

    def test_not_dumpable_even_to_its_own_user(self):
        self.raise_core_limit()
        # Everything `serve` reads, readable by nobody (WORK is 0700).
        tmp = tempfile.mkdtemp(prefix="receiver-nobody-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        rx = self.receiver(workers=2, start=False)
        rx.config = os.path.join(tmp, "receiver.toml")
        rx.wrapper = ("setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                      "--clear-groups", "--")
        old_umask = os.umask(0o022)
        try:
            rx.start()
        finally:
            os.umask(old_umask)
        pids = [rx.proc.pid] + children(rx.proc.pid)
        self.assertEqual(len(pids), 3, "the supervisor and two workers")
        for pid in pids:
            with open("/proc/%d/status" % pid) as f:
                uids = [line.split()[1:] for line in f if line.startswith("Uid:")][0]
            self.assertEqual(uids, [str(NOBODY)] * 4, "pid %d did not run as nobody" % pid)
            # A dumpable process owns its /proc files; a non-dumpable one's are root's.
            st = os.stat("/proc/%d/environ" % pid)
            self.assertEqual((st.st_uid, st.st_gid), (0, 0), "pid %d is dumpable: its "
                             "/proc/%d/environ belongs to %d" % (pid, pid, st.st_uid))
            self.assertEqual(self.core_limit(pid), ["0", "0"])
        self.assertEqual(rx.push(envelope(new_msg_id()))[0], 200)


if __name__ == "__main__":
    unittest.main()
