#!/usr/bin/env python3
"""layers.py — check that no source file of crtheap calls a layer above its own.

The layers, bottom first, are listed in LAYERS; a file may call functions defined in
its own layer or below.  Calls are found from the object files' undefined symbols
(nm), so macros and inline helpers in headers count where they are expanded.  Prints
every upward call and exits 1 if there is one; prints the call graph with --graph."""
import subprocess, sys, os

LAYERS = [   # as src/modules.h lists them
    ["os", "osmesh", "diag", "sizeclass"],
    ["release", "registry", "options", "overflow", "counters"],
    ["segment"],
    ["page"],
    ["claim"],
    ["heap"],
    ["decay"],
    ["mesh"],
    ["purger", "thread"],
    ["trim", "walk", "stats", "control", "sample"],
    ["alloc", "crt", "cxx"],
]

def symbols(obj, kind):
    out = subprocess.run(["nm", kind, obj], capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if kind == "--undefined-only" and len(parts) >= 2:
            names.add(parts[-1])
        elif kind == "--defined-only" and len(parts) == 3 and parts[1] in "TtWwDdBbRr":
            names.add(parts[2])
    return names

def main():
    objdir = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "build/obj"
    layer_of = {f: i for i, group in enumerate(LAYERS) for f in group}
    files = sorted(os.path.splitext(f)[0] for f in os.listdir(objdir) if f.endswith(".o"))
    unknown = [f for f in files if f not in layer_of]
    if unknown:
        print("layers.py: files in no layer:", " ".join(unknown))
        return 1
    defined = {f: symbols(f"{objdir}/{f}.o", "--defined-only") for f in files}
    owner = {s: f for f, syms in defined.items() for s in syms}
    bad = 0
    for f in files:
        calls = sorted({owner[s] for s in symbols(f"{objdir}/{f}.o", "--undefined-only") if s in owner and owner[s] != f})
        if "--graph" in sys.argv:
            print(f"{f} (layer {layer_of[f]}) -> {' '.join(calls)}")
        for g in calls:
            if layer_of[g] > layer_of[f]:
                used = sorted(s for s in symbols(f"{objdir}/{f}.o", "--undefined-only") if owner.get(s) == g)
                print(f"upward: {f}.c (layer {layer_of[f]}) uses {g}.c (layer {layer_of[g]}): {' '.join(used)}")
                bad += 1
    print(f"layers: {len(files)} files, {bad} upward uses")
    return 1 if bad else 0

sys.exit(main())
