//! Embeds the built-in blueprint source (`blueprints/` and `hooks/`) into the binary,
//! with each file's executable bit, so `cargo install` yields a self-contained tool.
//! Generates `$OUT_DIR/embedded.rs`: a sorted table of (path, bytes, executable).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut files = Vec::new();
    for top in ["blueprints", "hooks"] {
        println!("cargo:rerun-if-changed={top}");
        collect(&root, &root.join(top), &mut files);
    }
    files.sort();

    let mut out = String::from("pub(crate) static FILES: &[(&str, &[u8], bool)] = &[\n");
    for (relative, absolute, executable) in &files {
        writeln!(
            out,
            "    ({relative:?}, include_bytes!({absolute:?}), {executable}),"
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("embedded.rs");
    fs::write(dest, out).expect("write embedded.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String, bool)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let entry = entry.expect("read blueprint folder");
        let path = entry.path();
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            collect(root, &path, files);
        } else if kind.is_file() {
            let relative = path.strip_prefix(root).expect("under root");
            let relative = relative.to_str().expect("UTF-8 path").replace('\\', "/");
            let absolute = path.to_str().expect("UTF-8 path").to_owned();
            files.push((relative, absolute, is_executable(&path)));
        }
    }
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(_: &Path) -> bool {
    false
}
