#!/bin/sh
# After-merge hook of the rust-system blueprint, run by `new-service update` and `add`
# in the repository before the merge commit: when the repository commits its Cargo.lock,
# bring it in line with the merged workspace (a service crate added or removed), so that
# `--locked` builds, such as the Dockerfiles', keep working. `cargo update --workspace`
# locks only what is new and changes no version already locked. Without a Cargo.lock it
# does nothing. What it changes is committed with the merge.
set -eu

[ -f Cargo.lock ] || exit 0
if ! command -v cargo >/dev/null 2>&1; then
  echo "update-lockfile: cargo not found, so Cargo.lock cannot follow the new workspace;" \
    "install Rust, or pass --no-hooks and run 'cargo update --workspace' later" >&2
  exit 1
fi
cargo update --workspace --quiet
