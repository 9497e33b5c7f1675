//! The command line: clap types, flags → answers, output and error rendering.
//!
//! Arguments are parsed in two stages: clap gives [`NewArgs`] exactly as typed, then
//! [`NewArgs::partial_answers`] turns them into the library's [`PartialAnswers`]; clap
//! types never leave this module. Each command is a thin adapter over the library.
//! Errors are rendered once, in [`run`], with field, value, rule and suggestion.

use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use new_service::answers::Answers;
use new_service::answers::{
    PartialAnswers, PartialAuth, PartialCi, PartialGateway, PartialMessaging, Service,
};
use new_service::blueprint::{Blueprint, Choice, HookStage, Source};
use new_service::error::{EXIT_FAILURE, EXIT_UPDATE_AVAILABLE, Error, Result};
use new_service::merge::Outcome;
use new_service::tree::FileTree;
use new_service::update::{self, Applied, AppliedState, Change, Update, UpdateOptions};
use new_service::{BlueprintId, Generated, NewOptions, Step, output};

use crate::wizard;

/// Scaffold microservice systems from versioned blueprints.
#[derive(Debug, Parser)]
#[command(name = "new-service", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a new system into a new git repository.
    New(Box<NewArgs>),
    /// Add to a generated repository, rewiring every layer (one commit).
    #[command(subcommand)]
    Add(AddCommand),
    /// Re-render a generated repository with the current blueprints and merge the
    /// result into it three ways (conflicts are left as git conflicts).
    #[command(after_help = UPDATE_EXIT_CODES)]
    Update(UpdateArgs),
    /// List and inspect blueprints.
    #[command(subcommand)]
    Blueprints(BlueprintsCommand),
}

#[derive(Debug, Subcommand)]
enum BlueprintsCommand {
    /// List the blueprints of a source with their versions.
    List(SourceArgs),
    /// Show a blueprint's questions, values and defaults.
    Show {
        /// Blueprint name.
        name: String,
        #[command(flatten)]
        source: SourceArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AddCommand {
    /// Add a service: its crate, and the gateway, compose, Kubernetes, CI, contracts and
    /// docs rewired to match.
    #[command(after_help = UPDATE_EXIT_CODES)]
    Service(AddServiceArgs),
}

/// The exit codes of `add` and `update`, for their help.
const UPDATE_EXIT_CODES: &str = "Exit codes: 0 done (or already up to date); 1 conflicts left \
to resolve, as after `git merge`, or another failure; 2 refused, nothing changed (uncommitted \
changes, not a generated repository, invalid answers or name); 3 an update is available \
(--check); 130 interrupted, nothing changed.";

/// Flags of `add service`.
#[derive(Debug, Args)]
struct AddServiceArgs {
    /// Service name: lowercase letters, digits and '-' (also its crate and folder).
    name: String,
    /// Protocol it serves (default: the blueprint's default protocol).
    #[arg(long, value_name = "PROTOCOL")]
    protocol: Option<String>,
    #[command(flatten)]
    repository: RepositoryArgs,
}

/// Flags of `update`.
#[derive(Debug, Args)]
struct UpdateArgs {
    /// Only tell whether an update is available: exit 0 when the repository is on the
    /// current blueprints, 3 when it is not. Writes nothing.
    #[arg(long, conflicts_with_all = ["dry_run", "no_commit"])]
    check: bool,
    #[command(flatten)]
    repository: RepositoryArgs,
}

/// Flags shared by `add` and `update`.
#[derive(Debug, Args)]
struct RepositoryArgs {
    /// Run as if started in DIR (any folder inside the generated repository).
    #[arg(short = 'C', value_name = "DIR")]
    directory: Option<PathBuf>,
    /// Print what would happen to each file; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Leave the merge staged for `git commit` instead of committing it.
    #[arg(long)]
    no_commit: bool,
    /// Do not run the blueprint's after-merge hooks (such as the one that brings a
    /// committed Cargo.lock in line).
    #[arg(long)]
    no_hooks: bool,
    #[command(flatten)]
    source: SourceArgs,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct SourceArgs {
    /// Blueprint source folder (holding blueprints/ and hooks/) instead of the built-in one.
    #[arg(long, value_name = "DIR")]
    blueprints: Option<PathBuf>,
}

/// Flags of `new`, exactly as typed.
#[derive(Debug, Args)]
struct NewArgs {
    /// System name: lowercase letters, digits and '-' (also the folder name).
    name: Option<String>,
    /// A service, repeatable: NAME:PROTOCOL (or NAME for the default protocol).
    #[arg(long = "service", value_name = "NAME:PROTOCOL")]
    services: Vec<String>,
    /// Message broker between services.
    #[arg(long, value_name = "BROKER")]
    messaging: Option<String>,
    /// Authentication scheme at the gateway.
    #[arg(long, value_name = "SCHEME")]
    auth: Option<String>,
    /// Mutual TLS between services (`--mtls` or `--mtls=false`).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    mtls: Option<bool>,
    /// Generate the API gateway (the default).
    #[arg(long, conflicts_with = "no_gateway")]
    gateway: bool,
    /// Do not generate the API gateway.
    #[arg(long)]
    no_gateway: bool,
    /// CI provider.
    #[arg(long, value_name = "PROVIDER")]
    ci: Option<String>,
    /// One line describing the system.
    #[arg(long)]
    description: Option<String>,
    /// Owning team or person.
    #[arg(long)]
    owner: Option<String>,
    /// Answers file (TOML, the keys of .new-service/answers.toml); flags override it.
    #[arg(long, value_name = "FILE")]
    answers: Option<PathBuf>,
    /// Take defaults for anything not given; never prompt.
    #[arg(long, short)]
    yes: bool,
    /// Folder to create (default: ./NAME).
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Print what would be written; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not create a git repository.
    #[arg(long)]
    no_git: bool,
    /// Do not run the blueprint's hooks.
    #[arg(long)]
    no_hooks: bool,
    /// Blueprint to use (default: the source's default blueprint).
    #[arg(long, value_name = "NAME")]
    blueprint: Option<String>,
    #[command(flatten)]
    source: SourceArgs,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    json: bool,
}

impl NewArgs {
    /// The answers the flags give; `default_protocol` fills `--service NAME`.
    fn partial_answers(&self, default_protocol: &str) -> Result<PartialAnswers> {
        let services = if self.services.is_empty() {
            None
        } else {
            let parsed = self.services.iter().map(|spec| match spec.split_once(':') {
                Some((name, protocol)) if !protocol.contains(':') => Ok(Service {
                    name: name.to_owned(),
                    protocol: protocol.to_owned(),
                }),
                Some(_) => Err(Error::InvalidValue {
                    field: "--service".into(),
                    value: spec.clone(),
                    rule: "NAME:PROTOCOL, with one ':'".into(),
                }),
                None => Ok(Service {
                    name: spec.clone(),
                    protocol: default_protocol.to_owned(),
                }),
            });
            Some(parsed.collect::<Result<Vec<_>>>()?)
        };
        let gateway = match (self.gateway, self.no_gateway) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        };
        Ok(PartialAnswers {
            name: self.name.clone(),
            description: self.description.clone(),
            owner: self.owner.clone(),
            services,
            messaging: PartialMessaging {
                broker: self.messaging.clone(),
            },
            auth: PartialAuth {
                scheme: self.auth.clone(),
                mtls: self.mtls,
            },
            gateway: PartialGateway { enabled: gateway },
            ci: PartialCi {
                provider: self.ci.clone(),
            },
            generator: None,
        })
    }
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    let json = match &cli.command {
        Command::New(args) => args.json,
        Command::Add(AddCommand::Service(args)) => args.repository.json,
        Command::Update(args) => args.repository.json,
        Command::Blueprints(_) => false,
    };
    match execute(cli) {
        Ok(code) => code,
        Err(error) => {
            report(&error, json);
            error.exit_code()
        }
    }
}

/// Runs a command; returns the exit code of a run that did not fail.
fn execute(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::New(args) => new(&args).map(|()| 0),
        Command::Add(AddCommand::Service(args)) => add_service(&args),
        Command::Update(args) => update(&args),
        Command::Blueprints(BlueprintsCommand::List(source)) => list(&source).map(|()| 0),
        Command::Blueprints(BlueprintsCommand::Show { name, source }) => {
            show(&name, &source).map(|()| 0)
        }
    }
}

fn load_source(args: &SourceArgs) -> Result<Source> {
    match &args.blueprints {
        Some(dir) => Source::from_dir(dir),
        None => Source::builtin(),
    }
}

fn new(args: &NewArgs) -> Result<()> {
    let source = load_source(&args.source)?;
    let blueprint = source.blueprint(args.blueprint.as_deref())?;
    let default_protocol = blueprint.manifest.choices.protocol.default.to_string();

    let from_file = match &args.answers {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::AnswersFile {
                path: path.clone(),
                message: e.to_string(),
                line: None,
                column: None,
            })?;
            PartialAnswers::from_toml(&text, path)?
        }
        None => PartialAnswers::default(),
    };
    let mut partial = from_file.overlay(args.partial_answers(&default_protocol)?);

    let interactive = !args.yes && std::io::stdin().is_terminal();
    if interactive {
        let target_of = |name: &str| args.output.clone().unwrap_or_else(|| PathBuf::from(name));
        partial = wizard::ask(partial, blueprint, &target_of)?;
    }
    let answers = partial.resolve(blueprint, args.yes || interactive)?;
    let options = NewOptions {
        target: args
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from(&answers.name)),
        git: !args.no_git,
        hooks: !args.no_hooks,
    };

    if args.dry_run {
        let tree = new_service::plan(blueprint, &answers, &options)?;
        print_plan(
            &tree,
            &options,
            BlueprintId::from(blueprint),
            &answers,
            args.json,
        );
        return Ok(());
    }

    let bar = progress_bar(args.json);
    let generated = new_service::generate(&source, blueprint, &answers, &options, &mut |step| {
        show_step(&bar, step)
    });
    bar.finish_and_clear();
    let generated = generated?;

    print_generated(&generated, args.json);
    Ok(())
}

fn add_service(args: &AddServiceArgs) -> Result<i32> {
    let repository = &args.repository;
    let source = load_source(&repository.source)?;
    let start = start_folder(repository)?;
    let change = Change::AddService {
        name: args.name.clone(),
        protocol: args.protocol.clone(),
    };
    run_update(repository, &source, start, change)
}

fn update(args: &UpdateArgs) -> Result<i32> {
    let repository = &args.repository;
    let source = load_source(&repository.source)?;
    let start = start_folder(repository)?;
    if args.check {
        let prepared = update::prepare(&UpdateOptions {
            start,
            source: &source,
            change: Change::None,
            hooks: !repository.no_hooks,
            check_only: true,
        })?;
        let check = prepared.check();
        if repository.json {
            let line = serde_json::to_string(&check).expect("plain data");
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        } else {
            let (recorded, current) = (&check.recorded, &check.current);
            let files = match check.files_changed {
                Some(n) => format!(", {n} files differ"),
                None => " (no pristine branch here: versions compared)".into(),
            };
            let line = if check.up_to_date {
                format!(
                    "up to date: blueprint {} {}, new-service {}",
                    current.blueprint, current.blueprint_version, current.tool_version
                )
            } else {
                format!(
                    "update available: blueprint {} {} -> {}, new-service {} -> {}{files}; \
                     run `new-service update`",
                    current.blueprint,
                    recorded.blueprint_version,
                    current.blueprint_version,
                    recorded.tool_version,
                    current.tool_version
                )
            };
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
        return Ok(if check.up_to_date {
            0
        } else {
            EXIT_UPDATE_AVAILABLE
        });
    }
    run_update(repository, &source, start, Change::None)
}

fn start_folder(args: &RepositoryArgs) -> Result<PathBuf> {
    match &args.directory {
        Some(dir) => Ok(dir.clone()),
        None => std::env::current_dir().map_err(|e| Error::Io {
            path: PathBuf::from("."),
            source: e,
        }),
    }
}

/// `add` and `update` after their answers change is known: prepare, then print the
/// plan (`--dry-run`) or apply it.
fn run_update(
    args: &RepositoryArgs,
    source: &Source,
    start: PathBuf,
    change: Change,
) -> Result<i32> {
    let prepared = update::prepare(&UpdateOptions {
        start,
        source,
        change,
        hooks: !args.no_hooks,
        check_only: false,
    })?;
    if args.dry_run {
        print_update(&prepared, args.json)?;
        return Ok(0);
    }
    let plan = prepared.plan().clone();
    let bar = progress_bar(args.json);
    let applied = prepared.apply(!args.no_commit, &output::interrupted, &mut |step| {
        show_step(&bar, step)
    });
    bar.finish_and_clear();
    let applied = applied?;
    print_applied(&plan, &applied, args.json);
    Ok(if applied.conflicts.is_empty() {
        0
    } else {
        EXIT_FAILURE
    })
}

/// A dry run's per-file outcomes, for people or as JSON.
fn print_update(prepared: &Update, json: bool) -> Result<()> {
    let plan = prepared.plan();
    let (recorded, current) = prepared.versions();
    let hooks = prepared.after_merge_hooks()?;
    if json {
        print_json(&serde_json::json!({
            "dry_run": true,
            "path": prepared.root(),
            "up_to_date": prepared.up_to_date(),
            "base": prepared.base_source(),
            "recorded": recorded,
            "current": current,
            "answers": prepared.answers(),
            "after_merge_hooks": hooks,
            "counts": counts_json(plan),
            "files": files_json(plan),
        }));
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "Would update {} (blueprint {} {} -> {}, new-service {} -> {}):",
        prepared.root().display(),
        current.blueprint,
        recorded.blueprint_version,
        current.blueprint_version,
        recorded.tool_version,
        current.tool_version
    );
    write_outcomes(&mut out, plan);
    if !hooks.is_empty() {
        let _ = writeln!(
            out,
            "Then the after-merge hooks would run, and what they change be committed with \
             the merge: {}.",
            hooks.join(", ")
        );
    }
    let _ = writeln!(out, "Nothing was written (--dry-run).");
    Ok(())
}

fn print_applied(plan: &new_service::merge::Plan, applied: &Applied, json: bool) {
    if json {
        print_json(&serde_json::json!({
            "path": applied.path,
            "state": applied.state,
            "commit": applied.commit,
            "render": applied.render,
            "conflicts": applied.conflicts,
            "hooks": applied.hooks,
            "hook_files": applied.hook_files,
            "hooks_skipped": applied.hooks_skipped,
            "counts": counts_json(plan),
            "files": files_json(plan),
        }));
        return;
    }
    let mut out = std::io::stdout().lock();
    if applied.state == AppliedState::UpToDate {
        let _ = writeln!(
            out,
            "{} is up to date: nothing to merge.",
            applied.path.display()
        );
        return;
    }
    write_outcomes(&mut out, plan);
    for path in &applied.hook_files {
        let _ = writeln!(out, "  {:<13} {path}", "hook");
    }
    if !applied.hooks.is_empty() {
        let _ = writeln!(out, "After-merge hooks: {}.", applied.hooks.join(", "));
    }
    if !applied.hooks_skipped.is_empty() {
        let _ = writeln!(
            out,
            "After-merge hooks not run because of the conflicts (do what they do once \
             resolved): {}.",
            applied.hooks_skipped.join(", ")
        );
    }
    match (&applied.state, &applied.commit) {
        (AppliedState::Committed, Some(commit)) => {
            let _ = writeln!(out, "Committed {}.", &commit[..12.min(commit.len())]);
        }
        _ if !applied.conflicts.is_empty() => {
            let _ = writeln!(
                out,
                "{} conflict(s) left for you, as in any git merge: edit the files marked with \
                 <<<<<<<, `git add` them and `git commit` (or `git merge --abort`).",
                applied.conflicts.len()
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "Merged into the working tree, not committed: review, then `git commit`."
            );
        }
    }
}

/// One line per file that changes, then the totals.
fn write_outcomes(out: &mut impl std::io::Write, plan: &new_service::merge::Plan) {
    for file in &plan.files {
        if file.outcome == Outcome::Unchanged {
            continue;
        }
        let note = match file.outcome {
            Outcome::KeptDeleted => "  (deleted here; the blueprint's change is not applied)",
            Outcome::Conflict if file.result == file.ours => "  (kept as it is here)",
            _ => "",
        };
        let _ = writeln!(out, "  {:<13} {}{note}", file.outcome.label(), file.path);
    }
    let totals: Vec<String> = Outcome::ALL
        .iter()
        .map(|o| (o, plan.count(*o)))
        .filter(|(_, n)| *n > 0)
        .map(|(o, n)| format!("{n} {}", o.label()))
        .collect();
    let _ = writeln!(out, "Three-way merge: {}.", totals.join(", "));
}

fn counts_json(plan: &new_service::merge::Plan) -> serde_json::Value {
    Outcome::ALL
        .iter()
        .map(|o| {
            (
                o.label().to_owned(),
                serde_json::Value::from(plan.count(*o)),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn files_json(plan: &new_service::merge::Plan) -> serde_json::Value {
    plan.files
        .iter()
        .map(|f| serde_json::json!({ "path": f.path, "outcome": f.outcome }))
        .collect()
}

/// The `--dry-run` plan: every file `new` would create, or the same as JSON.
fn print_plan(
    tree: &FileTree,
    options: &NewOptions,
    id: BlueprintId,
    answers: &Answers,
    json: bool,
) {
    if json {
        let files: Vec<&str> = tree.paths().collect();
        print_json(&serde_json::json!({
            "dry_run": true,
            "path": options.target,
            "files": files,
            "blueprint": id,
            "answers": answers,
        }));
    } else {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "Would create {} from blueprint {} {} ({} files, {} bytes):",
            options.target.display(),
            id.name,
            id.version,
            tree.len(),
            tree.total_bytes()
        );
        for (path, file) in tree.iter() {
            let _ = writeln!(
                out,
                "  create  {path}{}",
                if file.executable {
                    "  (executable)"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(out, "Nothing was written (--dry-run).");
    }
}

/// What `new` made, for people or as JSON.
fn print_generated(generated: &Generated, json: bool) {
    if json {
        print_json(&serde_json::to_value(generated).expect("plain data"));
    } else {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "Created {} at {} ({} files) from blueprint {} {}",
            generated.answers.name,
            generated.path.display(),
            generated.files.len(),
            generated.blueprint.name,
            generated.blueprint.version
        );
        if let Some(commit) = &generated.commit {
            let _ = writeln!(
                out,
                "  git: branch main, commit {}",
                &commit[..12.min(commit.len())]
            );
        }
        if !generated.hooks.is_empty() {
            let _ = writeln!(out, "  hooks: {}", generated.hooks.join(", "));
        }
        let _ = writeln!(out, "Next: cd {} && cargo test", generated.path.display());
    }
}

/// Moves the progress bar on for a library [`Step`].
fn show_step(bar: &ProgressBar, step: Step<'_>) {
    match step {
        Step::Rendered { files } => {
            bar.set_length(files as u64);
            bar.set_message("writing");
        }
        Step::Wrote(path) => {
            bar.inc(1);
            bar.set_message(path.to_owned());
        }
        Step::Hooks(HookStage::BeforeCommit) => bar.set_message("hooks (before commit)"),
        Step::Hooks(HookStage::AfterCommit) => bar.set_message("hooks (after commit)"),
        Step::Hooks(HookStage::AfterMerge) => bar.set_message("hooks (after merge)"),
        Step::Committing => bar.set_message("committing"),
        Step::Finishing => bar.set_message("moving into place"),
    }
}

fn progress_bar(json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {wide_msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

fn list(args: &SourceArgs) -> Result<()> {
    let source = load_source(args)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Blueprints in {}:", source.label);
    for b in source.blueprints() {
        let meta = &b.manifest.blueprint;
        let default = if meta.default { " (default)" } else { "" };
        let _ = writeln!(
            out,
            "  {} {}{default}  {}",
            meta.name, meta.version, meta.description
        );
    }
    Ok(())
}

fn show(name: &str, args: &SourceArgs) -> Result<()> {
    let source = load_source(args)?;
    let blueprint: &Blueprint = source.blueprint(Some(name))?;
    let m = &blueprint.manifest;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{} {} — {}",
        m.blueprint.name, m.blueprint.version, m.blueprint.description
    );
    let _ = writeln!(out, "\nQuestions (answer keys):");
    let _ = writeln!(out, "  name                 the system name (required)");
    let _ = writeln!(
        out,
        "  description          default: {:?}",
        m.defaults.description
    );
    let _ = writeln!(out, "  owner                default: empty");
    let _ = writeln!(
        out,
        "  services[].name      default: one service, {:?}",
        m.defaults.service_name
    );
    let c = &m.choices;
    for (key, choice) in [
        ("services[].protocol", &c.protocol),
        ("messaging.broker", &c.broker),
        ("auth.scheme", &c.auth),
        ("auth.mtls", &c.mtls),
        ("gateway.enabled", &c.gateway),
        ("ci.provider", &c.ci),
    ] {
        let _ = writeln!(out, "  {key:<20} default: {}", choice.default);
        write_values(&mut out, choice);
    }
    if !m.blueprint.reserved_names.is_empty() {
        let _ = writeln!(
            out,
            "\nReserved service names: {}",
            m.blueprint.reserved_names.join(", ")
        );
    }
    Ok(())
}

fn write_values(out: &mut impl std::io::Write, choice: &Choice) {
    for option in &choice.values {
        let _ = writeln!(
            out,
            "      {:<10} {}",
            option.value.to_string(),
            option.help
        );
    }
    if !choice.planned.is_empty() {
        let planned: Vec<String> = choice.planned.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "      planned:   {}", planned.join(", "));
    }
}

fn print_json(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

/// Renders an error once: a headline, then field, value, rule and suggestion lines.
/// With `--json` the same facts are also printed on stdout as one JSON object.
fn report(error: &Error, json: bool) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {error}");
    if let Some(field) = error.field() {
        let _ = writeln!(err, "  field: {field}");
    }
    if let Some(value) = error.value() {
        let _ = writeln!(err, "  value: {value:?}");
    }
    if let Error::MissingAnswers { missing } = error {
        for key in missing {
            let _ = writeln!(err, "  missing: {key}");
        }
    }
    if let Some(rule) = error.rule() {
        let _ = writeln!(err, "  rule:  {rule}");
    }
    if let Some(suggestion) = error.suggestion() {
        let _ = writeln!(err, "  help:  {suggestion}");
    }
    if json {
        print_json(&serde_json::json!({
            "error": {
                "message": error.to_string(),
                "exit_code": error.exit_code(),
                "field": error.field(),
                "value": error.value(),
                "rule": error.rule(),
                "suggestion": error.suggestion(),
            }
        }));
    }
}
