//! The ETL flow itself: its tasks, and the state hook that reports failures. Shared by the
//! `etl` example, which runs it, and the `visualize` example, which draws its task graph.

use std::path::PathBuf;
use std::sync::LazyLock;

use flowcore::{RunInfo, State, flow, task};
use serde::{Deserialize, Serialize};

/// One complaint as the service sends it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Complaint {
    complaint_id: i64,
    date_received: String,
    product: String,
    sub_product: Option<String>,
    issue: String,
    sub_issue: Option<String>,
    company: String,
    state: String,
    zip_code: String,
    submitted_via: String,
    company_response: String,
    timely: bool,
}

/// The fields we keep.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    complaint_id: i64,
    date_received: String,
    product: String,
    issue: String,
    company: String,
    state: String,
}

/// Prints a line whenever a task run or the flow run enters a failed state.
pub fn alert_failed(run: &RunInfo, _old: &State, new: &State) {
    if new.is_failed() {
        println!("Failed! {} ended in {new}", run.name());
    }
}

/// Calls `extract` makes to a service on this machine (the example's own, or a test's) never
/// go through an `HTTP_PROXY`; calls to anywhere else use the proxy settings as usual.
fn http_client(url: &str) -> &'static reqwest::Client {
    static LOCAL: LazyLock<reqwest::Client> = LazyLock::new(|| {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("a plain HTTP client builds")
    });
    static REMOTE: LazyLock<reqwest::Client> = LazyLock::new(reqwest::Client::new);
    let local = reqwest::Url::parse(url).is_ok_and(|u| {
        let host = u.host_str().unwrap_or_default();
        host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if local { &LOCAL } else { &REMOTE }
}

/// `extract`'s cache key: the dataset the URL asks for (its path and query), not the host.
///
/// Without a `cache_key`, the key is a hash of the arguments, here the whole URL. But this
/// program starts its own complaints service on a port the system picks, a different one on
/// every run, so a key holding the host and port would never match the next run's and the
/// cache would never hit across runs. What identifies the records is the path and query
/// (`/complaints`, `/complaints?state=CA`): the same dataset from whichever host serves it.
/// The price: two different services serving the same path share one cache entry. Where
/// that matters, keep the host in the key.
fn dataset_key(url: &&str) -> String {
    match reqwest::Url::parse(url) {
        Ok(url) => match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        },
        Err(_) => (*url).to_owned(),
    }
}

#[task(retries = 3, retry_delay = "1s", cache_for = "1d", cache_key = dataset_key, on_state = alert_failed)]
async fn extract(url: &str) -> anyhow::Result<Vec<Complaint>> {
    let response = http_client(url).get(url).send().await?.error_for_status()?;
    Ok(response.json().await?)
}

#[task(on_state = alert_failed)]
async fn transform(complaints: Vec<Complaint>) -> Vec<Row> {
    complaints
        .into_iter()
        .map(|c| Row {
            complaint_id: c.complaint_id,
            date_received: c.date_received,
            product: c.product,
            issue: c.issue,
            company: c.company,
            state: c.state,
        })
        .collect()
}

#[task(on_state = alert_failed)]
async fn create_table(db: PathBuf) -> anyhow::Result<()> {
    // rusqlite blocks: run it on tokio's blocking threads, not on the async workers.
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(&db)?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS complaints (
                complaint_id  INTEGER PRIMARY KEY,
                date_received TEXT NOT NULL,
                product       TEXT NOT NULL,
                issue         TEXT NOT NULL,
                company       TEXT NOT NULL,
                state         TEXT NOT NULL
            )",
            [],
        )?;
        Ok(())
    })
    .await?
}

/// The key of the table artifact `load` keeps with its run: what was loaded, for people to read
/// (`flowcore artifact show loaded-complaints`, or the run's page on the dashboard).
pub const LOADED: &str = "loaded-complaints";

#[task(on_state = alert_failed)]
async fn load(db: PathBuf, rows: Vec<Row>) -> anyhow::Result<usize> {
    let loaded = tokio::task::spawn_blocking(move || {
        let mut conn = rusqlite::Connection::open(&db)?;
        let tx = conn.transaction()?;
        {
            // Keyed by complaint_id: running the flow again replaces rows instead of adding them.
            let mut insert = tx.prepare(
                "INSERT OR REPLACE INTO complaints
                 (complaint_id, date_received, product, issue, company, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in &rows {
                insert.execute(rusqlite::params![
                    r.complaint_id,
                    r.date_received,
                    r.product,
                    r.issue,
                    r.company,
                    r.state,
                ])?;
            }
        }
        tx.commit()?;
        anyhow::Ok(rows)
    })
    .await??;
    // An artifact is kept with the task run whose body makes it: here, not in the blocking
    // closure above, which runs on another thread.
    flowcore::artifact::table(LOADED, &loaded)?;
    Ok(loaded.len())
}

#[flow(name = "etl", tags = ["nightly"], on_state = alert_failed)]
pub async fn etl(url: &str, db: PathBuf) -> anyhow::Result<usize> {
    // The table is made while the complaints are fetched.
    let table = create_table(db.clone()).submit();
    let complaints = extract(url).await?;
    // Passing `extract`'s output to `transform`, and `transform`'s to `load`, is what draws
    // the graph's edges extract → transform → load.
    let rows = transform(complaints).await;
    // `load` needs the table, though no data passes from `create_table` to it: it waits for
    // it, and is Skipped if the table could not be made.
    load(db, rows).wait_for(&table).await
}
