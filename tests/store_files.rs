//! The store's file: old schemas are migrated; files that are not flowcore stores, are newer
//! or damaged are refused and left byte for byte as they were; the default location follows
//! FLOWCORE_HOME and HOME; and a bad default store stops no flow.
//!
//! Runs happen in children (this test binary again, with `--exact <child>`), since a process
//! installs one store for good.

mod support;

use std::path::{Path, PathBuf};

use flowcore::StateKind::*;
use flowcore::{Store, StoreError, Uuid, flow, task};
use support::{child, companions, env_path, marker, raw, run_ok, show};

#[task]
async fn file_step(i: u32) -> u32 {
    i + 100
}

#[flow]
async fn file_flow(n: u32) -> u32 {
    let mut sum = 0;
    for i in 0..n {
        sum += file_step(i).await;
    }
    sum
}

/// Child that runs `file_flow(3)`, on the store at `STORE` if given, else on the default
/// store (whatever `Store::current` opens). Prints the run's id and the store it used.
#[tokio::test]
#[ignore = "run as a child process by the tests of tests/store_files.rs"]
async fn child_one_flow() {
    if std::env::var_os("ONE_FLOW_CHILD").is_none() {
        return;
    }
    if let Some(path) = env_path("STORE") {
        Store::sqlite(path).unwrap().install().unwrap();
    }
    let (out, run) = file_flow(3).with_run().await;
    assert_eq!(out, 303);
    assert_eq!(run.state().kind, Completed);
    println!("FLOW_RUN {}", run.id);
    println!("STORE_USED {}", Store::current().describe());
    println!(
        "NOT_RECORDED {}",
        run.not_recorded.as_deref().unwrap_or("-")
    );
    if run.not_recorded.is_some() {
        // Every run says so, not only the first.
        let (_, again) = file_flow(1).with_run().await;
        assert_eq!(again.not_recorded, run.not_recorded);
    }
}

/// Runs `child_one_flow` with `envs` (and without `remove`); returns the flow run's id and the
/// child's output.
fn one_flow(envs: &[(&str, &std::ffi::OsStr)], remove: &[&str]) -> (Uuid, std::process::Output) {
    let mut cmd = child(
        "child_one_flow",
        [("ONE_FLOW_CHILD", "1".as_ref())]
            .iter()
            .chain(envs)
            .copied(),
    );
    for var in remove {
        cmd.env_remove(var);
    }
    let out = run_ok(&mut cmd);
    (marker(&out, "FLOW_RUN").parse().unwrap(), out)
}

fn user_version(path: &Path) -> i64 {
    raw(path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Migration.

#[test]
fn stores_of_older_schemas_are_migrated_and_keep_their_runs() {
    for version in [1, 2, 3, 4] {
        let dir = support::tempdir();
        let path = dir.path().join("old.db");
        Store::create_sqlite_at_schema_version(&path, version).unwrap();
        assert_eq!(user_version(&path), version as i64);

        // A run as that older flowcore wrote it: only the version-1 columns.
        let flow_id: Uuid = "6f1a2b3c-0000-4000-8000-00000000000a".parse().unwrap();
        let task_id: Uuid = "6f1a2b3c-0000-4000-8000-00000000000b".parse().unwrap();
        let t0: i64 = 1_700_000_000_000_000;
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute(
                "INSERT INTO flow_runs (id, name, flow, parent_id, parameters, state, attempts,
                     created_at, started_at, ended_at, error)
                 VALUES (?1, 'ancient-aardvark', 'legacy_etl', NULL, '{\"day\":\"monday\"}',
                     'Failed', 1, ?2, ?3, ?4, 'the database went away')",
                rusqlite::params![flow_id.as_bytes(), t0, t0 + 1_000, t0 + 9_000],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO task_runs (id, flow_run_id, task, tags, state, attempts, cache,
                     created_at, started_at, ended_at, error)
                 VALUES (?1, ?2, 'extract', '[\"db\"]', 'Failed', 1, 'off', ?3, ?4, ?5,
                     'the database went away')",
                rusqlite::params![
                    task_id.as_bytes(),
                    flow_id.as_bytes(),
                    t0 + 2_000,
                    t0 + 3_000,
                    t0 + 8_000
                ],
            )
            .unwrap();
            for (run, states) in [
                (
                    flow_id,
                    [
                        (0, "Pending", 0),
                        (1, "Running", 1_000),
                        (2, "Failed", 9_000),
                    ],
                ),
                (
                    task_id,
                    [
                        (0, "Pending", 2_000),
                        (1, "Running", 3_000),
                        (2, "Failed", 8_000),
                    ],
                ),
            ] {
                for (seq, kind, at) in states {
                    let message = (kind == "Failed").then_some("the database went away");
                    conn.execute(
                        "INSERT INTO states (run_id, seq, kind, at, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                        rusqlite::params![run.as_bytes(), seq, kind, t0 + at, message],
                    )
                    .unwrap();
                }
            }
        }

        let store = Store::sqlite(&path).unwrap();
        assert_eq!(user_version(&path), 13, "from version {version}");
        let application_id: i64 = raw(&path)
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .unwrap();
        assert_eq!(application_id, 0x666c_6f77);

        let old = store.flow_run(flow_id).unwrap().expect("the old run");
        assert_eq!(old.name, "ancient-aardvark");
        assert_eq!(old.flow, "legacy_etl");
        assert_eq!(old.attempts, 1);
        assert_eq!(old.history.kinds(), [Pending, Running, Failed]);
        assert_eq!(old.error(), Some("the database went away"));
        assert_eq!(old.history[0].at.as_micros(), t0);
        assert_eq!(old.task_runs.len(), 1);
        assert_eq!(old.task_runs[0].id, task_id);
        assert_eq!(old.task_runs[0].tags.as_ref(), ["db"]);
        assert_eq!(old.task_runs[0].history.kinds(), [Pending, Running, Failed]);
        assert_eq!(old.task_runs[0].upstream, [], "no edges were recorded then");
        assert_eq!(old.task_runs[0].map_index, None);
        assert_eq!(
            store.parameters(flow_id).unwrap(),
            Some(serde_json::json!({"day": "monday"}))
        );
        assert_eq!(store.find_flow_run("ancient-aardvark").unwrap(), flow_id);
        let summaries = store.flow_runs(&Default::default()).unwrap();
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].task_runs[&Failed], 1);
        assert_eq!(summaries[0].deployment, None);
        assert!(store.deployments().unwrap().is_empty());
        assert!(store.logs(flow_id).unwrap().is_empty());
        drop(store);

        // New runs go into the migrated file, next to the old one.
        let (new_id, _) = one_flow(&[("STORE", path.as_os_str())], &[]);
        let store = Store::sqlite(&path).unwrap();
        let new = store.flow_run(new_id).unwrap().unwrap();
        assert_eq!(new.state().kind, Completed);
        assert_eq!(new.task_runs.len(), 3);
        assert_eq!(store.flow_runs(&Default::default()).unwrap().len(), 2);
        assert_eq!(store.flow_run(flow_id).unwrap().unwrap(), old);
    }
}

// ---------------------------------------------------------------------------------------------
// Refusal, file untouched.

/// Opens `path` as a store, expects it refused with an error naming it, and checks that the
/// file is byte for byte what it was and that no companion file appeared.
fn refused(path: &Path) -> StoreError {
    let before = std::fs::read(path).unwrap();
    assert_eq!(companions(path), Vec::<PathBuf>::new(), "before opening");
    let e = match Store::sqlite(path) {
        Ok(store) => panic!("{} was opened as a store: {store:?}", path.display()),
        Err(e) => e,
    };
    let shown = e.to_string();
    assert!(
        shown.contains(&path.display().to_string()),
        "the error does not name {}: {shown}",
        path.display()
    );
    assert!(
        std::fs::read(path).unwrap() == before,
        "{} was changed",
        path.display()
    );
    assert_eq!(companions(path), Vec::<PathBuf>::new(), "after: {shown}");
    e
}

/// A SQLite file of another application.
fn foreign_database(path: &Path, wal: bool) {
    let conn = rusqlite::Connection::open(path).unwrap();
    if wal {
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
    }
    conn.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, total REAL);
         INSERT INTO users (email) VALUES ('ada@example.com');
         INSERT INTO orders (user_id, total) VALUES (1, 9.99);",
    )
    .unwrap();
    drop(conn);
    assert_eq!(companions(path), Vec::<PathBuf>::new());
}

/// A real store with runs in it, closed cleanly: one file, no WAL beside it.
fn real_store(path: &Path) {
    one_flow(&[("STORE", path.as_os_str())], &[]);
    // The child exited without closing its connections: fold its WAL into the file.
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    assert_eq!(companions(path), Vec::<PathBuf>::new());
}

#[test]
fn a_database_of_another_application_is_refused_untouched() {
    let dir = support::tempdir();
    let path = dir.path().join("shop.db");
    foreign_database(&path, false);
    match refused(&path) {
        StoreError::NotAStore { reason, .. } => {
            assert!(
                reason.starts_with("it holds tables flowcore did not create: ")
                    && reason.contains("users")
                    && reason.contains("orders"),
                "{reason}"
            )
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn a_database_of_another_application_in_wal_mode_is_refused_untouched() {
    let dir = support::tempdir();
    let path = dir.path().join("shop.db");
    foreign_database(&path, true);
    assert!(matches!(refused(&path), StoreError::NotAStore { .. }));
}

#[test]
fn a_database_with_another_application_id_is_refused_untouched() {
    let dir = support::tempdir();
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "application_id", 0x1234_i64)
        .unwrap();
    drop(conn);
    match refused(&path) {
        StoreError::NotAStore { reason, .. } => {
            assert_eq!(reason, "its SQLite application id is 0x1234")
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn a_text_file_is_refused_untouched() {
    let dir = support::tempdir();
    for (name, text) in [
        ("notes.db", "remember the milk\n".repeat(100)),
        ("short.db", "hello\n".to_owned()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        match refused(&path) {
            StoreError::NotAStore { reason, .. } => {
                assert_eq!(reason, "it is not a SQLite database")
            }
            e => panic!("{name}: {e:?}"),
        }
    }
}

#[test]
fn a_store_of_a_newer_flowcore_is_refused_untouched() {
    let dir = support::tempdir();
    let path = dir.path().join("flowcore.db");
    real_store(&path);
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let e = refused(&path);
    assert!(
        matches!(
            e,
            StoreError::NewerSchema {
                found: 99,
                known: 13,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("upgrade flowcore"), "{e}");
}

#[test]
fn a_damaged_store_is_refused_untouched() {
    let dir = support::tempdir();
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 13) as u8).collect();

    // Garbage over the header: SQLite cannot tell it is a database at all.
    let path = dir.path().join("header.db");
    real_store(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..4096].copy_from_slice(&garbage[..4096]);
    std::fs::write(&path, &bytes).unwrap();
    let e = refused(&path);
    assert!(matches!(e, StoreError::NotAStore { .. }), "{e:?}");

    // A sound header over damaged pages: the schema cannot be read.
    let path = dir.path().join("pages.db");
    real_store(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len().min(8192);
    bytes[100..len].copy_from_slice(&garbage[100..len]);
    std::fs::write(&path, &bytes).unwrap();
    let e = refused(&path);
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("is damaged"), "{e}");
}

#[test]
fn a_directory_is_refused() {
    let dir = support::tempdir();
    let path = dir.path().join("a-directory.db");
    std::fs::create_dir(&path).unwrap();
    let e = Store::sqlite(&path).unwrap_err();
    assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert!(e.to_string().contains("directory"), "{e}");
    assert_eq!(std::fs::read_dir(&path).unwrap().count(), 0);
}

#[test]
fn a_bad_default_store_stops_no_flow() {
    let dir = support::tempdir();
    let path = dir.path().join("flowcore.db");
    foreign_database(&path, false);
    let before = std::fs::read(&path).unwrap();
    let (_, out) = one_flow(&[("FLOWCORE_HOME", dir.path().as_os_str())], &[]);
    assert_eq!(marker(&out, "STORE_USED"), ":memory:");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "flowcore: {} is not a flowcore run store",
            path.display()
        )),
        "{}",
        show(&out)
    );
    assert!(
        stderr.contains("flowcore: runs of this process are kept in memory only"),
        "{}",
        show(&out)
    );
    assert!(std::fs::read(&path).unwrap() == before, "the file changed");
    assert_eq!(companions(&path), Vec::<PathBuf>::new());
    // Each run's record and summary say where its runs went.
    assert_eq!(
        marker(&out, "NOT_RECORDED"),
        format!(
            "{} is not a flowcore run store (it holds tables flowcore did not create: users, orders); flowcore leaves it untouched: point FLOWCORE_HOME or --store at another file; kept in memory only",
            path.display()
        )
    );
}

// ---------------------------------------------------------------------------------------------
// A clean exit.

/// `path` with `suffix` added to its file name: `flowcore.db-wal`.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[test]
fn after_a_clean_exit_the_file_alone_holds_the_runs() {
    let home = support::tempdir();
    let (id, _) = one_flow(&[("FLOWCORE_HOME", home.path().as_os_str())], &[]);
    let db = home.path().join("flowcore.db");
    // The exit moved the log into the file: what is left of it is empty.
    let wal = std::fs::metadata(beside(&db, "-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the log still holds {wal} bytes");

    // The file copied alone, as a user backs it up or mails it: the run is there.
    let copy_dir = support::tempdir();
    let copy = copy_dir.path().join("flowcore.db");
    std::fs::copy(&db, &copy).unwrap();
    let ls = std::process::Command::new(support::flowcore_bin())
        .args([
            "--store".as_ref(),
            copy.as_os_str(),
            "runs".as_ref(),
            "ls".as_ref(),
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(ls.status.success(), "{}", show(&ls));
    let text = String::from_utf8(ls.stdout).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(rows[0].contains(" file_flow  Completed "), "{text}");
    let copied = Store::open_existing(&copy).unwrap();
    let run = copied.flow_run(id).unwrap().expect("the run, in the copy");
    assert_eq!(run.state().kind, Completed);
    assert_eq!(run.task_runs.len(), 3);
}

#[test]
fn a_store_dropped_moves_its_log_into_its_file() {
    let dir = support::tempdir();
    let db = dir.path().join("flowcore.db");
    let store = Store::sqlite(&db).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_, run) = runtime.block_on(store.scope(file_flow(2).with_run()));
    let wal = beside(&db, "-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "committed into the log"
    );
    drop(store);
    // The writer moves it as it sees the last handle go, on its own thread; then, the last
    // connection closed, SQLite removes the log.
    let log_emptied = (0..500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0)
    });
    assert!(log_emptied, "the log still holds its commits");
    let copy_dir = support::tempdir();
    let copy = copy_dir.path().join("flowcore.db");
    std::fs::copy(&db, &copy).unwrap();
    holds_run(&copy, run.id);
}

// ---------------------------------------------------------------------------------------------
// The default location.

fn holds_run(path: &Path, id: Uuid) {
    let store = Store::sqlite(path).unwrap();
    let run = store.flow_run(id).unwrap().expect("the child's run");
    assert_eq!(run.state().kind, Completed);
}

#[test]
fn the_default_store_is_in_flowcore_home() {
    let home = support::tempdir();
    let (id, out) = one_flow(&[("FLOWCORE_HOME", home.path().as_os_str())], &[]);
    let path = home.path().join("flowcore.db");
    assert_eq!(marker(&out, "STORE_USED"), path.display().to_string());
    assert_eq!(marker(&out, "NOT_RECORDED"), "-");
    holds_run(&path, id);
}

#[test]
fn without_flowcore_home_the_default_store_is_in_home() {
    // FLOWCORE_HOME unset, and set but empty: both mean $HOME/.flowcore.
    for flowcore_home in [None, Some("")] {
        let home = support::tempdir();
        let mut envs = vec![("HOME", home.path().as_os_str())];
        if let Some(value) = flowcore_home {
            envs.push(("FLOWCORE_HOME", value.as_ref()));
        }
        let remove: &[&str] = if flowcore_home.is_none() {
            &["FLOWCORE_HOME"]
        } else {
            &[]
        };
        let (id, out) = one_flow(&envs, remove);
        let path = home.path().join(".flowcore").join("flowcore.db");
        assert_eq!(marker(&out, "STORE_USED"), path.display().to_string());
        holds_run(&path, id);
    }
}

#[test]
fn without_flowcore_home_or_home_runs_are_kept_in_memory() {
    let (_, out) = one_flow(&[], &["FLOWCORE_HOME", "HOME"]);
    assert_eq!(marker(&out, "STORE_USED"), ":memory:");
    assert_eq!(
        marker(&out, "NOT_RECORDED"),
        "cannot find a place for the run store: set FLOWCORE_HOME (or HOME) to a directory; kept in memory only"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("set FLOWCORE_HOME (or HOME)"),
        "{}",
        show(&out)
    );
}
