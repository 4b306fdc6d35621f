#!/usr/bin/env python3
"""Prints the key tree of `inspect` JSON: one line per key path with its JSON
type, in document order, values left out (IDs, times and paths differ between
engines). Compare berth's with Docker's:

    diff <(berth inspect c1 | scripts/inspect-keys.py) \
         <(docker inspect c1 | scripts/inspect-keys.py)

Keys of maps whose keys are data (Labels, Tmpfs, Volumes, Networks, ...) are
kept: they say what the engine recorded. Array elements are walked as `[]`.
"""
import json
import sys


def kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array" if v else "array(empty)"
    return "object" if v else "object(empty)"


def walk(v, path, out):
    out.append(f"{path or '.'} {kind(v)}")
    if isinstance(v, dict):
        for k, e in v.items():
            walk(e, f"{path}.{k}", out)
    elif isinstance(v, list):
        for e in v:
            walk(e, f"{path}[]", out)


def main():
    doc = json.load(sys.stdin)
    out = []
    for obj in doc if isinstance(doc, list) else [doc]:
        walk(obj, "", out)
    print("\n".join(out))


if __name__ == "__main__":
    main()
