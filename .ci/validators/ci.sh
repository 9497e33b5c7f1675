#!/usr/bin/env bash
# Validators of the generated CI configuration and docs, over every generated system
# in <matrix-root>/<cell>/:
#   actionlint (with shellcheck for `run:` scripts) on .github/workflows/*.yml
#   check-jsonschema (GitLab CI schema, vendored offline) on .gitlab-ci.yml
#   yamllint (the repository's own .yamllint.yaml) on both
#   deny.toml: licenses and sources of the resolved dependencies (needs the built cell)
#   mermaid: every ```mermaid block of docs/*.md parses (mermaid + jsdom under node)
# The Python tools come from requirements-ci.txt (on PATH via .ci/run's venv).
# cargo-deny itself is used when it is on PATH; building it takes over 10 minutes,
# so otherwise deny_licenses.py checks the same license and source rules.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="${1:?usage: ci.sh <matrix-root>}"
[ -d "$root" ] || { echo "ci.sh: no such directory: $root" >&2; exit 1; }

cells=()
for dir in "$root"/*/; do
  [ -f "$dir/Cargo.toml" ] && cells+=("${dir%/}")
done
[ ${#cells[@]} -gt 0 ] || { echo "ci.sh: no generated systems in $root" >&2; exit 1; }

failed=0
# Runs one check; a failing check marks the run failed but the others still run.
check() {
  if ! "$@"; then
    failed=1
    return 1
  fi
}

# --- GitHub Actions: actionlint (+ shellcheck), yamllint
workflows=0 workflow_bad=0
gitlab=0 gitlab_bad=0
yaml=0 yaml_bad=0
for cell in "${cells[@]}"; do
  files=()
  for wf in "$cell"/.github/workflows/*.yml "$cell"/.github/workflows/*.yaml; do
    [ -e "$wf" ] || continue
    workflows=$((workflows + 1))
    files+=("$wf")
    check actionlint -shellcheck shellcheck "$wf" || workflow_bad=$((workflow_bad + 1))
  done
  if [ -e "$cell/.gitlab-ci.yml" ]; then
    gitlab=$((gitlab + 1))
    files+=("$cell/.gitlab-ci.yml")
    check check-jsonschema --builtin-schema vendor.gitlab-ci --data-transform gitlab-ci \
      "$cell/.gitlab-ci.yml" >/dev/null || {
      check-jsonschema --builtin-schema vendor.gitlab-ci --data-transform gitlab-ci "$cell/.gitlab-ci.yml" || true
      gitlab_bad=$((gitlab_bad + 1))
    }
  fi
  if [ ${#files[@]} -gt 0 ]; then
    [ -f "$cell/.yamllint.yaml" ] || { echo "$cell: no .yamllint.yaml"; failed=1; yaml_bad=$((yaml_bad + 1)); continue; }
    yaml=$((yaml + ${#files[@]}))
    # Inside the system's folder: its .yamllint.yaml ignores `/target/`, which would
    # match every path under target/tmp/matrix/ given from here.
    check_in() { (cd "$cell" && yamllint --strict -f parsable -c .yamllint.yaml "${files[@]#"$cell/"}"); }
    check check_in || yaml_bad=$((yaml_bad + 1))
  fi
done
echo "actionlint+shellcheck: $workflows workflows, $workflow_bad with findings"
echo "gitlab-ci schema: $gitlab files, $gitlab_bad with findings"
echo "yamllint: $yaml CI files, $yaml_bad cells with findings"
[ "$workflows" -gt 0 ] || { echo "ci.sh: no GitHub workflow found" >&2; failed=1; }
[ "$gitlab" -gt 0 ] || { echo "ci.sh: no .gitlab-ci.yml found" >&2; failed=1; }

# --- deny.toml: licenses and sources of the built dependency graph
deny=0 deny_bad=0
for cell in "${cells[@]}"; do
  [ -f "$cell/deny.toml" ] || { echo "$cell: no deny.toml"; failed=1; deny_bad=$((deny_bad + 1)); continue; }
  [ -f "$cell/Cargo.lock" ] || { echo "$cell: no Cargo.lock (cell not built)"; failed=1; deny_bad=$((deny_bad + 1)); continue; }
  deny=$((deny + 1))
  bad=0
  # The build fetched the crates of this platform; the license check reads the whole
  # graph (every platform's crates), offline afterwards.
  (cd "$cell" && cargo fetch --locked --quiet) || { echo "$cell: cargo fetch failed"; failed=1; }
  if command -v cargo-deny >/dev/null; then
    # Advisories need the RustSec database from the network: licenses, bans, sources only.
    deny_check=(cargo-deny --manifest-path "$cell/Cargo.toml" --offline check --hide-inclusion-graph
      licenses bans sources)
    check "${deny_check[@]}" >/dev/null 2>&1 || {
      "${deny_check[@]}" 2>&1 | grep -E '^error' | sort | uniq -c || true
      bad=1
    }
  fi
  check python3 "$here/deny_licenses.py" "$cell" >/dev/null || {
    python3 "$here/deny_licenses.py" "$cell" || true
    bad=1
  }
  deny_bad=$((deny_bad + bad))
done
how="license expressions and sources"
command -v cargo-deny >/dev/null && how="cargo deny check licenses bans sources (offline), $how"
echo "deny.toml ($how): $deny systems, $deny_bad with findings"
[ "$deny" -gt 0 ] || { echo "ci.sh: no deny.toml checked" >&2; failed=1; }

# --- Mermaid diagrams of the docs
docs=()
for cell in "${cells[@]}"; do
  for md in "$cell"/docs/*.md; do
    [ -e "$md" ] && grep -q '^```mermaid' "$md" && docs+=("$md")
  done
done
if [ ${#docs[@]} -eq 0 ]; then
  echo "ci.sh: no mermaid diagram found in docs/" >&2
  failed=1
else
  node_dir="${CI_VALIDATORS_NODE_DIR:-$here/../../target/validators/ci-node}"
  if [ ! -d "$node_dir/node_modules/mermaid" ]; then
    mkdir -p "$node_dir"
    npm install --silent --no-audit --no-fund --prefix "$node_dir" mermaid@11.17.2 jsdom@26.1.0 >/dev/null
  fi
  cp "$here/mermaid-check.mjs" "$node_dir/"
  if check node "$node_dir/mermaid-check.mjs" "${docs[@]}"; then
    echo "mermaid: ${#docs[@]} diagrams parse"
  else
    echo "mermaid: ${#docs[@]} files, findings above"
  fi
fi

exit "$failed"
