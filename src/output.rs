//! The only module that writes files: a rendered tree into place, all or nothing.
//!
//! The tree is written into a hidden temporary sibling of the target (same file system,
//! so the final step is one `rename`), and moved into place only when everything else —
//! hooks, the git commit — has succeeded. Dropping a [`Staged`] that was not finished
//! removes it; an interrupt (Ctrl-C, SIGTERM) removes it too, through the handler that
//! [`remove_staging_on_interrupt`] installs. An existing non-empty target is never touched.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::tree::FileTree;

/// Folders being staged right now, for the interrupt handler.
static STAGING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Installs a Ctrl-C/SIGTERM handler that removes any staging folder, then exits with 130.
/// Call once, at the CLI edge.
pub fn remove_staging_on_interrupt() {
    let _ = ctrlc::set_handler(|| {
        if let Ok(staging) = STAGING.lock() {
            for dir in staging.iter() {
                let _ = fs::remove_dir_all(dir);
            }
        }
        std::process::exit(130);
    });
}

/// Refuses a target that exists and is anything but an empty folder.
pub fn check_target(target: &Path) -> Result<()> {
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(target, e)),
        Ok(meta) if meta.is_dir() => {
            let mut entries = fs::read_dir(target).map_err(|e| Error::io(target, e))?;
            match entries.next() {
                None => Ok(()),
                Some(_) => Err(Error::TargetNotEmpty {
                    path: target.to_owned(),
                }),
            }
        }
        Ok(_) => Err(Error::TargetNotEmpty {
            path: target.to_owned(),
        }),
    }
}

/// A tree written to a temporary sibling of its target, not yet in place.
pub struct Staged {
    dir: Option<tempfile::TempDir>,
    target: PathBuf,
    /// The outermost parent folder we created for the target, removed again on failure.
    created_parent: Option<PathBuf>,
}

impl Staged {
    /// The staging folder: run git and hooks here.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("present until finished").path()
    }

    /// Moves the staged tree to its target and returns the target.
    pub fn finish(mut self) -> Result<PathBuf> {
        check_target(&self.target)?;
        let dir = self.dir.take().expect("present until finished");
        set_mode(dir.path(), 0o755).map_err(|e| Error::io(dir.path(), e))?;
        fs::rename(dir.path(), &self.target).map_err(|e| match e.kind() {
            std::io::ErrorKind::DirectoryNotEmpty => Error::TargetNotEmpty {
                path: self.target.clone(),
            },
            _ => Error::io(&self.target, e),
        })?;
        forget(&dir.keep());
        self.created_parent = None;
        Ok(self.target.clone())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            forget(dir.path());
        }
        if let Some(parent) = self.created_parent.take() {
            let _ = fs::remove_dir_all(parent);
        }
    }
}

/// Writes `tree` into a new temporary sibling of `target`, calling `on_file` per file.
pub fn stage(tree: &FileTree, target: &Path, mut on_file: impl FnMut(&str)) -> Result<Staged> {
    check_target(target)?;
    let target = absolute(target)?;
    let parent = target.parent().ok_or_else(|| Error::TargetNotEmpty {
        path: target.clone(),
    })?;
    let created_parent = create_parents(parent)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut staged = Staged {
        dir: None,
        target: target.clone(),
        created_parent,
    };
    let dir = tempfile::Builder::new()
        .prefix(&format!(".{name}.new-service-"))
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    STAGING
        .lock()
        .map_err(|_| poisoned())?
        .push(dir.path().to_owned());
    let root = dir.path().to_owned();
    staged.dir = Some(dir);

    let mut made = std::collections::BTreeSet::new();
    for (path, file) in tree.iter() {
        let dest = root.join(path);
        if let Some(folder) = dest.parent() {
            if made.insert(folder.to_owned()) {
                fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
            }
        }
        fs::write(&dest, &file.contents).map_err(|e| Error::io(&dest, e))?;
        if file.executable {
            set_mode(&dest, 0o755).map_err(|e| Error::io(&dest, e))?;
        }
        on_file(path);
    }
    Ok(staged)
}

fn poisoned() -> Error {
    Error::io("staging registry", std::io::Error::other("lock poisoned"))
}

fn forget(dir: &Path) {
    if let Ok(mut staging) = STAGING.lock() {
        staging.retain(|d| d != dir);
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io(path, e))
}

/// Creates the missing ancestors of `dir`; returns the outermost one created.
fn create_parents(dir: &Path) -> Result<Option<PathBuf>> {
    let mut outermost = None;
    let mut cursor = Some(dir);
    while let Some(d) = cursor {
        if d.exists() {
            break;
        }
        outermost = Some(d.to_owned());
        cursor = d.parent();
    }
    if outermost.is_some() {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(outermost)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::TreeFile;

    fn tree() -> FileTree {
        let mut tree = FileTree::new();
        tree.insert(
            "a/b.txt".into(),
            TreeFile {
                contents: b"hi".to_vec(),
                executable: false,
            },
        )
        .unwrap();
        tree.insert(
            "run.sh".into(),
            TreeFile {
                contents: b"#!/bin/sh".to_vec(),
                executable: true,
            },
        )
        .unwrap();
        tree
    }

    #[test]
    fn writes_into_place_only_on_finish() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("deep/er/demo");
        let staged = stage(&tree(), &target, |_| {}).unwrap();
        assert!(!target.exists());
        assert!(staged.path().join("a/b.txt").exists());
        let done = staged.finish().unwrap();
        assert_eq!(fs::read(done.join("a/b.txt")).unwrap(), b"hi");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(done.join("run.sh"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o111, 0o111);
        }
        let left: Vec<_> = fs::read_dir(target.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no staging folder left beside the target");
    }

    #[test]
    fn dropping_unfinished_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("new-parent/demo");
        drop(stage(&tree(), &target, |_| {}).unwrap());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn refuses_non_empty_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
        assert!(matches!(
            check_target(tmp.path()),
            Err(Error::TargetNotEmpty { .. })
        ));
        assert!(matches!(
            check_target(&tmp.path().join("keep.txt")),
            Err(Error::TargetNotEmpty { .. })
        ));
        assert!(check_target(&tmp.path().join("absent")).is_ok());
    }
}
