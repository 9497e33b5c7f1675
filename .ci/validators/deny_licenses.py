"""Checks a generated system's deny.toml against its resolved dependencies without
cargo-deny: every third-party crate's license expression must be satisfied by the
`[licenses] allow` list, and every crate must come from an allowed registry.

Usage: python deny_licenses.py CELL_DIR   (the cell must have been built: Cargo.lock
and the crate sources are there, so `cargo metadata --offline` resolves).
Prints one line per finding and a summary; exits 1 on any finding."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path


def parse(expr: str):
    """SPDX expression -> nested ('or'|'and', [..]) / license-id tree. '/' is OR."""
    tokens = re.findall(r"\(|\)|/|[A-Za-z0-9.+-]+", expr)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def term():
        if peek() == "(":
            take()
            node = disjunction()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses in {expr!r}")
            return node
        ident = take()
        if peek() == "WITH":
            take()
            ident = f"{ident} WITH {take()}"
        return ident

    def conjunction():
        items = [term()]
        while peek() == "AND":
            take()
            items.append(term())
        return ("and", items)

    def disjunction():
        items = [conjunction()]
        while peek() in ("OR", "/"):
            take()
            items.append(conjunction())
        return ("or", items)

    node = disjunction()
    if pos != len(tokens):
        raise ValueError(f"cannot parse license expression {expr!r}")
    return node


def satisfied(node, allow: set[str]) -> bool:
    if isinstance(node, str):
        return node in allow
    kind, items = node
    results = [satisfied(i, allow) for i in items]
    return any(results) if kind == "or" else all(results)


def main() -> int:
    cell = Path(sys.argv[1])
    config = tomllib.loads((cell / "deny.toml").read_text())
    allow = set(config["licenses"]["allow"])
    registries = set(config["sources"]["allow-registry"])
    if config["sources"].get("unknown-git") != "deny" or config["sources"].get("unknown-registry") != "deny":
        print(f"{cell}/deny.toml: unknown registries and git sources must be denied")
        return 1
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--offline", "--locked", "--format-version", "1"],
            cwd=cell, check=True, capture_output=True, text=True,
        ).stdout
    )
    findings = 0
    crates = 0
    for package in metadata["packages"]:
        source = package["source"]
        if source is None:  # the workspace's own crates: publish = false, no license
            continue
        crates += 1
        kind, _, url = source.partition("+")
        if kind not in ("registry", "sparse") or url not in registries:
            print(f"{cell}: {package['name']} {package['version']}: source {source} not allowed")
            findings += 1
        license = package["license"]
        if not license:
            print(f"{cell}: {package['name']} {package['version']}: no SPDX license expression")
            findings += 1
        elif not satisfied(parse(license), allow):
            print(f"{cell}: {package['name']} {package['version']}: license {license!r} not allowed by deny.toml")
            findings += 1
    if crates == 0:
        print(f"{cell}: no dependencies resolved")
        return 1
    print(f"{cell}: {crates} crates, {findings} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
