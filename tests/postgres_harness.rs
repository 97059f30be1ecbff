//! The PostgreSQL that the PostgreSQL store's tests start (tests/support/postgres.rs): its
//! databases, URLs, restarts, and that no server outlives its test process.
//!
//! Where no PostgreSQL can be started these tests say they skipped, unless
//! `FLOWCORE_POSTGRES_TEST=required`. Children are this test binary again, run with
//! `--exact <child>`; see tests/support.

mod support;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use postgres::{Client, NoTls};
use support::postgres::processes_mentioning;
use support::{
    Postgres, PostgresOptions, Running, Shutdown, child, marker, postgres_db, run, run_ok,
    wait_until,
};

fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// One text value from a query.
fn text(client: &mut Client, sql: &str) -> String {
    client
        .query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The rows of `t`, a table of integers, in order.
fn rows(client: &mut Client) -> Vec<i32> {
    client
        .query("SELECT n FROM t ORDER BY n", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn two_databases_of_one_cluster_are_independent() {
    let (Some(a), Some(b)) = (postgres_db("independent"), postgres_db("independent")) else {
        return;
    };
    assert_ne!(a.name(), b.name());
    let mut a_client = connect(a.url());
    a_client
        .batch_execute("CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2)")
        .unwrap();
    let mut b_client = connect(b.url());
    assert_eq!(
        text(
            &mut b_client,
            "SELECT coalesce(to_regclass('t')::text, 'none')"
        ),
        "none"
    );
    b_client
        .batch_execute("CREATE TABLE t (n int); INSERT INTO t VALUES (7)")
        .unwrap();
    assert_eq!(rows(&mut a_client), [1, 2]);
    assert_eq!(rows(&mut b_client), [7]);
}

#[test]
fn database_names_come_from_the_hint() {
    let Some(db) = postgres_db("Claims are fenced!") else {
        return;
    };
    let (stem, n) = db.name().rsplit_once('_').unwrap();
    assert_eq!(stem, "claims_are_fenced_");
    assert!(n.parse::<u32>().is_ok(), "{}", db.name());
    assert_eq!(db.psql("SELECT current_database()"), db.name());
}

#[test]
fn a_dropped_database_is_gone_from_its_cluster() {
    let Some(pg) = Postgres::shared() else { return };
    let db = pg.database("dropped");
    let name = db.name().to_owned();
    let exists = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
    assert_eq!(pg.psql("postgres", &exists), "1");
    drop(db);
    assert_eq!(pg.psql("postgres", &exists), "0");
}

#[test]
fn the_socket_url_is_the_readme_form_and_connects() {
    let Some(pg) = Postgres::shared() else { return };
    let db = pg.database("socket_url");
    let dir = pg.socket_dir().to_str().unwrap();
    assert_eq!(
        db.url(),
        format!("postgres:///{}?host={dir}&user=postgres", db.name())
    );
    assert!(pg.socket_dir().join(".s.PGSQL.5432").exists());
    assert_eq!(db.tcp_url(), None);
    let mut client = connect(db.url());
    let row = client
        .query_one("SELECT current_database()::text, current_user::text", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), db.name());
    assert_eq!(row.get::<_, String>(1), "postgres");
}

#[test]
fn the_shared_cluster_listens_on_its_socket_only_without_fsync() {
    let Some(db) = postgres_db("settings") else {
        return;
    };
    let mut client = connect(db.url());
    assert_eq!(text(&mut client, "SHOW listen_addresses"), "");
    assert_eq!(text(&mut client, "SHOW fsync"), "off");
    assert_eq!(text(&mut client, "SHOW synchronous_commit"), "on");
}

#[test]
fn the_tcp_url_connects_to_127_0_0_1_on_the_clusters_port() {
    let Some(pg) = Postgres::with_options(PostgresOptions::default().tcp(Ipv4Addr::LOCALHOST))
    else {
        return;
    };
    let port = pg.port();
    assert_ne!(port, 0);
    assert_eq!(pg.tcp_addr(), Some(([127, 0, 0, 1], port).into()));
    let db = pg.database("tcp_url");
    assert_eq!(
        db.tcp_url(),
        Some(format!("postgres://postgres@127.0.0.1:{port}/{}", db.name()).as_str())
    );
    let mut client = connect(db.tcp_url().unwrap());
    let row = client
        .query_one(
            "SELECT current_database()::text, host(inet_server_addr()), inet_server_port()",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), db.name());
    assert_eq!(row.get::<_, String>(1), "127.0.0.1");
    assert_eq!(row.get::<_, i32>(2), i32::from(port));
    assert_eq!(text(&mut client, "SHOW listen_addresses"), "127.0.0.1");
}

#[test]
fn with_tcp_the_socket_url_names_the_port() {
    let Some(pg) = Postgres::with_options(PostgresOptions::default().tcp(Ipv4Addr::LOCALHOST))
    else {
        return;
    };
    let db = pg.database("socket_with_tcp");
    let dir = pg.socket_dir().to_str().unwrap();
    assert_eq!(
        db.url(),
        format!(
            "postgres:///{}?host={dir}&user=postgres&port={}",
            db.name(),
            pg.port()
        )
    );
    let mut client = connect(db.url());
    // Over the socket, the server has no address.
    assert_eq!(
        text(
            &mut client,
            "SELECT coalesce(host(inet_server_addr()), 'socket')"
        ),
        "socket"
    );
}

#[test]
fn committed_rows_survive_a_fast_restart() {
    let Some(mut pg) = Postgres::with_options(PostgresOptions::default()) else {
        return;
    };
    let db = pg.database("fast_restart");
    let mut client = connect(db.url());
    client
        .batch_execute("CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2), (3)")
        .unwrap();
    let started = text(&mut client, "SELECT pg_postmaster_start_time()::text");
    drop(client);
    pg.restart(Shutdown::Fast);
    let mut client = connect(db.url());
    assert_ne!(
        text(&mut client, "SELECT pg_postmaster_start_time()::text"),
        started
    );
    assert_eq!(rows(&mut client), [1, 2, 3]);
}

#[test]
fn committed_rows_survive_an_immediate_restart_with_fsync_on() {
    let Some(mut pg) = Postgres::with_options(PostgresOptions::default().durable()) else {
        return;
    };
    let db = pg.database("immediate_restart");
    let mut client = connect(db.url());
    assert_eq!(text(&mut client, "SHOW fsync"), "on");
    client
        .batch_execute("CREATE TABLE t (n int); INSERT INTO t VALUES (4), (5)")
        .unwrap();
    pg.restart(Shutdown::Immediate);
    // The open connection was cut by the restart.
    assert!(client.batch_execute("SELECT 1").is_err());
    let mut client = connect(db.url());
    assert_eq!(rows(&mut client), [4, 5]);
}

#[test]
fn a_stopped_cluster_refuses_connections_until_started() {
    let Some(mut pg) = Postgres::with_options(PostgresOptions::default()) else {
        return;
    };
    let db = pg.database("stop_start");
    connect(db.url())
        .batch_execute("CREATE TABLE t (n int); INSERT INTO t VALUES (9)")
        .unwrap();
    pg.stop(Shutdown::Fast);
    assert_eq!(
        processes_mentioning(pg.cluster_name()).len(),
        1,
        "the watchdog only"
    );
    let refused = Client::connect(db.url(), NoTls)
        .err()
        .expect("no server to connect to");
    assert!(
        refused
            .to_string()
            .starts_with("error connecting to server"),
        "{refused}"
    );
    pg.start();
    assert_eq!(rows(&mut connect(db.url())), [9]);
}

#[test]
fn a_dropped_cluster_leaves_no_process_and_no_file() {
    let Some(pg) = Postgres::with_options(PostgresOptions::default()) else {
        return;
    };
    let name = pg.cluster_name().to_owned();
    let dirs = [
        pg.data_dir().parent().unwrap().to_owned(),
        pg.socket_dir().to_owned(),
    ];
    // The server (its postmaster and the workers, named by their titles) and the watchdog.
    let running = processes_mentioning(&name);
    assert!(running.len() > 2, "{running:#?}");
    drop(pg);
    assert_eq!(processes_mentioning(&name), Vec::<String>::new());
    for dir in dirs {
        assert!(!dir.exists(), "{} is left", dir.display());
    }
}

/// Held by the tests whose children start clusters: a child's first cluster removes those of
/// dead test processes, which one of these tests leaves on purpose.
static CHILD_CLUSTERS: Mutex<()> = Mutex::new(());

fn child_clusters() -> MutexGuard<'static, ()> {
    CHILD_CLUSTERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Child of the tests of a test process's end: starts the process's cluster, says its name and
/// data directory, then exits (`PG_CHILD=exit`) or waits to be killed (`PG_CHILD=wait`).
#[test]
#[ignore = "run as a child process by the_cluster_is_gone_when_its_test_process_*"]
fn child_starts_the_shared_cluster() {
    let Ok(role) = std::env::var("PG_CHILD") else {
        return;
    };
    let pg = Postgres::shared().expect("a cluster: the parent started one");
    let _db = pg.database("child");
    println!("PG_CLUSTER {}", pg.cluster_name());
    println!("PG_DATA {}", pg.data_dir().display());
    println!("PG_SOCKETS {}", pg.socket_dir().display());
    if role == "wait" {
        std::thread::sleep(support::DEADLINE);
    }
}

#[test]
fn the_cluster_is_gone_when_its_test_process_exits() {
    if Postgres::shared().is_none() {
        return;
    }
    let _children = child_clusters();
    let out = run_ok(&mut child(
        "child_starts_the_shared_cluster",
        [("PG_CHILD", "exit")],
    ));
    let name = marker(&out, "PG_CLUSTER");
    assert!(name.starts_with("flowcore-pg-"), "{name}");
    // The child waited for the watchdog at its exit: nothing is left at once.
    assert_eq!(processes_mentioning(&name), Vec::<String>::new());
    let data = PathBuf::from(marker(&out, "PG_DATA"));
    let sockets = PathBuf::from(marker(&out, "PG_SOCKETS"));
    for dir in [data.parent().unwrap(), &data, &sockets] {
        assert!(!dir.exists(), "{} is left", dir.display());
    }
}

#[test]
fn the_cluster_is_gone_when_its_test_process_is_killed() {
    if Postgres::shared().is_none() {
        return;
    }
    let _children = child_clusters();
    let mut running = Running::spawn(&mut child(
        "child_starts_the_shared_cluster",
        [("PG_CHILD", "wait")],
    ));
    let name = running.wait_for_line("PG_CLUSTER");
    let data = PathBuf::from(running.wait_for_line("PG_DATA"));
    let sockets = PathBuf::from(running.wait_for_line("PG_SOCKETS"));
    assert!(processes_mentioning(&name).len() > 2);
    running.kill();
    // SIGKILL: no exit handler ran; the watchdog stops the server once the kernel has closed
    // the child's end of its pipe.
    wait_until("the killed child's server to stop", None, || {
        processes_mentioning(&name).is_empty().then_some(())
    });
    // (As root the cluster's directory itself stays, empty, for the next test process to
    // remove: its parent is root's, and the watchdog runs as `postgres`.)
    assert!(!data.exists(), "{} is left", data.display());
    assert!(!sockets.exists(), "{} is left", sockets.display());
}

#[test]
fn the_next_test_process_stops_a_server_whose_watchdog_was_killed_too() {
    if Postgres::shared().is_none() {
        return;
    }
    let _children = child_clusters();
    let mut running = Running::spawn(&mut child(
        "child_starts_the_shared_cluster",
        [("PG_CHILD", "wait")],
    ));
    let name = running.wait_for_line("PG_CLUSTER");
    let data = PathBuf::from(running.wait_for_line("PG_DATA"));
    let watchdog = processes_mentioning(&name)
        .into_iter()
        .find(|p| p.contains(" flowcore-pg-watchdog "))
        .expect("the child's cluster has a watchdog");
    let watchdog = watchdog.split(' ').next().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-KILL", watchdog])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {watchdog}: {status}");
    running.kill();
    // Nothing stops that server now: it is the next test process's to find.
    let postmaster = format!("-D {}", data.display());
    let stray = processes_mentioning(&name);
    assert!(stray.iter().any(|p| p.ends_with(&postmaster)), "{stray:#?}");
    run_ok(&mut child(
        "child_starts_the_shared_cluster",
        [("PG_CHILD", "exit")],
    ));
    assert_eq!(processes_mentioning(&name), Vec::<String>::new());
    assert!(!data.parent().unwrap().exists());
}

/// Child of the tests of a machine without PostgreSQL: asks for a database.
#[test]
#[ignore = "run as a child process by without_postgresql_*"]
fn child_asks_for_a_database() {
    if std::env::var_os("PG_CHILD").is_none() {
        return;
    }
    println!("GOT_DB {}", postgres_db("child").is_some());
}

/// `FLOWCORE_POSTGRES_BIN` names a directory without PostgreSQL.
fn without_postgresql(required: bool) -> std::process::Command {
    let mut cmd = child(
        "child_asks_for_a_database",
        [("PG_CHILD", "1"), ("FLOWCORE_POSTGRES_BIN", "/nonexistent")],
    );
    cmd.env_remove("FLOWCORE_POSTGRES_TEST");
    if required {
        cmd.env("FLOWCORE_POSTGRES_TEST", "required");
    }
    cmd
}

#[test]
fn without_postgresql_a_test_says_it_skipped() {
    let out = run_ok(&mut without_postgresql(false));
    assert_eq!(marker(&out, "GOT_DB"), "false");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "skipped: cannot start PostgreSQL (FLOWCORE_POSTGRES_BIN=/nonexistent has no \
             initdb); install PostgreSQL 15 or newer (apt-get install postgresql) to run this \
             test\n"
        ),
        "{stderr}"
    );
}

#[test]
fn without_postgresql_a_required_test_fails() {
    let out = run(&mut without_postgresql(true));
    assert!(!out.status.success(), "{}", support::show(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("GOT_DB"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "FLOWCORE_POSTGRES_TEST=required but PostgreSQL cannot be started: \
             FLOWCORE_POSTGRES_BIN=/nonexistent has no initdb\n"
        ),
        "{stderr}"
    );
}
