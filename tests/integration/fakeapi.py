"""fakeapi.py - drive build/fake_api, the fake dajisaas trade API (stdlib only).

    api = FakeApi()                 # or FakeApi(app_key=..., app_secret=...)
    api.start()                     # or api.start(tls=True)
    api.set_orders([{"id": "2908059205527363456", "status": "waitsellersend",
                     "modifyTime": "2025-09-02T09:58:02.000+00:00"}])
    api.add_faults([{"kind": "http503", "count": 2}])
                                    # hostile ones too: {"kind": "hugeheaders"},
                                    # {"kind": "manynumbers", "bytes": N},
                                    # {"kind": "echo", "at": N} (fake_api.c says how)
    ... point the receiver's [upstream] base_url at api.base_url
        (and ca_file at api.ca_file when tls=True) ...
    api.stats()["buyerView"]["2908059205527363456"]
    api.stop()                      # SIGTERM; asserts exit 0 and a clean stderr

The binary is FAKE_API_BIN (build/asan/fake_api for the sanitizer build),
else fake_api next to RECEIVER_BIN, else build/fake_api; relative to the
repo root unless absolute.  Nothing is built here.  The fixture is FAKE_API_FIXTURE, default
tests/fixtures/getBuyerOrderList.response.json (PROTOCOL.md's documented
sample answer of getBuyerOrderList).

With tls=True a throw-away CA and a server certificate for localhost and
127.0.0.1, signed by it, are made with the openssl command line in a temp
dir; .ca_file is the CA certificate, .base_url is https://localhost:PORT.

Every fake started here is killed at exit if a test forgot to stop it.
"""

import atexit
import http.client
import json
import os
import select
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               "fixtures", "getBuyerOrderList.response.json")
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error")

BUYER_VIEW = "/alibaba/trade/get/buyerView"
ORDER_LIST = "/alibaba/trade/getBuyerOrderList"

_live = set()
_live_lock = threading.Lock()


def _kill_leftovers():
    with _live_lock:
        fakes = list(_live)
    for f in fakes:
        f.kill()


atexit.register(_kill_leftovers)


def fake_api_bin():
    b = os.environ.get("FAKE_API_BIN")
    if not b and os.environ.get("RECEIVER_BIN"):  # build/asan/receiver -> build/asan/fake_api
        b = os.path.join(os.path.dirname(os.environ["RECEIVER_BIN"]), "fake_api")
    b = b or "build/fake_api"
    return b if os.path.isabs(b) else os.path.join(REPO, b)


def fixture_path():
    return os.environ.get("FAKE_API_FIXTURE", DEFAULT_FIXTURE)


def make_certs(d):
    """A CA and a localhost/127.0.0.1 server certificate it signed, in D.

    Returns (ca_cert, server_cert, server_key) paths."""
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, crt = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.pem"))
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid,issuer\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
    run("req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-days", "2",
        "-subj", "/CN=fake_api throw-away test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash")
    run("req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    return ca_crt, crt, key


class FakeApi:
    def __init__(self, app_key="demo-app-key", app_secret="demo-app-secret", fixture=None):
        self.app_key = app_key
        self.app_secret = app_secret
        self.fixture = fixture or fixture_path()
        self.proc = None
        self.port = None
        self.tls = False
        self.base_url = None
        self.ca_file = None
        self.host = "127.0.0.1"
        self.tmp = None
        self.stderr_path = None

    # --- lifecycle -----------------------------------------------------------

    def start(self, tls=False, timeout=10):
        if self.proc is not None:
            raise RuntimeError("fake_api already started")
        binary = fake_api_bin()
        if not os.access(binary, os.X_OK):
            raise RuntimeError("%s is missing: run `make helper-bins` (or SAN=1)" % binary)
        self.tls = tls
        self.tmp = tempfile.mkdtemp(prefix="fake-api-")
        self.stderr_path = os.path.join(self.tmp, "stderr")
        cmd = [binary, "--fixture", self.fixture, "--host", "127.0.0.1", "--port", "0",
               "--app-key", self.app_key, "--app-secret", self.app_secret]
        if tls:
            self.ca_file, crt, key = make_certs(self.tmp)
            cmd += ["--tls-cert", crt, "--tls-key", key]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err)
        with _live_lock:
            _live.add(self)
        self.port = self._read_port(timeout)
        scheme, host = ("https", "localhost") if tls else ("http", "127.0.0.1")
        self.base_url = "%s://%s:%d" % (scheme, host, self.port)
        return self

    def _read_port(self, timeout):
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                break
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                c = os.read(self.proc.stdout.fileno(), 1)
                if not c:
                    break
                line += c
        words = line.decode(errors="replace").split()
        if len(words) != 3 or words[:2] != ["listening", "on"] or not words[2].isdigit():
            self.kill()
            raise RuntimeError("fake_api did not start (stdout %r): %s"
                               % (line, self.stderr_text()))
        return int(words[2])

    def stop(self, timeout=15):
        """SIGTERM; assert exit status 0 and no sanitizer report on stderr."""
        if self.proc is None:
            return
        p, self.proc = self.proc, None
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = None
        finally:
            p.stdout.close()
            with _live_lock:
                _live.discard(self)
        err = self.stderr_text()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if rc != 0:
            raise AssertionError("fake_api exited with %r on SIGTERM; stderr:\n%s" % (rc, err))
        for marker in SANITIZER_MARKERS:
            if marker in err:
                raise AssertionError("fake_api stderr has %r:\n%s" % (marker, err))

    def kill(self):
        """For cleanup paths only: no checks."""
        if self.proc is None:
            return
        p, self.proc = self.proc, None
        if p.poll() is None:
            p.kill()
        p.wait()
        p.stdout.close()
        with _live_lock:
            _live.discard(self)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except (OSError, TypeError):
            return ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.stop()
        else:
            self.kill()

    # --- HTTP ---------------------------------------------------------------

    def ssl_context(self, trust=True):
        """A client context that trusts the fake's CA (trust=False: the system store only)."""
        ctx = ssl.create_default_context(cafile=self.ca_file if trust else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def connection(self, timeout=10, trust=True, host=None):
        host = host or ("localhost" if self.tls else "127.0.0.1")
        if self.tls:
            return http.client.HTTPSConnection(host, self.port, timeout=timeout,
                                               context=self.ssl_context(trust))
        return http.client.HTTPConnection(host, self.port, timeout=timeout)

    def request(self, method, path, body=None, timeout=10, trust=True, host=None):
        """One request on its own connection -> (status, body bytes)."""
        conn = self.connection(timeout=timeout, trust=trust, host=host)
        try:
            data = None if body is None else (
                body if isinstance(body, bytes) else json.dumps(body).encode())
            headers = {"Connection": "close"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def trade(self, path, params, timeout=10, credentials=True, **kw):
        """POST a trade call as the receiver does -> (HTTP status, body bytes)."""
        body = dict(params)
        if credentials:
            body.setdefault("appKey", self.app_key)
            body.setdefault("appSecret", self.app_secret)
        return self.request("POST", path, body, timeout=timeout, **kw)

    def buyer_view(self, order_id, timeout=10, **kw):
        """(HTTP status, parsed JSON or None) of a buyerView call for ORDER_ID."""
        status, raw = self.trade(BUYER_VIEW, {"webSite": "1688", "orderId": str(order_id)},
                                 timeout=timeout, **kw)
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None

    def _control(self, method, what, body=None):
        status, raw = self.request(method, "/_control/" + what, body)
        if status != 200:
            raise AssertionError("fake_api /_control/%s: HTTP %d %s" % (what, status, raw))
        return json.loads(raw)

    def set_orders(self, orders):
        """Upsert orders: dicts with "id" (int or str) and optional status,
        modifyTime, createTime (ISO 8601 with offset) and baseInfo (extra
        baseInfo fields)."""
        return self._control("POST", "orders", {"orders": [
            dict(o, id=str(o["id"])) for o in orders]})

    def add_faults(self, faults):
        return self._control("POST", "faults", {"faults": [
            dict(f, order=str(f["order"])) if f.get("order") is not None else f
            for f in faults]})

    def reset(self):
        return self._control("POST", "reset")

    def stats(self):
        return self._control("GET", "stats")

    def wait_idle(self, timeout=5):
        """Wait until no trade call is in progress (e.g. after a client gave up on a hang)."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats()
            if s["concurrent"] == 0:
                return s
            if time.monotonic() >= deadline:
                raise AssertionError("fake_api still has %d call(s) in progress" % s["concurrent"])
            time.sleep(0.02)
