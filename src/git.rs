//! The only module that talks to git: a new repository with one commit, and the reads
//! and writes of `update`.
//!
//! Uses libgit2 (git2), so no `git` binary is needed. The author comes from the
//! environment (`GIT_AUTHOR_NAME`/`GIT_AUTHOR_EMAIL`, as git does) or the user's git
//! configuration, falling back to `new-service <new-service@localhost>` so a machine
//! without git configured still gets a commit.
//!
//! Every render that a repository's files came from is kept as a commit on the branch
//! [`PRISTINE_BRANCH`]: the first commit of `new` is one, and each update commits the
//! new render there and merges it into the current branch. The base of the next
//! three-way merge is therefore the merge base of `HEAD` and that branch, found by git
//! itself, which stays right when an update with conflicts is aborted.

use std::path::{Path, PathBuf};

use git2::{
    ErrorCode, IndexAddOption, IndexEntry, IndexTime, ObjectType, Oid, Repository,
    RepositoryInitOptions, RepositoryState, Signature, Status, StatusOptions,
};

use crate::error::{Error, Result};
use crate::merge::{Outcome, Plan};
use crate::tree::{FileTree, TreeFile};

/// Branch the new repository starts on.
pub const BRANCH: &str = "main";

/// The branch whose commits are pristine renders, as the blueprint produced them.
pub const PRISTINE_BRANCH: &str = "new-service/pristine";

const PRISTINE_REF: &str = "refs/heads/new-service/pristine";

/// Initialises a repository in `dir` on branch `main`, adds every file (even ones the
/// tree's own `.gitignore` would ignore, so the commit holds exactly what was rendered)
/// and commits them with `message`. Returns the commit id.
pub fn init_and_commit(dir: &Path, message: &str) -> Result<String> {
    let mut options = RepositoryInitOptions::new();
    options.initial_head(BRANCH);
    let repo = Repository::init_opts(dir, &options)?;
    let mut index = repo.index()?;
    index.add_all(["*"], IndexAddOption::FORCE, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let author = person(&repo, "AUTHOR")?;
    let committer = person(&repo, "COMMITTER")?;
    let id = repo.commit(Some("HEAD"), &author, &committer, message, &tree, &[])?;
    repo.reference(PRISTINE_REF, id, false, "new-service: pristine render")?;
    Ok(id.to_string())
}

/// A generated repository opened for `update`.
pub struct Repo {
    repo: Repository,
    root: PathBuf,
}

/// How `update` records its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A merge commit on the current branch.
    Committed {
        /// Its id.
        commit: String,
    },
    /// Left for the user to finish with `git commit`: conflicts, or `--no-commit`.
    MergeInProgress,
}

impl Repo {
    /// Opens the repository whose working tree root is `root`.
    pub fn open(root: &Path) -> Result<Repo> {
        let not_a_repository = |message: String| Error::NotARepository {
            path: root.to_owned(),
            message,
        };
        let repo = Repository::open(root).map_err(|e| not_a_repository(e.message().into()))?;
        let workdir = repo
            .workdir()
            .ok_or_else(|| not_a_repository("it is a bare repository".into()))?;
        let same = |a: &Path, b: &Path| a.canonicalize().ok() == b.canonicalize().ok();
        if !same(workdir, root) {
            return Err(not_a_repository(format!(
                "the repository's root is {}",
                workdir.display()
            )));
        }
        Ok(Repo {
            repo,
            root: root.to_owned(),
        })
    }

    /// Refuses a repository mid-operation or with uncommitted (or untracked, not
    /// ignored) changes.
    pub fn require_clean(&self) -> Result<()> {
        let operation = match self.repo.state() {
            RepositoryState::Clean => None,
            RepositoryState::Merge => Some("merge"),
            RepositoryState::Revert | RepositoryState::RevertSequence => Some("revert"),
            RepositoryState::CherryPick | RepositoryState::CherryPickSequence => {
                Some("cherry-pick")
            }
            RepositoryState::Bisect => Some("bisect"),
            _ => Some("rebase"),
        };
        if let Some(operation) = operation {
            return Err(Error::OperationInProgress {
                path: self.root.clone(),
                operation: operation.into(),
            });
        }
        let changes: Vec<String> = self
            .changes()?
            .into_iter()
            .map(|(path, status)| {
                let letter = if status.is_wt_new() {
                    "??"
                } else if status.is_conflicted() {
                    "U"
                } else if status.is_wt_deleted() || status.is_index_deleted() {
                    "D"
                } else {
                    "M"
                };
                format!("{letter} {path}")
            })
            .collect();
        if changes.is_empty() {
            return Ok(());
        }
        const SHOWN: usize = 5;
        let mut shown: Vec<String> = changes.iter().take(SHOWN).cloned().collect();
        if changes.len() > SHOWN {
            shown.push(format!("and {} more", changes.len() - SHOWN));
        }
        Err(Error::UncommittedChanges {
            path: self.root.clone(),
            changes: shown,
        })
    }

    /// Every path that differs from `HEAD` in the index or the working tree, untracked
    /// ones included, ignored ones not.
    pub fn changes(&self) -> Result<Vec<(String, Status)>> {
        let mut options = StatusOptions::new();
        options
            .include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false)
            .exclude_submodules(false);
        let statuses = self.repo.statuses(Some(&mut options))?;
        Ok(statuses
            .iter()
            .filter(|s| s.status() != Status::CURRENT && !s.status().is_ignored())
            .map(|s| {
                let path = String::from_utf8_lossy(s.path_bytes()).into_owned();
                (path, s.status())
            })
            .collect())
    }

    /// The commit `HEAD` points at.
    pub fn head(&self) -> Result<Oid> {
        Ok(self.repo.head()?.peel_to_commit()?.id())
    }

    /// The last render `head` merged, and the newest tip of [`PRISTINE_BRANCH`] (the
    /// parent of the next render). The branch is looked for locally and as any
    /// remote-tracking branch: after `git pull`, the local branch can be behind a render
    /// that a teammate merged and pushed, so the newest merge base wins. The render is
    /// `None` when no tip shares history with `head`.
    pub fn last_render(&self, head: Oid) -> Result<(Option<Oid>, Option<Oid>)> {
        let mut tips = Vec::new();
        if let Some(id) = self.resolve(PRISTINE_REF)? {
            tips.push(id);
        }
        for reference in self
            .repo
            .references_glob("refs/remotes/*/new-service/pristine")?
        {
            tips.extend(reference?.target());
        }
        let (mut render, mut newest_tip) = (None, None);
        for tip in tips {
            newest_tip = Some(self.newer(newest_tip, tip)?);
            match self.repo.merge_base(head, tip) {
                Ok(base) => render = Some(self.newer(render, base)?),
                Err(e) if e.code() == ErrorCode::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok((render, newest_tip))
    }

    /// `candidate` when it descends from `current` (or there is no current), else `current`.
    fn newer(&self, current: Option<Oid>, candidate: Oid) -> Result<Oid> {
        Ok(match current {
            Some(current)
                if current == candidate
                    || !self.repo.graph_descendant_of(candidate, current)? =>
            {
                current
            }
            _ => candidate,
        })
    }

    fn resolve(&self, name: &str) -> Result<Option<Oid>> {
        match self.repo.refname_to_id(name) {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every file of `commit`'s tree (a pristine render holds nothing else).
    pub fn read_commit(&self, commit: Oid) -> Result<FileTree> {
        let tree = self.repo.find_commit(commit)?.tree()?;
        let mut files = FileTree::new();
        let mut failure = None;
        tree.walk(git2::TreeWalkMode::PreOrder, |folder, entry| {
            if entry.kind() != Some(ObjectType::Blob) {
                return git2::TreeWalkResult::Ok;
            }
            let path = format!("{folder}{}", entry.name().unwrap_or_default());
            let read = self
                .file(entry.id(), entry.filemode())
                .and_then(|file| insert(&mut files, path, file));
            match read {
                Ok(()) => git2::TreeWalkResult::Ok,
                Err(e) => {
                    failure = Some(e);
                    git2::TreeWalkResult::Abort
                }
            }
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(files),
        }
    }

    /// The files of `commit` at `paths`, skipping paths it does not have. A path that is
    /// a folder, a symbolic link or a submodule there cannot be merged and is an error.
    pub fn read_paths<'a>(
        &self,
        commit: Oid,
        paths: impl IntoIterator<Item = &'a str>,
    ) -> Result<FileTree> {
        let tree = self.repo.find_commit(commit)?.tree()?;
        let mut files = FileTree::new();
        for path in paths {
            let entry = match tree.get_path(Path::new(path)) {
                Ok(entry) => entry,
                Err(e) if e.code() == ErrorCode::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let mode = entry.filemode();
            if entry.kind() != Some(ObjectType::Blob) || mode == i32::from(git2::FileMode::Link) {
                return Err(Error::Merge {
                    path: path.to_owned(),
                    message: "the blueprint renders a file here, but the repository has a \
                              folder, a symbolic link or a submodule"
                        .into(),
                });
            }
            insert(&mut files, path.to_owned(), self.file(entry.id(), mode)?)?;
        }
        Ok(files)
    }

    fn file(&self, blob: Oid, mode: i32) -> Result<TreeFile> {
        Ok(TreeFile {
            contents: self.repo.find_blob(blob)?.content().to_vec(),
            executable: mode == i32::from(git2::FileMode::BlobExecutable),
        })
    }

    /// Commits `tree` as a pristine render on top of `parent`, without moving any
    /// branch: [`Repo::record`] does that.
    pub fn commit_render(
        &self,
        tree: &FileTree,
        parent: Option<Oid>,
        message: &str,
    ) -> Result<Oid> {
        let mut index = git2::Index::new()?;
        for (path, file) in tree.iter() {
            let id = self.repo.blob(&file.contents)?;
            index.add(&entry(path, id, file.executable, 0))?;
        }
        let tree = self.repo.find_tree(index.write_tree_to(&self.repo)?)?;
        let parents = match parent {
            Some(id) => vec![self.repo.find_commit(id)?],
            None => Vec::new(),
        };
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let author = person(&self.repo, "AUTHOR")?;
        let committer = person(&self.repo, "COMMITTER")?;
        Ok(self
            .repo
            .commit(None, &author, &committer, message, &tree, &parents)?)
    }

    /// Records an applied plan, whose files are already in the working tree, and the
    /// `extra` paths that after-merge hooks changed: the index (with conflicts as git's
    /// three stages), the pristine branch at `render`, and then
    /// either a merge commit of `render` into `HEAD` or, with conflicts or when `commit`
    /// is false, a merge in progress that `git commit` concludes. On failure the index and
    /// the branches are as they were.
    pub fn record(
        &self,
        plan: &Plan,
        extra: &[String],
        render: Oid,
        message: &str,
        commit: bool,
    ) -> Result<Recorded> {
        let head = self.repo.head()?.peel_to_commit()?;
        let pristine_before = self.resolve(PRISTINE_REF)?;
        let result = self.record_steps(plan, extra, &head, render, message, commit);
        if result.is_err() {
            // Best effort, step by step: the error to report is the first one.
            if let Ok(mut index) = self.repo.index() {
                let restored = head.tree().and_then(|tree| index.read_tree(&tree));
                if restored.is_ok() {
                    let _ = index.write();
                }
            }
            self.remove_merge_state();
            let _ = match pristine_before {
                Some(id) => self
                    .repo
                    .reference(PRISTINE_REF, id, true, "new-service: undo")
                    .map(drop),
                None => self
                    .repo
                    .find_reference(PRISTINE_REF)
                    .and_then(|mut r| r.delete()),
            };
        }
        result
    }

    fn record_steps(
        &self,
        plan: &Plan,
        extra: &[String],
        head: &git2::Commit<'_>,
        render: Oid,
        message: &str,
        commit: bool,
    ) -> Result<Recorded> {
        let mut index = self.repo.index()?;
        for file in plan.changes() {
            let path = Path::new(&file.path);
            if file.outcome == Outcome::Conflict {
                if index.get_path(path, 0).is_some() {
                    index.remove(path, 0)?;
                }
                let sides = [(1, &file.base), (2, &file.ours), (3, &file.theirs)];
                for (stage, side) in sides {
                    if let Some(side) = side {
                        let id = self.repo.blob(&side.contents)?;
                        index.add(&entry(&file.path, id, side.executable, stage))?;
                    }
                }
            } else if file.result.is_some() {
                index.add_path(path)?;
            } else {
                index.remove_path(path)?;
            }
        }
        for path in extra {
            if self.root.join(path).exists() {
                index.add_path(Path::new(path))?;
            } else {
                index.remove_path(Path::new(path))?;
            }
        }
        index.write()?;
        self.repo
            .reference(PRISTINE_REF, render, true, "new-service: pristine render")?;
        if !commit || index.has_conflicts() {
            let git_dir = self.repo.path();
            write_state(&git_dir.join("MERGE_HEAD"), &format!("{render}\n"))?;
            write_state(&git_dir.join("MERGE_MSG"), message)?;
            return Ok(Recorded::MergeInProgress);
        }
        let tree = self.repo.find_tree(index.write_tree()?)?;
        let theirs = self.repo.find_commit(render)?;
        let author = person(&self.repo, "AUTHOR")?;
        let committer = person(&self.repo, "COMMITTER")?;
        let id = self.repo.commit(
            Some("HEAD"),
            &author,
            &committer,
            message,
            &tree,
            &[head, &theirs],
        )?;
        Ok(Recorded::Committed {
            commit: id.to_string(),
        })
    }

    fn remove_merge_state(&self) {
        for name in ["MERGE_HEAD", "MERGE_MSG"] {
            let _ = std::fs::remove_file(self.repo.path().join(name));
        }
    }
}

fn write_state(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

fn insert(files: &mut FileTree, path: String, file: TreeFile) -> Result<()> {
    files.insert(path.clone(), file).map_err(|e| Error::Merge {
        path,
        message: e.to_string(),
    })
}

/// An index entry for a blob at `stage` (0 normal, 1 base, 2 ours, 3 theirs).
fn entry(path: &str, id: Oid, executable: bool, stage: u16) -> IndexEntry {
    let time = IndexTime::new(0, 0);
    IndexEntry {
        ctime: time,
        mtime: time,
        dev: 0,
        ino: 0,
        mode: if executable { 0o100755 } else { 0o100644 },
        uid: 0,
        gid: 0,
        file_size: 0,
        id,
        flags: (stage << 12) | path.len().min(0xfff) as u16,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

/// `GIT_<ROLE>_NAME`/`_EMAIL`, else `user.name`/`user.email`, else the fallback.
fn person(repo: &Repository, role: &str) -> Result<Signature<'static>> {
    let config = repo.config().ok();
    let lookup = |env: &str, key: &str| {
        std::env::var(format!("GIT_{role}_{env}"))
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| config.as_ref().and_then(|c| c.get_string(key).ok()))
    };
    let name = lookup("NAME", "user.name").unwrap_or_else(|| "new-service".to_owned());
    let email = lookup("EMAIL", "user.email").unwrap_or_else(|| "new-service@localhost".to_owned());
    Ok(Signature::now(&name, &email)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_every_file_on_main_with_a_clean_status() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".gitignore"), "*.log\n").unwrap();
        std::fs::write(dir.path().join("kept.log"), "rendered on purpose").unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), "").unwrap();
        let id = init_and_commit(dir.path(), "Initial commit").unwrap();

        let repo = Repository::open(dir.path()).unwrap();
        let head = repo.head().unwrap();
        assert_eq!(head.shorthand().unwrap(), BRANCH);
        let commit = head.peel_to_commit().unwrap();
        assert_eq!(commit.id().to_string(), id);
        assert_eq!(commit.message().unwrap(), "Initial commit");
        assert_eq!(commit.tree().unwrap().len(), 3);
        let statuses = repo.statuses(None).unwrap();
        assert_eq!(statuses.len(), 0, "working tree clean");
    }
}
