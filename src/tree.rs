//! The in-memory result of rendering: relative paths to bytes and modes.
//!
//! Rendering produces a [`FileTree`] and does no I/O; the output module is the only one
//! that turns a tree into files. Paths are relative, `/`-separated and checked on insert,
//! so nothing a blueprint renders can escape the target folder.

use std::collections::BTreeMap;

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Contents, byte for byte.
    pub contents: Vec<u8>,
    /// Whether it is written with mode 755 (otherwise 644).
    pub executable: bool,
}

/// A rendered repository, ordered by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileTree {
    files: BTreeMap<String, TreeFile>,
}

/// Why a path cannot be part of a tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Absolute, empty, `.`/`..` components, backslashes or doubled slashes.
    #[error("{0:?} is not a clean relative path")]
    NotRelative(String),
    /// Two files claim the same path.
    #[error("{0:?} is produced twice")]
    Duplicate(String),
}

impl FileTree {
    /// An empty tree.
    pub fn new() -> FileTree {
        FileTree::default()
    }

    /// Adds a file; refuses unclean paths and duplicates.
    pub fn insert(&mut self, path: String, file: TreeFile) -> Result<(), PathError> {
        let clean = !path.is_empty()
            && !path.contains('\\')
            && path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if !clean {
            return Err(PathError::NotRelative(path));
        }
        if self.files.contains_key(&path) {
            return Err(PathError::Duplicate(path));
        }
        self.files.insert(path, file);
        Ok(())
    }

    /// The file at `path`.
    pub fn get(&self, path: &str) -> Option<&TreeFile> {
        self.files.get(path)
    }

    /// The files, ordered by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TreeFile)> {
        self.files.iter().map(|(p, f)| (p.as_str(), f))
    }

    /// The paths, ordered.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the tree has no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Total size of all contents in bytes.
    pub fn total_bytes(&self) -> usize {
        self.files.values().map(|f| f.contents.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> TreeFile {
        TreeFile {
            contents: b"x".to_vec(),
            executable: false,
        }
    }

    #[test]
    fn refuses_paths_that_escape_or_repeat() {
        let mut tree = FileTree::new();
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a\\b", "./a"] {
            assert!(tree.insert(bad.into(), file()).is_err(), "{bad:?}");
        }
        tree.insert("a/b.rs".into(), file()).unwrap();
        assert_eq!(
            tree.insert("a/b.rs".into(), file()),
            Err(PathError::Duplicate("a/b.rs".into()))
        );
        assert_eq!(tree.len(), 1);
    }
}
