"""consumer.py - drive tests/relay/consumer.js, the webhook consumer (stdlib only).

    c = Consumer(["whsec_...", "whsec_..."])   # the secrets it verifies with
    c.start()                                   # node tests/relay/consumer.js --port 0 ...
    ... point a subscriber's url at c.url("/hooks/erp") ...
    c.control(responses=[{"status": 500, "count": 2}, {"status": 200}])
    c.control(status=503, retry_after=2)        # the default answer from now on
    c.control(hang=True)                        # every request held unanswered
    c.wait_requests(3)                          # -> the records, once there are 3
    c.requests()                                # every record so far (since=N: after seq N)
    c.stop()                                    # SIGTERM; asserts exit 0

Each record is a dict: seq, method, path, connection, remote_port, headers,
webhook_id, webhook_timestamp, webhook_signature, verified, secret_index,
error, body (parsed JSON or None), raw, arrived_ms, answer, status,
answered_ms (consumer.js's comment says what each means, and what
control() takes).  Verification is the `standardwebhooks` npm package's,
installed in tests/relay/node_modules by deploy/setup-debian.sh (`make
setup`); NODE picks the node binary.

The process's life (reading "listening on PORT", stop, kill, the leftovers
killed at exit, request()) is fakeapi.FakeApi's, which runs its child the
same way: only the command and the control calls differ.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

import fakeapi

HERE = os.path.dirname(os.path.abspath(__file__))
RELAY = os.path.join(os.path.dirname(HERE), "relay")


def node_bin():
    return os.environ.get("NODE") or shutil.which("node") or "node"


def relay_script(name):
    """The path of tests/relay/NAME, once the library it needs is installed."""
    if not os.path.isdir(os.path.join(RELAY, "node_modules", "standardwebhooks")):
        raise RuntimeError("tests/relay/node_modules/standardwebhooks is missing: run `make setup`")
    return os.path.join(RELAY, name)


class Consumer(fakeapi.FakeApi):
    def __init__(self, secrets, keep_alive_ms=None):
        super().__init__()
        self.secrets = [secrets] if isinstance(secrets, str) else list(secrets)
        self.keep_alive_ms = keep_alive_ms

    def start(self, timeout=15):
        if self.proc is not None:
            raise RuntimeError("consumer already started")
        cmd = [node_bin(), relay_script("consumer.js"), "--host", self.host, "--port", "0"]
        for s in self.secrets:  # a repeated flag (one may also hold a comma-separated list)
            cmd += ["--secret", s]
        if self.keep_alive_ms is not None:
            cmd += ["--keep-alive-ms", str(self.keep_alive_ms)]
        self.tmp = tempfile.mkdtemp(prefix="consumer-")
        self.stderr_path = os.path.join(self.tmp, "stderr")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err)
        with fakeapi._live_lock:
            fakeapi._live.add(self)
        self.port = self._read_port(timeout)
        self.base_url = "http://%s:%d" % (self.host, self.port)
        return self

    def url(self, path="/"):
        return self.base_url + path

    def _call(self, method, path, body=None):
        status, raw = self.request(method, path, body)
        if status != 200:
            raise AssertionError("consumer.js %s %s: HTTP %d %s" % (method, path, status, raw))
        return json.loads(raw)

    def control(self, fields=None, **kw):
        """POST /_control with FIELDS (a dict) and/or keyword fields -> the script in force."""
        return self._call("POST", "/_control", dict(fields or {}, **kw))

    def requests(self, since=0):
        return self._call("GET", "/_requests?since=%d" % since)["requests"]

    def wait_requests(self, n, timeout=10, since=0):
        """The records after SINCE once there are at least N; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.requests(since)
            if len(got) >= n:
                return got
            if time.monotonic() >= deadline:
                raise AssertionError("consumer.js got %d request(s), not %d, in %.1f s: %r"
                                     % (len(got), n, timeout, got))
            time.sleep(0.02)
