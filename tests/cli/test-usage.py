#!/usr/bin/env python3
"""test-usage: rwkvctl(1)'s "2 on invalid usage", verb by verb: each command line below is wrong on
its face (an unknown sub-command, a missing or extra argument, an option value out of range) and
must exit 2 with one "rwkvctl:" line that names the problem, print nothing on stdout, and leave the
daemon untouched. Errors that come from files, the model or the daemon stay exit status 1."""

import json
import os

import clitest
import rwkvtest
from rwkvtest import check

# (arguments, what the one line must contain); M is the model file, OUT a path in the scratch folder.
USAGE = [
    (["bogus"], "unknown command 'bogus'"),
    (["--bogus", "status"], "unrecognized option '--bogus'"),
    # model
    (["model"], "expected info, convert or random"),
    (["model", "bogus"], "unknown command 'bogus'"),
    (["model", "info"], "expected one FILE"),
    (["model", "info", "M", "M"], "expected one FILE"),
    (["model", "info", "--bogus", "M"], "unrecognized option '--bogus'"),
    (["model", "convert", "M"], "expected IN and OUT"),
    (["model", "convert", "--type", "q9", "M", "OUT"], "unknown type 'q9'"),
    (["model", "random", "--layers", "-1", "--embd", "64", "--vocab", "256", "OUT"], "--layers"),
    (["model", "random", "--layers", "0", "--embd", "64", "--vocab", "256", "OUT"], "--layers 0"),
    (["model", "random", "--layers", "1", "--embd", "100", "--vocab", "256", "OUT"], "--embd 100"),
    (["model", "random", "--layers", "1", "--embd", "64", "--vocab", "0", "OUT"], "--vocab 0"),
    (["model", "random", "--version", "6", "--layers", "1", "--embd", "64", "--vocab", "256", "OUT"], "--version 6"),
    (["model", "random", "--layers", "1", "--embd", "64", "--vocab", "256", "--type", "q9", "OUT"], "--type"),
    (["model", "random", "--layers", "1", "--embd", "64", "OUT"], "are required"),
    (["model", "random", "--layers", "1", "--embd", "64", "--vocab", "256"], "expected one OUT"),
    # eval
    (["eval", "--model", "M", "--tokens", "34,,110", "--logits"], "invalid --tokens '34,,110'"),
    (["eval", "--model", "M", "--tokens", "x", "--logits"], "invalid --tokens 'x'"),
    (["eval", "--tokens", "1"], "--model FILE is required"),
    (["eval", "--model", "M"], "--tokens LIST is required"),
    (["eval", "--model", "M", "--tokens", "1", "--threads", "-1"], "invalid --threads '-1'"),
    (["eval", "--model", "M", "--tokens", "1", "extra"], "unexpected argument 'extra'"),
    # bench
    (["bench", "--model", "M", "--gen", "0"], "invalid --gen '0'"),
    (["bench", "--model", "M", "--repeat", "0"], "invalid --repeat '0'"),
    (["bench", "--model", "M", "--batch", "x"], "invalid --batch 'x'"),
    (["bench", "--model", "M", "--threads", "-1"], "invalid --threads '-1'"),
    (["bench", "--model", "M", "--bogus"], "unrecognized option '--bogus'"),
    (["bench"], "--model FILE is required"),
    # run, perplexity
    (["run", "--model", "M", "--threads", "-1", "x"], "invalid --threads '-1'"),
    (["run", "--model", "M", "--min-p", "1", "x"], "min-p 1"),
    (["run", "--model", "M", "--top-p", "2", "x"], "top-p 2"),
    (["run", "--model", "M", "--temperature", "x", "x"], "invalid --temperature 'x'"),
    (["run", "--model", "M", "--max-tokens", "-1", "x"], "invalid --max-tokens '-1'"),
    (["run", "--model", "M", "--seed", "-1", "x"], "invalid --seed '-1'"),
    (["run", "--model", "M", "--stop", "", "x"], "--stop"),
    (["run", "--model", "M", "a", "b"], "one argument"),
    (["run", "x"], "--model FILE is required"),
    (["perplexity", "--model", "M", "extra"], "unexpected argument 'extra'"),
    (["perplexity"], "--model FILE is required"),
    # tokenize, detokenize
    (["tokenize", "extra"], "unexpected argument 'extra'"),
    (["detokenize", "--json"], "--json is not supported"),
    (["detokenize", "12", "x"], "'x' is not a token id"),
    # online: refused before the daemon is called
    (["generate", "--min-p", "1", "x"], "invalid --min-p '1'"),
    (["generate", "--top-p", "0", "x"], "invalid --top-p '0'"),
    (["generate", "--temperature", "-1", "x"], "invalid --temperature '-1'"),
    (["generate", "--max-tokens", "-1", "x"], "invalid --max-tokens '-1'"),
    (["generate", "--penalty-decay", "2", "x"], "invalid --penalty-decay '2'"),
    (["generate", "--seed", "x", "x"], "invalid --seed 'x'"),
    (["generate", "--stop", "", "x"], "the --stop string is empty"),
    (["generate", "--session", "", "x"], "the --session id is empty"),
    (["generate", "a", "b"], "one PROMPT argument at most"),
    (["generate", "--bogus", "x"], "unrecognized option '--bogus'"),
    (["chat"], "chat --session ID"),
    (["chat", "--session", ""], "the --session id is empty"),
    (["chat", "--session", "c", "extra"], "chat --session ID"),
    (["session"], "list | show ID"),
    (["session", "bogus"], "unknown sub-command 'bogus'"),
    (["session", "show"], "wrong number of arguments"),
    (["session", "list", "x"], "wrong number of arguments"),
    (["session", "export", "x"], "wrong number of arguments"),
    (["session", "show", ""], "the session id is empty"),
    (["generate", "--session", "bad id!", "x"], "is not a session id"),
    (["generate", "--session", "x" * 65, "x"], "is not a session id"),
    (["generate", "--session", "a/b", "x"], "is not a session id"),
    (["generate", "--session", ".hidden", "x"], "is not a session id"),
    (["session", "show", "a/b"], "is not a session id"),
    (["generate", "--stop", "y" * 257, "x"], "at most 256 bytes"),
    (["generate"] + [a for i in range(17) for a in ("--stop", "s%d" % i)] + ["x"], "at most 16 --stop strings"),
    (["chat", "--session", "c"] + [a for i in range(16) for a in ("--stop", "s%d" % i)], "at most 15 --stop strings"),
    (["status", "extra"], "no arguments expected"),
    (["status", "--bogus"], "unrecognized option '--bogus'"),
]

# Not usage errors: a file, the model or the daemon says no (exit status 1).
ERRORS = [
    (["model", "info", "MISSING"], "MISSING"),
    (["eval", "--model", "M", "--tokens", "999999", "--logits"], "outside the vocabulary"),
    (["run", "--model", "MISSING", "x"], "cannot load"),
    (["session", "show", "no-such-session"], "no-such-session"),
    # a daemon's own lower limit (rwkvd.conf) is the daemon's to refuse
]


def main():
    with rwkvtest.Bus() as bus:
        model = rwkvtest.test_model(bus.tmp)
        out = os.path.join(bus.tmp, "out.rwkv")
        missing = os.path.join(bus.tmp, "missing.rwkv")
        names = {"M": model, "OUT": out, "MISSING": missing}
        with rwkvtest.Daemon(bus, model=model, threads=1):
            c = clitest.Ctl(bus.address)
            failed = []  # every row that fails, not only the first
            for table, status in ((USAGE, 2), (ERRORS, 1)):
                for args, what in table:
                    args = [names.get(a, a) for a in args]
                    try:
                        c.error(*args, status=status, contains=names.get(what, what), input=b"")
                    except AssertionError as e:
                        failed.append(str(e))
            check(not failed, "%d of %d rows:\n  %s" % (len(failed), len(USAGE) + len(ERRORS), "\n  ".join(failed)))
            check(not os.path.exists(out), "a refused command wrote %s" % out)
            sessions = json.loads(c.ok("--json", "session", "list"))["sessions"]
            check(sessions == [], "refused commands created sessions: %r" % sessions)
    print("ok: %d usage errors, %d other errors" % (len(USAGE), len(ERRORS)))


if __name__ == "__main__":
    rwkvtest.run_test(main)
