#!/bin/sh
# Post-commit hook of the rust-system blueprint: installs a git pre-commit hook in the
# new repository that refuses commits of unformatted Rust. It lives in .git/hooks, so it
# is local set-up and never part of the committed tree. Does nothing without git.
set -eu

[ "${NEW_SERVICE_GIT:-0}" = 1 ] || exit 0
[ -d .git ] || { echo "install-git-hooks: no .git folder in $(pwd)" >&2; exit 1; }

mkdir -p .git/hooks
hook=.git/hooks/pre-commit
cat >"$hook" <<'HOOK'
#!/bin/sh
# Installed by new-service: refuses a commit while the workspace's Rust code is not
# formatted. Fix with `cargo fmt --all`; skip once with `git commit --no-verify`.
if git diff --cached --name-only --diff-filter=ACMR | grep -q '\.rs$'; then
  if ! command -v cargo >/dev/null 2>&1; then
    echo "pre-commit: cargo not found, formatting not checked" >&2
    exit 0
  fi
  if ! cargo fmt --all -- --check >/dev/null 2>&1; then
    echo "pre-commit: Rust code is not formatted; run 'cargo fmt --all' and stage the result" >&2
    exit 1
  fi
fi
HOOK
chmod 755 "$hook"
