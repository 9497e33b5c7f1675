#!/usr/bin/env bash
# Validates deploy/k8s/ of every generated system under MATRIX_ROOT (one system per
# subfolder): kustomize renders base and each overlay; every manifest file and every
# rendered output passes strict Kubernetes schema validation (core kinds and the Gateway
# API routes, see k8s_schema.py); checkov finds nothing over base and the rendered
# overlays; yamllint (the system's .yamllint.yaml) finds nothing in deploy/k8s/.
# Tools: .ci/validators/requirements-k8s.txt, on PATH. Exits non-zero on any finding and
# when there is nothing to check.
set -euo pipefail

root=${1:?usage: k8s.sh MATRIX_ROOT}
here=$(cd "$(dirname "$0")" && pwd)
# The Kubernetes version whose schemas the manifests must satisfy.
k8s_version=1.37.0
for tool in kubectl checkov yamllint python3; do
  command -v "$tool" >/dev/null || { echo "k8s: $tool not on PATH (requirements-k8s.txt)" >&2; exit 1; }
done
python3 -c 'import kubernetes_validate' 2>/dev/null \
  || { echo "k8s: python3 lacks kubernetes-validate (requirements-k8s.txt)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cells=0 builds=0 build_failures=0 files=()
cells_found=()
for k8s in "$root"/*/deploy/k8s; do
  [ -d "$k8s" ] || continue
  cell=$(basename "$(dirname "$(dirname "$k8s")")")
  cells=$((cells + 1))
  [ -f "$k8s/base/kustomization.yaml" ] || { echo "ERROR $cell: no deploy/k8s/base/kustomization.yaml"; build_failures=$((build_failures + 1)); }
  for dir in base overlays/dev overlays/prod; do
    out="$work/$cell/${dir//\//-}.yaml"
    mkdir -p "$(dirname "$out")"
    if kubectl kustomize "$k8s/$dir" >"$out" 2>"$out.err"; then
      builds=$((builds + 1))
      files+=("$cell/deploy/k8s/$dir (kustomize build)=>$out")
    else
      echo "ERROR $cell/deploy/k8s/$dir: kustomize build failed: $(cat "$out.err")"
      build_failures=$((build_failures + 1))
    fi
  done
  # The manifests as committed (kustomization files are checked by the builds above).
  while IFS= read -r -d '' manifest; do
    files+=("$manifest")
  done < <(find "$k8s" -name '*.yaml' ! -name kustomization.yaml -print0 | sort -z)
  [ -f "$root/$cell/.yamllint.yaml" ] || { echo "ERROR $cell: no .yamllint.yaml"; build_failures=$((build_failures + 1)); }
  cells_found+=("$cell")
done
[ "$cells" -gt 0 ] || { echo "k8s: no deploy/k8s/ found under $root" >&2; exit 1; }
echo "kustomize: $builds builds of $cells systems, $build_failures failures"

status=0
[ "$build_failures" -eq 0 ] || status=1

# Strict schemas: core kinds and Gateway API routes; an unknown kind is a finding.
python3 "$here/k8s_schema.py" "$k8s_version" "${files[@]}" || status=1

# checkov over the committed base and the rendered base and overlays, all copied into one
# folder (checkov miscounts with several -d). Skips only by a `checkov.io/skipN`
# annotation, with its reason, on the resource itself.
for cell in "${cells_found[@]}"; do
  mkdir -p "$work/checkov/$cell/committed-base"
  cp "$root/$cell"/deploy/k8s/base/*.yaml "$work/checkov/$cell/committed-base/"
  cp "$work/$cell"/*.yaml "$work/checkov/$cell/"
done
checkov --framework kubernetes --skip-download --output json -d "$work/checkov" \
  >"$work/checkov.json" 2>"$work/checkov.err" || true
python3 - "$work/checkov.json" <<'PY' || { cat "$work/checkov.err" >&2; status=1; }
import json, sys
try:
    reports = json.load(open(sys.argv[1]))
except ValueError:
    sys.exit("checkov: no JSON report (see its errors above)")
reports = reports if isinstance(reports, list) else [reports]
totals = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0, "resource_count": 0}
for report in reports:
    for key in totals:
        totals[key] += report.get("summary", {}).get(key, 0)
    for check in report.get("results", {}).get("failed_checks", []):
        print(f"ERROR checkov {check['check_id']} {check['resource']} in {check['file_path']}: {check['check_name']}")
print(f"checkov: {totals['resource_count']} resources, {totals['passed']} passed, {totals['failed']} failed, "
      f"{totals['skipped']} skipped (annotated on the resource), {totals['parsing_errors']} parsing errors")
sys.exit(1 if totals["failed"] or totals["parsing_errors"] or not totals["passed"] else 0)
PY

# yamllint, with each system's own configuration, warnings included.
linted=0
for cell in "${cells_found[@]}"; do
  count=$(find "$root/$cell/deploy/k8s" -name '*.yaml' | wc -l)
  # Inside the system's folder: its .yamllint.yaml ignores `/target/`, which would
  # match every path under target/tmp/matrix/ given from here.
  if ! (cd "$root/$cell" && yamllint --strict -c .yamllint.yaml deploy/k8s); then
    status=1
  fi
  linted=$((linted + count))
done
echo "yamllint: $linted files of $cells systems"
[ "$linted" -gt 0 ] || status=1

exit "$status"
