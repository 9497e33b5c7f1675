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
use new_service::error::{Error, Result};
use new_service::tree::FileTree;
use new_service::{BlueprintId, Generated, NewOptions, Step};

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
    let json = matches!(&cli.command, Command::New(args) if args.json);
    match execute(cli) {
        Ok(()) => 0,
        Err(error) => {
            report(&error, json);
            error.exit_code()
        }
    }
}

fn execute(cli: Cli) -> Result<()> {
    match cli.command {
        Command::New(args) => new(&args),
        Command::Blueprints(BlueprintsCommand::List(source)) => list(&source),
        Command::Blueprints(BlueprintsCommand::Show { name, source }) => show(&name, &source),
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
    let generated =
        new_service::generate(
            &source,
            blueprint,
            &answers,
            &options,
            &mut |step| match step {
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
                Step::Committing => bar.set_message("committing"),
                Step::Finishing => bar.set_message("moving into place"),
            },
        );
    bar.finish_and_clear();
    let generated = generated?;

    print_generated(&generated, args.json);
    Ok(())
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
