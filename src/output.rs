//! The only module that writes files: a rendered tree into place, all or nothing.
//!
//! For `new`, the tree is written into a hidden temporary sibling of the target (same
//! file system, so the final step is one `rename`), and moved into place only when
//! everything else — hooks, the git commit — has succeeded. Dropping a [`Staged`] that
//! was not finished removes it; an interrupt (Ctrl-C, SIGTERM) removes it too, through
//! the handler that [`remove_staging_on_interrupt`] installs. An existing non-empty
//! target is never touched.
//!
//! For `update`, [`patch`] changes files of a working tree in place, each by an atomic
//! rename, and keeps what it replaced: dropping the [`Patched`] before [`Patched::keep`]
//! puts every file back. While a patch is in progress an interrupt does not exit; it is
//! recorded, and the patch stops and undoes itself at the next file.
//!
//! It also reads folders of files back (`read_files`): blueprint sources, and renders
//! that hooks changed in a [`Scratch`] folder.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::tree::{FileTree, TreeFile};

/// Folders being staged and patches in progress, for the interrupt handler.
static ACTIVE: Mutex<Active> = Mutex::new(Active {
    staging: Vec::new(),
    patches: 0,
});

/// Set by the interrupt handler while a patch is in progress.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

struct Active {
    staging: Vec<PathBuf>,
    patches: usize,
}

/// Installs a Ctrl-C/SIGTERM handler: it removes any staging folder and exits with 130,
/// unless a [`patch`] is in progress, which then undoes itself (see [`interrupted`]).
/// Call once, at the CLI edge.
pub fn remove_staging_on_interrupt() {
    let _ = ctrlc::set_handler(|| {
        if let Ok(active) = ACTIVE.lock() {
            if active.patches > 0 {
                INTERRUPTED.store(true, Ordering::SeqCst);
                return;
            }
            for dir in active.staging.iter() {
                let _ = fs::remove_dir_all(dir);
            }
        }
        std::process::exit(crate::error::EXIT_INTERRUPTED);
    });
}

/// Whether an interrupt arrived during a patch; pass it as the `stop` of [`patch`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
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
    ACTIVE
        .lock()
        .map_err(|_| poisoned())?
        .staging
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
    if let Ok(mut active) = ACTIVE.lock() {
        active.staging.retain(|d| d != dir);
    }
}

/// A folder outside any repository holding a tree, removed on drop: where hooks run on
/// a render that is not written anywhere else.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// Writes `tree` into a new temporary folder.
    pub fn new(tree: &FileTree) -> Result<Scratch> {
        let dir = tempfile::Builder::new()
            .prefix("new-service-render-")
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        ACTIVE
            .lock()
            .map_err(|_| poisoned())?
            .staging
            .push(dir.path().to_owned());
        let scratch = Scratch { dir };
        for (path, file) in tree.iter() {
            write_file(&scratch.path().join(path), file)?;
        }
        Ok(scratch)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every file now in the folder, as a tree (`.git` skipped).
    pub fn read(&self) -> Result<FileTree> {
        let mut tree = FileTree::new();
        let root = self.dir.path();
        read_files(root, root, &mut |path, contents, executable| {
            let file = TreeFile {
                contents,
                executable,
            };
            tree.insert(path, file)
                .map_err(|e| Error::io(root, std::io::Error::other(e.to_string())))
        })?;
        Ok(tree)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        forget(self.dir.path());
    }
}

/// Calls `each` with the path relative to `root` (`/`-separated), the bytes and the
/// executable bit of every file below `dir`, skipping `.git` folders. A missing `dir`
/// has no files.
pub(crate) fn read_files(
    root: &Path,
    dir: &Path,
    each: &mut dyn FnMut(String, Vec<u8>, bool) -> Result<()>,
) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if kind.is_dir() {
            if entry.file_name() != ".git" {
                read_files(root, &path, each)?;
            }
        } else if kind.is_file() {
            let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let relative = path
                .strip_prefix(root)
                .expect("walked from root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let meta = entry.metadata().map_err(|e| Error::io(&path, e))?;
            each(relative, bytes, is_executable(&meta))?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &fs::Metadata) -> bool {
    false
}

/// One file of a [`patch`]: what the working tree holds at `path` now, and what it
/// holds afterwards (`None`: absent).
#[derive(Debug, Clone, Copy)]
pub struct Replacement<'a> {
    /// Path relative to the working tree root.
    pub path: &'a str,
    /// The file there now; the caller knows it (update requires a clean tree).
    pub before: Option<&'a TreeFile>,
    /// The file there afterwards.
    pub after: Option<&'a TreeFile>,
}

/// Changes made by [`patch`], undone on drop unless kept.
pub struct Patched {
    root: PathBuf,
    done: Vec<(String, Option<TreeFile>)>,
    kept: bool,
}

impl Patched {
    /// Takes over a change that something else (a hook) made at `path`, so that it is
    /// undone with the rest: `before` is what the path held before the patch.
    pub fn adopt(&mut self, path: &str, before: Option<TreeFile>) {
        self.done.push((path.to_owned(), before));
    }

    /// Makes the changes permanent.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Patched {
    fn drop(&mut self) {
        if !self.kept {
            for (path, before) in self.done.iter().rev() {
                let dest = self.root.join(path);
                let _ = match before {
                    Some(file) => write_file(&dest, file),
                    None => fs::remove_file(&dest)
                        .map_err(|e| Error::io(&dest, e))
                        .map(|()| remove_empty_parents(&self.root, &dest)),
                };
            }
        }
        if let Ok(mut active) = ACTIVE.lock() {
            active.patches -= 1;
        }
    }
}

/// Applies `replacements` to the working tree at `root`, calling `on_file` after each.
/// Refuses, before writing anything, to create a file where an untracked one exists.
/// Checks `stop` before each file and undoes everything when it returns true.
pub fn patch<'a>(
    root: &Path,
    replacements: &[Replacement<'a>],
    stop: &dyn Fn() -> bool,
    mut on_file: impl FnMut(&str),
) -> Result<Patched> {
    for r in replacements {
        if r.before.is_none() && fs::symlink_metadata(root.join(r.path)).is_ok() {
            return Err(Error::WouldOverwrite {
                path: r.path.to_owned(),
            });
        }
    }
    ACTIVE.lock().map_err(|_| poisoned())?.patches += 1;
    let mut patched = Patched {
        root: root.to_owned(),
        done: Vec::with_capacity(replacements.len()),
        kept: false,
    };
    for r in replacements {
        if stop() {
            return Err(Error::Interrupted);
        }
        let dest = root.join(r.path);
        match r.after {
            Some(file) => write_file(&dest, file)?,
            None => {
                fs::remove_file(&dest).map_err(|e| Error::io(&dest, e))?;
                remove_empty_parents(root, &dest);
            }
        }
        patched.done.push((r.path.to_owned(), r.before.cloned()));
        on_file(r.path);
    }
    if stop() {
        return Err(Error::Interrupted);
    }
    Ok(patched)
}

/// Writes one file by renaming a sibling temporary file over it, creating folders.
fn write_file(dest: &Path, file: &TreeFile) -> Result<()> {
    let folder = dest.parent().expect("a file below the root");
    fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".new-service-")
        .tempfile_in(folder)
        .map_err(|e| Error::io(folder, e))?;
    std::io::Write::write_all(&mut temp, &file.contents).map_err(|e| Error::io(dest, e))?;
    set_mode(temp.path(), if file.executable { 0o755 } else { 0o644 })
        .map_err(|e| Error::io(dest, e))?;
    temp.persist(dest).map_err(|e| Error::io(dest, e.error))?;
    Ok(())
}

/// Removes the folders between `file` and `root` that are left empty, as git does.
fn remove_empty_parents(root: &Path, file: &Path) {
    let mut folder = file.parent();
    while let Some(dir) = folder {
        if dir == root || fs::remove_dir(dir).is_err() {
            break;
        }
        folder = dir.parent();
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
