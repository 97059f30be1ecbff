//! One test body, two stores: [`TestStore`] is a fresh SQLite file or a fresh PostgreSQL
//! database, and [`store_tests!`](crate::store_tests) runs each listed test once on each.
//!
//! A body gets the store's target (a path or a URL, what `FLOWCORE_STORE` and `--store` take),
//! the [`Store`] opened on it, and [`TestStore::count`] for raw checks of what reached the
//! tables. Its SQL is written once: `$1`-style parameters, which SQLite reads as well, and
//! plain `COUNT(*)` queries that both dialects answer with an integer.

use std::ffi::OsString;

use flowcore::Store;

use super::{PgDb, tempdir};

/// Which backend a [`TestStore`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A store of the test's own, removed when this drops.
pub struct TestStore {
    kind: Kind,
    target: OsString,
    store: Store,
    _dir: Option<tempfile::TempDir>,
    db: Option<PgDb>,
}

impl TestStore {
    /// A fresh SQLite file, `flowcore.db` in a directory of its own.
    pub fn sqlite() -> TestStore {
        let dir = tempdir();
        let path = dir.path().join("flowcore.db");
        let store = Store::sqlite(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TestStore {
            kind: Kind::Sqlite,
            target: path.into_os_string(),
            store,
            _dir: Some(dir),
            db: None,
        }
    }

    /// The SQLite file at `path`, made by someone else (a child process), left where it is.
    pub fn at_path(path: &std::path::Path) -> TestStore {
        let store =
            Store::open_existing(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TestStore {
            kind: Kind::Sqlite,
            target: path.into(),
            store,
            _dir: None,
            db: None,
        }
    }

    /// A fresh database of the test process's PostgreSQL cluster, or `None` (having said why)
    /// where no PostgreSQL can be started.
    pub fn postgres(hint: &str) -> Option<TestStore> {
        let db = super::postgres_db(hint)?;
        Some(TestStore::on_database(db))
    }

    /// The store on `db`, a database of any cluster.
    pub fn on_database(db: PgDb) -> TestStore {
        let store = Store::postgres(db.url()).unwrap_or_else(|e| panic!("{}: {e}", db.url()));
        TestStore {
            kind: Kind::Postgres,
            target: db.url().into(),
            store,
            _dir: None,
            db: Some(db),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What `Store::open`, `FLOWCORE_STORE` and `--store` take: the file's path or the URL.
    pub fn target(&self) -> &std::ffi::OsStr {
        &self.target
    }

    /// The PostgreSQL database, for a store on one.
    pub fn database(&self) -> Option<&PgDb> {
        self.db.as_ref()
    }

    /// A store opened again on the same target, as another process would.
    pub fn reopen(&self) -> Store {
        Store::open(&self.target).unwrap_or_else(|e| panic!("reopen {:?}: {e}", self.target))
    }

    /// One integer from `sql` (parameters `$1`, `$2`, … bound to `params`, byte strings such
    /// as ids) read straight from the tables, past the store's own reads.
    pub fn count(&self, sql: &str, params: &[&[u8]]) -> i64 {
        match self.kind {
            Kind::Sqlite => {
                let conn = super::raw(self.target.as_ref());
                conn.query_row(sql, rusqlite::params_from_iter(params), |r| r.get(0))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            // The `postgres` client runs its own runtime, which cannot start on a thread that
            // drives another: a thread of its own, as the test bodies are async.
            Kind::Postgres => std::thread::scope(|s| {
                s.spawn(|| self.count_postgres(sql, params))
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e))
            }),
        }
    }

    /// Records by hand a process that died long ago: on another host (`gone-host`, so not
    /// judged by its pid), its heartbeat stopped at the epoch.
    pub fn long_dead_process(&self, id: flowcore::Uuid) {
        self.execute(
            "INSERT INTO processes (id, pid, host, started_at, heartbeat_at)
             VALUES ($1, 4242, 'gone-host', 0, 0)",
            &[id.as_bytes()],
        );
    }

    /// Runs the statement `sql` (parameters as [`TestStore::count`]'s) straight on the tables,
    /// past the store: rows a test makes by hand, such as a process that died long ago.
    pub fn execute(&self, sql: &str, params: &[&[u8]]) {
        match self.kind {
            Kind::Sqlite => {
                let conn = rusqlite::Connection::open(&self.target).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(30))
                    .unwrap();
                conn.execute(sql, rusqlite::params_from_iter(params))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Kind::Postgres => std::thread::scope(|s| {
                s.spawn(|| {
                    let url = self.target.to_str().expect("a URL is UTF-8");
                    let mut client = postgres::Client::connect(url, postgres::NoTls)
                        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
                    let params: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                        .iter()
                        .map(|p| p as &(dyn postgres::types::ToSql + Sync))
                        .collect();
                    client
                        .execute(sql, &params)
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                })
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e))
            }),
        }
    }

    fn count_postgres(&self, sql: &str, params: &[&[u8]]) -> i64 {
        let url = self.target.to_str().expect("a URL is UTF-8");
        let mut client = postgres::Client::connect(url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let row = client
            .query_one(sql, &params)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        // COUNT(*) is a BIGINT; other integers a test reads may be narrower.
        row.try_get::<_, i64>(0)
            .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// Runs each listed `async fn NAME(ts: &TestStore)` of the calling test file on both backends,
/// as `NAME::sqlite` and `NAME::postgres` (which says it skipped where no PostgreSQL can be
/// started, and fails then under `FLOWCORE_POSTGRES_TEST=required`, as the harness does).
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let ts = $crate::support::backends::TestStore::sqlite();
                    super::$name(&ts).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(ts) =
                        $crate::support::backends::TestStore::postgres(stringify!($name))
                    else {
                        return;
                    };
                    super::$name(&ts).await;
                }
            }
        )+
    };
}
