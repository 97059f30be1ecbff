//! `flowcore`: the command-line tool that reads the run store.
//!
//! ```text
//! flowcore runs ls [--flow NAME] [--state STATE] [--limit N] [--json]
//! flowcore runs show RUN [--json]
//! flowcore runs summary RUN [--json]
//! flowcore runs graph RUN [--format dot|mermaid|svg] [--output FILE]
//! flowcore runs delete RUN… [--json]
//! flowcore runs prune --older-than 30d [--state STATE …] [--json]
//! flowcore cache ls [--json]
//! flowcore cache clear [TASK] [--json]
//! flowcore deployment ls [--json]
//! flowcore deployment run NAME [--param KEY=VALUE …] [--watch]
//! flowcore deployment pause NAME | resume NAME
//! flowcore server start [--host 127.0.0.1] [--port 4200] [--allow-host NAME …]   (or: flowcore dashboard …)
//! flowcore store path [--json]
//! flowcore store upgrade
//! flowcore completions bash|zsh|fish|elvish|powershell
//! ```
//!
//! Every command takes `--store PATH|URL`: a SQLite file or a `postgres://` database. A failure is one line on stderr, `flowcore: …`, and
//! exit code 1; a bad command line is clap's first line and exit code 2.
//!
//! Text from the store (names, errors, messages, log lines) is printed with its control
//! characters escaped (`flowcore::terminal`), in tables, in `runs show` and in error lines;
//! `--json` is escaped by serde, and `runs graph` only when it prints to a terminal.

mod args;
mod artifact;
mod cache;
mod completions;
mod dashboard;
mod delete;
mod deployment;
mod format;
mod graph;
mod limit;
mod open;
mod pause;
mod runs;
mod store;
mod style;
mod table;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use flowcore::terminal::escape_controls;

use args::{
    ArtifactCommand, CacheCommand, Cli, Command, DeploymentCommand, LimitCommand, RunsCommand,
    ServerCommand, StoreCommand, WorkerCommand,
};
use style::Style;

/// Why a command failed, said in one line for `flowcore: …`.
#[derive(Debug)]
pub struct Failure(pub String);

impl Failure {
    pub fn new(message: impl Into<String>) -> Failure {
        Failure(message.into())
    }
}

impl From<flowcore::StoreError> for Failure {
    fn from(e: flowcore::StoreError) -> Failure {
        Failure(e.to_string())
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Failure {
        Failure(format!("cannot write JSON: {e}"))
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let Some(command) = cli.command else {
        // `flowcore` alone asks what it can do: the help, as `--help` prints it.
        use clap::CommandFactory as _;
        return match Cli::command().print_help() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("flowcore: cannot write the help: {e}");
                ExitCode::FAILURE
            }
        };
    };
    // The one command that reads no store.
    if let Command::Completions(args) = &command {
        return print(&completions::script(args.shell));
    }
    let result = run(cli.store.as_deref(), command, Style::detect());
    match result {
        Ok(text) => print(&text),
        Err(Failure(message)) => {
            // Messages are one line by design; a newline inside one (from SQLite, say) must
            // not break the promise that stderr holds a single line. They may quote the store
            // (a deployment's name, a state's message): control characters are escaped.
            let line = message.replace('\n', " ");
            eprintln!("flowcore: {}", escape_controls(&line));
            ExitCode::FAILURE
        }
    }
}

/// Runs the command on the store `store` (`--store`, when given) and returns what it prints.
fn run(store: Option<&std::ffi::OsStr>, command: Command, style: Style) -> Result<String, Failure> {
    let path = open::Location::find(store)?;
    match command {
        Command::Runs(RunsCommand::Ls(args)) => runs::ls(&open::open(&path)?, &args, style),
        Command::Runs(RunsCommand::Show(args)) => runs::show(&open::open(&path)?, &args, style),
        Command::Runs(RunsCommand::Summary(args)) => runs::summary(&open::open(&path)?, &args),
        Command::Runs(RunsCommand::Graph(args)) => graph::graph(&open::open(&path)?, &args),
        Command::Runs(RunsCommand::Cancel(args)) => runs::cancel(&open::open(&path)?, &args),
        Command::Runs(RunsCommand::Resume(args)) => runs::resume(&open::open(&path)?, &args),
        Command::Runs(RunsCommand::Delete(args)) => delete::delete(&open::open(&path)?, &args),
        Command::Runs(RunsCommand::Prune(args)) => delete::prune(&open::open(&path)?, &args),
        Command::Cache(CacheCommand::Ls(output)) => cache::ls(&open::open(&path)?, &output),
        Command::Artifact(ArtifactCommand::Ls(output)) => {
            artifact::ls(&open::open(&path)?, &output)
        }
        Command::Artifact(ArtifactCommand::Show(args)) => {
            artifact::show(&open::open(&path)?, &args)
        }
        Command::Cache(CacheCommand::Clear(args)) => cache::clear(&open::open(&path)?, &args),
        Command::Deployment(DeploymentCommand::Ls(output)) => {
            deployment::ls(&open::open(&path)?, &output, style)
        }
        Command::Deployment(DeploymentCommand::Run(args)) => {
            deployment::run(&open::open(&path)?, &args, style)
        }
        Command::Deployment(DeploymentCommand::Pause(args)) => {
            pause::pause(&open::open(&path)?, &args)
        }
        Command::Deployment(DeploymentCommand::Resume(args)) => {
            pause::resume(&open::open(&path)?, &args)
        }
        Command::Worker(WorkerCommand::Ls(output)) => {
            deployment::workers(&open::open(&path)?, &output)
        }
        Command::Limit(LimitCommand::Ls(output)) => limit::ls(&open::open(&path)?, &output),
        Command::Limit(LimitCommand::Set(args)) => limit::set(&open::open(&path)?, &args),
        Command::Limit(LimitCommand::Rm(args)) => limit::rm(&open::open(&path)?, &args),
        Command::Server(ServerCommand::Start(args)) | Command::Dashboard(args) => {
            dashboard::start(&path, &args)
        }
        Command::Store(StoreCommand::Path(output)) => store::path(&path, &output),
        Command::Store(StoreCommand::Upgrade) => store::upgrade(&path),
        Command::Completions(args) => Ok(completions::script(args.shell)),
    }
}

/// Help and version go to stdout with exit code 0, as clap prints them. Any other error is
/// clap's message alone, on one line, with exit code 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            // A bad value's message already says what is valid; a bad word needs the help.
            let hint = match e.kind() {
                ErrorKind::InvalidValue | ErrorKind::ValueValidation => String::new(),
                _ => format!(" (see '{} --help')", command_of(e)),
            };
            // Clap quotes the argument it refused, which may hold anything.
            eprintln!(
                "flowcore: {}{}{hint}",
                escape_controls(&one_line(&e.to_string())),
                escape_controls(&did_you_mean(e))
            );
            ExitCode::from(2)
        }
    }
}

/// The command the error is about, `flowcore runs ls`, from clap's usage line
/// (`Usage: flowcore runs ls [OPTIONS]`), so that the hint points at the help that helps.
fn command_of(e: &clap::Error) -> String {
    let usage = match e.get(ContextKind::Usage) {
        Some(ContextValue::StyledStr(usage)) => usage.to_string(),
        _ => String::new(),
    };
    let words: Vec<&str> = usage
        .split_whitespace()
        .skip_while(|w| *w == "Usage:")
        .take_while(|w| !w.starts_with(['[', '<', '-']))
        .collect();
    if words.is_empty() {
        "flowcore".to_owned()
    } else {
        words.join(" ")
    }
}

/// Clap's guess at what a mistyped word meant, `; a similar subcommand exists: 'ls'`, or
/// nothing. Clap prints it below its message, which [`one_line`] leaves out with the usage.
fn did_you_mean(e: &clap::Error) -> String {
    let kinds = [
        (ContextKind::SuggestedSubcommand, "subcommand"),
        (ContextKind::SuggestedArg, "argument"),
        (ContextKind::SuggestedValue, "value"),
    ];
    let mut out = String::new();
    for (kind, what) in kinds {
        let words: Vec<String> = match e.get(kind) {
            Some(ContextValue::String(word)) => vec![word.clone()],
            Some(ContextValue::Strings(words)) => words.clone(),
            _ => continue,
        };
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        match quoted.as_slice() {
            [] => {}
            [one] => out.push_str(&format!("; a similar {what} exists: {one}")),
            many => out.push_str(&format!("; similar {what}s exist: {}", many.join(", "))),
        }
    }
    out
}

/// The first paragraph of clap's error, joined into one line, without `error: `. Usually that
/// is its first line; a missing argument or subcommand continues on indented lines
/// (`<RUN>`, `[subcommands: ls, show, summary]`) that say which. Clap's usage and tips
/// follow after a blank line and are left out.
fn one_line(clap_error: &str) -> String {
    let words: Vec<&str> = clap_error
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = words.join(" ");
    match line.strip_prefix("error: ") {
        Some(rest) => rest.to_owned(),
        None if line.is_empty() => "invalid command line".to_owned(),
        None => line,
    }
}

/// Writes the output. A reader that goes away (`flowcore runs ls | head -1`) is not an
/// error worth a message.
fn print(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowcore: cannot write the output: {e}");
            ExitCode::FAILURE
        }
    }
}
