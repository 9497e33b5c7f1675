//! The one error type of the library.
//!
//! Every failure a user can meet is a variant with named fields, so the CLI edge can
//! render it once with the field, the value, the rule that was broken and a suggestion,
//! and map it to a documented exit code. No presentation (colour, layout) lives here.

use std::path::PathBuf;

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit code for invalid input: bad name, unknown choice, bad answers file, target not empty.
pub const EXIT_INVALID_INPUT: i32 = 2;
/// Exit code for every other failure.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code of `update --check` when the repository is behind its blueprints.
pub const EXIT_UPDATE_AVAILABLE: i32 = 3;
/// Exit code after an interrupt (128 + SIGINT), once everything was undone.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Everything that can go wrong, from answers to git.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name does not follow the naming rule.
    #[error("invalid {field} {value:?}")]
    InvalidName {
        /// Answer key, e.g. `services[1].name`.
        field: String,
        /// The name as given.
        value: String,
        /// Why it is invalid.
        problem: &'static str,
        /// A close name that is valid, when one exists.
        suggestion: Option<String>,
    },

    /// A service name that would collide with a keyword, a std crate or a blueprint's own crate.
    #[error("{field} {value:?} is a reserved name")]
    ReservedName {
        /// Answer key.
        field: String,
        /// The name as given.
        value: String,
        /// Who reserves it: "Rust" or "blueprint NAME".
        reserved_by: String,
    },

    /// Two services share a name.
    #[error("service name {value:?} is used more than once")]
    DuplicateService {
        /// Answer key of the second occurrence.
        field: String,
        /// The repeated name.
        value: String,
    },

    /// A choice value no blueprint knows.
    #[error("unknown {field} {value:?}")]
    UnknownChoice {
        /// Answer key.
        field: String,
        /// The value as given.
        value: String,
        /// Every value the blueprint accepts.
        valid: Vec<String>,
    },

    /// A known choice value the selected blueprint cannot render yet.
    #[error("{field} {value:?} is not available yet in blueprint {blueprint}")]
    NotYetSupported {
        /// Answer key.
        field: String,
        /// The value as given.
        value: String,
        /// Blueprint name and version.
        blueprint: String,
        /// The values it renders today.
        supported: Vec<String>,
    },

    /// A flag value that does not have the expected shape.
    #[error("invalid {field} {value:?}")]
    InvalidValue {
        /// Flag or answer key.
        field: String,
        /// The value as given.
        value: String,
        /// The expected shape.
        rule: String,
    },

    /// The answers file cannot be read or parsed.
    #[error("cannot use answers file {}", path.display())]
    AnswersFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
    },

    /// No terminal to ask on, `--yes` not given, and answers are missing.
    #[error("missing answers: {}", missing.join(", "))]
    MissingAnswers {
        /// Answer keys with the flag that sets each.
        missing: Vec<String>,
    },

    /// The target folder exists and is not empty (or is not a folder).
    #[error("target {} already exists and is not an empty folder", path.display())]
    TargetNotEmpty {
        /// The target.
        path: PathBuf,
    },

    /// No blueprint of that name in the source.
    #[error("no blueprint named {name:?} in {source_label}")]
    UnknownBlueprint {
        /// The requested name.
        name: String,
        /// Where we looked.
        source_label: String,
        /// The names that exist.
        available: Vec<String>,
    },

    /// The blueprint source folder is missing or not laid out as a source.
    #[error("{} is not a blueprint source", path.display())]
    BlueprintSource {
        /// The folder given.
        path: PathBuf,
        /// What is missing.
        message: String,
    },

    /// A manifest is invalid: a blueprint bug, not a user error.
    #[error("blueprint manifest {file}: {message}")]
    Manifest {
        /// Manifest path inside the source.
        file: String,
        /// What is wrong.
        message: String,
    },

    /// A template failed to parse or render.
    #[error("template {file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Template {
        /// Template path inside the source.
        file: String,
        /// 1-based line of the offending tag, when it could be located.
        line: Option<usize>,
        /// Liquid's explanation.
        message: String,
    },

    /// A file-system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A git operation failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),

    /// A post-render hook failed.
    #[error("hook {name} failed: {message}")]
    Hook {
        /// Hook name from the manifest.
        name: String,
        /// Exit status and output.
        message: String,
    },

    /// No `.new-service/answers.toml` in the folder or any folder above it.
    #[error("{} is not inside a repository made by new-service", path.display())]
    NotGenerated {
        /// Where the search started.
        path: PathBuf,
    },

    /// The generated folder is not the root of a git repository.
    #[error("{} is not the root of a git repository", path.display())]
    NotARepository {
        /// The folder holding `.new-service/`.
        path: PathBuf,
        /// What git said.
        message: String,
    },

    /// The working tree has changes that are not committed.
    #[error("{} has uncommitted changes", path.display())]
    UncommittedChanges {
        /// The repository.
        path: PathBuf,
        /// The first changed paths, with git's status letters.
        changes: Vec<String>,
    },

    /// A merge, rebase or similar operation is in progress.
    #[error("{} is in the middle of a {operation}", path.display())]
    OperationInProgress {
        /// The repository.
        path: PathBuf,
        /// What is in progress (merge, rebase, cherry-pick…).
        operation: String,
    },

    /// The pristine render the repository's files came from cannot be found or rebuilt.
    #[error("cannot find the render {} was last generated or updated from", path.display())]
    NoBase {
        /// The repository.
        path: PathBuf,
        /// The versions recorded in the answers file.
        recorded: String,
        /// The versions of this tool and source.
        current: String,
    },

    /// The blueprint source is older than the one the repository was generated from.
    #[error("blueprint {blueprint} {current} is older than the recorded {recorded}")]
    Downgrade {
        /// Blueprint name.
        blueprint: String,
        /// The version recorded in the answers file.
        recorded: String,
        /// The version of the source given.
        current: String,
    },

    /// A file the update would create exists on disk though git does not track it
    /// (it is ignored).
    #[error("{path} would be overwritten")]
    WouldOverwrite {
        /// Path relative to the repository.
        path: String,
    },

    /// libgit2 could not merge a file.
    #[error("cannot merge {path}: {message}")]
    Merge {
        /// Path relative to the repository.
        path: String,
        /// Why.
        message: String,
    },

    /// Ctrl-C or SIGTERM arrived while the repository was being changed; every change
    /// was undone.
    #[error("interrupted: the repository was left as it was")]
    Interrupted,

    /// The user declined the confirmation or interrupted the wizard.
    #[error("cancelled: nothing was written")]
    Cancelled,

    /// The terminal prompt failed.
    #[error("prompt failed: {0}")]
    Prompt(String),
}

impl Error {
    /// The process exit code for this error: 2 for invalid input, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InvalidName { .. }
            | Error::ReservedName { .. }
            | Error::DuplicateService { .. }
            | Error::UnknownChoice { .. }
            | Error::NotYetSupported { .. }
            | Error::InvalidValue { .. }
            | Error::AnswersFile { .. }
            | Error::MissingAnswers { .. }
            | Error::TargetNotEmpty { .. }
            | Error::UnknownBlueprint { .. }
            | Error::BlueprintSource { .. }
            | Error::NotGenerated { .. }
            | Error::NotARepository { .. }
            | Error::UncommittedChanges { .. }
            | Error::OperationInProgress { .. }
            | Error::NoBase { .. }
            | Error::Downgrade { .. }
            | Error::WouldOverwrite { .. } => EXIT_INVALID_INPUT,
            Error::Interrupted => EXIT_INTERRUPTED,
            _ => EXIT_FAILURE,
        }
    }

    /// The answer key or flag the error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidName { field, .. }
            | Error::ReservedName { field, .. }
            | Error::DuplicateService { field, .. }
            | Error::UnknownChoice { field, .. }
            | Error::NotYetSupported { field, .. }
            | Error::InvalidValue { field, .. } => Some(field),
            Error::Downgrade { .. } => Some("generator.blueprint_version"),
            _ => None,
        }
    }

    /// The offending value, when there is one.
    pub fn value(&self) -> Option<&str> {
        match self {
            Error::InvalidName { value, .. }
            | Error::ReservedName { value, .. }
            | Error::DuplicateService { value, .. }
            | Error::UnknownChoice { value, .. }
            | Error::NotYetSupported { value, .. }
            | Error::InvalidValue { value, .. } => Some(value),
            Error::Downgrade { current, .. } => Some(current),
            _ => None,
        }
    }

    /// The rule that was broken, in words.
    pub fn rule(&self) -> Option<String> {
        Some(match self {
            Error::InvalidName { problem, .. } => format!(
                "{problem}; names are 2 to 40 characters of a-z, 0-9 and '-', start with a letter \
                 and end with a letter or digit (^[a-z][a-z0-9-]{{0,38}}[a-z0-9]$)"
            ),
            Error::ReservedName { reserved_by, .. } => {
                format!("service names must not collide with names reserved by {reserved_by}")
            }
            Error::DuplicateService { .. } => {
                "service names must be unique, also once '-' runs are folded (a-b and a--b clash)"
                    .into()
            }
            Error::UnknownChoice { valid, .. } => format!("one of: {}", valid.join(", ")),
            Error::NotYetSupported { supported, .. } => {
                format!("this blueprint renders: {}", supported.join(", "))
            }
            Error::InvalidValue { rule, .. } => rule.clone(),
            Error::AnswersFile {
                message,
                line,
                column,
                ..
            } => match (line, column) {
                (Some(l), Some(c)) => format!("line {l}, column {c}: {message}"),
                _ => message.clone(),
            },
            Error::MissingAnswers { .. } => {
                "without a terminal every answer must come from flags or --answers".into()
            }
            Error::TargetNotEmpty { .. } => "new never writes into an existing folder".into(),
            Error::UnknownBlueprint { available, .. } => {
                format!("available: {}", available.join(", "))
            }
            Error::BlueprintSource { message, .. } => message.clone(),
            Error::NotGenerated { .. } => format!(
                "add and update work in a repository made by new-service: the folder holding {} \
                 (searched from here upwards)",
                crate::answers::ANSWERS_PATH
            ),
            Error::NotARepository { message, .. } => format!(
                "add and update merge through git, so the folder holding {} must be a \
                 repository's root ({message})",
                crate::answers::ANSWERS_PATH
            ),
            Error::UncommittedChanges { changes, .. } => format!(
                "the working tree must be clean, so that the update can be undone and nothing \
                 of yours is at risk; changed: {}",
                changes.join(", ")
            ),
            Error::OperationInProgress { .. } => {
                "one operation at a time: the repository must not be mid-merge or mid-rebase".into()
            }
            Error::NoBase {
                recorded, current, ..
            } => format!(
                "the three-way merge needs the last render: the branch new-service/pristine \
                 (local or fetched), or the same tool and blueprint versions as recorded to \
                 render it again (recorded: {recorded}; here: {current})"
            ),
            Error::Downgrade { .. } => "update never goes back to an older blueprint".into(),
            Error::WouldOverwrite { .. } => {
                "update never overwrites a file git does not track (here an ignored one)".into()
            }
            _ => return None,
        })
    }

    /// What the user could do instead, when we can tell.
    pub fn suggestion(&self) -> Option<String> {
        match self {
            Error::InvalidName {
                suggestion: Some(s),
                ..
            } => Some(format!("try {s:?}")),
            Error::ReservedName { value, .. } => Some(format!("try \"{value}-svc\"")),
            Error::DuplicateService { .. } => Some("give each service its own name".into()),
            Error::UnknownChoice { value, valid, .. } => closest(value, valid)
                .map(|c| format!("did you mean {c:?}?"))
                .or_else(|| Some(format!("use one of: {}", valid.join(", ")))),
            Error::NotYetSupported { .. } => Some(
                "choose a supported value, or point --blueprints at a source that renders it"
                    .into(),
            ),
            Error::MissingAnswers { .. } => Some(
                "pass them as flags or in --answers FILE, or add --yes to take the defaults".into(),
            ),
            Error::TargetNotEmpty { .. } => {
                Some("choose another NAME or --output folder, or remove the existing one".into())
            }
            Error::AnswersFile { .. } => Some(
                "the keys are those of .new-service/answers.toml in a generated repository".into(),
            ),
            Error::BlueprintSource { .. } => Some(
                "a source is a folder holding blueprints/<name>/blueprint.toml (and hooks/)".into(),
            ),
            Error::UnknownBlueprint { .. } => Some(
                "use one of the available names, or --blueprints with the source that has it"
                    .into(),
            ),
            Error::NotGenerated { .. } => {
                Some("cd into the generated repository, or pass -C DIR".into())
            }
            Error::NotARepository { .. } => {
                Some("commit the folder first: git init -b main && git add -A && git commit".into())
            }
            Error::UncommittedChanges { .. } => {
                Some("commit or stash them (git stash --include-untracked), then run again".into())
            }
            Error::OperationInProgress { .. } => {
                Some("finish it (resolve, then git commit) or abort it (git merge --abort)".into())
            }
            Error::NoBase { .. } => Some(
                "git fetch origin new-service/pristine:new-service/pristine (the branch is \
                 pushed with `git push origin main new-service/pristine`), or run the recorded \
                 new-service version"
                    .into(),
            ),
            Error::Downgrade { .. } => {
                Some("point --blueprints at a source with this version or a newer one".into())
            }
            Error::WouldOverwrite { .. } => Some("move the file away, then run again".into()),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The valid value closest to `value` by edit distance, if it is close enough to be a typo.
fn closest<'a>(value: &str, valid: &'a [String]) -> Option<&'a str> {
    valid
        .iter()
        .map(|v| (edit_distance(value, v), v))
        .filter(|(d, v)| *d <= 2.max(v.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_suggests_the_closest_value() {
        let valid = vec![
            "rest".to_string(),
            "graphql".to_string(),
            "grpc".to_string(),
        ];
        assert_eq!(closest("rset", &valid), Some("rest"));
        assert_eq!(closest("grcp", &valid), Some("grpc"));
        assert_eq!(closest("soap-over-carrier-pigeon", &valid), None);
    }

    #[test]
    fn input_errors_exit_2_and_others_1() {
        let input = Error::TargetNotEmpty { path: "x".into() };
        assert_eq!(input.exit_code(), 2);
        let other = Error::Cancelled;
        assert_eq!(other.exit_code(), 1);
    }
}
