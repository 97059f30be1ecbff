//! `flowcore completions SHELL`: each script is printed on stdout, and bash's, loaded into a
//! real bash, completes commands and flags as a user pressing Tab sees them.

use std::process::{Command, Output};

fn flowcore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowcore"))
        .args(args)
        // No store is read: none is needed, wherever the defaults point.
        .env_remove("HOME")
        .env_remove("FLOWCORE_HOME")
        .env_remove("FLOWCORE_STORE")
        .output()
        .unwrap()
}

fn script(shell: &str) -> String {
    let out = flowcore(&["completions", shell]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    String::from_utf8(out.stdout).unwrap()
}

/// What bash offers for the last word of `line` after loading the bash script.
fn bash_completes(line: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flowcore.bash");
    std::fs::write(&path, script("bash")).unwrap();
    let words: Vec<&str> = line.split(' ').collect();
    let (current, previous) = (words[words.len() - 1], words[words.len() - 2]);
    let program = format!(
        "source {}; COMP_WORDS=({line}); COMP_CWORD={}; COMP_LINE='{line}'; \
         COMP_POINT=${{#COMP_LINE}}; _flowcore flowcore '{current}' '{previous}'; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display(),
        words.len() - 1
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut offered: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    offered.sort();
    offered
}

#[test]
fn bash_completes_commands_and_flags() {
    assert_eq!(bash_completes("flowcore deployment pa"), ["pause"]);
    assert_eq!(bash_completes("flowcore deployment r"), ["resume", "run"]);
    assert_eq!(
        bash_completes("flowcore runs ls --st"),
        ["--state", "--store"]
    );
    assert_eq!(bash_completes("flowcore com"), ["completions"]);
}

#[test]
fn zsh_and_fish_scripts_name_every_command() {
    let zsh = script("zsh");
    assert!(zsh.starts_with("#compdef flowcore\n"), "{zsh}");
    let fish = script("fish");
    for command in ["runs", "deployment", "pause", "resume", "completions"] {
        assert!(zsh.contains(&format!("'{command}:")), "zsh: {command}");
        assert!(
            fish.contains(&format!("-a \"{command}\"")),
            "fish: {command}"
        );
    }
}

#[test]
fn an_unknown_shell_is_one_line_naming_the_shells() {
    let out = flowcore(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "flowcore: invalid value 'tcsh' for '<SHELL>' [possible values: bash, elvish, fish, \
         powershell, zsh]; a similar value exists: 'zsh'\n"
    );
}
