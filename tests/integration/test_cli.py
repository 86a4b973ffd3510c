"""test_cli.py - the command line against its own usage text.

`receiver help` is generated from main.c's table of commands; these tests
read it back and check that the binary does what it says: every command it
lists is accepted, each accepts exactly the options its usage line shows
(anything else exits 2 with "CMD: unexpected argument"), an unknown command
exits 2, and `version` prints the version line.  A command may be two
words ("token set"): the first alone, or with an unknown second one, exits
2.  No database: a command that got past the command line fails on a
configuration file that does not exist, which is how a test tells
"accepted" from "refused" (well under a second in all)."""

import os
import re
import unittest

from harness import REPO, WORK, run_receiver

MISSING = os.path.join(WORK, "no-such-config.toml")

# Each option the command line knows, with a value where it takes one.
OPTIONS = {
    "--app": ["--app", "shop"],
    "--since": ["--since", "2025-01-01"],
    "--until": ["--until", "2025-01-02"],
    "--field": ["--field", "_dj_signature"],
    "--retry-dead": ["--retry-dead"],
    "--subscriber": ["--subscriber", "erp"],
    "--enable": ["--enable", "erp"],
    "--replay": ["--replay", "erp"],
    "--test": ["--test", "erp"],
    "--member": ["--member", "b2b-2248544159"],
    "--refresh-token": ["--refresh-token", "-"],
    "--access-token": ["--access-token", "-"],
    "--expires-in": ["--expires-in", "36000"],
    "--refresh-expires-in": ["--refresh-expires-in", "15552000"],
    "ORDER_ID...": ["2908059205527363456"],
}


def usage_lines():
    """{command: synopsis} from `receiver help`; a command of two words
    ("token set") is one key."""
    r = run_receiver(["help"], timeout=10)
    assert r.returncode == 0, r.stderr
    commands = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^(?:usage:| {6}) receiver (\[?)([a-z]+(?: [a-z-]+)?)\]?(.*)$", line)
        if m:
            commands[m.group(2)] = m.group(3)
    return r.stdout, commands


class CommandLineTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.help, cls.commands = usage_lines()

    def assertConfigError(self, args):
        """ARGS got past the command line: it stops at the missing file."""
        r = run_receiver(args + ["-c", MISSING], timeout=10)
        self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stderr))
        self.assertIn("receiver: %s: " % MISSING, r.stderr, args)

    def test_help_lists_the_commands_and_the_notes(self):
        self.assertEqual(sorted(self.commands),
                         sorted(["serve", "migrate", "reconcile", "sweep", "jobs", "relay",
                                 "token set", "token list", "sign", "verify", "version"]))
        self.assertTrue(self.help.startswith("usage: receiver [serve] "), self.help)
        self.assertIn("\nFILE defaults to /etc/receiver/receiver.toml;", self.help)
        self.assertTrue(self.help.endswith("in Shanghai time (+08:00).\n"), self.help)
        for flag in ("--help", "-h"):
            r = run_receiver([flag], timeout=10)
            self.assertEqual((r.returncode, r.stdout), (0, self.help), flag)

    def test_every_listed_command_is_accepted(self):
        for command in self.commands:
            with self.subTest(command=command):
                if command == "version":
                    self.assertEqual(run_receiver([command], timeout=10).returncode, 0)
                else:
                    self.assertConfigError(command.split())

    def test_serve_is_the_default_command(self):
        self.assertConfigError([])
        r = run_receiver(["--app", "shop"], timeout=10)
        self.assertEqual((r.returncode, r.stderr),
                         (2, "receiver: serve: unexpected argument (try --help)\n"))

    def test_unknown_command_exits_2(self):
        r = run_receiver(["frobnicate", "-c", MISSING], timeout=10)
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (2, "", "receiver: unknown command 'frobnicate' (try --help)\n"))

    def test_each_command_takes_the_options_its_usage_shows(self):
        for command, synopsis in self.commands.items():
            if command == "version":
                continue
            for option, argv in OPTIONS.items():
                with self.subTest(command=command, option=option):
                    if re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(option), synopsis):
                        self.assertConfigError(command.split() + argv)
                        continue
                    r = run_receiver(command.split() + argv + ["-c", MISSING], timeout=10)
                    self.assertEqual(
                        (r.returncode, r.stderr),
                        (2, "receiver: %s: unexpected argument (try --help)\n" % command))

    def test_a_group_word_alone_or_with_an_unknown_command_exits_2(self):
        for argv in (["token"], ["token", "-c", MISSING]):
            r = run_receiver(argv, timeout=10)
            self.assertEqual((r.returncode, r.stdout, r.stderr),
                             (2, "", "receiver: token: name one of its commands (try --help)\n"))
        r = run_receiver(["token", "frobnicate", "-c", MISSING], timeout=10)
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (2, "", "receiver: unknown command 'token frobnicate' (try --help)\n"))
        r = run_receiver(["token", "list", "--member", "b2b-1", "-c", MISSING], timeout=10)
        self.assertEqual((r.returncode, r.stderr),
                         (2, "receiver: token list: unexpected argument (try --help)\n"))

    def test_option_not_taken_exits_2(self):
        r = run_receiver(["migrate", "--since", "2025-01-01", "-c", "x"], timeout=10)
        self.assertEqual((r.returncode, r.stderr),
                         (2, "receiver: migrate: unexpected argument (try --help)\n"))
        r = run_receiver(["jobs", "--bogus", "-c", MISSING], timeout=10)
        self.assertEqual((r.returncode, r.stderr),
                         (2, "receiver: unexpected argument '--bogus' (try --help)\n"))

    def test_version(self):
        latest = max(int(f[:3]) for f in os.listdir(os.path.join(REPO, "sql"))
                     if re.match(r"^\d{3}_.*\.sql$", f))
        r = run_receiver(["version"], timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^receiver \d+\.\d+\.\d+ \(schema version %d\)\n$" % latest)


if __name__ == "__main__":
    unittest.main()
