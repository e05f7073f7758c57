#!/usr/bin/env python3
"""test-model: the embedded default model (models/default.rwkv) is what models/README.md says.

- it exists, is at most 8 MB, and `rwkvctl model info` reads it as a byte-level RWKV-7;
- `rwkvctl eval` gives the logits the training script's PyTorch model gives for the same tokens
  (tests/packaging/default-model.logits: computed in float64 from the exported weights rounded to
  the file's f16, by `tools/train/train_rwkv7.py logits`), within a float32-accumulation tolerance.

Skips (77) while the model or rwkvctl is not in the tree yet.
"""

import os
import subprocess
import sys

SKIP = 77
MAX_BYTES = 8 << 20
# The engine runs float32 (f16 weights, float32 arithmetic) against a float64 reference of the
# same rounded weights: a few 1e-4 is the usual spread; a wrong op is off by whole units.
TOLERANCE = 5e-3


def skip(msg):
    print("SKIP: " + msg, file=sys.stderr)
    sys.exit(SKIP)


def main():
    src = os.environ.get("RWKV_SOURCE_ROOT")
    build = os.environ.get("RWKV_BUILD_ROOT")
    if not src or not build:
        skip("run through meson test")
    model = os.path.join(src, "models", "default.rwkv")
    expected_path = os.path.join(src, "tests", "packaging", "default-model.logits")
    if not os.path.exists(model):
        skip("models/default.rwkv is not in this tree yet")
    size = os.path.getsize(model)
    if size > MAX_BYTES:
        print(f"FAIL: models/default.rwkv is {size} bytes (> {MAX_BYTES})", file=sys.stderr)
        return 1
    rwkvctl = os.path.join(build, "tools", "rwkvctl", "rwkvctl")
    if not os.access(rwkvctl, os.X_OK):
        skip("rwkvctl is not built in this tree")

    r = subprocess.run([rwkvctl, "model", "info", model], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: rwkvctl model info: {r.stderr.strip()}", file=sys.stderr)
        return 1
    info = r.stdout.lower()
    for want in ("7", "256"):
        if want not in info:
            print(f"FAIL: model info does not mention {want!r}:\n{r.stdout}", file=sys.stderr)
            return 1

    with open(expected_path) as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    header = lines[0]
    assert header.startswith("# tokens "), header
    tokens = header[len("# tokens "):]
    expected = [float(x) for x in lines[1:]]
    r = subprocess.run([rwkvctl, "eval", "--model", model, "--tokens", tokens, "--logits"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: rwkvctl eval: {r.stderr.strip()}", file=sys.stderr)
        return 1
    got = [float(x) for x in r.stdout.split()]
    if len(got) != len(expected):
        print(f"FAIL: {len(got)} logits, expected {len(expected)}", file=sys.stderr)
        return 1
    diff = max(abs(a - b) for a, b in zip(got, expected))
    argmax_ok = got.index(max(got)) == expected.index(max(expected))
    print(f"default model: {size} bytes, tokens {tokens}, max |logit diff| {diff:.3g}, "
          f"argmax {'agrees' if argmax_ok else 'DIFFERS'}")
    if diff > TOLERANCE or not argmax_ok:
        print(f"FAIL: logits differ from the PyTorch reference by {diff:.3g} (> {TOLERANCE})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
