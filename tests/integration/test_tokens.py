"""test_tokens.py - members' OAuth tokens: `receiver token set` and `token
list` against a real PostgreSQL (member_tokens, sql/008), and the
configuration's `[tokens] key`.

What is checked, in rows and bytes: the table holds no token in the clear
(every column of every table searched for each token, as text and as hex);
each stored value is the documented format (version 0x01, 12-byte nonce,
ciphertext, 16-byte tag) and opens, with OpenSSL's libcrypto called here
through ctypes (not the receiver's code), to the token under its own row's
associated data and under no other row's or column's; expiry times are
the ones given; a second `set` replaces the row; tokens read from stdin
(`-`) work; `list` shows members, expiry and state and never a token; no
token or key in any output of any command, nor in a daemon's log; without
a key `set` exits 2 and says so; a malformed key is refused at load,
naming file, line and key, never the value.  Run with
tests/integration/run.py.
"""

import ctypes
import ctypes.util
import os
import re
import unittest
import uuid

import test_reconcile
from harness import PG, WORK, Receiver, render_config, run_receiver, stop_receivers

ACCESS_S = 36000  # a 1688 access token's expires_in
REFRESH_S = 15552000  # 180 days


def new_token():
    """A token shaped like 1688's (a UUID), unique to the run."""
    return str(uuid.uuid4())


def new_member():
    return "b2b-%d" % (uuid.uuid4().int % 10**12)


# --- AES-256-GCM through libcrypto, independently of receiver/tokens.c ----------

_crypto = ctypes.CDLL(ctypes.util.find_library("crypto"))
_crypto.EVP_CIPHER_CTX_new.restype = ctypes.c_void_p
_crypto.EVP_CIPHER_CTX_free.argtypes = [ctypes.c_void_p]
_crypto.EVP_aes_256_gcm.restype = ctypes.c_void_p
_crypto.EVP_DecryptInit_ex.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                       ctypes.c_char_p, ctypes.c_char_p]
_crypto.EVP_CIPHER_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                        ctypes.c_void_p]
_crypto.EVP_DecryptUpdate.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                      ctypes.POINTER(ctypes.c_int), ctypes.c_char_p,
                                      ctypes.c_int]
_crypto.EVP_DecryptFinal_ex.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.POINTER(ctypes.c_int)]
EVP_CTRL_GCM_SET_IVLEN = 0x9
EVP_CTRL_GCM_SET_TAG = 0x11


def aad(app, member, column):
    """The associated data as receiver/tokens.h documents it."""
    out = b"receiver member_tokens\x00\x01"
    for part in (app, member, column):
        b = part.encode()
        out += len(b).to_bytes(2, "big") + b
    return out


def gcm_open(key_hex, associated, sealed):
    """The plaintext of SEALED (version | nonce | ciphertext | tag), or None."""
    if len(sealed) < 30 or sealed[0] != 1:
        return None
    nonce, ct, tag = sealed[1:13], sealed[13:-16], sealed[-16:]
    ctx = _crypto.EVP_CIPHER_CTX_new()
    out = ctypes.create_string_buffer(len(ct) + 16)
    n, fin = ctypes.c_int(0), ctypes.c_int(0)
    try:
        ok = (_crypto.EVP_DecryptInit_ex(ctx, _crypto.EVP_aes_256_gcm(), None, None, None) == 1
              and _crypto.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, None) == 1
              and _crypto.EVP_DecryptInit_ex(ctx, None, None, bytes.fromhex(key_hex),
                                             nonce) == 1
              and _crypto.EVP_DecryptUpdate(ctx, None, ctypes.byref(n), associated,
                                            len(associated)) == 1
              and _crypto.EVP_DecryptUpdate(ctx, out, ctypes.byref(n), ct, len(ct)) == 1
              and _crypto.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
                                              ctypes.c_char_p(tag)) == 1
              and _crypto.EVP_DecryptFinal_ex(ctx, ctypes.byref(out, n.value),
                                              ctypes.byref(fin)) == 1)
    finally:
        _crypto.EVP_CIPHER_CTX_free(ctx)
    return out.raw[:n.value + fin.value].decode() if ok else None


class TokensTest(unittest.TestCase):
    """One migrated database and a receiver configuration with a key file."""

    @classmethod
    def setUpClass(cls):
        cls.key = os.urandom(32).hex()
        cls.key_file = os.path.join(WORK, "token-%s.key" % uuid.uuid4().hex)
        with open(cls.key_file, "w") as f:
            f.write(cls.key + "\n")  # as `openssl rand -hex 32 > FILE` writes it
        cls.db = PG.create_database("tokens")
        cls.rx = Receiver(cls.db, start=False, extra={
            "tokens": {"key": "file:" + cls.key_file}, "log": {"level": "debug"}})
        cls._secrets = {cls.key}

    def cli(self, args, input_text=None, config=None):
        """`receiver ARGS -c CONFIG`; asserts no token or key in its output."""
        r = run_receiver(args + ["-c", config or self.rx.config], input_text=input_text)
        self.assertNoSecret(r.stdout + r.stderr, args)
        return r

    def assertNoSecret(self, text, what):
        for s in self.secrets():
            self.assertNotIn(s, text, "a secret in the output of %s" % (what,))
            self.assertNotIn(s.encode().hex(), text, "a secret, in hex, in %s" % (what,))

    def token(self):
        t = new_token()
        self._secrets.add(t)
        return t

    def set_grant(self, member, refresh, access=None, app="shop", refresh_s=REFRESH_S):
        args = ["token", "set", "--app", app, "--member", member, "--refresh-token", refresh]
        if access is not None:
            args += ["--access-token", access, "--expires-in", str(ACCESS_S)]
        if refresh_s is not None:
            args += ["--refresh-expires-in", str(refresh_s)]
        r = self.cli(args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def row(self, member, app="shop"):
        rows = self.db.sql(
            "SELECT encode(access_token, 'hex'), encode(refresh_token, 'hex'), state,"
            " extract(epoch FROM access_expires_at - now())::int,"
            " extract(epoch FROM refresh_expires_at - now())::int, generation, source"
            " FROM member_tokens WHERE app = '%s' AND member_id = '%s'" % (app, member))
        self.assertEqual(len(rows), 1, rows)
        a, r, state, a_in, r_in, gen, source = rows[0]
        return {"access": bytes.fromhex(a) if a is not None else None,
                "refresh": bytes.fromhex(r), "state": state,
                "access_in": int(a_in) if a_in is not None else None,
                "refresh_in": int(r_in) if r_in is not None else None,
                "generation": int(gen), "source": source}

    def opens(self, sealed, app, member, column):
        return gcm_open(self.key, aad(app, member, column), sealed)

    def secrets(self):
        """What must never be in a table or an output: the key and every token used."""
        return self._secrets

    # Every column of every table, searched for each secret as text and as hex (bytea).
    secrets_in_tables = test_reconcile.ReconcileTest.secrets_in_tables


class TestSet(TokensTest):

    def test_set_stores_sealed_tokens_bound_to_their_row(self):
        member, refresh, access = new_member(), self.token(), self.token()
        r = self.set_grant(member, refresh, access)
        self.assertRegex(r.stdout, r"^app shop, member %s: grant stored, encrypted "
                         r"\(generation 1\); access token expires \d{4}-" % member)
        row = self.row(member)
        self.assertEqual((row["state"], row["generation"], row["source"]), ("active", 1, "set"))
        self.assertTrue(ACCESS_S - 120 <= row["access_in"] <= ACCESS_S, row)
        self.assertTrue(REFRESH_S - 120 <= row["refresh_in"] <= REFRESH_S, row)
        for sealed, token in ((row["access"], access), (row["refresh"], refresh)):
            self.assertEqual(len(sealed), len(token) + 29)
            self.assertEqual(sealed[0], 1)
        self.assertNotEqual(row["access"][1:13], row["refresh"][1:13], "a nonce reused")
        self.assertEqual(self.opens(row["access"], "shop", member, "access_token"), access)
        self.assertEqual(self.opens(row["refresh"], "shop", member, "refresh_token"), refresh)
        # Bound to the row and the column: elsewhere, it does not open.
        self.assertIsNone(self.opens(row["access"], "shop", member, "refresh_token"))
        self.assertIsNone(self.opens(row["refresh"], "shop", member, "access_token"))
        self.assertIsNone(self.opens(row["refresh"], "shop", member + "1", "refresh_token"))
        self.assertIsNone(self.opens(row["refresh"], "dj", member, "refresh_token"))
        self.assertIsNone(gcm_open(os.urandom(32).hex(), aad("shop", member, "refresh_token"),
                                   row["refresh"]))
        self.assertEqual(self.secrets_in_tables(), [])

    def test_without_an_access_token_the_refresh_is_due_at_once(self):
        member, refresh = new_member(), self.token()
        r = self.set_grant(member, refresh, refresh_s=None)
        self.assertIn("access token expires not known; refresh token expires not known",
                      r.stdout)
        row = self.row(member)
        self.assertIsNone(row["access"])
        self.assertIsNone(row["refresh_in"])
        self.assertEqual(self.opens(row["refresh"], "shop", member, "refresh_token"), refresh)
        self.assertEqual(self.db.value(
            "SELECT refresh_due_at <= now() FROM member_tokens WHERE member_id = '%s'"
            % member), "t")
        self.assertEqual(self.secrets_in_tables(), [])

    def test_a_second_set_replaces_the_row(self):
        member = new_member()
        old_refresh, old_access, new_refresh = self.token(), self.token(), self.token()
        self.set_grant(member, old_refresh, old_access)
        first = self.db.value("SELECT updated_at FROM member_tokens WHERE member_id = '%s'"
                              % member)
        self.db.sql("UPDATE member_tokens SET state = 'needs_authorization', attempts = 3,"
                    " last_error = 'refresh refused' WHERE member_id = '%s'" % member)
        r = self.set_grant(member, new_refresh, refresh_s=None)
        self.assertIn("member %s: grant replaced, encrypted (generation 2)" % member, r.stdout)
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM member_tokens WHERE member_id = '%s'" % member), "1")
        row = self.row(member)
        self.assertEqual((row["state"], row["generation"]), ("active", 2))
        self.assertIsNone(row["access"], "the old access token stayed")
        self.assertIsNone(row["refresh_in"], "the old refresh expiry stayed")
        self.assertEqual(self.opens(row["refresh"], "shop", member, "refresh_token"), new_refresh)
        self.assertEqual(self.db.sql(
            "SELECT attempts, last_error, claimed_until, updated_at > '%s'"
            " FROM member_tokens WHERE member_id = '%s'" % (first, member)),
            [("0", None, None, "t")])
        self.assertEqual(self.secrets_in_tables(), [])

    def test_the_same_member_of_two_apps_is_two_rows(self):
        member, a, b = new_member(), self.token(), self.token()
        self.set_grant(member, a)
        self.set_grant(member, b, app="dj")
        self.assertEqual(self.opens(self.row(member)["refresh"], "shop", member,
                                    "refresh_token"), a)
        self.assertEqual(self.opens(self.row(member, "dj")["refresh"], "dj", member,
                                    "refresh_token"), b)

    def test_tokens_from_stdin(self):
        member, refresh, access = new_member(), self.token(), self.token()
        r = self.cli(["token", "set", "--app", "shop", "--member", member, "--refresh-token",
                      "-", "--access-token", "-", "--expires-in", str(ACCESS_S)],
                     input_text="%s\n%s\n" % (refresh, access))
        self.assertEqual(r.returncode, 0, r.stderr)
        row = self.row(member)
        self.assertEqual(self.opens(row["refresh"], "shop", member, "refresh_token"), refresh)
        self.assertEqual(self.opens(row["access"], "shop", member, "access_token"), access)
        # One token, a CRLF line end and no newline at all: the line end is no part of it.
        for text in ("%s\r\n", "%s"):
            refresh = self.token()
            r = self.cli(["token", "set", "--app", "shop", "--member", member,
                          "--refresh-token", "-"], input_text=text % refresh)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(self.opens(self.row(member)["refresh"], "shop", member,
                                        "refresh_token"), refresh)
        self.assertEqual(self.secrets_in_tables(), [])

    def test_stdin_with_the_wrong_lines_is_refused_and_changes_nothing(self):
        member, refresh = new_member(), self.token()
        self.set_grant(member, refresh)
        before = self.row(member)
        cases = [
            (["--refresh-token", "-"], ""),
            (["--refresh-token", "-"], "\n"),
            (["--refresh-token", "-"], "%s\n%s\n" % (self.token(), self.token())),
            (["--refresh-token", "-", "--access-token", "-", "--expires-in", "60"],
             "%s\n" % self.token()),
            (["--refresh-token", "-"], "%s %s\n" % (self.token(), self.token())),
            (["--refresh-token", "-"], "x" * 5000),
        ]
        for extra, text in cases:
            with self.subTest(extra=extra, lines=text.count("\n")):
                r = self.cli(["token", "set", "--app", "shop", "--member", member] + extra,
                             input_text=text)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertRegex(r.stderr, r"^receiver: token set: (stdin: |.*token)")
        after = self.row(member)
        self.assertEqual((after["refresh"], after["generation"]),
                         (before["refresh"], before["generation"]))

    def test_usage_errors_exit_2_and_store_nothing(self):
        member, token = new_member(), self.token()
        cases = [
            (["--member", member, "--refresh-token", token], "give --app NAME"),
            (["--app", "shop", "--refresh-token", token], "give --app NAME"),
            (["--app", "shop", "--member", member], "give --app NAME"),
            (["--app", "nosuch", "--member", member, "--refresh-token", token],
             "no [[app]] named 'nosuch'"),
            (["--app", "shop", "--member", "b2b 1", "--refresh-token", token], "--member is"),
            (["--app", "shop", "--member", member, "--refresh-token", token,
              "--access-token", self.token()], "go together"),
            (["--app", "shop", "--member", member, "--refresh-token", token,
              "--expires-in", "60"], "go together"),
            (["--app", "shop", "--member", member, "--refresh-token", token,
              "--access-token", self.token(), "--expires-in", "0"], "are seconds"),
            (["--app", "shop", "--member", member, "--refresh-token", token,
              "--refresh-expires-in", "1e9"], "are seconds"),
            (["--app", "shop", "--member", member, "--refresh-token", token + "\t"],
             "--refresh-token: a token is printable ASCII"),
        ]
        for args, said in cases:
            with self.subTest(args=args[:2]):
                r = self.cli(["token", "set"] + args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(said, r.stderr)
        self.assertEqual(self.db.value(
            "SELECT count(*) FROM member_tokens WHERE member_id = '%s'" % member), "0")

    def test_the_table_refuses_a_token_in_the_clear(self):
        member, refresh = new_member(), self.token()
        self.set_grant(member, refresh)
        for column in ("refresh_token", "access_token"):
            with self.subTest(column=column):
                with self.assertRaisesRegex(RuntimeError, "violates check constraint"):
                    self.db.sql("UPDATE member_tokens SET %s = convert_to('%s', 'UTF8'),"
                                " access_expires_at = now() WHERE member_id = '%s'"
                                % (column, self.token(), member))
        self.assertEqual(self.opens(self.row(member)["refresh"], "shop", member,
                                    "refresh_token"), refresh)


class TestList(TokensTest):

    def test_list_shows_members_expiry_and_state_never_a_token(self):
        shop_member, dj_member = new_member(), new_member()
        self.set_grant(shop_member, self.token(), self.token())
        self.set_grant(dj_member, self.token(), app="dj", refresh_s=3 * 86400)
        expires = self.db.value("SELECT access_expires_at::text FROM member_tokens"
                                " WHERE member_id = '%s'" % shop_member)
        r = self.cli(["token", "list"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("member grants (tokens are never shown):", r.stdout)
        lines = {m: [line for line in r.stdout.splitlines() if m in line]
                 for m in (shop_member, dj_member)}
        self.assertEqual(len(lines[shop_member]), 1, r.stdout)
        self.assertIn(expires, lines[shop_member][0])
        self.assertRegex(lines[shop_member][0], r"^shop\s*\|%s\s*\|active\s*\|" % shop_member)
        self.assertRegex(lines[dj_member][0], r"refresh token expires within 7 days")
        r = self.cli(["token", "list", "--app", "dj"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(dj_member, r.stdout)
        self.assertNotIn(shop_member, r.stdout)
        r = self.cli(["token", "list", "--app", "nosuch"])
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn("no [[app]] named 'nosuch'", r.stderr)

    def test_a_dead_grant_says_authorize_again(self):
        member = new_member()
        self.set_grant(member, self.token())
        self.db.sql("UPDATE member_tokens SET state = 'needs_authorization',"
                    " last_error = 'refresh token refused' WHERE member_id = '%s'" % member)
        r = self.cli(["token", "list", "--app", "shop"])
        line = [x for x in r.stdout.splitlines() if member in x]
        self.assertEqual(len(line), 1, r.stdout)
        self.assertRegex(line[0], r"\|needs_authorization\s*\|.*\|authorize again\s*\|"
                         r"refresh token refused")


class TestNoSecretInLogs(TokensTest):

    def test_a_daemon_with_the_key_logs_no_token_or_key(self):
        self.set_grant(new_member(), self.token(), self.token())
        rx = Receiver(self.db, extra=self.rx.extra, migrate=False)
        try:
            self.assertIn('"event":"serving"', rx.log_text())
        finally:
            errors = stop_receivers([rx])
        self.assertEqual(errors, [])
        self.assertNoSecret(rx.log_text(), "the daemon's log")
        self.assertEqual(self.secrets_in_tables(), [])


class TestKey(unittest.TestCase):
    """`[tokens] key`: unset, and malformed."""

    @classmethod
    def setUpClass(cls):
        cls.db = PG.create_database("tokens_key")
        cls.rx = Receiver(cls.db, start=False)

    def write_config(self, key, name):
        path = os.path.join(WORK, "%s-%s.toml" % (name, uuid.uuid4().hex))
        with open(path, "w") as f:
            f.write(render_config("127.0.0.1:1", self.db.url, {"tokens": {"key": key}}))
        with open(path) as f:
            line = [i for i, text in enumerate(f, 1) if re.match(r"^key = ", text)]
        self.assertEqual(len(line), 1)
        return path, line[0]

    def test_set_without_a_key_exits_2_and_says_so(self):
        token, member = new_token(), new_member()
        r = run_receiver(["token", "set", "-c", self.rx.config, "--app", "shop", "--member",
                          member, "--refresh-token", token])
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertRegex(r.stderr, r"^receiver: token set: \[tokens\] key is not set: .*"
                         r"openssl rand -hex 32")
        self.assertNotIn(token, r.stderr)
        self.assertEqual(self.db.value("SELECT count(*) FROM member_tokens"), "0")
        # Listing needs no key.
        r = run_receiver(["token", "list", "-c", self.rx.config])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_a_malformed_key_is_refused_naming_file_line_and_key(self):
        good = os.urandom(32).hex()
        key_file = os.path.join(WORK, "bad-%s.key" % uuid.uuid4().hex)
        with open(key_file, "w") as f:
            f.write(good[:63] + "\n")
        env_name = "RECEIVER_TEST_KEY_%s" % uuid.uuid4().hex[:8].upper()
        cases = [
            ("63 digits", good[:63], good[:63]),
            ("65 digits", good + "a", good),
            ("not hex", good[:62] + "zz", good[:62]),
            ("a space", good[:32] + " " + good[33:], good[33:]),
            ("a file of 63", "file:" + key_file, good[:63]),
            ("a variable of 65", "env:" + env_name, good),
        ]
        for what, value, secret in cases:
            with self.subTest(what=what):
                path, line = self.write_config(value, "badkey")
                for command in (["token", "list"], ["serve"]):
                    r = run_receiver(command + ["-c", path], timeout=10,
                                     env={env_name: good + "b"})
                    self.assertEqual((r.returncode, r.stdout), (2, ""), r.stderr)
                    self.assertEqual(
                        r.stderr, "receiver: %s:%d: tokens.key: must be 64 hex digits (32 "
                        "bytes, as `openssl rand -hex 32` prints them)\n" % (path, line))
                    self.assertNotIn(secret[:16], r.stderr)

    def test_a_good_key_in_either_case_loads(self):
        for key in (os.urandom(32).hex(), os.urandom(32).hex().upper(), ""):
            path, _ = self.write_config(key, "goodkey")
            r = run_receiver(["token", "list", "-c", path], timeout=10)
            self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
