#!/usr/bin/env python3
"""The shared library exports exactly the rwkv_ API of <rwkv/client.h>, all at version RWKV_CLIENT_0.1,
and has the soname librwkv-client.so.0."""
import re
import subprocess
import sys

lib, nm, header = sys.argv[1:4]

out = subprocess.run([nm, "-D", "--defined-only", "--with-symbol-versions", lib],
                     check=True, capture_output=True, text=True).stdout
exported = {}
for line in out.splitlines():
    parts = line.split()
    if len(parts) < 3 or parts[1] in ("A",):  # the version node itself shows as an absolute symbol
        continue
    name = parts[2]
    base, _, version = name.partition("@")
    exported[base] = version.lstrip("@")

bad = [s for s in exported if not s.startswith("rwkv_")]
if bad:
    sys.exit("symbols without the rwkv_ prefix are exported: %s" % ", ".join(sorted(bad)))
unversioned = [s for s, v in exported.items() if v != "RWKV_CLIENT_0.1"]
if unversioned:
    sys.exit("symbols outside RWKV_CLIENT_0.1: %s" % ", ".join(sorted(unversioned)))

declared = set(re.findall(r"RWKV_EXPORT[^;(]*?\b(rwkv_\w+)\s*\(", open(header).read()))
missing = declared - set(exported)
extra = set(exported) - declared
if missing:
    sys.exit("declared in client.h but not exported: %s" % ", ".join(sorted(missing)))
if extra:
    sys.exit("exported but not declared in client.h: %s" % ", ".join(sorted(extra)))

dyn = subprocess.run(["readelf", "-d", lib], capture_output=True, text=True).stdout
if dyn and "librwkv-client.so.0" not in dyn:
    sys.exit("soname is not librwkv-client.so.0")
print("%d symbols exported, all rwkv_* at RWKV_CLIENT_0.1" % len(exported))
