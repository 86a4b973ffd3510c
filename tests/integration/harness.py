"""harness.py - fixtures for the receiver's integration tests (stdlib only).

What it gives the tests:

  PG            one private PostgreSQL 15 cluster for the whole run, started
                lazily by deploy/pg-local.sh in a fresh temp dir on a free
                port and stopped at exit; PG.stop()/PG.start() take it down
                and bring it back mid-test (same DIR, same PORT).
  Database      a fresh database (CREATE DATABASE) with .sql() through psql.
  Receiver      a config file + `receiver migrate` + `receiver serve` as a
                subprocess (stderr in a file), ready when GET /readyz is 200;
                .stop() sends SIGTERM and asserts exit status 0 and, for a
                sanitizer build, a stderr free of sanitizer reports.
  LockSession   a psql session holding a table lock (to slow commits down).
  sign(), form(), envelope(), vector constants, raw HTTP helpers,
                metric() (one sample of /metrics), proc_status_kb() and reset_peak_rss()
                (/proc facts).

Every process started here is registered and killed at exit, whatever
happened, so a run leaves no stray postgres or receiver behind.

Environment: RECEIVER_BIN (default build/receiver, relative to the repo
root), PG_FSYNC (default "off": the tests kill the receiver, never
PostgreSQL), KEEP_TMP=1 keeps the receivers' logs and configs.
"""

import atexit
import hashlib
import hmac
import http.client
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PG_LOCAL = os.path.join(REPO, "deploy", "pg-local.sh")


def receiver_bin():
    b = os.environ.get("RECEIVER_BIN", "build/receiver")
    return b if os.path.isabs(b) else os.path.join(REPO, b)


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")

# --- the protocol's test vector (PROTOCOL.md section 2) ---------------------

VECTOR_SECRET = "demo-app-secret"
VECTOR_MESSAGE = (
    '{"data":{"buyerMemberId":"b2b-2217533334e9c00","currentStatus":"waitsellersend",'
    '"orderId":2908059205527363456,"sellerMemberId":"b2b-292931333434e",'
    '"msgSendTime":"2025-09-02 17:58:02"},"gmtBorn":1756807082000,"msgId":130000000001,'
    '"type":"ORDER_BUYER_VIEW_ORDER_PAY","userInfo":"b2b-2217533334e9c00"}'
)
VECTOR_SORTED_SIG = "B7921195E2E67B30BDF6B945BB94E391BBE2DD27"
VECTOR_MESSAGE_SIG = "AFE11C4900A096A77DFD8441287A515099677DBF"
VECTOR_MSG_ID = 130000000001
VECTOR_ORDER_ID = 2908059205527363456

SIGNATURE_FIELDS = ("_aop_signature", "_dj_signature")

# The apps every receiver is configured with.
SHOP = {"name": "shop", "path": "/1688/messages", "secret": "demo-app-secret",
        "previous": ["old-secret"], "mode": "sorted", "field": "_aop_signature"}
DJ = {"name": "dj", "path": "/dj/messages", "secret": "dj-secret",
      "previous": [], "mode": "message", "field": "_dj_signature"}
ALL_SECRETS = ("demo-app-secret", "old-secret", "dj-secret")

# --- bookkeeping: everything started is stopped at exit ---------------------

_procs = set()           # live subprocess.Popen objects we started
_procs_lock = threading.Lock()
_tmpdirs = []            # removed at exit (unless KEEP_TMP=1)
_keep_tmp = os.environ.get("KEEP_TMP") == "1"


def _register(p):
    with _procs_lock:
        _procs.add(p)
    return p


def _unregister(p):
    with _procs_lock:
        _procs.discard(p)


def keep_tmp():
    """Keep the work dir (logs, configs) at exit; the runner calls this on failure."""
    global _keep_tmp
    _keep_tmp = True


def _cleanup():
    with _procs_lock:
        procs = list(_procs)
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
        try:
            p.wait(timeout=10)
        except Exception:
            pass
    PG.shutdown()
    for d, always in _tmpdirs:
        if always or not _keep_tmp:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def _on_signal(signum, frame):
    # KeyboardInterrupt, not SystemExit: unittest records SystemExit as a test
    # error and carries on, but lets KeyboardInterrupt through, so the run
    # stops and atexit stops the cluster and the receivers.
    raise KeyboardInterrupt("signal %d" % signum)


if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)

WORK = tempfile.mkdtemp(prefix="receiver-it-")
_tmpdirs.append((WORK, False))

# --- small helpers -----------------------------------------------------------


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, interval=0.02, what="condition"):
    """Call pred() until it returns a true value; return it, or raise after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s (last: %r)"
                                 % (timeout, what, last))
        time.sleep(interval)


_ids = itertools.count(1)


def new_msg_id():
    """A msgId unique within the run (64-bit, not near the vector's)."""
    return 7_100_000_000_000_000 + next(_ids)


def new_order_id():
    """An order id beyond 2^53, unique within the run."""
    return 3_100_000_000_000_000_000 + next(_ids) * 7919


# --- signatures, forms and messages (PROTOCOL.md sections 2 and 3) ---------


def sign(fields, secret, mode="sorted"):
    """HMAC-SHA1, upper-case hex, of the canonical string of FIELDS.

    mode "sorted": every field but the signature fields, sorted by name (byte
    order), name+value concatenated; mode "message": the bare message value.
    """
    if mode == "sorted":
        items = sorted(((k.encode(), v.encode() if isinstance(v, str) else v)
                        for k, v in fields.items() if k not in SIGNATURE_FIELDS))
        data = b"".join(k + v for k, v in items)
    elif mode == "message":
        v = fields["message"]
        data = v.encode() if isinstance(v, str) else v
    else:
        raise ValueError(mode)
    return hmac.new(secret.encode(), data, hashlib.sha1).hexdigest().upper()


def form(fields):
    """x-www-form-urlencoded body of FIELDS (a dict or a list of pairs)."""
    pairs = list(fields.items()) if isinstance(fields, dict) else list(fields)
    return urllib.parse.urlencode(pairs).encode()


def signed_form(message, app=SHOP, field=None, secret=None, mode=None, lower=False):
    fields = {"message": message}
    sig = sign(fields, secret or app["secret"], mode or app["mode"])
    fields[field or app["field"]] = sig.lower() if lower else sig
    return form(fields)


def envelope(msg_id, type="ORDER_BUYER_VIEW_ORDER_PAY", order_id=None,
             status="waitsellersend", data=None, gmt_born=1756807082000,
             send_time="2025-09-02 17:58:02", user_info="b2b-2217533334e9c00",
             extra=None):
    """A message envelope shaped like PROTOCOL.md's vector, as JSON text.

    With data=None the payload is an ORDER_BUYER_VIEW_* one naming order_id;
    with envelope(VECTOR_MSG_ID, order_id=VECTOR_ORDER_ID) the text is the
    vector exactly.  Python's json keeps big integers exact.
    """
    if data is None:
        data = {"buyerMemberId": "b2b-2217533334e9c00", "currentStatus": status,
                "orderId": order_id, "sellerMemberId": "b2b-292931333434e",
                "msgSendTime": send_time}
        data = {k: v for k, v in data.items() if v is not None}
    env = {"data": data, "gmtBorn": gmt_born, "msgId": msg_id, "type": type,
           "userInfo": user_info}
    env = {k: v for k, v in env.items() if v is not None}
    if extra:
        env.update(extra)
    return json.dumps(env, separators=(",", ":"), ensure_ascii=False)


def raw_request(port, path, body, content_type="application/x-www-form-urlencoded",
                method="POST", keep_alive=False):
    """Bytes of one HTTP/1.1 request."""
    head = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:%d" % port]
    if content_type is not None:
        head.append("Content-Type: " + content_type)
    if body is not None:
        head.append("Content-Length: %d" % len(body))
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


def read_raw_response(sock, timeout=10):
    """Read until the peer closes; return (status, raw bytes)."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        b = sock.recv(65536)
        if not b:
            break
        chunks.append(b)
    raw = b"".join(chunks)
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else None
    return status, raw


def metric(port, sample, timeout=10):
    """The value of SAMPLE (a name with its labels, as /metrics writes it:
    'receiver_open_connections', 'x_total{reason="y"}') from GET /metrics on
    127.0.0.1:PORT, or None when the page has no such sample."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in body.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return None


def proc_status_kb(pid, field):
    """FIELD ('VmRSS', 'VmHWM') of /proc/PID/status, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def reset_peak_rss(pid):
    """Make VmHWM start again from the current RSS (proc(5), clear_refs 5)."""
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


# --- PostgreSQL --------------------------------------------------------------


class Cluster:
    """The run's private PostgreSQL cluster (deploy/pg-local.sh)."""

    def __init__(self):
        self.dir = None
        self.port = None
        self.running = False
        self._lock = threading.Lock()
        self._dbs = itertools.count(1)

    def _env(self):
        env = dict(os.environ)
        env.setdefault("PG_FSYNC", "off")
        return env

    def ensure(self):
        with self._lock:
            if self.dir is None:
                self.dir = tempfile.mkdtemp(prefix="receiver-it-pg-")
                _tmpdirs.append((self.dir, True))
                self.port = free_port()
                self.start()
            elif not self.running:
                self.start()
        return self

    def start(self):
        r = subprocess.run(["sh", PG_LOCAL, "start", self.dir, str(self.port)],
                           env=self._env(), capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("pg-local.sh start failed (%d): %s%s"
                               % (r.returncode, r.stdout, r.stderr))
        self.running = True

    def stop(self):
        r = subprocess.run(["sh", PG_LOCAL, "stop", self.dir, str(self.port)],
                           env=self._env(), capture_output=True, text=True, timeout=120)
        self.running = False
        if r.returncode != 0:
            raise RuntimeError("pg-local.sh stop failed: %s%s" % (r.stdout, r.stderr))

    def shutdown(self):
        """At exit: stop the cluster; if pg_ctl fails, kill the postmaster."""
        if self.dir is None:
            return
        try:
            self.stop()
        except Exception:
            pass
        pidfile = os.path.join(self.dir, "data", "postmaster.pid")
        try:
            with open(pidfile) as f:
                pid = int(f.readline())
            os.kill(pid, signal.SIGQUIT)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def psql(self, db, query, timeout=30):
        cmd = ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
               "-P", "null=\\N", "-h", "127.0.0.1", "-p", str(self.port), "-U", "receiver",
               "-d", db]
        env = dict(os.environ, PGCONNECT_TIMEOUT="5")
        # An argument is limited to 128 KiB (a list of every msgId a burst
        # acknowledged is longer): long queries go through standard input.
        if len(query) < 65536:
            cmd += ["-c", query]
            stdin = None
        else:
            cmd += ["-f", "-"]
            stdin = query
        r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout,
                           env=env)
        if r.returncode != 0:
            raise RuntimeError("psql failed (%d) on %r: %s" % (r.returncode, query, r.stderr))
        rows = []
        for line in r.stdout.split("\n"):
            if line == "":
                continue
            rows.append(tuple(None if c == "\\N" else c for c in line.split("\t")))
        return rows

    def create_database(self, hint, options=""):
        """A fresh database; OPTIONS is more of CREATE DATABASE (ENCODING ...)."""
        self.ensure()
        name = ("t%d_%s" % (next(self._dbs), hint.lower()))[:63]
        self.psql("postgres", 'CREATE DATABASE "%s" %s' % (name, options))
        return Database(self, name)


PG = Cluster()


class Database:
    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name

    @property
    def url(self):
        return "postgresql://receiver@127.0.0.1:%d/%s" % (self.cluster.port, self.name)

    def sql(self, query):
        """Rows of QUERY as tuples of text (None for NULL)."""
        return self.cluster.psql(self.name, query)

    def value(self, query):
        rows = self.sql(query)
        return rows[0][0] if rows else None

    def waiting_ingests(self):
        """Statements of this database waiting for a lock (the receiver's batches)."""
        return int(self.value(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"))


class LockSession:
    """A psql session that holds LOCK TABLE ... until release()."""

    def __init__(self, db, table="trade_events", mode="EXCLUSIVE"):
        self.db = db
        cmd = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(db.cluster.port),
               "-U", "receiver", "-d", db.name, "-v", "ON_ERROR_STOP=1"]
        self.proc = _register(subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                               stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL, text=True))
        self.proc.stdin.write("BEGIN;\nLOCK TABLE %s IN %s MODE;\n" % (table, mode))
        self.proc.stdin.flush()
        wait_for(lambda: db.value(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " WHERE c.relname = '%s' AND l.mode = '%sLock' AND l.granted"
            % (table, mode.title().replace(" ", ""))) == "1", 10, what="the table lock")

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("COMMIT;\n\\q\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        _unregister(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            try:
                self.release()
            except Exception:
                self.proc.kill()
                self.proc.wait()
                _unregister(self.proc)


# --- the receiver --------------------------------------------------------------


def _toml(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    raise TypeError(v)


def render_config(listen, db_url, extra=None):
    """receiver.toml text; EXTRA is {section: {key: value}} for [server],
    [database], [reconcile], [log], [upstream] and [relay], and
    {section: [{key: value}, ...]} for an array of tables ([[subscriber]])."""
    extra = extra or {}
    sections = {
        "server": {"listen": listen},
        "database": {"url": db_url},
        "reconcile": {"enabled": False},
        "log": {"level": "info"},
    }
    for sec, kv in extra.items():
        if isinstance(kv, list):
            sections[sec] = kv
        else:
            sections.setdefault(sec, {}).update(kv)
    out = []
    for sec in ("server", "database"):
        out.append("[%s]" % sec)
        out += ["%s = %s" % (k, _toml(v)) for k, v in sections.pop(sec).items()]
        out.append("")
    for app in (SHOP, DJ):
        out.append("[[app]]")
        out.append("name = %s" % _toml(app["name"]))
        out.append("path = %s" % _toml(app["path"]))
        out.append("app_key = %s" % _toml(app["name"] + "-key"))
        out.append("app_secret = %s" % _toml(app["secret"]))
        if app["previous"]:
            out.append("previous_secrets = %s" % _toml(app["previous"]))
        if app["mode"] == "message":
            out.append('signature_mode = "message"')
        out.append("")
    for sec, kv in sections.items():
        # A list of tables is an array of tables: [[subscriber]] ...
        for table in (kv if isinstance(kv, list) else [kv]):
            out.append(("[[%s]]" if isinstance(kv, list) else "[%s]") % sec)
            out += ["%s = %s" % (k, _toml(v)) for k, v in table.items()]
            out.append("")
    return "\n".join(out)


def run_receiver(args, timeout=30, env=None, input_text=None):
    """Run the binary to completion (INPUT_TEXT on its stdin); returns
    CompletedProcess (text)."""
    e = dict(os.environ)
    e.pop("DATABASE_URL", None)
    if env:
        e.update(env)
    return subprocess.run([receiver_bin()] + args, capture_output=True, text=True,
                          timeout=timeout, env=e, input=input_text,
                          stdin=None if input_text is not None else subprocess.DEVNULL)


def sanitizer_report(text):
    """The first sanitizer report line in TEXT, or None."""
    for line in text.splitlines():
        if any(m in line for m in SANITIZER_MARKERS):
            return line
    return None


_rx_ids = itertools.count(1)


class Receiver:
    """One `receiver serve` process on a free port, for DB."""

    wrapper = ()  # a command to run it under, e.g. ("valgrind", ...)
    tls_ca = None  # with [server] tls_cert: the CA to verify it with (HTTPS probes)

    def __init__(self, db, extra=None, migrate=True, start=True, env=None):
        self.db = db
        self.extra = extra or {}
        self.env = env or {}  # more environment for `serve`
        self.n = next(_rx_ids)
        self.dir = os.path.join(WORK, "rx%d" % self.n)
        os.makedirs(self.dir, exist_ok=True)
        self.config = os.path.join(self.dir, "receiver.toml")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.proc = None
        self.port = None
        self.returncode = None
        self.killed = False
        if not os.path.exists(receiver_bin()):
            raise RuntimeError("no receiver binary at %s (build it with make)" % receiver_bin())
        if migrate:
            self.write_config(free_port())
            self.migrate()
        if start:
            self.start()

    def write_config(self, port):
        self.port = port
        with open(self.config, "w") as f:
            f.write(render_config("127.0.0.1:%d" % port, self.db.url, self.extra))

    def migrate(self):
        r = run_receiver(["migrate", "-c", self.config])
        report = sanitizer_report(r.stderr)
        if r.returncode != 0 or report:
            raise AssertionError("receiver migrate failed (exit %d): %s%s"
                                 % (r.returncode, r.stdout, r.stderr))
        return r

    def start(self, timeout=10, ready=True, spawned=None):
        """Start serving; return once GET /readyz (or, not READY, /healthz) answers 200.
        SPAWNED, if given, is called with the Popen the moment it exists."""
        last_err = None
        for _attempt in range(3):  # a free port can be taken before we bind it
            self.write_config(free_port())
            env = dict(os.environ)
            env.pop("DATABASE_URL", None)
            env.update(self.env)
            self._stderr = open(self.stderr_path, "ab")
            self._log_start = len(self.log_text())  # this run's lines come after
            self.proc = _register(subprocess.Popen(
                list(self.wrapper) + [receiver_bin(), "serve", "-c", self.config],
                stdin=subprocess.DEVNULL,
                stdout=self._stderr, stderr=self._stderr, env=env))
            self.returncode = None
            if spawned is not None:
                spawned(self.proc)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    status, _, _ = self.get("/readyz" if ready else "/healthz", timeout=1)
                    if status == 200 and (not ready or self._all_workers_ready()):
                        return self
                except OSError:
                    pass
                time.sleep(0.02)
            if self.proc.poll() is None:
                self.kill()
                raise AssertionError("receiver not ready within %d s; log:\n%s"
                                     % (timeout, self.log_tail()))
            self._reap()
            last_err = "receiver exited %d before ready; log:\n%s" % (self.returncode,
                                                                       self.log_tail())
            if "listen_failed" not in self.log_text():
                break
        raise AssertionError(last_err)

    def _all_workers_ready(self):
        """With [server] workers > 1, /readyz answers for whichever worker
        took the connection: every worker's ingest connection must be up."""
        workers = self.extra.get("server", {}).get("workers", 1)
        if workers <= 1:
            return True
        return self.log_text()[self._log_start:].count('"msg":"ingest: connected') >= workers

    def _reap(self):
        self.returncode = self.proc.wait()
        _unregister(self.proc)
        self._stderr.close()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self):
        """Send SIGTERM without waiting."""
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout=20):
        """Wait for exit; returns the status (negative: killed by that signal)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("receiver did not exit within %d s; log:\n%s"
                                 % (timeout, self.log_tail()))
        self._reap()
        return self.returncode

    def stop(self, timeout=20):
        """SIGTERM; assert exit status 0 and no sanitizer report."""
        if self.proc is None or self.killed:
            return
        if self.returncode is None:
            if self.proc.poll() is None:
                self.terminate()
            rc = self.wait(timeout)
        else:
            rc = self.returncode
        self.check_clean_exit(rc)

    def check_clean_exit(self, rc):
        text = self.log_text()
        report = sanitizer_report(text)
        if report:
            raise AssertionError("sanitizer report in the receiver's stderr: %s\n%s"
                                 % (report, self.log_tail(60)))
        if rc != 0:
            raise AssertionError("receiver exited with status %s after SIGTERM; log:\n%s"
                                 % (rc, self.log_tail()))

    def kill(self):
        """SIGKILL, no checks."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.killed = True
        if self.proc is not None and self.returncode is None:
            self._reap()

    def log_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=25):
        return "\n".join(self.log_text().splitlines()[-n:])

    def log_events(self):
        """The JSON log lines as dicts (non-JSON lines are skipped)."""
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    # --- HTTP -------------------------------------------------------------

    def connection(self, timeout=10):
        if self.tls_ca is not None:
            import ssl
            ctx = ssl.create_default_context(cafile=self.tls_ca)
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def post(self, path, body, content_type="application/x-www-form-urlencoded",
             method="POST", timeout=10, headers=None):
        """One request on a fresh connection: (status, headers, body bytes)."""
        conn = self.connection(timeout)
        try:
            return request(conn, path, body, content_type, method, headers)
        finally:
            conn.close()

    def get(self, path, timeout=10):
        return self.post(path, None, content_type=None, method="GET", timeout=timeout)

    def push(self, message, app=SHOP, field=None, secret=None, mode=None, lower=False,
             timeout=10):
        """Sign MESSAGE for APP and POST it to the app's path."""
        body = signed_form(message, app, field, secret, mode, lower)
        return self.post(app["path"], body, timeout=timeout)


def stop_receivers(receivers):
    """SIGTERM each of RECEIVERS; the list of what went wrong (exit status,
    sanitizer reports), for a tearDown to fail with."""
    errors = []
    for rx in receivers:
        try:
            rx.stop()
        except AssertionError as e:
            errors.append(str(e))
    return errors


def request(conn, path, body, content_type="application/x-www-form-urlencoded",
            method="POST", headers=None):
    """One request on CONN (kept open): (status, headers, body bytes)."""
    h = dict(headers or {})
    if content_type is not None:
        h["Content-Type"] = content_type
    conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, resp.headers, data


def sql_list(ids):
    """A SQL array literal of integers: '{1,2,3}'::bigint[]."""
    return "'{%s}'::bigint[]" % ",".join(str(int(i)) for i in ids)
