#!/usr/bin/env python3
"""test-batch: generations that share decode steps give the text each gives alone.

Eight rwkvctl clients start at once on the embedded default model, each with its own prompt, seed
and sampling settings; Status must show that their tokens were decoded in shared steps
(decode_batch_max >= 2). Then each prompt runs again alone in a new session, and its text must be
the same as in the crowd. This checks what the batched decode step does per session: each session
gets its own logits, penalties and random stream (rwkvd samples a step's sessions in parallel on the
compute pool), and its own state.

The batched and single-session model steps run different kernels, so their logits differ in the
last bits; a draw could then differ only where it falls within ~1e-6 of a boundary between two
tokens' cumulative probabilities (about 1e-3 over the 512 draws here, for a flake). A session that
got another's logits or state differs within a few tokens."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rwkvtest as rt  # noqa: E402

TOKENS = 64
# prompt, seed, extra sampling options: every sampler stage (temperature, top-p, top-k, penalties)
PROMPTS = [
    ("And God said", 1, []),
    ("In the beginning", 2, ["--temperature", "0.7"]),
    ("And the LORD spake unto Moses, saying", 3, ["--top-p", "0.8"]),
    ("Blessed are", 4, ["--top-k", "12"]),
    ("Then", 5, ["--temperature", "1.2", "--top-p", "0.95"]),
    ("The word of the LORD came", 6, ["--presence-penalty", "0.5", "--frequency-penalty", "0.3"]),
    ("Now", 7, ["--temperature", "0"]),
    ("And it came to pass", 8, ["--top-k", "40", "--temperature", "0.9"]),
]


def main():
    ctl = rt.need_rwkvctl()
    model = rt.default_model()
    with rt.Bus() as bus:
        env = dict(os.environ, RWKVD_BUS_ADDRESS=bus.address)
        cfg = {"scheduler": {"max_batch": 8}, "limits": {"max_generations_per_user": 8}}
        with rt.Daemon(bus, model=model, config=cfg, threads=2) as d:

            def generate(session, prompt, seed, extra):
                return [ctl, "generate", "--session", session, "--max-tokens", str(TOKENS), "--seed", str(seed)] + \
                    extra + [prompt]

            procs = [subprocess.Popen(generate("crowd-%d" % i, p, seed, extra), env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
                     for i, (p, seed, extra) in enumerate(PROMPTS)]
            crowd = []
            for i, pr in enumerate(procs):
                out, err = pr.communicate(timeout=120)
                rt.check(pr.returncode == 0, "crowd client %d: %s" % (i, err.decode(errors="replace")))
                crowd.append(out)
            st = d.call("Status")[0]
            steps, total, widest = (st[k]["data"] for k in ("decode_steps", "tokens_total", "decode_batch_max"))
            print("crowd: %d tokens in %d decode steps (mean batch %.2f, largest %d)"
                  % (total, steps, total / steps, widest))
            rt.check(0 < total <= TOKENS * len(PROMPTS), "tokens_total %d" % total)
            rt.check(widest >= 2, "the clients never shared a decode step (decode_batch_max %d)" % widest)

            for i, (p, seed, extra) in enumerate(PROMPTS):
                r = subprocess.run(generate("alone-%d" % i, p, seed, extra), env=env, capture_output=True,
                                   timeout=120)
                rt.check(r.returncode == 0, "alone %d: %s" % (i, r.stderr.decode(errors="replace")))
                rt.check(r.stdout == crowd[i], "prompt %d (%r, seed %d %s): in a batch %r, alone %r"
                         % (i, p, seed, " ".join(extra), crowd[i], r.stdout))
                rt.check(len(r.stdout) > 0, "prompt %d generated nothing" % i)
                a = d.call("GetSession", "s", "crowd-%d" % i)[0]["tokens"]["data"]
                b = d.call("GetSession", "s", "alone-%d" % i)[0]["tokens"]["data"]
                rt.check(a == b, "prompt %d: %d session tokens in a batch, %d alone" % (i, a, b))
            after = d.call("Status")[0]
            rt.check(after["decode_batch_max"]["data"] == widest, "decode_batch_max moved without a crowd")
            rt.check(after["decode_steps"]["data"] - steps == after["tokens_total"]["data"] - total,
                     "one session alone: one token a step")
            print("all %d texts the same alone (%s bytes)" % (len(PROMPTS), ", ".join(str(len(c)) for c in crowd)))
            rt.check(d.stop() == 0, "exit status")


rt.run_test(main)
