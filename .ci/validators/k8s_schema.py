#!/usr/bin/env python3
"""Schema validation of Kubernetes manifests, for k8s.sh.

Usage: k8s_schema.py KUBERNETES_VERSION INPUT...
where an INPUT is a file, or LABEL=>FILE to name the file LABEL in messages.

Every YAML document must be a resource of a known kind, valid against its schema:
core kinds with kubernetes-validate's strict schemas for KUBERNETES_VERSION (unknown
fields are errors), Gateway API routes with the vendored schemas in schemas/. A kind
without a schema is an error, never a warning. Prints one line per finding and a
summary; exits 1 on any finding.
"""

import json
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

SCHEMAS = Path(__file__).resolve().parent / "schemas"
# Custom resources this project knows, by (apiVersion, kind).
CUSTOM = {
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute-gateway-v1.json",
    ("gateway.networking.k8s.io/v1", "GRPCRoute"): "grpcroute-gateway-v1.json",
}


def custom_validator(file_name):
    schema = json.loads((SCHEMAS / file_name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def main(argv):
    version, paths = argv[0], argv[1:]
    validators = {key: custom_validator(name) for key, name in CUSTOM.items()}
    findings = checked = 0
    for arg in paths:
        label, _, path = arg.rpartition("=>")
        label = label or path
        text = Path(path).read_text()
        try:
            documents = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as error:
            print(f"ERROR {label}: not YAML: {error}")
            findings += 1
            continue
        if not documents:
            print(f"ERROR {label}: no Kubernetes resource in the file")
            findings += 1
        for doc in documents:
            checked += 1
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                print(f"ERROR {label}: a document without apiVersion and kind")
                findings += 1
                continue
            key = (doc["apiVersion"], doc["kind"])
            name = f"{doc['kind']}/{(doc.get('metadata') or {}).get('name', '?')}"
            if key in validators:
                for error in sorted(validators[key].iter_errors(doc), key=str):
                    where = "/".join(str(p) for p in error.absolute_path)
                    print(f"ERROR {label}: {name}: {where}: {error.message}")
                    findings += 1
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = "/".join(str(p) for p in error.path)
                print(f"ERROR {label}: {name}: {where}: {error.message}")
                findings += 1
            except kubernetes_validate.SchemaNotFoundError as error:
                print(f"ERROR {label}: {name}: {error.message}")
                findings += 1
    print(f"schema: {checked} resources in {len(paths)} inputs against Kubernetes {version}, {findings} findings")
    return 1 if findings or not checked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
