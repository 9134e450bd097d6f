#!/usr/bin/env python3
"""Keeps README.md in step with values.yaml, values.schema.json and health.lua.

A value is documented by a comment block starting with "# --" right above its
key in values.yaml; the block documents that key and everything below it.
This script fails when a value has no documentation, when a documented value
is missing from values.schema.json, or (with --check) when README.md's values
table or its argocd-cm patch (which embeds health.lua) differs from what is
generated here.

Usage, from charts/planops:
  python3 ci/docs_check.py            print the values table
  python3 ci/docs_check.py --check    exit 1 if README.md is out of date
  python3 ci/docs_check.py --write    rewrite both generated parts of README.md
Needs PyYAML.
"""

import json
import re
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent.parent
TABLE_MARKERS = ("<!-- values-table:start -->", "<!-- values-table:end -->")
ARGOCD_MARKERS = ("<!-- argocd-health:start -->", "<!-- argocd-health:end -->")
KINDS = ("OdooConnection", "ExceptionRule", "SupplierConnector", "ApprovalPolicy")
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-]+):(?:\s|$)")


def documented_paths(text):
    """Maps "a.b.c" to its description for every key with a "# --" block."""
    docs = {}
    stack = []  # (indent, key)
    pending = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = [stripped[len("# --"):].strip()]
            continue
        if stripped.startswith("#"):
            if pending is not None:
                pending.append(stripped.lstrip("#").strip())
            continue
        match = KEY_LINE.match(line)
        if not match:
            # List items and continuation lines belong to the key above.
            continue
        indent = len(match.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group("key")))
        if pending is not None:
            docs[".".join(k for _, k in stack)] = " ".join(p for p in pending if p)
            pending = None
    return docs


def leaves(values, prefix=""):
    """Every path in the values that holds something other than a non-empty map."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from leaves(value, path + ".")
        else:
            yield path


def lookup(values, path):
    for part in path.split("."):
        values = values[part]
    return values


def schema_has(schema, path):
    for part in path.split("."):
        props = schema.get("properties", {})
        if part not in props:
            return False
        schema = props[part]
    return True


def type_name(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def table(values, docs):
    rows = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for path, description in docs.items():
        default = json.dumps(lookup(values, path), separators=(",", ":"))
        cell = f"`{default}`".replace("|", "\\|")
        text = description.replace("|", "\\|")
        rows.append(f"| `{path}` | {type_name(lookup(values, path))} | {cell} | {text} |")
    return "\n".join(rows) + "\n"


def argocd_patch(lua):
    """The argocd-cm patch: the script once, aliased for the other kinds."""
    body = "".join(f"    {line}\n" if line else "\n" for line in lua.splitlines())
    keys = [f"resource.customizations.health.planops.io_{kind}" for kind in KINDS]
    lines = ["```yaml", "data:", f"  {keys[0]}: &planops-health |"]
    text = "\n".join(lines) + "\n" + body
    text += "".join(f"  {key}: *planops-health\n" for key in keys[1:])
    return text + "```\n"


def replace_between(readme, markers, content):
    begin, end = readme.find(markers[0]), readme.find(markers[1])
    if begin < 0 or end < begin:
        raise ValueError(f"README.md: markers {markers[0]} / {markers[1]} not found")
    return readme[: begin + len(markers[0])] + "\n" + content + readme[end:]


def main(argv):
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    schema = json.loads((CHART / "values.schema.json").read_text())
    docs = documented_paths(text)

    problems = []
    for leaf in leaves(values):
        parts = leaf.split(".")
        if not any(".".join(parts[:i]) in docs for i in range(1, len(parts) + 1)):
            problems.append(f"values.yaml: {leaf} has no '# --' description")
    for path in docs:
        if not schema_has(schema, path):
            problems.append(f"values.schema.json: {path} is not typed")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1

    generated = table(values, docs)
    if len(argv) < 2:
        sys.stdout.write(generated)
        return 0

    readme_path = CHART / "README.md"
    readme = readme_path.read_text()
    lua = (CHART / "health.lua").read_text()
    try:
        updated = replace_between(readme, TABLE_MARKERS, generated)
        updated = replace_between(updated, ARGOCD_MARKERS, argocd_patch(lua))
    except ValueError as err:
        print(err, file=sys.stderr)
        return 1
    if argv[1] == "--check":
        if updated != readme:
            print("README.md is out of date: run python3 ci/docs_check.py --write", file=sys.stderr)
            return 1
        print(f"README.md documents all {len(docs)} values and embeds the current health.lua")
        return 0
    if argv[1] == "--write":
        readme_path.write_text(updated)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
