#!/usr/bin/env bash
# Validates the container files of every generated system under MATRIX_ROOT (one system
# per subfolder):
#   - layout: each service and the gateway has its Dockerfile, and the system has a
#     .dockerignore, deploy/compose.yaml and .yamllint.yaml;
#   - hadolint on every Dockerfile, failing on warnings and errors (infos are reported);
#   - checkov (dockerfile framework) on every Dockerfile, failing on any failed check; a
#     skip must be an inline `# checkov:skip=CKV_...: reason` in the Dockerfile itself;
#   - deploy/compose.yaml against the Compose specification's JSON schema, then its
#     references (Dockerfiles exist, dependencies exist and have health checks) and its
#     infrastructure (a service from an `image:` instead of a build, such as a broker:
#     pinned by digest, read-only, no capabilities, no new privileges);
#   - yamllint --strict on deploy/compose.yaml with the system's own .yamllint.yaml.
# Prints one summary line per validator and exits non-zero on any finding, or when it
# found nothing to check.
#
# Usage: bash .ci/validators/docker.sh MATRIX_ROOT
# Tools: requirements-docker.txt, on PATH.
set -uo pipefail

root=${1:?usage: docker.sh MATRIX_ROOT}
[ -d "$root" ] || { echo "docker: $root is not a directory" >&2; exit 1; }
root=$(cd "$root" && pwd)
for tool in hadolint checkov check-jsonschema yamllint python3; do
  command -v "$tool" >/dev/null || { echo "docker: $tool is not on PATH" >&2; exit 1; }
done

failed=0
fail() {
  echo "docker: $*" >&2
  failed=1
}

# --- Layout: which files every system must have.
cells=()
dockerfiles=()
composes=()
layout_findings=0
for cell in "$root"/*/; do
  cell=${cell%/}
  [ -f "$cell/Cargo.toml" ] || continue
  cells+=("$cell")
  for required in .dockerignore .yamllint.yaml deploy/compose.yaml; do
    if [ -f "$cell/$required" ]; then
      [ "$required" = deploy/compose.yaml ] && composes+=("$cell/$required")
    else
      fail "$cell: $required is missing"
      layout_findings=$((layout_findings + 1))
    fi
  done
  for crate in "$cell"/services/*/ "$cell"/gateway/; do
    crate=${crate%/}
    [ -f "$crate/Cargo.toml" ] || continue
    if [ -f "$crate/Dockerfile" ]; then
      dockerfiles+=("$crate/Dockerfile")
    else
      fail "$crate: Dockerfile is missing"
      layout_findings=$((layout_findings + 1))
    fi
  done
done
if [ ${#cells[@]} -eq 0 ] || [ ${#dockerfiles[@]} -eq 0 ] || [ ${#composes[@]} -eq 0 ]; then
  echo "docker: nothing to check under $root (${#cells[@]} systems, ${#dockerfiles[@]} Dockerfiles, ${#composes[@]} compose files)" >&2
  exit 1
fi
if [ "$layout_findings" -eq 0 ]; then
  echo "layout: ${#cells[@]} systems, ${#dockerfiles[@]} Dockerfiles, and each system's .dockerignore, compose.yaml and .yamllint.yaml"
else
  echo "layout: $layout_findings missing files in ${#cells[@]} systems"
fi

# --- hadolint: every Dockerfile, warnings fail.
if hadolint --no-color --failure-threshold warning "${dockerfiles[@]}"; then
  echo "hadolint: ${#dockerfiles[@]} Dockerfiles, no warnings or errors"
else
  fail "hadolint: findings above"
fi

# --- checkov: every Dockerfile, one run (it takes seconds to start); the JSON report
# says which files it checked, so a file it could not parse cannot pass unseen.
skips_without_reason=$(grep -nE 'checkov:skip=[A-Z0-9_]+[[:space:]]*(:[[:space:]]*)?$' "${dockerfiles[@]}")
if [ -n "$skips_without_reason" ]; then
  echo "$skips_without_reason" >&2
  fail "checkov: skips without a reason above"
fi
checkov_args=()
for dockerfile in "${dockerfiles[@]}"; do checkov_args+=(-f "$dockerfile"); done
report=$(mktemp)
trap 'rm -f "$report"' EXIT
checkov --framework dockerfile --skip-download --compact -o json "${checkov_args[@]}" >"$report" 2>/dev/null
checkov_status=$?
if ! python3 - "$report" "${dockerfiles[@]}" <<'PY'; then
import json
import sys

path, expected = sys.argv[1], set(sys.argv[2:])
try:
    with open(path) as f:
        data = json.load(f)
except ValueError as error:
    sys.exit(f"checkov: no JSON report ({error})")
reports = data if isinstance(data, list) else [data]
passed, failed, skipped, checked = 0, [], [], set()
for report in reports:
    results = report.get("results", {})
    for check in results.get("passed_checks", []):
        passed += 1
        checked.add(check["file_abs_path"])
    for check in results.get("failed_checks", []):
        failed.append(check)
        checked.add(check["file_abs_path"])
    for check in results.get("skipped_checks", []):
        skipped.append(check)
        checked.add(check["file_abs_path"])
for error in sum((r.get("results", {}).get("parsing_errors", []) for r in reports), []):
    failed.append({"file_abs_path": error, "file_line_range": [0], "check_id": "parse",
                   "check_name": "checkov could not parse the file"})
for check in failed:
    print(f"{check['file_abs_path']}:{check['file_line_range'][0]}: {check['check_id']} "
          f"{check['check_name']}", file=sys.stderr)
for check in skipped:
    reason = (check.get("check_result") or {}).get("suppress_comment", "")
    print(f"checkov: skipped {check['check_id']} in {check['file_abs_path']}: {reason}")
unchecked = sorted(expected - checked)
for file in unchecked:
    print(f"{file}: checkov checked nothing", file=sys.stderr)
print(f"checkov: {len(checked & expected)} Dockerfiles, {passed} passed, {len(failed)} failed, "
      f"{len(skipped)} skipped (each with its reason in the Dockerfile)")
sys.exit(1 if failed or unchecked else 0)
PY
  fail "checkov: findings above"
elif [ "$checkov_status" -ne 0 ]; then
  fail "checkov exited with $checkov_status"
fi

# --- Compose: the specification's schema, then what the schema cannot see.
if check-jsonschema --builtin-schema vendor.compose-spec "${composes[@]}" >/dev/null; then
  echo "compose schema: ${#composes[@]} compose.yaml valid against the Compose specification"
else
  check-jsonschema --builtin-schema vendor.compose-spec "${composes[@]}" >&2
  fail "compose schema: findings above"
fi
if python3 - "${composes[@]}" <<'PY'; then
import os
import re
import sys

import yaml

findings = 0
def finding(path, message):
    global findings
    findings += 1
    print(f"{path}: {message}", file=sys.stderr)

for path in sys.argv[1:]:
    compose_dir = os.path.dirname(path)
    with open(path) as f:
        services = (yaml.safe_load(f) or {}).get("services") or {}
    if not services:
        finding(path, "no services")
    for name, service in services.items():
        if "build" in service or "image" not in service:
            build = service.get("build") or {}
            dockerfile = os.path.join(compose_dir, build.get("context", "."), build.get("dockerfile", "Dockerfile"))
            if not os.path.isfile(dockerfile):
                finding(path, f"{name}: {dockerfile} does not exist")
        else:
            # Infrastructure from a published image: pinned, and as hardened as the binaries.
            if not re.search(r"@sha256:[0-9a-f]{64}$", str(service["image"])):
                finding(path, f"{name}: image {service['image']} is not pinned by digest")
            if service.get("read_only") is not True:
                finding(path, f"{name}: root filesystem not read-only")
            if service.get("cap_drop") != ["ALL"]:
                finding(path, f"{name}: capabilities not dropped")
            if "no-new-privileges:true" not in (service.get("security_opt") or []):
                finding(path, f"{name}: may gain privileges")
        if "test" not in (service.get("healthcheck") or {}):
            finding(path, f"{name}: no healthcheck")
        for dependency, condition in (service.get("depends_on") or {}).items():
            if dependency not in services:
                finding(path, f"{name}: depends on {dependency}, which is not a service")
            if (condition or {}).get("condition") != "service_healthy":
                finding(path, f"{name}: does not wait for {dependency} to be healthy")
    root = os.path.dirname(compose_dir)
    crates = [f"services/{d}" for d in sorted(os.listdir(os.path.join(root, "services")))]
    if os.path.isdir(os.path.join(root, "gateway")):
        crates.append("gateway")
    built = {(s.get("build") or {}).get("dockerfile") for s in services.values()}
    for crate in crates:
        if f"{crate}/Dockerfile" not in built:
            finding(path, f"{crate} is not in the compose file")
print(f"compose references: {len(sys.argv) - 1} compose.yaml, {findings} findings")
sys.exit(1 if findings else 0)
PY
  :
else
  fail "compose references: findings above"
fi

# --- yamllint: each compose.yaml with its system's own configuration.
yamllint_findings=0
for compose in "${composes[@]}"; do
  cell=$(dirname "$(dirname "$compose")")
  # Inside the system's folder: its .yamllint.yaml ignores `/target/`, which would
  # match every path under target/tmp/matrix/ given from here.
  if ! (cd "$cell" && yamllint --strict -f parsable -c .yamllint.yaml deploy/compose.yaml); then
    yamllint_findings=$((yamllint_findings + 1))
  fi
done
if [ "$yamllint_findings" -eq 0 ]; then
  echo "yamllint: ${#composes[@]} compose.yaml clean (strict, each system's .yamllint.yaml)"
else
  fail "yamllint: findings in $yamllint_findings compose.yaml"
fi

exit "$failed"
