//! Post-render hooks: scripts a manifest names, run inside the new repository.
//!
//! The script text comes from the blueprint source's `hooks/` folder and is piped to
//! `sh -s`, so nothing is written to run it. It runs with the staged repository as its
//! working directory, before the commit or after it (see [`HookStage`]), and sees
//! `NEW_SERVICE_NAME`, `NEW_SERVICE_ANSWERS` (path of the recorded answers),
//! `NEW_SERVICE_STAGE` and `NEW_SERVICE_GIT` (`1` when a repository is being made).
//! A hook that fails fails the whole generation, and nothing is left behind.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::answers::{ANSWERS_PATH, Answers};
use crate::blueprint::{Blueprint, HookRule, HookStage, Source};
use crate::error::{Error, Result};
use crate::render::Renderer;

/// The names of the hooks of `stage` whose condition holds for `answers`.
pub fn applicable(
    blueprint: &Blueprint,
    answers: &Answers,
    stage: HookStage,
) -> Result<Vec<String>> {
    Ok(selected(blueprint, answers, stage)?
        .into_iter()
        .map(|hook| hook.name.clone())
        .collect())
}

/// The hooks of `stage` whose condition holds for `answers`, in manifest order.
fn selected<'b>(
    blueprint: &'b Blueprint,
    answers: &Answers,
    stage: HookStage,
) -> Result<Vec<&'b HookRule>> {
    let renderer = Renderer::new();
    let mut hooks = Vec::new();
    for hook in blueprint.manifest.hooks.iter().filter(|h| h.stage == stage) {
        match &hook.when {
            Some(when) if !renderer.condition(blueprint, answers, when)? => {}
            _ => hooks.push(hook),
        }
    }
    Ok(hooks)
}

/// Runs the hooks of `stage` whose condition holds, in manifest order, inside `dir`.
/// Returns the names of the hooks that ran.
pub fn run(
    source: &Source,
    blueprint: &Blueprint,
    answers: &Answers,
    stage: HookStage,
    dir: &Path,
    git: bool,
) -> Result<Vec<String>> {
    let mut ran = Vec::new();
    for hook in selected(blueprint, answers, stage)? {
        let script = source
            .hook(&hook.run)
            .expect("checked when the source was loaded");
        let failed = |message: String| Error::Hook {
            name: hook.name.clone(),
            message,
        };
        let mut child = Command::new("sh")
            .arg("-s")
            .current_dir(dir)
            .env("NEW_SERVICE_NAME", &answers.name)
            .env("NEW_SERVICE_ANSWERS", dir.join(ANSWERS_PATH))
            .env(
                "NEW_SERVICE_STAGE",
                match stage {
                    HookStage::BeforeCommit => "before-commit",
                    HookStage::AfterCommit => "after-commit",
                    HookStage::AfterMerge => "after-merge",
                },
            )
            .env("NEW_SERVICE_GIT", if git { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot start sh: {e}")))?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(&script.bytes)
            .map_err(|e| failed(format!("cannot pass the script to sh: {e}")))?;
        let output = child
            .wait_with_output()
            .map_err(|e| failed(e.to_string()))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(failed(format!("{} ({})", stderr.trim(), output.status)));
        }
        ran.push(hook.name.clone());
    }
    Ok(ran)
}
