//! The only module that talks to git: a new repository with one commit.
//!
//! Uses libgit2 (git2), so no `git` binary is needed. The author comes from the
//! environment (`GIT_AUTHOR_NAME`/`GIT_AUTHOR_EMAIL`, as git does) or the user's git
//! configuration, falling back to `new-service <new-service@localhost>` so a machine
//! without git configured still gets a commit.

use std::path::Path;

use git2::{IndexAddOption, Repository, RepositoryInitOptions, Signature};

use crate::error::Result;

/// Branch the new repository starts on.
pub const BRANCH: &str = "main";

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
    Ok(id.to_string())
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
