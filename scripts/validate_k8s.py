#!/usr/bin/env python3
"""Validates every DIR/*.yaml with kubernetes-validate --strict (unknown
fields fail), one file at a time, for scripts/validate-deploy.sh:

    target/venv/bin/python scripts/validate_k8s.py DIR

A kind it has no schema for is only a warning there (a typo such as
"Deploymnet" would pass), and a file without a resource is a mistake: both
fail here. Prints kubernetes-validate's lines, a FAIL line per failed file,
and `kubernetes: N resources valid in M files`; exits 1 if any failed.
"""
import glob
import os
import subprocess
import sys


def validate(path, tool):
    """The number of resources that passed in `path`, and why it failed ("" if not)."""
    run = subprocess.run([tool, "--strict", path], capture_output=True, text=True)
    out = (run.stdout + run.stderr).rstrip("\n")
    if out:
        print(out)
    passed = out.count("passed for resource")
    why = []
    if run.returncode != 0:
        why.append(f"kubernetes-validate exited {run.returncode}")
    if any(line.startswith("WARN") for line in out.splitlines()):
        why.append("a warning (unknown kind?)")
    if passed == 0:
        why.append("no resource validated")
    return passed, ", ".join(why)


def main():
    folder = sys.argv[1]
    tool = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
    files = sorted(glob.glob(os.path.join(folder, "*.yaml")))
    failed = 0 if files else 1
    if not files:
        print(f"FAIL no manifest in {folder}")
    resources = 0
    for path in files:
        passed, why = validate(path, tool)
        resources += passed
        if why:
            print(f"FAIL {path}: {why}")
            failed += 1
    print(f"kubernetes: {resources} resources valid in {len(files)} files")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
