//! `update` and `add`: a generated repository re-rendered and merged three ways.
//!
//! `add service` is `update` with one more service in the answers: there is one
//! mechanism. [`prepare`] finds the repository (from any folder inside it), refuses a
//! dirty or busy one, reads the recorded answers, applies the [`Change`], and computes
//! everything in memory: the *base* (the last render, from the pristine branch, see
//! [`crate::git`]), *ours* (the committed files at the rendered paths), *theirs* (the
//! render of the answers with the current blueprints) and the per-file [`Plan`].
//! Nothing is written until [`Update::apply`], which commits the render on the pristine
//! branch, patches the working tree (undone on any failure or interrupt) and records the
//! merge: one merge commit, or git's ordinary merge-in-progress when there are conflicts.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::answers::{ANSWERS_PATH, Answers, Generator, PartialAnswers, Service};
use crate::blueprint::{Blueprint, HookStage, Source};
use crate::error::{Error, Result};
use crate::git::{Recorded, Repo};
use crate::merge::{self, Labels, Outcome, Plan};
use crate::render::TOOL_VERSION;
use crate::tree::FileTree;
use crate::{Step, hooks, output, render};

/// How the answers change before the re-render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Re-render the recorded answers as they are (`update`).
    None,
    /// Append a service (`add service`); without a protocol, the blueprint's default.
    AddService {
        /// Its name.
        name: String,
        /// Its protocol.
        protocol: Option<String>,
    },
}

/// What [`prepare`] needs.
pub struct UpdateOptions<'a> {
    /// A folder inside the repository; the root is found from here upwards.
    pub start: PathBuf,
    /// The blueprint source to render with (the built-in one or `--blueprints`).
    pub source: &'a Source,
    /// How the recorded answers change.
    pub change: Change,
    /// Run the blueprint's `after-merge` hooks in the repository. (Its `before-commit`
    /// hooks always run, on each render in a scratch folder: their output is part of
    /// what the blueprint renders, and leaving it out would remove it.)
    pub hooks: bool,
    /// Only compare the base with the new render (`--check`): the working tree may be
    /// dirty and a missing base is not an error.
    pub check_only: bool,
}

/// Where the base of the merge came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseSource {
    /// A commit of the pristine branch that `HEAD` descends from.
    PristineBranch,
    /// Rendered again: no pristine branch here, but the same tool and blueprint versions
    /// as recorded, so rendering the recorded answers gives the same tree.
    Rerendered,
    /// Not found (only with `check_only`): the versions were compared instead.
    Missing,
}

/// An update computed in memory, ready to apply.
pub struct Update<'s> {
    root: PathBuf,
    repo: Repo,
    source: &'s Source,
    blueprint: &'s Blueprint,
    hooks: bool,
    change: Change,
    answers: Answers,
    recorded: Generator,
    current: Generator,
    base_source: BaseSource,
    base: FileTree,
    theirs: FileTree,
    plan: Plan,
    pristine_tip: Option<git2::Oid>,
}

/// The one-line answer of `update --check`.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The repository root.
    pub path: PathBuf,
    /// Whether a re-render with the current blueprints would change nothing.
    pub up_to_date: bool,
    /// The versions recorded in the answers file.
    pub recorded: Generator,
    /// The versions an update would record.
    pub current: Generator,
    /// Files that differ between the last render and the new one (when the base was found).
    pub files_changed: Option<usize>,
    /// How the answer was reached.
    pub base: BaseSource,
}

/// What [`Update::apply`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// The repository root.
    pub path: PathBuf,
    /// `committed`, `merge-in-progress` (conflicts or `--no-commit`) or `up-to-date`.
    pub state: AppliedState,
    /// The merge commit, when one was made.
    pub commit: Option<String>,
    /// The pristine render's commit, when one was made.
    pub render: Option<String>,
    /// Paths left with conflicts.
    pub conflicts: Vec<String>,
    /// The after-merge hooks that ran.
    pub hooks: Vec<String>,
    /// Files those hooks changed, committed with the merge.
    pub hook_files: Vec<String>,
    /// After-merge hooks not run because the merge left conflicts: run what they do
    /// after resolving.
    pub hooks_skipped: Vec<String>,
}

/// The end state of an applied update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppliedState {
    /// One merge commit on the current branch.
    Committed,
    /// Files and index written, `git commit` concludes (conflicts, or `--no-commit`).
    MergeInProgress,
    /// Nothing to do.
    UpToDate,
}

/// The folder at or above `start` that holds `.new-service/answers.toml`.
pub fn find_root(start: &Path) -> Result<PathBuf> {
    let start = std::path::absolute(start).map_err(|e| Error::io(start, e))?;
    start
        .ancestors()
        .find(|dir| dir.join(ANSWERS_PATH).is_file())
        .map(Path::to_owned)
        .ok_or(Error::NotGenerated { path: start })
}

/// Finds the repository, checks it, and computes the update in memory.
pub fn prepare<'s>(options: &UpdateOptions<'s>) -> Result<Update<'s>> {
    let root = find_root(&options.start)?;
    let repo = Repo::open(&root)?;
    if !options.check_only {
        repo.require_clean()?;
    }
    let answers_path = root.join(ANSWERS_PATH);
    let text = std::fs::read_to_string(&answers_path).map_err(|e| Error::AnswersFile {
        path: answers_path.clone(),
        message: e.to_string(),
        line: None,
        column: None,
    })?;
    let partial = PartialAnswers::from_toml(&text, &answers_path)?;
    let recorded = partial
        .generator
        .clone()
        .ok_or_else(|| Error::AnswersFile {
            path: answers_path.clone(),
            message: "there is no [generator] table naming the tool and blueprint versions".into(),
            line: None,
            column: None,
        })?;
    let blueprint = options.source.blueprint(Some(&recorded.blueprint))?;
    let current = Generator {
        tool_version: TOOL_VERSION.to_owned(),
        blueprint: recorded.blueprint.clone(),
        blueprint_version: blueprint.manifest.blueprint.version.clone(),
    };
    if older(&current.blueprint_version, &recorded.blueprint_version) {
        return Err(Error::Downgrade {
            blueprint: recorded.blueprint.clone(),
            recorded: recorded.blueprint_version.clone(),
            current: current.blueprint_version.clone(),
        });
    }
    let old_answers = match partial.resolve(blueprint, false) {
        Err(Error::MissingAnswers { missing }) => {
            return Err(Error::AnswersFile {
                path: answers_path,
                message: format!("keys missing: {}", missing.join(", ")),
                line: None,
                column: None,
            });
        }
        other => other?,
    };
    let mut answers = old_answers.clone();
    if let Change::AddService { name, protocol } = &options.change {
        let protocol = protocol
            .clone()
            .unwrap_or_else(|| blueprint.manifest.choices.protocol.default.to_string());
        answers.services.push(Service {
            name: name.clone(),
            protocol,
        });
        answers.validate(blueprint)?;
    }

    let head = repo.head()?;
    let (merged, pristine_tip) = repo.last_render(head)?;
    let (base_source, base) = match merged {
        Some(commit) => (BaseSource::PristineBranch, repo.read_commit(commit)?),
        None if recorded == current => (
            BaseSource::Rerendered,
            render_system(options.source, blueprint, &old_answers)?,
        ),
        None if options.check_only => (BaseSource::Missing, FileTree::new()),
        None => {
            return Err(Error::NoBase {
                path: root,
                recorded: versions(&recorded),
                current: versions(&current),
            });
        }
    };
    let theirs = render_system(options.source, blueprint, &answers)?;

    let paths: std::collections::BTreeSet<&str> = base.paths().chain(theirs.paths()).collect();
    let ours = repo.read_paths(head, paths)?;
    let theirs_label = format!(
        "blueprint {} {}",
        current.blueprint, current.blueprint_version
    );
    let plan = merge::three_way(
        &base,
        &ours,
        &theirs,
        Labels {
            ours: "HEAD",
            theirs: &theirs_label,
        },
    )?;
    Ok(Update {
        root,
        repo,
        source: options.source,
        blueprint,
        hooks: options.hooks,
        change: options.change.clone(),
        answers,
        recorded,
        current,
        base_source,
        base,
        theirs,
        plan,
        pristine_tip,
    })
}

/// The render of `answers` with the `before-commit` hooks' changes, exactly as `new`
/// committed it.
fn render_system(source: &Source, blueprint: &Blueprint, answers: &Answers) -> Result<FileTree> {
    let tree = render::render(blueprint, answers)?;
    if hooks::applicable(blueprint, answers, HookStage::BeforeCommit)?.is_empty() {
        return Ok(tree);
    }
    let scratch = output::Scratch::new(&tree)?;
    hooks::run(
        source,
        blueprint,
        answers,
        HookStage::BeforeCommit,
        scratch.path(),
        false,
    )?;
    scratch.read()
}

impl Update<'_> {
    /// The repository root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The answers the new render used.
    pub fn answers(&self) -> &Answers {
        &self.answers
    }

    /// The per-file plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The versions recorded in the repository and the ones an update records.
    pub fn versions(&self) -> (&Generator, &Generator) {
        (&self.recorded, &self.current)
    }

    /// Where the base came from.
    pub fn base_source(&self) -> BaseSource {
        self.base_source
    }

    /// The after-merge hooks that [`Update::apply`] would run: none with `--no-hooks`
    /// or when the merge leaves conflicts.
    pub fn after_merge_hooks(&self) -> Result<Vec<String>> {
        if !self.hooks || self.plan.has_conflicts() || self.up_to_date() {
            return Ok(Vec::new());
        }
        hooks::applicable(self.blueprint, &self.answers, HookStage::AfterMerge)
    }

    /// Whether the new render equals the last one: nothing to merge.
    pub fn up_to_date(&self) -> bool {
        self.base == self.theirs
    }

    /// The `--check` summary.
    pub fn check(&self) -> Check {
        let (up_to_date, files_changed) = match self.base_source {
            BaseSource::Missing => (self.recorded == self.current, None),
            _ => {
                let changed = self
                    .base
                    .paths()
                    .chain(self.theirs.paths())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .filter(|p| self.base.get(p) != self.theirs.get(p))
                    .count();
                (changed == 0, Some(changed))
            }
        };
        Check {
            path: self.root.clone(),
            up_to_date,
            recorded: self.recorded.clone(),
            current: self.current.clone(),
            files_changed,
            base: self.base_source,
        }
    }

    /// Writes the update: the render on the pristine branch, the working tree, the
    /// index, and one merge commit (unless `commit` is false or there are conflicts, in
    /// which case `git commit` concludes the merge). `stop` is polled between files; when
    /// it returns true, or anything fails, every change is undone.
    pub fn apply(
        self,
        commit: bool,
        stop: &dyn Fn() -> bool,
        progress: &mut dyn FnMut(Step<'_>),
    ) -> Result<Applied> {
        let conflicts: Vec<String> = self
            .plan
            .files
            .iter()
            .filter(|f| f.outcome == Outcome::Conflict)
            .map(|f| f.path.clone())
            .collect();
        if self.up_to_date() {
            return Ok(Applied {
                path: self.root,
                state: AppliedState::UpToDate,
                commit: None,
                render: None,
                conflicts,
                hooks: Vec::new(),
                hook_files: Vec::new(),
                hooks_skipped: Vec::new(),
            });
        }
        let render_message = format!(
            "Render blueprint {} {} with new-service {}\n\n\
             The blueprint's output for the answers in {ANSWERS_PATH}, untouched. \
             `new-service update` merges\nsuch renders into the working branch, and the \
             last one merged is the base of the\nnext three-way merge.\n",
            self.current.blueprint, self.current.blueprint_version, self.current.tool_version
        );
        let render = self
            .repo
            .commit_render(&self.theirs, self.pristine_tip, &render_message)?;

        let replacements: Vec<output::Replacement<'_>> = self
            .plan
            .changes()
            .filter(|f| f.changes_worktree())
            .map(|f| output::Replacement {
                path: &f.path,
                before: f.ours.as_ref(),
                after: f.result.as_ref(),
            })
            .collect();
        progress(Step::Rendered {
            files: replacements.len(),
        });
        let mut patched = output::patch(&self.root, &replacements, stop, |path| {
            progress(Step::Wrote(path))
        })?;
        let stage = HookStage::AfterMerge;
        let applicable = match self.hooks {
            true => hooks::applicable(self.blueprint, &self.answers, stage)?,
            false => Vec::new(),
        };
        let (hooks, hook_files, hooks_skipped) = if applicable.is_empty() {
            (Vec::new(), Vec::new(), Vec::new())
        } else if conflicts.is_empty() {
            progress(Step::Hooks(stage));
            let (ran, files) = self.after_merge(&mut patched)?;
            (ran, files, Vec::new())
        } else {
            (Vec::new(), Vec::new(), applicable)
        };
        if stop() {
            return Err(Error::Interrupted);
        }
        progress(Step::Committing);
        let message = self.message(&render.to_string(), &conflicts);
        let recorded = self
            .repo
            .record(&self.plan, &hook_files, render, &message, commit)?;
        patched.keep();
        let (state, commit) = match recorded {
            Recorded::Committed { commit } => (AppliedState::Committed, Some(commit)),
            Recorded::MergeInProgress => (AppliedState::MergeInProgress, None),
        };
        Ok(Applied {
            path: self.root,
            state,
            commit,
            render: Some(render.to_string()),
            conflicts,
            hooks,
            hook_files,
            hooks_skipped,
        })
    }

    /// Runs the after-merge hooks in the repository and makes what they change part of
    /// the patch. Returns the hooks that ran and the files they changed.
    fn after_merge(&self, patched: &mut output::Patched) -> Result<(Vec<String>, Vec<String>)> {
        let changed_before: std::collections::BTreeSet<String> = self
            .repo
            .changes()?
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        let ran = hooks::run(
            self.source,
            self.blueprint,
            &self.answers,
            HookStage::AfterMerge,
            &self.root,
            true,
        );
        // What the hooks changed is undone with the rest, even when one failed.
        let head = self.repo.head()?;
        let mut files = Vec::new();
        for (path, _) in self.repo.changes()? {
            if changed_before.contains(&path) {
                continue;
            }
            let before = self.repo.read_paths(head, [path.as_str()])?;
            patched.adopt(&path, before.get(&path).cloned());
            files.push(path);
        }
        Ok((ran?, files))
    }

    /// The merge commit's message (also `MERGE_MSG` when the user concludes the merge).
    fn message(&self, render: &str, conflicts: &[String]) -> String {
        let current = &self.current;
        let title = match &self.change {
            Change::AddService { .. } => {
                let added = self.answers.services.last().expect("one was added");
                format!("Add service {} ({})", added.name, added.protocol)
            }
            Change::None if self.recorded != self.current => format!(
                "Update to blueprint {} {} (new-service {})",
                current.blueprint, current.blueprint_version, current.tool_version
            ),
            Change::None => format!(
                "Re-render with blueprint {} {}",
                current.blueprint, current.blueprint_version
            ),
        };
        let counts: Vec<String> = Outcome::ALL
            .iter()
            .filter(|o| **o != Outcome::Unchanged)
            .filter_map(|o| match self.plan.count(*o) {
                0 => None,
                n => Some(format!("{n} {}", o.label())),
            })
            .collect();
        let counts = if counts.is_empty() {
            "no file changes".to_owned()
        } else {
            counts.join(", ")
        };
        let mut message = format!(
            "{title}\n\nMerged render {} of blueprint {} {} three ways: {counts}.\n",
            &render[..12.min(render.len())],
            current.blueprint,
            current.blueprint_version,
        );
        if !conflicts.is_empty() {
            message.push_str("\n# Conflicts:\n");
            for path in conflicts {
                message.push_str(&format!("#\t{path}\n"));
            }
        }
        message
    }
}

fn versions(g: &Generator) -> String {
    format!(
        "blueprint {} {}, new-service {}",
        g.blueprint, g.blueprint_version, g.tool_version
    )
}

/// Whether dotted version `a` is older than `b`, comparing numeric parts; versions that
/// do not parse are never older.
fn older(a: &str, b: &str) -> bool {
    let parse = |v: &str| -> Option<Vec<u64>> {
        v.split(['-', '+'])
            .next()?
            .split('.')
            .map(|p| p.parse().ok())
            .collect()
    };
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a < b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::NewOptions;

    /// A repository made by `new` from the fixture blueprint, and the fixture source.
    fn generated() -> (tempfile::TempDir, PathBuf, Source) {
        let source =
            Source::from_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/source"))
                .unwrap();
        let blueprint = source.blueprint(None).unwrap();
        let answers = PartialAnswers {
            name: Some("demo".into()),
            ..Default::default()
        }
        .resolve(blueprint, true)
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let options = NewOptions {
            target: tmp.path().join("demo"),
            git: true,
            hooks: true,
        };
        let made = crate::generate(&source, blueprint, &answers, &options, &mut |_| {}).unwrap();
        (tmp, made.path, source)
    }

    /// Every ref with its target, every file outside `.git` (and `MERGE_HEAD`) with its
    /// contents, and the number of status entries.
    type Snapshot = (Vec<(String, String)>, Vec<(PathBuf, Vec<u8>)>, usize);

    fn snapshot(root: &Path) -> Snapshot {
        fn walk(dir: &Path, files: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if !path.ends_with(".git") {
                        walk(&path, files);
                    }
                } else {
                    files.push((path.clone(), std::fs::read(&path).unwrap()));
                }
            }
        }
        let repo = git2::Repository::open(root).unwrap();
        let refs = repo
            .references()
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                (
                    r.name().unwrap().to_owned(),
                    r.target().unwrap().to_string(),
                )
            })
            .collect();
        let mut files = Vec::new();
        walk(root, &mut files);
        files.sort();
        let merge_head = root.join(".git/MERGE_HEAD");
        if merge_head.exists() {
            files.push((merge_head.clone(), std::fs::read(&merge_head).unwrap()));
        }
        (refs, files, repo.statuses(None).unwrap().len())
    }

    fn add_beta<'s>(root: &Path, source: &'s Source) -> Update<'s> {
        prepare(&UpdateOptions {
            start: root.to_owned(),
            source,
            change: Change::AddService {
                name: "beta".into(),
                protocol: None,
            },
            hooks: true,
            check_only: false,
        })
        .unwrap()
    }

    #[test]
    fn an_interrupt_while_writing_undoes_every_change() {
        let (_tmp, root, source) = generated();
        let before = snapshot(&root);
        let update = add_beta(&root, &source);
        assert!(update.plan().changes().count() >= 3, "a multi-file update");
        let polls = Cell::new(0);
        let stop = || {
            polls.set(polls.get() + 1);
            polls.get() > 2
        };
        let result = update.apply(true, &stop, &mut |_| {});
        assert!(matches!(result, Err(Error::Interrupted)), "{result:?}");
        assert_eq!(snapshot(&root), before);
        assert!(!root.join("services/beta").exists());
    }

    #[test]
    fn a_failure_while_recording_undoes_the_files_the_index_and_the_branches() {
        // Another git process holds the index (the first write fails), or the branch
        // (the last step, the commit, fails after the index and the pristine branch
        // were written).
        for lock in [".git/index.lock", ".git/refs/heads/main.lock"] {
            let (_tmp, root, source) = generated();
            let before = snapshot(&root);
            let update = add_beta(&root, &source);
            std::fs::write(root.join(lock), "").unwrap();
            let result = update.apply(true, &|| false, &mut |_| {});
            assert!(matches!(result, Err(Error::Git(_))), "{lock}: {result:?}");
            std::fs::remove_file(root.join(lock)).unwrap();
            assert_eq!(snapshot(&root), before, "{lock}");
            assert!(!root.join("services/beta").exists());
        }
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(older("0.9.0", "0.10.0"));
        assert!(older("1.2", "1.2.1"));
        assert!(!older("2.0.0", "2.0.0"));
        assert!(!older("2.1.0-beta", "2.0.9"));
        assert!(!older("next", "1.0.0"));
    }
}
