//! new-service: generate microservice systems from versioned blueprints.
//!
//! The library is the product; the `new-service` binary is a thin adapter over it.
//! Data flows one way: [`answers::PartialAnswers`] (flags, file, wizard) →
//! [`answers::Answers`] (validated against a [`blueprint::Blueprint`]) →
//! [`render::render`] (pure) → [`tree::FileTree`] → [`output`] (the only writer) →
//! [`git`] (the only git user), with [`hooks`] run in between. [`update`] (`add` and
//! `update`) runs the same render on a generated repository and merges the result with
//! [`merge`]. See ARCHITECTURE.md.

pub mod answers;
pub mod blueprint;
pub mod error;
mod filters;
pub mod git;
pub mod hooks;
pub mod merge;
pub mod output;
pub mod render;
pub mod tree;
pub mod update;

use std::path::PathBuf;

use serde::Serialize;

use crate::answers::Answers;
use crate::blueprint::{Blueprint, HookStage, Source};
pub use crate::error::{Error, Result};
use crate::render::TOOL_VERSION;
use crate::tree::FileTree;

/// How `new` writes its result.
#[derive(Debug, Clone)]
pub struct NewOptions {
    /// The folder to create; must not exist or be empty.
    pub target: PathBuf,
    /// Make a git repository with one commit.
    pub git: bool,
    /// Run the blueprint's hooks.
    pub hooks: bool,
}

/// Progress of [`generate`], for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// The tree is rendered in memory (for `update`, and merged).
    Rendered {
        /// Number of files that will be written.
        files: usize,
    },
    /// One file was written to the staging folder.
    Wrote(&'a str),
    /// A hook is about to run.
    Hooks(HookStage),
    /// The git commit is about to be made.
    Committing,
    /// The repository is being moved into place.
    Finishing,
}

/// What [`generate`] made.
#[derive(Debug, Clone, Serialize)]
pub struct Generated {
    /// The new repository.
    pub path: PathBuf,
    /// Every file written, ordered.
    pub files: Vec<String>,
    /// The commit id, unless git was off.
    pub commit: Option<String>,
    /// Hooks that ran.
    pub hooks: Vec<String>,
    /// The blueprint used.
    pub blueprint: BlueprintId,
    /// The answers used.
    pub answers: Answers,
}

/// A blueprint's name and version.
#[derive(Debug, Clone, Serialize)]
pub struct BlueprintId {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
}

impl From<&Blueprint> for BlueprintId {
    fn from(b: &Blueprint) -> Self {
        BlueprintId {
            name: b.manifest.blueprint.name.clone(),
            version: b.manifest.blueprint.version.clone(),
        }
    }
}

/// The tree `new` would write, without writing anything (`--dry-run`). Also checks the
/// target, so a dry run fails where the real run would.
pub fn plan(blueprint: &Blueprint, answers: &Answers, options: &NewOptions) -> Result<FileTree> {
    output::check_target(&options.target)?;
    render::render(blueprint, answers)
}

/// Renders, writes, runs hooks and commits a new system: all or nothing.
pub fn generate(
    source: &Source,
    blueprint: &Blueprint,
    answers: &Answers,
    options: &NewOptions,
    progress: &mut dyn FnMut(Step<'_>),
) -> Result<Generated> {
    let tree = plan(blueprint, answers, options)?;
    progress(Step::Rendered { files: tree.len() });
    let staged = output::stage(&tree, &options.target, |path| progress(Step::Wrote(path)))?;

    let mut hooks_ran = Vec::new();
    let mut run_hooks = |stage, progress: &mut dyn FnMut(Step<'_>)| -> Result<()> {
        if options.hooks {
            progress(Step::Hooks(stage));
            hooks_ran.extend(hooks::run(
                source,
                blueprint,
                answers,
                stage,
                staged.path(),
                options.git,
            )?);
        }
        Ok(())
    };
    run_hooks(HookStage::BeforeCommit, progress)?;
    let commit = if options.git {
        progress(Step::Committing);
        Some(git::init_and_commit(
            staged.path(),
            &commit_message(blueprint, answers),
        )?)
    } else {
        None
    };
    run_hooks(HookStage::AfterCommit, progress)?;
    progress(Step::Finishing);
    let path = staged.finish()?;
    Ok(Generated {
        path,
        files: tree.paths().map(str::to_owned).collect(),
        commit,
        hooks: hooks_ran,
        blueprint: blueprint.into(),
        answers: answers.clone(),
    })
}

fn commit_message(blueprint: &Blueprint, answers: &Answers) -> String {
    let meta = &blueprint.manifest.blueprint;
    format!(
        "Generate {} with new-service {TOOL_VERSION}\n\nBlueprint {} {}; answers in {}.\n",
        answers.name,
        meta.name,
        meta.version,
        answers::ANSWERS_PATH
    )
}
