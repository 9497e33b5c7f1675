#!/usr/bin/env bash
# Contracts of every generated system under $1 (one system per folder): the OpenAPI
# documents with Redocly's linter, the protos with buf lint.
set -euo pipefail
root=${1:?usage: contracts.sh MATRIX_ROOT}

specs=("$root"/*/openapi/*.yaml)
[ -e "${specs[0]}" ] || { echo "no generated OpenAPI documents under $root" >&2; exit 1; }
npx --yes @redocly/cli@2.77.0 lint --config "$(dirname "$0")/redocly.yaml" "${specs[@]}"
echo "redocly lint: ${#specs[@]} OpenAPI documents clean"

linted=0
for buf_yaml in "$root"/*/buf.yaml; do
  [ -e "$buf_yaml" ] || continue
  (cd "$(dirname "$buf_yaml")" && npx --yes @bufbuild/buf@1.75.0 lint)
  linted=$((linted + 1))
done
[ "$linted" -gt 0 ] || { echo "no generated buf.yaml under $root" >&2; exit 1; }
echo "buf lint: $linted systems clean"
