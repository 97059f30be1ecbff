//! `flowcore completions SHELL`: the shell's completion script for every command and flag of
//! `flowcore`, generated from the same clap definitions that parse the command line, so that it
//! never falls behind them.

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::args::Cli;

/// The completion script for `shell`, to be installed where the shell looks for it.
pub fn script(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "flowcore", &mut out);
    // Generated from our own names and help, which are UTF-8.
    String::from_utf8_lossy(&out).into_owned()
}
