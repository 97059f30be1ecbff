//! The command line: every command, flag and value `flowcore` accepts, as clap types.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use flowcore::StateKind;

/// Reads the flowcore run store: flow runs, their task runs, states and logs, and cached
/// results.
#[derive(Debug, Parser)]
#[command(name = "flowcore", version)]
pub struct Cli {
    /// The run store to read: a SQLite file, or a PostgreSQL database
    /// (postgres://user@host/db, postgres:///db?host=/run/postgresql). Instead of
    /// $FLOWCORE_STORE, or else $FLOWCORE_HOME/flowcore.db (~/.flowcore/flowcore.db when
    /// FLOWCORE_HOME is not set).
    #[arg(long, global = true, value_name = "PATH|URL")]
    pub store: Option<OsString>,

    /// None: `flowcore` alone, which prints the help.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Flow runs: list them, show one, print its summary.
    #[command(subcommand, arg_required_else_help = false)]
    Runs(RunsCommand),
    /// Cached task results: list them, clear them.
    #[command(subcommand, arg_required_else_help = false)]
    Cache(CacheCommand),
    /// Artifacts runs made (`flowcore::artifact`): the latest of each key, one shown.
    #[command(subcommand, arg_required_else_help = false)]
    Artifact(ArtifactCommand),
    /// Deployments: list them, run one now, pause or resume a schedule.
    #[command(subcommand, arg_required_else_help = false)]
    Deployment(DeploymentCommand),
    /// Workers: the processes serving deployments.
    #[command(subcommand, arg_required_else_help = false)]
    Worker(WorkerCommand),
    /// Concurrency limits by tag, for every process sharing the store.
    #[command(subcommand, arg_required_else_help = false)]
    Limit(LimitCommand),
    /// The dashboard: serves the store's runs and deployments in the browser.
    #[command(subcommand, arg_required_else_help = false)]
    Server(ServerCommand),
    /// Serves the dashboard (the same as `server start`).
    Dashboard(ServerArgs),
    /// The run store itself.
    #[command(subcommand, arg_required_else_help = false)]
    Store(StoreCommand),
    /// Prints the completion script of a shell, to install (see the README).
    Completions(Completions),
}

/// `flowcore completions`
#[derive(Debug, Args)]
pub struct Completions {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `flowcore server …`
#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Serves the dashboard until Ctrl-C.
    Start(ServerArgs),
}

/// Where the dashboard listens.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The address to listen on: 127.0.0.1 (the default) keeps it to this machine.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    pub host: String,

    /// The port to listen on; 0 picks a free one (the address is printed).
    #[arg(long, default_value_t = 4200, value_name = "PORT")]
    pub port: u16,

    /// Another host name to answer to, e.g. the name a proxy in front of it or /etc/hosts gives
    /// it (repeatable; NAME:PORT answers it on that port only). It answers only requests for
    /// 127.0.0.1, localhost, [::1], the --host address and these; others get 421.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_host: Vec<String>,
}

/// `flowcore deployment …`
#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// Lists the deployments processes have served: schedule, next run, last run's state.
    Ls(Output),
    /// Requests a run of a deployment; the process serving it starts it within a second.
    Run(DeploymentRun),
    /// Pauses a deployment's schedule: no scheduled run starts until it is resumed (runs
    /// requested with `deployment run` still run).
    Pause(DeploymentName),
    /// Resumes a paused deployment's schedule, from its next time due (the times missed while
    /// paused are not made up).
    Resume(DeploymentName),
}

/// A command about one deployment.
#[derive(Debug, Args)]
pub struct DeploymentName {
    /// The deployment's name, as in `deployment ls`.
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// `flowcore worker …`
#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Lists the live processes serving deployments: host, pid, last heartbeat, runs held.
    Ls(Output),
}

/// `flowcore limit …`
#[derive(Debug, Subcommand)]
pub enum LimitCommand {
    /// Lists the store-wide limits: tag, limit, task runs holding a slot now.
    Ls(Output),
    /// Allows at most MAX task runs tagged TAG at once, in all the processes sharing the store.
    Set(LimitSet),
    /// Lifts the store-wide limit of a tag.
    Rm(LimitRm),
}

/// `flowcore limit set`
#[derive(Debug, Args)]
pub struct LimitSet {
    /// The tag, as in `#[task(tags = ["db"])]`.
    #[arg(value_name = "TAG")]
    pub tag: String,
    /// How many task runs with the tag may run at once (at least 1).
    #[arg(value_name = "MAX", value_parser = clap::value_parser!(u32).range(1..))]
    pub max: u32,
}

/// `flowcore limit rm`
#[derive(Debug, Args)]
pub struct LimitRm {
    /// The tag.
    #[arg(value_name = "TAG")]
    pub tag: String,
}

/// `flowcore deployment run`
#[derive(Debug, Args)]
pub struct DeploymentRun {
    /// The deployment's name, as in `deployment ls`.
    #[arg(value_name = "NAME")]
    pub name: String,

    /// A parameter for this run, replacing the deployment's: `--param url=http://…`. The
    /// value is read as the parameter's type (text, number, true/false, JSON array/object).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = key_value)]
    pub params: Vec<(String, String)>,

    /// Follow the run until it ends, printing each state; the exit code is 0 only if it
    /// completed.
    #[arg(long)]
    pub watch: bool,
}

/// `key=value`, split at the first `=`.
fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "expected KEY=VALUE, as in --param url=http://127.0.0.1:8080, not {text:?}"
        )),
    }
}

/// `flowcore runs …`
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Lists flow runs, newest first, subflow runs under the run that called them.
    Ls(RunsLs),
    /// Shows everything recorded about one flow run.
    Show(RunArg),
    /// Prints a flow run's end-of-run summary, the table the flow logs when it finishes.
    Summary(RunArg),
    /// Draws a flow run's task graph: Graphviz DOT, Mermaid, or SVG through Graphviz.
    Graph(RunsGraph),
    /// Cancels a deployment's flow run: one not started ends Cancelled at once; one going on
    /// is Cancelling until the process serving it drops it (within about a second).
    Cancel(RunCancel),
    /// Gives input to a flow run paused for it (`flowcore::pause`), which it takes and goes on.
    Resume(RunResume),
    /// Deletes flow runs, each with its subflow runs, task runs, states and log lines.
    Delete(RunsDelete),
    /// Deletes the flow runs created longer ago than a duration that ended (in some states),
    /// each with everything under it.
    Prune(RunsPrune),
}

/// `flowcore runs resume`
#[derive(Debug, Args)]
pub struct RunResume {
    /// The flow run's name (the newest run of that name) or id.
    #[arg(value_name = "RUN")]
    pub run: String,

    /// The answer, as JSON: `'{"ok": true}'`.
    #[arg(long, value_name = "JSON")]
    pub input: String,
}

/// `flowcore runs cancel`
#[derive(Debug, Args)]
pub struct RunCancel {
    /// The flow run's name (the newest run of that name) or id.
    #[arg(value_name = "RUN")]
    pub run: String,

    #[command(flatten)]
    pub output: Output,
}

/// `flowcore runs delete`
#[derive(Debug, Args)]
pub struct RunsDelete {
    /// The flow runs: names (the newest run of each name) or ids. A run still going in a live
    /// process is refused, and then nothing is deleted.
    #[arg(value_name = "RUN", required = true)]
    pub runs: Vec<String>,

    #[command(flatten)]
    pub output: Output,
}

/// `flowcore runs prune`
#[derive(Debug, Args)]
pub struct RunsPrune {
    /// Deletes the top-level runs created longer ago than this: 30d, 12h, 1h 30m.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub older_than: std::time::Duration,

    /// Only runs that ended in this state (repeatable): Completed, Cached, Failed, TimedOut,
    /// Cancelled, Crashed or Skipped. Without it, runs in any of them.
    #[arg(long = "state", value_name = "STATE", value_parser = final_state)]
    pub states: Vec<StateKind>,

    #[command(flatten)]
    pub output: Output,
}

/// A humantime duration: `30d`, `12h`, `1h 30m`.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{e}; write a duration like 30d, 12h or 1h 30m"))
}

/// A state a run ends in.
fn final_state(text: &str) -> Result<StateKind, String> {
    let state: StateKind = text.parse()?;
    if state.is_final() {
        return Ok(state);
    }
    let finals: Vec<&str> = StateKind::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect();
    Err(format!(
        "{state} is not a state runs end in; a prune deletes runs that ended: {}",
        finals.join(", ")
    ))
}

/// `flowcore runs ls`
#[derive(Debug, Args)]
pub struct RunsLs {
    /// Only runs of this flow.
    #[arg(long, value_name = "NAME")]
    pub flow: Option<String>,

    /// Only runs in this state: Scheduled, Late, Pending, Running, Retrying, Paused, Cancelling,
    /// Completed, Cached, Failed, TimedOut, Cancelled, Crashed or Skipped (any case).
    #[arg(long, value_name = "STATE")]
    pub state: Option<StateKind>,

    /// Only runs carrying this tag, as in `#[flow(tags = ["nightly"])]` (exact, case matters).
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,

    /// At most this many runs.
    // A u64 ranged parser, because clap has no ranged parser for usize; 0 would list nothing.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,

    #[command(flatten)]
    pub output: Output,
}

/// A command about one flow run.
#[derive(Debug, Args)]
pub struct RunArg {
    /// The flow run's name (the newest run of that name) or id.
    #[arg(value_name = "RUN")]
    pub run: String,

    #[command(flatten)]
    pub output: Output,
}

/// `flowcore runs graph`
#[derive(Debug, Args)]
pub struct RunsGraph {
    /// The flow run's name (the newest run of that name) or id.
    #[arg(value_name = "RUN")]
    pub run: String,

    /// What to draw it as.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,

    /// Write the drawing to this file instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The formats of `runs graph`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT text.
    Dot,
    /// A Mermaid flowchart, for Markdown.
    Mermaid,
    /// An SVG image, drawn by Graphviz's `dot`, which must be installed.
    Svg,
}

/// `flowcore cache …`
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Lists the cached task results, expired ones included until they are next looked up.
    Ls(Output),
    /// Removes the cached results of one task, or all of them.
    Clear(CacheClear),
}

/// `flowcore artifact …`
#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Lists the latest artifact of each key.
    Ls(Output),
    /// Shows the latest artifact of a key: markdown and links as written, tables as columns.
    Show(ArtifactShow),
}

/// `flowcore artifact show`
#[derive(Debug, Args)]
pub struct ArtifactShow {
    /// The artifact's key.
    #[arg(value_name = "KEY")]
    pub key: String,

    #[command(flatten)]
    pub output: Output,
}

/// `flowcore cache clear`
#[derive(Debug, Args)]
pub struct CacheClear {
    /// Only the results of this task (its name, as in `cache ls`); all of them without it.
    #[arg(value_name = "TASK")]
    pub task: Option<String>,

    #[command(flatten)]
    pub output: Output,
}

/// `flowcore store …`
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Prints where the run store is, and whether it exists.
    Path(Output),
    /// Upgrades a store written by an older flowcore to this one's schema (other commands only
    /// read, and refuse such a store).
    Upgrade,
}

/// How a command prints what it found.
#[derive(Debug, Args)]
pub struct Output {
    /// Print JSON instead of a table, for scripts.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
