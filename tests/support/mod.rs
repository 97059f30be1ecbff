//! Helpers shared by the integration tests that run child processes (tests/store.rs,
//! tests/crash.rs, tests/store_files.rs, tests/graph.rs): child processes, waiting with a
//! deadline, and raw reads of a store file.
//!
//! A real PostgreSQL for the PostgreSQL run store's tests is in `postgres.rs`.
//!
//! A child process is the test binary itself, run with `--exact <child test>`: the child is an
//! ignored test (with the reason "run as a child process by …") that does nothing unless its
//! environment variable is set.

#![allow(dead_code)] // each test binary uses its own part of this module

pub mod backends;
pub mod cli;
pub mod netns;
pub mod postgres;
#[allow(unused_imports)] // as dead_code
pub use postgres::{PgDb, Postgres, PostgresOptions, Shutdown, postgres_db};

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// How long any wait in these tests may take before the test fails. Generous: the tests run
/// unoptimized, next to other test binaries, on small CI machines.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The command that runs the ignored test `name` of this test binary in a new process,
/// with `envs` set. Its stdout and stderr are piped.
pub fn child<K, V>(name: &str, envs: impl IntoIterator<Item = (K, V)>) -> Command
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        name,
        "--nocapture",
        "--include-ignored",
        "--test-threads=1",
    ])
    .envs(envs)
    // A child that panics says where, and a backtrace would only bury that.
    .env_remove("RUST_BACKTRACE")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to its end (with the deadline) and returns its output; fails, showing what the
/// child printed, unless it exited 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "child {cmd:?} failed: {}\n{}",
        out.status,
        show(&out)
    );
    // A child whose name matched no test would "pass" having done nothing.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "child {cmd:?} ran no test:\n{}",
        show(&out)
    );
    out
}

/// Runs `cmd` to its end, killing it if it outlives the deadline.
pub fn run(cmd: &mut Command) -> Output {
    let mut child = cmd.spawn().expect("spawn the child process");
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            let out = Output {
                status: child.wait().expect("reap the child"),
                stdout: stdout.map(|h| h.join().unwrap()).unwrap_or_default(),
                stderr: stderr.map(|h| h.join().unwrap()).unwrap_or_default(),
            };
            panic!(
                "child {cmd:?} still ran after {DEADLINE:?}; killed it\n{}",
                show(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.map(|h| h.join().unwrap()).unwrap_or_default(),
        stderr: stderr.map(|h| h.join().unwrap()).unwrap_or_default(),
    }
}

fn drain<R: std::io::Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// A child's stdout and stderr, for a failure message.
pub fn show(out: &Output) -> String {
    format!(
        "--- stdout ---\n{}--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The value after the marker `key` on the first line of `stdout` that has it: the markers
/// children print, `FLOW_RUN <id>`.
pub fn marker(out: &Output, key: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| after(l, key))
        .unwrap_or_else(|| panic!("no `{key} …` line in the child's output\n{}", show(out)))
        .trim()
        .to_owned()
}

/// What follows the marker `key` in a line of a child's output. The marker need not start the
/// line: the test harness prints `test child_x ... ` before what the child prints.
fn after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(key)?;
    let rest = &line[at + key.len()..];
    (rest.is_empty() || rest.starts_with(' ')).then_some(rest)
}

/// A child process that runs while the parent watches its stdout, line by line.
pub struct Running {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every stdout line read so far.
    seen: Vec<String>,
    stdout_done: Option<std::thread::JoinHandle<()>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Running {
    /// Spawns `cmd` (made by [`child`]).
    pub fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd.spawn().expect("spawn the child process");
        let stdout: ChildStdout = child.stdout.take().expect("a piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout_done = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().map(drain);
        Running {
            child,
            lines,
            seen: Vec::new(),
            stdout_done: Some(stdout_done),
            stderr,
        }
    }

    /// Waits (with the deadline) for a stdout line starting with `key`; returns the rest of
    /// it, trimmed.
    pub fn wait_for_line(&mut self, key: &str) -> String {
        if let Some(rest) = self.seen.iter().find_map(|l| after(l, key)) {
            return rest.trim().to_owned();
        }
        let start = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let rest = after(&line, key).map(|r| r.trim().to_owned());
                    self.seen.push(line);
                    if let Some(rest) = rest {
                        return rest;
                    }
                }
                Err(e) => {
                    // Its stdout closed: it is exiting, give it a moment to say why.
                    let mut status = None;
                    for _ in 0..250 {
                        status = self.child.try_wait().ok().flatten();
                        if status.is_some() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let stderr = match (status, self.stderr.take()) {
                        (Some(_), Some(h)) => {
                            String::from_utf8_lossy(&h.join().unwrap()).into_owned()
                        }
                        _ => "(still running)".to_owned(),
                    };
                    panic!(
                        "no `{key}` line from the child ({e:?}, exit status {status:?}); it printed:\n{}\n--- stderr ---\n{stderr}",
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// Whether the child has printed a stdout line starting with `key` by now, without waiting.
    pub fn has_printed(&mut self, key: &str) -> bool {
        self.seen.extend(self.lines.try_iter());
        self.seen.iter().any(|l| after(l, key).is_some())
    }

    /// SIGKILLs the child (on Unix) and reaps it: a dead process, not a zombie.
    pub fn kill(mut self) -> Output {
        self.child.kill().expect("kill the child");
        self.finish_unchecked()
    }

    /// SIGKILLs the child and waits until it is dead but not reaped: a zombie, as a process
    /// whose parent has not waited for it yet is.
    pub fn kill_leaving_a_zombie(&mut self) {
        self.child.kill().expect("kill the child");
        let pid = self.child.id();
        wait_until("the killed child to be a zombie", None, || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
            (state == "Z").then_some(())
        });
    }

    /// Waits (with the deadline) for the child to exit; returns everything it printed.
    pub fn finish_unchecked(mut self) -> Output {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                break status;
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the child still ran after {DEADLINE:?}; killed it. Its stdout:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(h) = self.stdout_done.take() {
            let _ = h.join();
        }
        self.seen.extend(self.lines.try_iter());
        let mut stdout = self.seen.join("\n").into_bytes();
        stdout.push(b'\n');
        Output {
            status,
            stdout,
            stderr: self
                .stderr
                .take()
                .map(|h| h.join().unwrap())
                .unwrap_or_default(),
        }
    }

    /// As [`Running::finish_unchecked`], failing unless the child exited 0.
    pub fn finish(self) -> Output {
        let out = self.finish_unchecked();
        assert!(
            out.status.success(),
            "the child failed: {}\n{}",
            out.status,
            show(&out)
        );
        out
    }
}

/// A test that fails while its child runs leaves no child behind (a worker left serving would
/// go on polling a store in a deleted directory, and take runs of the next test's store name).
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `done` every 20 ms until it returns `Some`, failing with `what` after the deadline.
/// `child`, if given, must stay alive meanwhile: its early exit fails the wait at once.
pub fn wait_until<T>(
    what: &str,
    mut child: Option<&mut Child>,
    mut done: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = done() {
            return v;
        }
        if let Some(child) = child.as_deref_mut()
            && let Some(status) = child.try_wait().expect("poll the child")
        {
            panic!("the child exited ({status}) while waiting for: {what}");
        }
        assert!(
            start.elapsed() < DEADLINE,
            "gave up after {DEADLINE:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A read-only connection to a store file, as another program would open it.
pub fn raw(path: &Path) -> rusqlite::Connection {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("open {} read-only: {e}", path.display()));
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn
}

/// One integer from a query on a store file.
pub fn count(path: &Path, sql: &str, params: impl rusqlite::Params) -> i64 {
    raw(path)
        .query_row(sql, params, |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The lines of a marker file (none if it does not exist yet).
pub fn lines(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.lines().map(str::to_owned).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", path.display()),
    }
}

/// Appends a line to a marker file: what task bodies do to show that they ran.
pub fn append_line(path: &Path, line: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    writeln!(f, "{line}").unwrap();
}

/// An environment variable as a path, if set.
pub fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).map(PathBuf::from)
}

/// A fresh directory for one test, under cargo's scratch directory for integration tests;
/// removed when the returned guard drops.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("flowcore-store-test-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create a temporary directory")
}

/// The store file of this test process's installed store: one per process, in a directory
/// named after the pid. Directories left by earlier processes that are gone are removed, so
/// that repeated runs do not pile up files.
pub fn process_store_path(binary: &str) -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let prefix = format!("{binary}-store-");
        if let Ok(entries) = std::fs::read_dir(base) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix(&prefix)
                    && Path::new("/proc/self").exists()
                    && !Path::new(&format!("/proc/{pid}")).exists()
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("flowcore.db")
    })
}

/// `target/<profile>/`, where cargo puts binaries, beside the test binary's `deps/`.
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps")
        .to_owned()
}

/// `binary`, failing with `build`, the command that makes it, if it is missing or older than
/// any of `sources` (under the workspace's root): `cargo test --test NAME` would otherwise test
/// an old build without a word.
fn fresh_binary(binary: PathBuf, sources: &[&str], build: &str) -> PathBuf {
    let how = format!(
        "run `{build}` first (plain `cargo test --workspace` builds it, `cargo test --test NAME` does not)"
    );
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("the binary {} is missing: {how}", binary.display()));
    let root = workspace_root();
    if let Some(newer) = sources
        .iter()
        .find_map(|s| newer_than(&root.join(s), built))
    {
        panic!(
            "the binary {} is older than {}: {how}",
            binary.display(),
            newer.display()
        );
    }
    binary
}

/// The workspace's root, whichever of its packages these tests belong to.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dir = manifest;
    while let Some(parent) = dir.parent() {
        if dir.join("Cargo.lock").exists() {
            return dir.to_owned();
        }
        dir = parent;
    }
    manifest.to_owned()
}

/// `target/debug/examples/<name>`, built by `cargo build --examples` (or plain `cargo test`).
pub fn example_binary(name: &str) -> PathBuf {
    let path = target_profile_dir()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let own = format!("examples/{name}.rs");
    let dir = format!("examples/{name}");
    fresh_binary(
        path,
        // Examples of several files (etl), and those that share them (visualize). Not
        // Cargo.toml: an edit there that changes no dependency of the example relinks nothing.
        &[&own, &dir, "examples/etl", "flowcore", "flowmacros"],
        "cargo build --examples",
    )
}

/// The `flowcore` command: cargo's own path to it in the CLI package's tests, the one built
/// beside these tests elsewhere (the CLI is a package of its own).
pub fn flowcore_bin() -> PathBuf {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_flowcore") {
        return PathBuf::from(bin);
    }
    fresh_binary(
        target_profile_dir().join(format!("flowcore{}", std::env::consts::EXE_SUFFIX)),
        &["cli/src", "flowcore/src", "flowmacros/src"],
        "cargo build -p flowcore-cli",
    )
}

/// A file at or under `path` modified after `time` (`.rs` and `.toml` files only, in
/// directories).
fn newer_than(path: &Path, time: SystemTime) -> Option<PathBuf> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_dir() {
        return std::fs::read_dir(path)
            .ok()?
            .flatten()
            .map(|entry| entry.path())
            .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "rs" || e == "toml"))
            .find_map(|p| newer_than(&p, time));
    }
    meta.modified()
        .ok()
        .filter(|&modified| modified > time)
        .map(|_| path.to_owned())
}

/// A small tmpfs of the test's own: for a disk that fills up, or a file system that is
/// read-only. Mounting needs root (CI runs as root); elsewhere the test says it skipped, unless
/// `FLOWCORE_MOUNT_TEST=required` (as `.ci/run` sets), which makes a refused mount a failure.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`"2m"`), or says why it cannot and returns `None`.
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempdir();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        let refused = match out {
            Ok(out) if out.status.success() => return Some(Tmpfs { dir }),
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            std::env::var("FLOWCORE_MOUNT_TEST").as_deref() != Ok("required"),
            "FLOWCORE_MOUNT_TEST=required but a tmpfs cannot be mounted: {refused}"
        );
        eprintln!("skipped: cannot mount a tmpfs here ({refused}); run as root to test this");
        None
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Changes its options: `"size=256m"`, `"ro"`, `"rw"`.
    pub fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.dir.path())
            .output()
            .expect("run mount");
        assert!(out.status.success(), "remount {options}: {}", show(&out));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Runs `flowcore ARGS --store STORE` without colours; returns what it printed.
pub fn flowcore_cli(store: &Path, args: &[&str]) -> Output {
    Command::new(flowcore_bin())
        .args(args)
        .arg("--store")
        .arg(store)
        .env("NO_COLOR", "1")
        .output()
        .expect("run flowcore")
}

/// The files next to `path` that SQLite would make for it.
pub fn companions(path: &Path) -> Vec<PathBuf> {
    ["-wal", "-shm", "-journal"]
        .iter()
        .map(|s| {
            let mut p = path.as_os_str().to_owned();
            p.push(s);
            PathBuf::from(p)
        })
        .filter(|p| p.exists())
        .collect()
}

/// A running dashboard on a free port, and its base URL. Killed when dropped.
pub struct Dashboard {
    pub running: Option<Running>,
    pub url: String,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(running) = &mut self.running {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

impl Dashboard {
    /// Sends it SIGTERM, as a service manager or `kill` stops it.
    pub fn sigterm(&self) {
        let pid = self.running.as_ref().unwrap().child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success(), "kill -TERM {pid}: {status}");
    }

    /// Waits (with the deadline) for it to exit; returns what it printed.
    pub fn wait_exit(mut self) -> std::process::Output {
        self.running.take().unwrap().finish_unchecked()
    }
}

pub fn start_dashboard(store: &Path) -> Dashboard {
    start_dashboard_with(store, &[], &[])
}

/// A dashboard started with more arguments and environment variables (the limits'
/// `FLOWCORE_DASHBOARD_…`).
pub fn start_dashboard_with(store: &Path, args: &[&str], envs: &[(&str, &str)]) -> Dashboard {
    let mut running = Running::spawn(
        Command::new(flowcore_bin())
            .args(["server", "start", "--port", "0", "--store"])
            .arg(store)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let rest = running.wait_for_line("flowcore dashboard at");
    let url = rest
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{rest}");
    assert!(
        rest.ends_with(&format!("(store {})", store.display())),
        "{rest}"
    );
    Dashboard {
        running: Some(running),
        url,
    }
}
