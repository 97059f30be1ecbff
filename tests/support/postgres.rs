//! A real PostgreSQL for the tests of the PostgreSQL run store: one cluster per test process,
//! started on first use, with a fresh database for each test ([`postgres_db`]); and clusters of
//! a test's own ([`Postgres::with_options`]) for TCP, for durability and for faults (stop,
//! start, restart), which must not disturb the tests sharing the process's cluster.
//!
//! The server is started as a user would start it: `initdb` and `pg_ctl` of PostgreSQL 15 or
//! newer, found in `FLOWCORE_POSTGRES_BIN`, else on PATH, else in Debian's
//! `/usr/lib/postgresql/*/bin`; as the `postgres` user when the tests run as root (initdb and
//! the server refuse root). Where none can be started, a test gets `None` and says it skipped,
//! unless `FLOWCORE_POSTGRES_TEST=required` (as `.ci/run` sets), which makes that a failure.
//!
//! No server outlives its test process, however the process ends. Each cluster has a watchdog:
//! `sh`, reading a pipe whose only writer is the test process. The kernel closes the pipe when
//! the process ends, by a return from main, a panic or SIGKILL alike; the watchdog then stops
//! the server (`pg_ctl stop -m immediate`) and removes its files. A normal exit does not leave
//! this to the moment after: an `atexit` handler (and `Drop`, for a cluster of a test's own)
//! closes the pipe and waits for the watchdog, so that when the test process has exited its
//! servers are gone. The watchdog has a process group of its own and ignores SIGINT, SIGHUP and
//! SIGTERM, as the server does (pg_ctl starts it in a session of its own): a Ctrl-C in the
//! terminal, or a test runner's kill of the test's process group, reaches the test process
//! only. Files left by a process whose watchdog was killed too are removed (and a server still
//! running in them stopped) by the next test process that starts a cluster.
//!
//! Not `PR_SET_PDEATHSIG` on a server spawned by the test: the signal comes when the *thread*
//! that spawned the server ends (libtest runs each test on a thread of its own, which ends with
//! the test), `pg_ctl restart` would start a new server that has no such signal, and nothing
//! would remove the files.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, OnceLock, TryLockError};
use std::time::{Duration, Instant};

use super::{DEADLINE, env_path};

/// The oldest PostgreSQL the store supports.
const MIN_MAJOR: u32 = 15;

/// The port of a cluster that listens on its Unix socket only. Every cluster has a socket
/// directory of its own, so all can take PostgreSQL's default, and their URLs need no port.
const DEFAULT_PORT: u16 = 5432;

unsafe extern "C" {
    safe fn geteuid() -> u32;
    /// The C library's: `f` runs in `exit`, where both a return from `main` and
    /// `std::process::exit` (libtest's exit on a failed test) end.
    safe fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
}

/// What a cluster of a test's own is to be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Listen on TCP at this address too (`listen_addresses`), on its port, or on a free one if
    /// that is 0. `None`, the default: the Unix socket only (`listen_addresses = ''`).
    pub tcp: Option<SocketAddr>,
    /// `fsync = on`, for tests of durability. Off by default, which makes commits several
    /// times faster and loses nothing but on a crash of the machine: a committed transaction
    /// is still in the WAL (`synchronous_commit` stays on), so it survives any restart of the
    /// server, an immediate one included.
    pub fsync: bool,
}

impl PostgresOptions {
    /// Also listens on TCP at `ip`, on a free port.
    pub fn tcp(self, ip: impl Into<IpAddr>) -> PostgresOptions {
        PostgresOptions {
            tcp: Some(SocketAddr::new(ip.into(), 0)),
            ..self
        }
    }

    /// With `fsync = on`.
    pub fn durable(self) -> PostgresOptions {
        PostgresOptions {
            fsync: true,
            ..self
        }
    }
}

/// How a server is stopped: `pg_ctl stop -m …`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Waits for every client to disconnect.
    Smart,
    /// Disconnects the clients (their open transactions roll back) and checkpoints.
    Fast,
    /// Kills the server's processes at once: the next start recovers from the WAL, as after a
    /// crash.
    Immediate,
}

impl Shutdown {
    fn arg(self) -> &'static str {
        match self {
            Shutdown::Smart => "smart",
            Shutdown::Fast => "fast",
            Shutdown::Immediate => "immediate",
        }
    }
}

/// A fresh database of the process's cluster for one test, named after `hint` (a test's name),
/// or `None` (having said why) where no PostgreSQL can be started.
pub fn postgres_db(hint: &str) -> Option<PgDb> {
    Postgres::shared().map(|pg| pg.database(hint))
}

/// One PostgreSQL cluster: its own data directory, socket directory and server.
pub struct Postgres {
    programs: &'static Programs,
    options: PostgresOptions,
    /// The cluster's directory, named after the test process: `flowcore-pg-PID-XXXXXX`.
    root: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// The name of `root`, and the server's `cluster_name`, which its processes show.
    name: String,
    admin: Admin,
    /// The process's cluster ([`Postgres::shared`]), which drops the databases of the tests
    /// that are done: the others are removed whole soon enough.
    is_shared: bool,
    /// Where the server listens on TCP, with its port.
    tcp: Option<SocketAddr>,
    watchdog: Mutex<Option<Watchdog>>,
}

impl Postgres {
    /// The test process's cluster, started on the first call (the server listens on its Unix
    /// socket only, `fsync` off): for tests that need a database and leave the server alone,
    /// which the `&'static` sees to (stopping and restarting take `&mut self`). `None`, having
    /// said why, where no PostgreSQL can be started.
    pub fn shared() -> Option<&'static Postgres> {
        static SHARED: OnceLock<Result<Postgres, String>> = OnceLock::new();
        extern "C" fn shut_down_at_exit() {
            if let Some(Ok(pg)) = SHARED.get() {
                pg.shut_down();
            }
        }
        let shared = SHARED.get_or_init(|| {
            let started = Postgres::try_start(PostgresOptions::default()).map(|mut pg| {
                pg.is_shared = true;
                pg
            });
            if started.is_ok() {
                // Should registering fail, the watchdog still stops the server, a moment
                // after the process has exited.
                let _ = atexit(shut_down_at_exit);
            }
            started
        });
        match shared {
            Ok(pg) => Some(pg),
            Err(reason) => {
                unavailable(reason);
                None
            }
        }
    }

    /// A cluster of the test's own, started now and removed when dropped; `None`, having said
    /// why, where no PostgreSQL can be started.
    pub fn with_options(options: PostgresOptions) -> Option<Postgres> {
        match Postgres::try_start(options) {
            Ok(pg) => Some(pg),
            Err(reason) => {
                unavailable(&reason);
                None
            }
        }
    }

    fn try_start(options: PostgresOptions) -> Result<Postgres, String> {
        let programs = programs()?;
        let base = programs.base_dir();
        std::fs::create_dir_all(&base).map_err(|e| format!("create {}: {e}", base.display()))?;
        static SWEEP: Once = Once::new();
        SWEEP.call_once(|| programs.sweep(&base));

        let pid = std::process::id();
        let root = keep_dir(&format!("flowcore-pg-{pid}-"), &base)?;
        programs.hand_over(&root)?;
        let name = file_name(&root);
        let mut pg = Postgres {
            programs,
            options,
            data: root.join("data"),
            log: root.join("server.log"),
            name,
            admin: Admin {
                psql: programs.psql.clone(),
                socket_dir: root.join("s"),
                port: DEFAULT_PORT,
            },
            is_shared: false,
            tcp: None,
            watchdog: Mutex::new(None),
            root,
        };
        // From here on, an early return drops `pg`, which removes what was made.
        // The socket's path is limited to 107 bytes (`sun_path`), where a deep target
        // directory may not fit: then a short directory in /tmp.
        if pg.admin.socket_dir.as_os_str().len() + "/.s.PGSQL.65535".len() > 100 {
            pg.admin.socket_dir = keep_dir(&format!("flowcore-pgsock-{pid}-"), Path::new("/tmp"))?;
        } else {
            std::fs::create_dir(&pg.admin.socket_dir)
                .map_err(|e| format!("create {}: {e}", pg.admin.socket_dir.display()))?;
        }
        programs.hand_over(&pg.admin.socket_dir)?;

        let out = programs
            .server_command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "--no-locale"])
            .args(["-E", "UTF8", "--no-instructions", "-D"])
            .arg(&pg.data)
            .current_dir(&pg.root)
            .output()
            .map_err(|e| format!("run initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        // Never a server without its watchdog: it comes first.
        *pg.watchdog.get_mut().unwrap() = Some(pg.spawn_watchdog()?);

        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(pg.data.join("postgresql.conf"))
            .map_err(|e| format!("open postgresql.conf: {e}"))?;
        std::io::Write::write_all(&mut conf, b"\ninclude = 'flowcore.conf'\n")
            .map_err(|e| format!("write postgresql.conf: {e}"))?;
        if options.tcp.is_some() {
            // initdb's trust covers 127.0.0.1 and ::1; clients in other network namespaces
            // come from other addresses.
            let mut hba = std::fs::OpenOptions::new()
                .append(true)
                .open(pg.data.join("pg_hba.conf"))
                .map_err(|e| format!("open pg_hba.conf: {e}"))?;
            std::io::Write::write_all(&mut hba, b"host all all all trust\n")
                .map_err(|e| format!("write pg_hba.conf: {e}"))?;
        }

        let free_port = options.tcp.is_some_and(|addr| addr.port() == 0);
        pg.tcp = options.tcp;
        for attempt in 1.. {
            if let Some(addr) = &mut pg.tcp {
                if free_port {
                    // Free when asked; another process may take it before the server binds it,
                    // hence the retries.
                    let listener = TcpListener::bind((addr.ip(), 0))
                        .map_err(|e| format!("find a free port on {}: {e}", addr.ip()))?;
                    addr.set_port(listener.local_addr().unwrap().port());
                }
                pg.admin.port = addr.port();
            }
            pg.write_settings()?;
            match pg.start_server() {
                Ok(()) => break,
                Err(e) if free_port && attempt < 3 && e.contains("could not bind") => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(pg)
    }

    /// A fresh database, named after `hint` (a test's name) and unique in the process; in the
    /// process's cluster, dropped with the returned value.
    pub fn database(&self, hint: &str) -> PgDb {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let mut stem: String = hint
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9' | '_') => c,
                _ => '_',
            })
            .take(40)
            .collect();
        if !stem.starts_with(|c: char| c.is_ascii_lowercase()) {
            stem.insert_str(0, "db_");
        }
        let name = format!("{stem}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        PgDb {
            url: self.url(&name),
            tcp_url: self.tcp_url(&name),
            admin: self.admin.clone(),
            drop_database: self.is_shared,
            name,
        }
    }

    /// Runs `sql` in the database `db` with psql, as the superuser `postgres`; returns what it
    /// printed (rows as `a|b` lines), failing the test on an error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.admin
            .psql(db, sql)
            .unwrap_or_else(|e| panic!("psql in {db} of {}: {e}", self.name))
    }

    /// The URL of the database `db` over the Unix socket, as a user of the README would type it:
    /// `postgres:///DB?host=SOCKET_DIR&user=postgres` (with `&port=N` when TCP is on).
    pub fn url(&self, db: &str) -> String {
        self.admin.url(db)
    }

    /// The URL of the database `db` over TCP, `postgres://postgres@127.0.0.1:PORT/DB`, if the
    /// server listens on TCP.
    pub fn tcp_url(&self, db: &str) -> Option<String> {
        self.tcp
            .map(|addr| format!("postgres://postgres@{addr}/{db}"))
    }

    pub fn options(&self) -> PostgresOptions {
        self.options
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Where the server's socket is: `.s.PGSQL.PORT` in it.
    pub fn socket_dir(&self) -> &Path {
        &self.admin.socket_dir
    }

    /// The server's port: the socket's name, and TCP's port when TCP is on.
    pub fn port(&self) -> u16 {
        self.admin.port
    }

    /// Where the server listens on TCP, if it does.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// The server's log (its stderr), appended to by every start.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The cluster's name, `flowcore-pg-PID-XXXXXX`: its directory's, and the server's
    /// `cluster_name`, which every process of the server shows (`postgres: NAME: checkpointer`).
    pub fn cluster_name(&self) -> &str {
        &self.name
    }

    /// Stops the server (`pg_ctl stop -m …`), waiting until it has exited.
    pub fn stop(&mut self, how: Shutdown) {
        let pid = postmaster_pid(&self.data);
        self.pg_ctl(&["stop", "-m", how.arg()]);
        // pg_ctl returns once the server has removed postmaster.pid, a moment before it exits.
        if let Some(pid) = pid {
            super::wait_until("the stopped server's process to exit", None, || {
                (!server_runs(pid, &self.data)).then_some(())
            });
        }
    }

    /// Starts the stopped server, waiting until it accepts connections.
    pub fn start(&mut self) {
        self.start_server().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops the server and starts it again (`pg_ctl restart -m …`), waiting until it accepts
    /// connections.
    pub fn restart(&mut self, how: Shutdown) {
        let log = self.log.to_str().expect("a UTF-8 path").to_owned();
        self.pg_ctl(&["restart", "-m", how.arg(), "-l", &log]);
    }

    /// `pg_ctl ACTION -D DATA -w`, as the server's user, failing the test unless it succeeds.
    fn pg_ctl(&self, args: &[&str]) {
        let out = self
            .pg_ctl_command(args)
            .output()
            .unwrap_or_else(|e| panic!("run pg_ctl: {e}"));
        assert!(
            out.status.success(),
            "pg_ctl {} of {} failed ({}): {}",
            args.join(" "),
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    fn pg_ctl_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.programs.server_command("pg_ctl");
        cmd.args(args)
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-s", "-t", &DEADLINE.as_secs().to_string()])
            .current_dir(&self.root)
            .stdin(Stdio::null());
        cmd
    }

    fn start_server(&self) -> Result<(), String> {
        let logged = std::fs::metadata(&self.log).map_or(0, |m| m.len() as usize);
        let log = self.log.to_str().expect("a UTF-8 path").to_owned();
        // With `-l`, the server's stdout and stderr are the log file: without it the server
        // would hold pg_ctl's stdout, and `output()` would wait for the server's end.
        let out = self
            .pg_ctl_command(&["start", "-l", &log])
            .output()
            .map_err(|e| format!("run pg_ctl: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let text = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(text.get(logged..).unwrap_or_default());
        Err(format!(
            "pg_ctl start failed ({}): {}; the server's log says:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            text.trim()
        ))
    }

    /// The settings that initdb does not make, in `flowcore.conf` (included by
    /// `postgresql.conf`), so that `pg_ctl restart` and a plain start keep them.
    fn write_settings(&self) -> Result<(), String> {
        let listen = self.tcp.map(|a| a.ip().to_string()).unwrap_or_default();
        let sockets = self
            .admin
            .socket_dir
            .to_str()
            .ok_or("a socket path not in UTF-8")?;
        let mut text = String::from("# A test cluster's, written by tests/support/postgres.rs.\n");
        writeln!(text, "listen_addresses = '{}'", conf_quote(&listen)).unwrap();
        writeln!(text, "port = {}", self.admin.port).unwrap();
        writeln!(text, "unix_socket_directories = '{}'", conf_quote(sockets)).unwrap();
        writeln!(text, "cluster_name = '{}'", conf_quote(&self.name)).unwrap();
        writeln!(
            text,
            "fsync = {}",
            if self.options.fsync { "on" } else { "off" }
        )
        .unwrap();
        if self.options.fsync && cfg!(target_os = "linux") {
            // Recovery after an immediate stop first syncs the data directory (initdb's files
            // were not: --no-sync), by default with an fsync per file: 4.3 s here, for
            // ~1,000 files. One syncfs(2) of the file system: 0.3 s. The same guarantee.
            text.push_str("recovery_init_sync_method = syncfs\n");
        }
        let path = self.data.join("flowcore.conf");
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        self.programs.hand_over(&path)
    }

    /// The watchdog of the module's doc: `sh` as the server's user, in a process group of its
    /// own, reading its stdin until the test process closes it (or dies), then stopping the
    /// server and removing the cluster's files. As root, the cluster's directory itself stays
    /// (its parent is root's): the test process, or the next one, removes it.
    fn spawn_watchdog(&self) -> Result<Watchdog, String> {
        // As `stop`, it waits until the server's process has exited, not only removed its pid
        // file: until no process of that pid has the data directory in its command line.
        const SCRIPT: &str = r#"trap '' HUP INT QUIT TERM
while read -r _; do :; done
pid=$(head -n 1 "$2/postmaster.pid" 2>/dev/null)
"$1" stop -D "$2" -m immediate -w -t 60 >/dev/null 2>&1
i=0
while [ -n "$pid" ] && [ $i -lt 1200 ] && grep -qF -e "$2" "/proc/$pid/cmdline" 2>/dev/null; do
    sleep 0.05; i=$((i + 1))
done
rm -rf "$3" "$4" 2>/dev/null"#;
        self.programs
            .as_server_user(&mut Command::new("sh"))
            .args(["-c", SCRIPT, "flowcore-pg-watchdog"])
            .arg(self.programs.bin.join("pg_ctl"))
            .args([&self.data, &self.root, &self.admin.socket_dir])
            .current_dir("/")
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Watchdog)
            .map_err(|e| format!("start the server's watchdog (sh): {e}"))
    }

    /// Stops the server and removes the cluster's files, through the watchdog, waiting for it.
    fn shut_down(&self) {
        let watchdog = match self.watchdog.try_lock() {
            Ok(mut w) => w.take(),
            Err(TryLockError::Poisoned(w)) => w.into_inner().take(),
            // Held by a thread still running at exit: the watchdog acts when the process ends.
            Err(TryLockError::WouldBlock) => return,
        };
        if let Some(watchdog) = watchdog {
            watchdog.finish();
        }
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_dir_all(&self.admin.socket_dir);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// A database of a cluster, made for one test. One of the process's cluster is dropped
/// (`DROP DATABASE … WITH (FORCE)`) when this is.
pub struct PgDb {
    name: String,
    url: String,
    tcp_url: Option<String>,
    admin: Admin,
    drop_database: bool,
}

impl PgDb {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL over the Unix socket, `postgres:///NAME?host=SOCKET_DIR&user=postgres`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its URL over TCP, `postgres://postgres@127.0.0.1:PORT/NAME`, if its cluster listens on
    /// TCP.
    pub fn tcp_url(&self) -> Option<&str> {
        self.tcp_url.as_deref()
    }

    /// Runs `sql` in it with psql; see [`Postgres::psql`].
    pub fn psql(&self, sql: &str) -> String {
        self.admin
            .psql(&self.name, sql)
            .unwrap_or_else(|e| panic!("psql in {}: {e}", self.name))
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // A test's database is 7.5 MB, which the process's cluster would pile up. Not in a
        // test's own cluster, removed whole soon after: with fsync on, the checkpoint that
        // DROP DATABASE makes takes a second.
        if !self.drop_database {
            return;
        }
        let _ = self.admin.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// How to reach a cluster as its superuser: psql, and the server's socket.
#[derive(Clone)]
struct Admin {
    psql: PathBuf,
    socket_dir: PathBuf,
    port: u16,
}

impl Admin {
    fn url(&self, db: &str) -> String {
        let mut url = format!(
            "postgres:///{db}?host={}&user=postgres",
            percent_encode(self.socket_dir.to_str().expect("a UTF-8 path"))
        );
        if self.port != DEFAULT_PORT {
            write!(url, "&port={}", self.port).unwrap();
        }
        url
    }

    fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let conninfo = format!(
            "host='{}' port={} user=postgres dbname='{}' connect_timeout=10",
            conninfo_quote(self.socket_dir.to_str().expect("a UTF-8 path")),
            self.port,
            conninfo_quote(db)
        );
        let out = without_pg_env(&mut Command::new(&self.psql))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &conninfo,
            ])
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {}: {e}", self.psql.display()))?;
        if !out.status.success() {
            return Err(format!(
                "`{sql}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.ends_with('\n') {
            text.pop();
        }
        Ok(text)
    }
}

/// The watchdog process; the test process holds the writing end of its stdin.
struct Watchdog(Child);

impl Watchdog {
    /// Closes its stdin and waits (with the deadline) until it has stopped the server and
    /// removed the files.
    fn finish(mut self) {
        drop(self.0.stdin.take());
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            match self.0.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Ok(Some(_)) | Err(_) => return,
            }
        }
    }
}

/// The PostgreSQL programs found, and the user they run as.
struct Programs {
    /// The directory of initdb, pg_ctl and postgres.
    bin: PathBuf,
    psql: PathBuf,
    /// The `postgres` user's uid and gid when this process is root; `None`: this process's
    /// user.
    user: Option<(u32, u32)>,
}

/// The programs, looked for once per process; or why there are none to use.
fn programs() -> Result<&'static Programs, String> {
    static PROGRAMS: OnceLock<Result<Programs, String>> = OnceLock::new();
    PROGRAMS
        .get_or_init(Programs::find)
        .as_ref()
        .map_err(Clone::clone)
}

impl Programs {
    fn find() -> Result<Programs, String> {
        let bin = bin_dir()?;
        let initdb = bin.join("initdb");
        let out = Command::new(&initdb)
            .arg("--version")
            .output()
            .map_err(|e| format!("run {}: {e}", initdb.display()))?;
        // `initdb (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`, `… 17devel`
        let text = String::from_utf8_lossy(&out.stdout);
        let major: u32 = text
            .split_once(") ")
            .and_then(|(_, v)| v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .ok_or_else(|| format!("no version in `{} --version`: {text}", initdb.display()))?;
        if major < MIN_MAJOR {
            return Err(format!(
                "{} is PostgreSQL {major}; the store needs {MIN_MAJOR} or newer",
                initdb.display()
            ));
        }
        let psql = Some(bin.join("psql"))
            .filter(|p| is_program(p))
            .or_else(|| on_path("psql"))
            .ok_or_else(|| format!("no psql in {} nor on PATH", bin.display()))?;
        let user = if geteuid() == 0 {
            let id = |flag| {
                let out = Command::new("id").args([flag, "postgres"]).output();
                out.ok()
                    .filter(|out| out.status.success())
                    .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
                    .ok_or("running as root, with no `postgres` user to run the server as")
            };
            Some((id("-u")?, id("-g")?))
        } else {
            None
        };
        Ok(Programs { bin, psql, user })
    }

    /// `cmd`, to run as the server's user, without the `PG…` environment variables.
    fn as_server_user<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        without_pg_env(cmd).env("LC_ALL", "C")
    }

    /// The server's program `name` (initdb, pg_ctl), to run as the server's user.
    fn server_command(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(name));
        self.as_server_user(&mut cmd);
        cmd
    }

    /// Gives `path` to the server's user, when that is not this process's.
    fn hand_over(&self, path: &Path) -> Result<(), String> {
        match self.user {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| format!("chown {} to postgres: {e}", path.display())),
            None => Ok(()),
        }
    }

    /// Where clusters are made: cargo's scratch directory for integration tests, unless the
    /// server's user (`postgres`, when this process is root) cannot reach it; then the
    /// system's temporary directory.
    fn base_dir(&self) -> PathBuf {
        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let reachable = |dir: &Path| {
            dir.ancestors()
                .skip(1)
                .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
        };
        if self.user.is_none() || reachable(&target.join("x")) {
            target
        } else {
            std::env::temp_dir()
        }
    }

    /// Removes the clusters of test processes that are gone, stopping any server still
    /// running in them: those whose watchdog was killed with them.
    fn sweep(&self, base: &Path) {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let dead = |name: &str, prefix: &str| {
            name.strip_prefix(prefix)
                .and_then(|rest| rest.split('-').next()?.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        };
        let entries = |dir: &Path| {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        };
        for (name, path) in entries(base) {
            if dead(&name, "flowcore-pg-") {
                let data = path.join("data");
                if let Some(pid) = postmaster_pid(&data) {
                    let _ = self
                        .server_command("pg_ctl")
                        .args(["stop", "-m", "immediate", "-w", "-D"])
                        .arg(&data)
                        .current_dir("/")
                        .output();
                    let start = Instant::now();
                    while server_runs(pid, &data) && start.elapsed() < DEADLINE {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        for (name, path) in entries(Path::new("/tmp")) {
            if dead(&name, "flowcore-pgsock-") {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }
}

/// The directory of the PostgreSQL programs to use.
fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = env_path("FLOWCORE_POSTGRES_BIN") {
        return match is_program(&dir.join("initdb")) {
            true => Ok(dir),
            false => Err(format!(
                "FLOWCORE_POSTGRES_BIN={} has no initdb",
                dir.display()
            )),
        };
    }
    if let Some(initdb) = on_path("initdb") {
        // Maybe a link (/usr/local/bin/initdb) to the real one, which has pg_ctl, postgres
        // and psql beside it.
        let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        return Ok(real.parent().expect("a program's directory").to_owned());
    }
    // Debian's packages keep the server's programs off PATH: the newest there.
    std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            is_program(&bin.join("initdb")).then_some((major, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no initdb on PATH nor in /usr/lib/postgresql/*/bin".to_owned())
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_program(p))
}

fn is_program(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What libpq and the server's programs would take from the environment (`PGDATA`, `PGHOST`,
/// `PGPORT`, `PGOPTIONS`…) is left out: each command says what it means.
fn without_pg_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A new directory `PREFIXxxxxxx` in `base`, kept (not removed on drop).
fn keep_dir(prefix: &str, base: &Path) -> Result<PathBuf, String> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .map(tempfile::TempDir::keep)
        .map_err(|e| format!("create a directory in {}: {e}", base.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a directory's name")
        .to_string_lossy()
        .into_owned()
}

/// Says why a test has no PostgreSQL, or fails it if `FLOWCORE_POSTGRES_TEST=required`.
fn unavailable(reason: &str) {
    assert!(
        std::env::var("FLOWCORE_POSTGRES_TEST").as_deref() != Ok("required"),
        "FLOWCORE_POSTGRES_TEST=required but PostgreSQL cannot be started: {reason}"
    );
    eprintln!(
        "skipped: cannot start PostgreSQL ({reason}); install PostgreSQL {MIN_MAJOR} or newer \
         (apt-get install postgresql) to run this test"
    );
}

/// The server's pid, from `DATA/postmaster.pid`: the server runs, or it was killed.
fn postmaster_pid(data: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Whether `pid` is the server of `data`, running: not gone, nor a zombie (whose command line
/// is empty), nor another process that has its pid since.
fn server_runs(pid: u32, data: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    String::from_utf8_lossy(&cmdline).contains(&*data.to_string_lossy())
}

/// The processes whose command line has `needle` in it, as `PID COMMAND LINE`, this one
/// excepted: `pgrep -f`'s. A cluster's are found by its name ([`Postgres::cluster_name`]),
/// which is in the server's `-D` and the watchdog's arguments (the data directory's path), and
/// in the title of every process of the server.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        // Gone meanwhile, or a zombie (its command line is empty): not running.
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{pid} {}", cmdline.trim_end()));
        }
    }
    found
}

/// A value for postgresql.conf, between single quotes.
fn conf_quote(value: &str) -> String {
    value.replace('\'', "''")
}

/// A value for a libpq connection string, between single quotes.
fn conninfo_quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

/// A path for a URL's query: `/` stays, as libpq and the Rust clients read it.
fn percent_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => write!(out, "%{b:02X}").unwrap(),
        }
    }
    out
}
