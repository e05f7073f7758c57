#!/usr/bin/env python3
"""test-model: `rwkvctl model random | info | convert` from the command line, offline.

Happy paths: a random model's info shows the shape asked for (text and --json) and the hash the
writer printed; the same seed writes the same bytes; convert keeps the logits `rwkvctl eval` gives
(exactly for a same-type copy, closely for f16; the reference tiny .bin and .pth files when
../shared/reference is present); --vocab embeds a World vocabulary that `tokenize --model` then uses.

Errors: a missing file, bad flags, truncated / garbage / empty / corrupt model files, an output that
cannot be written (missing folder, a folder in its place, a read-only folder, a full file system):
the exit status is non-zero, stderr is ONE line starting with "rwkvctl:", stdout is empty, and the
output folder holds nothing new (no OUT, no temporary file); an OUT that existed is left as it was.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rwkvtest as rt  # noqa: E402
from rwkvtest import check  # noqa: E402

CTL = None


def ctl(*args, input=None, prefix=()):
    return subprocess.run(list(prefix) + [CTL] + [str(a) for a in args], input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)


def ok(*args, **kw):
    r = ctl(*args, **kw)
    check(r.returncode == 0, "rwkvctl %s: exit %d: %s" % (" ".join(map(str, args)), r.returncode,
                                                            r.stderr.decode(errors="replace")))
    return r.stdout.decode()


def listing(d):
    return sorted(os.listdir(d))


def expect_error(args, contains=None, out=None, prefix=(), before=None):
    """The command fails with one "rwkvctl:" line on stderr and nothing on stdout; when out is
    given, its folder holds what it held before (so no OUT, no temporary file left behind)."""
    d = os.path.dirname(out) if out else None
    if d and before is None and os.path.isdir(d):
        before = listing(d)
    r = ctl(*args, prefix=prefix)
    what = "rwkvctl " + " ".join(map(str, args))
    err = r.stderr.decode(errors="replace")
    check(r.returncode != 0, "%s: succeeded: %s" % (what, r.stdout.decode(errors="replace")))
    lines = err.splitlines()
    check(len(lines) == 1 and lines[0].startswith("rwkvctl: "),
          "%s: stderr is not one 'rwkvctl:' line: %r" % (what, err))
    check(not r.stdout, "%s: printed on stdout: %r" % (what, r.stdout))
    if contains:
        check(contains in err, "%s: %r lacks %r" % (what, err, contains))
    if d and before is not None:
        check(listing(d) == before, "%s: the output folder changed: %s -> %s" % (what, before, listing(d)))
    return err.strip()


def logits(model, tokens, *extra):
    out = ok("eval", "--model", model, "--tokens", ",".join(map(str, tokens)), "--logits", "--threads", "1", *extra)
    return [float(x) for x in out.split()]


def max_diff(a, b):
    check(len(a) == len(b), "%d logits vs %d" % (len(a), len(b)))
    return max(abs(x - y) for x, y in zip(a, b))


def info_json(path, *extra):
    return json.loads(ok("model", "info", "--json", path, *extra))


def test_random_info(tmp):
    m = os.path.join(tmp, "r.rwkv")
    out = ok("model", "random", "--version", "7", "--layers", "2", "--embd", "128", "--vocab", "256", "--seed", "5", m)
    check(out.startswith("wrote %s (" % m) and ", hash " in out, "random printed %r" % out)
    h = out.split("hash ")[1].strip()
    text = ok("model", "info", m)
    for want in ("architecture:  rwkv7",
                 "shape:         2 layers, embedding 128, vocabulary 256, 2 heads of 64, ffn 512",
                 "tokenizer:     bytes", "hash:          " + h, "size:          %d bytes" % os.path.getsize(m)):
        check(want in text, "info lacks %r:\n%s" % (want, text))
    j = info_json(m)
    shape = {k: j[k] for k in ("n_layer", "n_embd", "n_vocab", "n_head", "head_size", "n_ffn")}
    check(shape == {"n_layer": 2, "n_embd": 128, "n_vocab": 256, "n_head": 2, "head_size": 64, "n_ffn": 512},
          "info --json shape %r" % shape)
    check(j["hash"] == h and j["size"] == os.path.getsize(m) and j["tokenizer"] == "bytes", "info --json %r" % j)
    check(j["dtypes"] == {"f32": {"tensors": j["tensors"], "bytes": j["dtypes"]["f32"]["bytes"]}}, "dtypes %r" % j)
    check("verify:        ok" in ok("model", "info", "--verify", m), "--verify of a fresh file is not ok")
    tensors = ok("model", "info", "--tensors", m).splitlines()
    check(sum(1 for l in tensors if l.startswith("  ")) == j["tensors"], "--tensors lists another count")
    check(any(l.split()[0] == "blocks.1.ffn.key.weight" and l.endswith("[512, 128]") for l in tensors if l.startswith("  ")),
          "--tensors lacks blocks.1.ffn.key.weight [512, 128]")

    # Same options, same bytes; another seed, another model. --json (after the verb or global).
    again = os.path.join(tmp, "r2.rwkv")
    j2 = json.loads(ok("model", "random", "--json", "--layers", "2", "--embd", "128", "--vocab", "256", "--seed", "5",
                       again))
    check(j2 == {"file": again, "size": os.path.getsize(m), "hash": h}, "random --json %r" % j2)
    with open(m, "rb") as a, open(again, "rb") as b:
        check(a.read() == b.read(), "the same seed wrote different bytes")
    j3 = json.loads(ok("--json", "model", "random", "--layers", "2", "--embd", "128", "--vocab", "256", "--seed", "6",
                       again))
    check(j3["hash"] != h, "seeds 5 and 6 gave the same model")

    # Another type and vocabulary size: the matrices are q8_0, the tokenizer needs a vocabulary.
    q = os.path.join(tmp, "q.rwkv")
    ok("model", "random", "--layers", "1", "--embd", "64", "--vocab", "300", "--type", "q8_0", q)
    jq = info_json(q)
    check(jq["wtype"] == "q8_0" and "q8_0" in jq["dtypes"] and jq["n_vocab"] == 300, "q8_0 info %r" % jq)
    check(jq["tokenizer"].startswith("none"), "vocabulary 300 without --vocab: tokenizer %r" % jq["tokenizer"])

    # A corrupt payload: --verify says so and fails (exit 1), info alone still describes it.
    bad = os.path.join(tmp, "flipped.rwkv")
    with open(m, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0x55
    with open(bad, "wb") as f:
        f.write(data)
    r = ctl("model", "info", "--verify", bad)
    check(r.returncode == 1 and "does not match the hash" in r.stdout.decode(), "--verify of a flipped byte: %r" % (r,))
    return m


def test_convert(tmp, m):
    # A same-type copy keeps every logit; f16 and q8_0 land near; the output says what it holds.
    toks = [73, 110, 32, 116, 104, 101]
    src = logits(m, toks)
    check(len(src) == 256, "eval printed %d logits" % len(src))
    same = os.path.join(tmp, "c-same.rwkv")
    ok("model", "convert", m, same)
    check(logits(same, toks) == src, "convert without --type changed the logits")
    check(info_json(same)["hash"] == info_json(m)["hash"], "a same-type copy of a .rwkv has another hash")
    for t, tol in (("f16", 2e-2), ("q8_0", 1e-1)):
        out = os.path.join(tmp, "c-%s.rwkv" % t)
        j = json.loads(ok("model", "convert", "--json", "--type", t, m, out))
        check(j["file"] == out and j["size"] == os.path.getsize(out) and j["hash"] == info_json(out)["hash"],
              "convert --json %r" % j)
        check(info_json(out)["wtype"] == t, "convert --type %s wrote %s" % (t, info_json(out)["wtype"]))
        d = max_diff(logits(out, toks), src)
        print("convert --type %s: max |logit diff| %.2g" % (t, d))
        check(d < tol, "--type %s: logits off by %g" % (t, d))

    # --vocab embeds a World vocabulary: info says so and tokenize --model uses it.
    vocab = os.path.join(tmp, "vocab.txt")
    w = os.path.join(tmp, "w-raw.rwkv")
    ok("model", "random", "--layers", "1", "--embd", "64", "--vocab", "260", w)
    with open(vocab, "w") as f:
        for b in range(256):
            f.write("%d %r %d\n" % (b + 1, bytes([b]), 1))
        f.write("257 'hello' 5\n258 b'\\xe2\\x82\\xac' 3\n")
    we = os.path.join(tmp, "w.rwkv")
    ok("model", "convert", w, we, "--vocab", vocab)
    check("tokenizer:     world (vocabulary embedded)" in ok("model", "info", we), "no embedded vocabulary")
    got = ok("tokenize", "--model", we, input="hello \u20ac!".encode()).split()
    check(got == ["257", "33", "258", "34"], "tokenize with the embedded vocabulary: %r" % got)
    # A vocabulary that cannot be read, or that does not fit the model (more ids than its 260 rows),
    # is an error: no file that nothing could load.
    w2 = os.path.join(tmp, "w2.rwkv")
    expect_error(["model", "convert", w, w2, "--vocab", os.path.join(tmp, "nope.txt")], contains="nope.txt", out=w2)
    with open(vocab, "a") as f:
        f.write("300 'too far' 7\n")
    expect_error(["model", "convert", w, w2, "--vocab", vocab], contains="does not fit", out=w2)


def test_reference(tmp):
    ref = rt.reference_dir()
    if not ref:
        print("note: ../shared/reference is absent: the reference .bin/.pth conversions are skipped")
        return
    tiny = os.path.join(ref, "tiny-rwkv")
    for name, exp in (("tiny-rwkv-7v0-834K-FP32.bin", "expected-logits-7v0-834K.bin"),
                      ("tiny-rwkv-4v0-660K-FP32.bin", "expected-logits-4v0-660K.bin")):
        src = os.path.join(tiny, name)
        out = os.path.join(tmp, name + ".rwkv")
        ok("model", "convert", src, out)
        a, b = logits(src, [34, 105, 110]), logits(out, [34, 105, 110])
        with open(os.path.join(tiny, exp), "rb") as f:
            import struct
            want = list(struct.unpack("<256f", f.read()))
        print("convert %s: max |diff| to the source %.2g, to the reference %.2g" % (name, max_diff(a, b),
                                                                                   max_diff(b, want)))
        check(max_diff(a, b) <= 1e-6, "%s: converted logits differ from the source's" % name)
        check(max_diff(b, want) <= 1e-4, "%s: converted logits differ from the reference" % name)
        check(info_json(out)["format"] == "rwkv" and info_json(src)["format"] != "rwkv", "formats")
    pth = os.path.join(ref, "pth-rwkv7", "rwkv7-L2-C128-V512-fp32.pth")
    out = os.path.join(tmp, "pth.rwkv")
    ok("model", "convert", pth, out)
    toks = [1, 42, 7, 300, 511]
    d = max_diff(logits(pth, toks), logits(out, toks))
    print("convert %s: max |diff| to the source %.2g" % (os.path.basename(pth), d))
    check(d <= 1e-6, ".pth: converted logits differ from the source's")
    j = info_json(out)
    check((j["n_layer"], j["n_embd"], j["n_vocab"]) == (2, 128, 512), "pth shape %r" % j)
    # Truncated reference files of both foreign formats.
    for src in (os.path.join(tiny, "tiny-rwkv-7v0-834K-FP32.bin"), pth):
        cut = os.path.join(tmp, "cut-" + os.path.basename(src))
        with open(src, "rb") as f, open(cut, "wb") as g:
            g.write(f.read()[: os.path.getsize(src) * 2 // 3])
        expect_error(["model", "info", cut], contains=os.path.basename(cut))
        expect_error(["model", "convert", cut, os.path.join(tmp, "o", "x.rwkv")], out=os.path.join(tmp, "o", "x.rwkv"))


def test_bad_input(tmp, m):
    outd = os.path.join(tmp, "o")
    os.makedirs(outd, exist_ok=True)
    out = os.path.join(outd, "x.rwkv")
    missing = os.path.join(tmp, "missing.rwkv")
    expect_error(["model", "info", missing], contains="missing.rwkv")
    expect_error(["model", "convert", missing, out], contains="missing.rwkv", out=out)

    # Bad flags and arguments: one line each (getopt's own messages too), nothing written.
    for args in (["model"], ["model", "frob"], ["model", "info"], ["model", "info", m, m], ["model", "info", "--bogus", m],
                 ["model", "info", m, "--vocab"], ["model", "convert", m], ["model", "convert", "--bogus", m, out],
                 ["model", "convert", "--type", "q9", m, out], ["model", "convert", "--type", "q5_1", m, out],
                 ["model", "random", "--layers", "1", "--embd", "64", out],
                 ["model", "random", "--layers", "x", "--embd", "64", "--vocab", "256", out],
                 ["model", "random", "--layers", "1", "--embd", "100", "--vocab", "256", out],
                 ["model", "random", "--layers", "0", "--embd", "64", "--vocab", "256", out],
                 ["model", "random", "--layers", "1", "--embd", "64", "--vocab", "0", out],
                 ["model", "random", "--version", "6", "--layers", "1", "--embd", "64", "--vocab", "256", out],
                 ["model", "random", "--seed", "-1", "--layers", "1", "--embd", "64", "--vocab", "256", out],
                 ["model", "random", "--bogus", "--layers", "1", "--embd", "64", "--vocab", "256", out],
                 ["model", "random", "--layers", "1", "--embd", "64", "--vocab", "256"],
                 ["model", "random", "--layers", "1", "--embd", "64", "--vocab", "256", out, out]):
        expect_error(args, out=out)

    # Truncated, garbage, empty and directory inputs: info and convert refuse them.
    with open(m, "rb") as f:
        data = f.read()
    cases = {"truncated.rwkv": data[: len(data) // 2], "header-only.rwkv": data[:64],
             "garbage.rwkv": bytes((i * 2654435761 >> 13) & 0xFF for i in range(100000)), "empty.rwkv": b""}
    for name, content in cases.items():
        p = os.path.join(tmp, name)
        with open(p, "wb") as f:
            f.write(content)
        expect_error(["model", "info", p], contains=name)
        expect_error(["model", "convert", p, out], contains=name, out=out)
    expect_error(["model", "info", outd])

    # A failed convert leaves an existing OUT as it was (the new file only replaces it when complete).
    keep = os.path.join(outd, "keep.rwkv")
    shutil.copyfile(m, keep)
    expect_error(["model", "convert", os.path.join(tmp, "truncated.rwkv"), keep], out=keep)
    with open(keep, "rb") as f:
        check(f.read() == data, "a failed convert changed the existing OUT")
    os.unlink(keep)


def test_unwritable(tmp, m):
    random_args = ["model", "random", "--layers", "1", "--embd", "64", "--vocab", "256"]
    for out in (os.path.join(tmp, "no", "such", "dir", "x.rwkv"),):
        expect_error(random_args + [out])
        expect_error(["model", "convert", m, out])
    # OUT names a folder: the temporary file is written next to it, then removed.
    folder = os.path.join(tmp, "o", "folder.rwkv")
    os.makedirs(folder)
    expect_error(random_args + [folder], out=folder, contains="Is a directory")
    expect_error(["model", "convert", m, folder], out=folder, contains="Is a directory")
    os.rmdir(folder)

    # A read-only folder: as nobody when we are root (root writes anywhere), else chmod 555.
    ro = os.path.join(tmp, "ro")
    os.makedirs(ro)
    prefix = ()
    if os.geteuid() == 0:
        if shutil.which("setpriv"):
            os.chmod(tmp, 0o755)
            os.chmod(m, 0o644)
            prefix = tuple(rt.as_user(rt.NOBODY))
            # nobody must be able to run the binary at all (a build tree in a 0700 folder, as in
            # a package build, is out of its reach): otherwise the case says nothing.
            if ctl("--version", prefix=prefix).returncode != 0:
                print("note: nobody cannot run %s here: the read-only folder case is skipped" % CTL)
                ro = None
        else:
            print("note: setpriv is absent: the read-only folder case is skipped")
            ro = None
    else:
        os.chmod(ro, 0o555)
    if ro:
        out = os.path.join(ro, "x.rwkv")
        expect_error(random_args + [out], out=out, prefix=prefix, contains="Permission denied")
        expect_error(["model", "convert", m, out], out=out, prefix=prefix, contains="Permission denied")
        os.chmod(ro, 0o755)

    # A full file system (a 128 KiB tmpfs in a private mount namespace; root only): ENOSPC while
    # writing, and the half-written temporary file is gone.
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("note: not root or no unshare: the full file system case is skipped")
        return
    full = os.path.join(tmp, "full")
    os.makedirs(full)
    for args in (random_args, ["model", "convert", m]):
        lst = os.path.join(tmp, "full-listing")
        script = 'mount -t tmpfs -o size=128k tmpfs "$1" || exit 99; d=$1; l=$2; shift 2; "$@"; rc=$?; ls -A "$d" >"$l"; exit $rc'
        r = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", full, lst, CTL] + args + [os.path.join(full, "x.rwkv")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        if r.returncode == 99:
            print("note: cannot mount a tmpfs here (%s): the full file system case is skipped"
                  % r.stderr.decode(errors="replace").strip())
            return
        err = r.stderr.decode(errors="replace").splitlines()
        check(r.returncode != 0 and len(err) == 1 and err[0].startswith("rwkvctl: ") and "No space left" in err[0],
              "%s on a full file system: exit %d, stderr %r" % (args[1], r.returncode, err))
        with open(lst) as f:
            left = f.read().split()
        check(not left and not r.stdout, "%s on a full file system left %r (stdout %r)" % (args[1], left, r.stdout))


def main():
    global CTL
    rt.build_root()
    CTL = rt.rwkvctl_path()
    if not CTL:
        rt.skip("rwkvctl is not built")
    tmp = tempfile.mkdtemp(prefix="rwkv-cli-model-")
    try:
        m = test_random_info(tmp)
        test_convert(tmp, m)
        test_reference(tmp)
        test_bad_input(tmp, m)
        test_unwritable(tmp, m)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    rt.run_test(main)
