//! Three-way merge of rendered trees: what `update` (and so `add`) does to each file.
//!
//! Pure: it takes the *base* (what the recorded answers and versions rendered), *ours*
//! (the repository's committed files at those paths) and *theirs* (the new render), and
//! returns a [`Plan`] with one [`Outcome`] per path. A file changed on both sides is
//! merged line by line by libgit2's `git_merge_file`, the xdiff merge behind
//! `git merge`; a true conflict carries git's conflict markers. Only paths the blueprint
//! renders (in the base or now) are considered, so files the user added are never seen.
//! Nothing here touches the disk or a repository.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::tree::{FileTree, TreeFile};

/// What an update does to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The blueprint's version did not change, or the repository already has the new one.
    Unchanged,
    /// Untouched here, changed by the blueprint: the new version replaces it.
    Updated,
    /// Changed here and by the blueprint, in different places: both kept.
    Merged,
    /// Changed here and by the blueprint in the same place: left with conflict markers
    /// (or, when a side removed it or it is binary, with the repository's version) and
    /// recorded as a git conflict.
    Conflict,
    /// New in the blueprint.
    Added,
    /// No longer rendered and untouched here: deleted.
    Removed,
    /// Deleted here and changed by the blueprint: stays deleted.
    KeptDeleted,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 7] = [
        Outcome::Added,
        Outcome::Updated,
        Outcome::Merged,
        Outcome::Conflict,
        Outcome::Removed,
        Outcome::KeptDeleted,
        Outcome::Unchanged,
    ];

    /// The word used in reports and JSON.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Updated => "updated",
            Outcome::Merged => "merged",
            Outcome::Conflict => "conflict",
            Outcome::Added => "added",
            Outcome::Removed => "removed",
            Outcome::KeptDeleted => "kept-deleted",
        }
    }
}

/// One path of the plan, with the three versions the outcome came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMerge {
    /// Path relative to the repository root.
    pub path: String,
    /// What happens to it.
    pub outcome: Outcome,
    /// The file the working tree holds afterwards; `None` when it is absent.
    pub result: Option<TreeFile>,
    /// The base version (the last render), for a conflict's index stage 1.
    pub base: Option<TreeFile>,
    /// The repository's version, for stage 2.
    pub ours: Option<TreeFile>,
    /// The new render's version, for stage 3.
    pub theirs: Option<TreeFile>,
}

impl FileMerge {
    /// Whether the working tree changes at this path.
    pub fn changes_worktree(&self) -> bool {
        self.result != self.ours
    }
}

/// The per-file result of a three-way merge, ordered by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Every path the base or the new render has.
    pub files: Vec<FileMerge>,
}

impl Plan {
    /// How many paths have `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.files.iter().filter(|f| f.outcome == outcome).count()
    }

    /// Whether any path is a conflict.
    pub fn has_conflicts(&self) -> bool {
        self.files.iter().any(|f| f.outcome == Outcome::Conflict)
    }

    /// The paths whose working-tree file or index entry changes.
    pub fn changes(&self) -> impl Iterator<Item = &FileMerge> {
        self.files
            .iter()
            .filter(|f| f.changes_worktree() || f.outcome == Outcome::Conflict)
    }

    /// Whether applying the plan would change nothing.
    pub fn is_noop(&self) -> bool {
        self.changes().next().is_none()
    }
}

/// Names written on conflict markers.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    /// The repository's side (`<<<<<<< HEAD`).
    pub ours: &'a str,
    /// The new render's side (`>>>>>>> blueprint rust-system 0.2.0`).
    pub theirs: &'a str,
}

/// Merges every path of `base` ∪ `theirs`. `ours` holds the repository's versions of
/// those paths (a path it lacks was deleted there).
pub fn three_way(
    base: &FileTree,
    ours: &FileTree,
    theirs: &FileTree,
    labels: Labels<'_>,
) -> Result<Plan> {
    let paths: BTreeSet<&str> = base.paths().chain(theirs.paths()).collect();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let b = base.get(path);
        let o = ours.get(path);
        let t = theirs.get(path);
        let (outcome, result) = decide(path, b, o, t, labels)?;
        files.push(FileMerge {
            path: path.to_owned(),
            outcome,
            result,
            base: b.cloned(),
            ours: o.cloned(),
            theirs: t.cloned(),
        });
    }
    Ok(Plan { files })
}

fn decide(
    path: &str,
    base: Option<&TreeFile>,
    ours: Option<&TreeFile>,
    theirs: Option<&TreeFile>,
    labels: Labels<'_>,
) -> Result<(Outcome, Option<TreeFile>)> {
    let keep = ours.cloned();
    if theirs == base || ours == theirs {
        return Ok((Outcome::Unchanged, keep));
    }
    if ours == base {
        let outcome = match (base, theirs) {
            (None, _) => Outcome::Added,
            (_, None) => Outcome::Removed,
            _ => Outcome::Updated,
        };
        return Ok((outcome, theirs.cloned()));
    }
    // All three differ.
    match (base, ours, theirs) {
        (_, None, Some(_)) => Ok((Outcome::KeptDeleted, None)),
        (_, Some(_), None) => Ok((Outcome::Conflict, keep)),
        (_, Some(o), Some(t)) => {
            let empty = TreeFile {
                contents: Vec::new(),
                executable: o.executable,
            };
            let b = base.unwrap_or(&empty);
            let executable = if o.executable == b.executable {
                t.executable
            } else {
                o.executable
            };
            if is_binary(&b.contents) || is_binary(&o.contents) || is_binary(&t.contents) {
                return Ok((Outcome::Conflict, keep));
            }
            let (clean, contents) = merge_text(path, b, o, t, labels)?;
            let merged = TreeFile {
                contents,
                executable,
            };
            Ok((
                if clean {
                    Outcome::Merged
                } else {
                    Outcome::Conflict
                },
                Some(merged),
            ))
        }
        (_, None, None) => Ok((Outcome::Unchanged, None)),
    }
}

/// git's rule of thumb: a NUL byte in the first 8000 bytes means binary.
fn is_binary(bytes: &[u8]) -> bool {
    bytes.iter().take(8000).any(|&b| b == 0)
}

fn merge_text(
    path: &str,
    base: &TreeFile,
    ours: &TreeFile,
    theirs: &TreeFile,
    labels: Labels<'_>,
) -> Result<(bool, Vec<u8>)> {
    fn input<'a>(file: &'a TreeFile, path: &str) -> git2::MergeFileInput<'a> {
        let mut input = git2::MergeFileInput::new();
        input.content(&file.contents).path(path);
        input
    }
    // `git2::merge_file` does not initialise libgit2 itself (its allocator included);
    // creating a buffer does, once per process.
    drop(git2::Buf::new());
    let (b, o, t) = (input(base, path), input(ours, path), input(theirs, path));
    let mut options = git2::MergeFileOptions::new();
    options
        .ancestor_label("base")
        .our_label(labels.ours)
        .their_label(labels.theirs);
    let merged = git2::merge_file(&b, &o, &t, Some(&mut options)).map_err(|e| Error::Merge {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })?;
    Ok((merged.is_automergeable(), merged.content().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABELS: Labels<'static> = Labels {
        ours: "HEAD",
        theirs: "blueprint mini 2.1.0",
    };

    fn file(text: &str) -> TreeFile {
        TreeFile {
            contents: text.as_bytes().to_vec(),
            executable: false,
        }
    }

    fn tree(files: &[(&str, &str)]) -> FileTree {
        let mut tree = FileTree::new();
        for (path, text) in files {
            tree.insert((*path).to_owned(), file(text)).unwrap();
        }
        tree
    }

    fn outcome(plan: &Plan, path: &str) -> (Outcome, Option<String>) {
        let f = plan.files.iter().find(|f| f.path == path).unwrap();
        (
            f.outcome,
            f.result
                .as_ref()
                .map(|r| String::from_utf8(r.contents.clone()).unwrap()),
        )
    }

    #[test]
    fn each_combination_of_sides_has_its_outcome() {
        let base = tree(&[
            ("same", "a\n"),
            ("updated", "old\n"),
            ("removed", "gone\n"),
            ("edited-here", "1\n2\n3\n4\n5\n"),
            ("conflict", "x\n"),
            ("deleted-here", "v1\n"),
            ("deleted-here-untouched", "v1\n"),
            ("edited-then-dropped", "v1\n"),
            ("both-same", "v1\n"),
        ]);
        let ours = tree(&[
            ("same", "a\n"),
            ("updated", "old\n"),
            ("removed", "gone\n"),
            ("edited-here", "one\n2\n3\n4\n5\n"),
            ("conflict", "mine\n"),
            ("edited-then-dropped", "mine\n"),
            ("both-same", "v2\n"),
            ("user-file", "not the blueprint's\n"),
        ]);
        let theirs = tree(&[
            ("same", "a\n"),
            ("updated", "new\n"),
            ("edited-here", "1\n2\n3\n4\nfive\n"),
            ("conflict", "theirs\n"),
            ("deleted-here", "v2\n"),
            ("deleted-here-untouched", "v1\n"),
            ("both-same", "v2\n"),
            ("added", "fresh\n"),
        ]);
        let plan = three_way(&base, &ours, &theirs, LABELS).unwrap();

        assert_eq!(
            outcome(&plan, "same"),
            (Outcome::Unchanged, Some("a\n".into()))
        );
        assert_eq!(
            outcome(&plan, "updated"),
            (Outcome::Updated, Some("new\n".into()))
        );
        assert_eq!(outcome(&plan, "removed"), (Outcome::Removed, None));
        assert_eq!(
            outcome(&plan, "edited-here"),
            (Outcome::Merged, Some("one\n2\n3\n4\nfive\n".into()))
        );
        assert_eq!(
            outcome(&plan, "conflict"),
            (
                Outcome::Conflict,
                Some("<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> blueprint mini 2.1.0\n".into())
            )
        );
        assert_eq!(outcome(&plan, "deleted-here"), (Outcome::KeptDeleted, None));
        assert_eq!(
            outcome(&plan, "deleted-here-untouched"),
            (Outcome::Unchanged, None)
        );
        assert_eq!(
            outcome(&plan, "edited-then-dropped"),
            (Outcome::Conflict, Some("mine\n".into()))
        );
        assert_eq!(
            outcome(&plan, "both-same"),
            (Outcome::Unchanged, Some("v2\n".into()))
        );
        assert_eq!(
            outcome(&plan, "added"),
            (Outcome::Added, Some("fresh\n".into()))
        );
        assert!(
            plan.files.iter().all(|f| f.path != "user-file"),
            "files the blueprint never rendered are not the merge's business"
        );
        assert!(plan.has_conflicts());
        let changed: Vec<&str> = plan.changes().map(|f| f.path.as_str()).collect();
        assert_eq!(
            changed,
            [
                "added",
                "conflict",
                "edited-here",
                "edited-then-dropped",
                "removed",
                "updated"
            ]
        );
    }

    #[test]
    fn executable_bits_follow_the_side_that_changed_them() {
        let mut base = tree(&[("run", "a\nb\nc\n")]);
        let ours = tree(&[("run", "A\nb\nc\n")]);
        let mut theirs = FileTree::new();
        theirs
            .insert(
                "run".into(),
                TreeFile {
                    contents: b"a\nb\nC\n".to_vec(),
                    executable: true,
                },
            )
            .unwrap();
        let plan = three_way(&base, &ours, &theirs, LABELS).unwrap();
        let merged = plan.files[0].result.clone().unwrap();
        assert_eq!(plan.files[0].outcome, Outcome::Merged);
        assert!(merged.executable, "the blueprint made it executable");
        assert_eq!(merged.contents, b"A\nb\nC\n");

        base = tree(&[("run", "a\n")]);
        let plan = three_way(&base, &base, &base, LABELS).unwrap();
        assert!(plan.is_noop());
    }

    #[test]
    fn binary_files_changed_on_both_sides_keep_ours_as_a_conflict() {
        let base = tree(&[("logo.bin", "\0one")]);
        let ours = tree(&[("logo.bin", "\0two")]);
        let theirs = tree(&[("logo.bin", "\0three")]);
        let plan = three_way(&base, &ours, &theirs, LABELS).unwrap();
        assert_eq!(plan.files[0].outcome, Outcome::Conflict);
        assert_eq!(plan.files[0].result, ours.get("logo.bin").cloned());
    }

    #[test]
    fn two_sides_adding_the_same_path_differently_conflict() {
        let base = FileTree::new();
        let ours = tree(&[("notes.md", "mine\n")]);
        let theirs = tree(&[("notes.md", "theirs\n")]);
        let plan = three_way(&base, &ours, &theirs, LABELS).unwrap();
        assert_eq!(plan.files[0].outcome, Outcome::Conflict);
        let text = String::from_utf8(plan.files[0].result.clone().unwrap().contents).unwrap();
        assert!(
            text.contains("<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>>"),
            "{text}"
        );
    }
}
