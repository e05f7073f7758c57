#!/usr/bin/env python3
"""test-run-defaults: `rwkvctl run` samples with the daemon's defaults for the model, as rwkvctl(1)
says: on a byte-level model top-p 1 and no penalties, on a World model top-p 0.3 and penalties 0.5.
So, for the same seed and no sampling options, run (in-process) prints the text that
`generate` prints through rwkvd, on models/default.rwkv (byte-level, trained: its distribution is
far from flat, so the nucleus cut shows) and on a small World model. Options given still win."""

import os

import clitest
import rwkvtest
from rwkvtest import check

PROMPT = "And God said"
TOKENS = "48"


def same_text(run, gen):
    """run ends its text with U+FFFD for a character the last token left incomplete; the daemon keeps
    such bytes for the session's next generation instead. Nothing to do with sampling."""
    return run == gen or (run.startswith(gen) and run[len(gen):] == "\ufffd".encode())


def compare(bus, model, label, same_as_options, other_options):
    with rwkvtest.Daemon(bus, model=model, threads=1, name="rwkvd-" + label):
        c = clitest.Ctl(bus.address)
        for seed in ("5", "11", "12345"):
            common = ("--seed", seed, "--max-tokens", TOKENS)
            run = c.ok("run", "--model", model, "--threads", "1", *common, PROMPT)
            gen = c.ok("generate", *common, PROMPT)
            check(same_text(run, gen), "%s, seed %s: run %r, generate %r" % (label, seed, run, gen))
            explicit = c.ok("run", "--model", model, "--threads", "1", *common, *same_as_options, PROMPT)
            check(explicit == run, "%s, seed %s: the defaults are not %s: %r vs %r"
                  % (label, seed, " ".join(same_as_options), run, explicit))
        # The other kind's defaults give other text (else this test could not tell them apart).
        differs = any(
            not same_text(c.ok("run", "--model", model, "--threads", "1", "--seed", seed, "--max-tokens", TOKENS,
                               *other_options, PROMPT),
                          c.ok("generate", "--seed", seed, "--max-tokens", TOKENS, PROMPT))
            for seed in ("5", "11", "12345"))
        check(differs, "%s: %s gives the same text as the defaults" % (label, " ".join(other_options)))


def main():
    clitest.ctl_path()
    byte_model = os.path.join(rwkvtest.source_root(), "models", "default.rwkv")
    if not os.path.exists(byte_model):
        rwkvtest.skip("models/default.rwkv is absent")
    bytes_defaults = ("--top-p", "1", "--presence-penalty", "0", "--frequency-penalty", "0")
    world_defaults = ("--top-p", "0.3", "--presence-penalty", "0.5", "--frequency-penalty", "0.5")
    with rwkvtest.Bus() as bus:
        compare(bus, byte_model, "byte-level", bytes_defaults, world_defaults)
        world = rwkvtest.world_test_model(bus.tmp, [b"And", b" God", b" said", b" the", b"th", b"e "])
        compare(bus, world, "World", world_defaults, bytes_defaults)
    print("ok")


if __name__ == "__main__":
    rwkvtest.run_test(main)
