//! Running the `flowcore` command on a store, as the CLI's tests do: uncoloured, and held to
//! the command's promises (success prints nothing on stderr; a failure is one line there and
//! nothing on stdout).

use std::ffi::OsStr;
use std::process::{Command, Output};

/// `flowcore --store TARGET ARGS…`, uncoloured, to add environment to before running it.
pub fn command(target: impl AsRef<OsStr>, args: &[&str]) -> Command {
    let mut command = Command::new(super::flowcore_bin());
    command
        .arg("--store")
        .arg(target)
        .args(args)
        .env("NO_COLOR", "1");
    command
}

/// `flowcore --store TARGET ARGS…`, run.
pub fn run(target: impl AsRef<OsStr>, args: &[&str]) -> Output {
    command(target, args).output().unwrap()
}

/// Its stdout, which it must print with nothing on stderr and exit code 0.
pub fn ok(target: impl AsRef<OsStr>, args: &[&str]) -> String {
    let out = run(target, args);
    assert!(
        out.status.success(),
        "flowcore {args:?}: {}",
        super::show(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "flowcore {args:?}"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Its one line on stderr (without the newline), which it must print with nothing on stdout
/// and exit code `code`.
pub fn fails(target: impl AsRef<OsStr>, args: &[&str], code: i32) -> String {
    let out = run(target, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "flowcore {args:?}: {}",
        super::show(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "flowcore {args:?}"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    stderr.trim_end().to_owned()
}
