//! SCENARIOS 2: ETL into SQLite, with a cache that outlives the process.
//!
//! `extract` fetches 10 consumer complaints as JSON over HTTP, `transform` keeps a few fields of
//! each, `create_table` makes sure the SQLite table exists and `load` inserts the rows. The
//! state handler `alert_failed` prints "Failed!" whenever a task run or the flow run fails.
//!
//! `extract` is cached for a day (`cache_for = "1d"`). Cached results live in the run store, a
//! SQLite file shared by every process (`$FLOWCORE_HOME/flowcore.db`; under `cargo run` in this
//! repository, `target/flowcore-home`), so running the example a second time the same day
//! shows `extract` in state Cached, and the service is not called again.
//!
//! Unless `--source` names the complaints service, the program starts one itself on
//! 127.0.0.1; nothing leaves the machine.
//!
//! ```sh
//! cargo run --example etl                      # database in $TMPDIR/flowcore-examples/etl.db
//! cargo run --example etl                      # again: extract is Cached, no request is made
//! cargo run --example etl -- /path/to/etl.db   # the database where you choose
//! cargo run --example etl -- --source http://127.0.0.1:8000/complaints   # another service
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State as Shared;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use flowcore::{RunInfo, State, StateKind, flow, task};
use serde::{Deserialize, Serialize};

/// One complaint as the service sends it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Complaint {
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
struct Row {
    complaint_id: i64,
    date_received: String,
    product: String,
    issue: String,
    company: String,
    state: String,
}

/// Prints a line whenever a task run or the flow run enters a failed state.
fn alert_failed(run: &RunInfo, _old: &State, new: &State) {
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

#[task(on_state = alert_failed)]
async fn load(db: PathBuf, rows: Vec<Row>) -> anyhow::Result<usize> {
    tokio::task::spawn_blocking(move || {
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
        Ok(rows.len())
    })
    .await?
}

#[flow(name = "etl", on_state = alert_failed)]
async fn etl(url: &str, db: PathBuf) -> anyhow::Result<usize> {
    let complaints = extract(url).await?;
    let rows = transform(complaints).await;
    // `load` needs the table, though no data passes from `create_table` to it: awaiting one
    // after the other is what orders them.
    create_table(db.clone()).await?;
    load(db, rows).await
}

const USAGE: &str = "usage: etl [--source URL] [DATABASE]

  DATABASE      the SQLite file to load the complaints into
                (default: $TMPDIR/flowcore-examples/etl.db)
  --source URL  the complaints service to extract from (default: one this program starts)";

/// The command line: `[--source URL] [DATABASE]`.
struct Args {
    source: Option<String>,
    db: PathBuf,
}

impl Args {
    fn parse() -> anyhow::Result<Args> {
        let mut source = None;
        let mut db = None;
        let mut args = std::env::args_os().skip(1);
        while let Some(arg) = args.next() {
            match arg.to_str() {
                Some("-h" | "--help") => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                Some("--source") => {
                    let url = args.next().context("--source needs a URL")?;
                    let url = url
                        .into_string()
                        .ok()
                        .context("--source: the URL is not UTF-8")?;
                    source = Some(url);
                }
                Some(flag) if flag.starts_with("--source=") => {
                    source = Some(flag["--source=".len()..].to_owned());
                }
                Some(flag) if flag.starts_with('-') => {
                    anyhow::bail!("unknown option {flag}\n\n{USAGE}");
                }
                _ if db.is_some() => anyhow::bail!("more than one database given\n\n{USAGE}"),
                _ => db = Some(PathBuf::from(arg)),
            }
        }
        let db = db.unwrap_or_else(|| {
            std::env::temp_dir()
                .join("flowcore-examples")
                .join("etl.db")
        });
        Ok(Args { source, db })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    flowcore::init_logging();
    let Args { source, db } = Args::parse()?;

    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    println!("SQLite database: {}", db.display());
    // Where flowcore keeps the runs and the cached results (the default store, opened now).
    println!("Run store: {}", flowcore::Store::current().describe());
    let (url, requests) = match source {
        Some(url) => {
            println!("Complaints service: {url}");
            (url, None)
        }
        None => {
            let (url, requests) = start_complaints_server().await?;
            println!("Complaints service: {url} (started by this program)");
            (url, Some(requests))
        }
    };
    println!();

    let (loaded, run) = etl(&url, db.clone()).with_run().await;
    loaded?;

    println!();
    if let Some(extract) = run.task_runs_of("extract").next() {
        let state = extract.state();
        if state.kind == StateKind::Cached {
            println!(
                "extract ended in state {state}: taken from the cache, the service was not called"
            );
        } else {
            println!(
                "extract ended in state {state}: fetched from the service and cached for a \
                 day; run the example again to take it from the cache"
            );
        }
    }
    if let Some(requests) = requests {
        let requests = requests.load(Ordering::SeqCst);
        let plural = if requests == 1 { "" } else { "s" };
        println!("The complaints service received {requests} request{plural}");
    }
    let rows = count_rows(&db).await?;
    println!("{} holds {rows} rows in table complaints", db.display());
    Ok(())
}

async fn count_rows(db: &Path) -> anyhow::Result<i64> {
    let db = db.to_owned();
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(db)?;
        Ok(conn.query_row("SELECT COUNT(*) FROM complaints", [], |row| row.get(0))?)
    })
    .await?
}

/// Starts the complaints service on a free port of 127.0.0.1, in the background. Returns its
/// URL and the number of requests it has answered so far.
async fn start_complaints_server() -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    async fn complaints(Shared(requests): Shared<Arc<AtomicUsize>>) -> impl IntoResponse {
        requests.fetch_add(1, Ordering::SeqCst);
        ([(header::CONTENT_TYPE, "application/json")], COMPLAINTS)
    }

    let requests = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/complaints", get(complaints))
        .with_state(Arc::clone(&requests));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/complaints", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, requests))
}

/// What the service answers: 10 complaints in the shape of the CFPB's consumer complaint
/// database.
const COMPLAINTS: &str = r#"[
  {"complaint_id": 8215621, "date_received": "2024-02-01", "product": "Credit reporting or other personal consumer reports", "sub_product": "Credit reporting", "issue": "Incorrect information on your report", "sub_issue": "Information belongs to someone else", "company": "EQUIFAX, INC.", "state": "FL", "zip_code": "33101", "submitted_via": "Web", "company_response": "Closed with explanation", "timely": true},
  {"complaint_id": 8215734, "date_received": "2024-02-01", "product": "Debt collection", "sub_product": "Medical debt", "issue": "Attempts to collect debt not owed", "sub_issue": "Debt was paid", "company": "Midland Credit Management, Inc.", "state": "TX", "zip_code": "75201", "submitted_via": "Web", "company_response": "Closed with explanation", "timely": true},
  {"complaint_id": 8216002, "date_received": "2024-02-02", "product": "Checking or savings account", "sub_product": "Checking account", "issue": "Managing an account", "sub_issue": "Deposits and withdrawals", "company": "WELLS FARGO & COMPANY", "state": "CA", "zip_code": "94105", "submitted_via": "Phone", "company_response": "Closed with monetary relief", "timely": true},
  {"complaint_id": 8216178, "date_received": "2024-02-02", "product": "Credit card", "sub_product": "General-purpose credit card or charge card", "issue": "Problem with a purchase shown on your statement", "sub_issue": "Credit card company isn't resolving a dispute about a purchase on your statement", "company": "CAPITAL ONE FINANCIAL CORPORATION", "state": "NY", "zip_code": "10001", "submitted_via": "Web", "company_response": "Closed with explanation", "timely": true},
  {"complaint_id": 8216455, "date_received": "2024-02-03", "product": "Mortgage", "sub_product": "Conventional home mortgage", "issue": "Trouble during payment process", "sub_issue": null, "company": "Rocket Mortgage, LLC", "state": "MI", "zip_code": "48226", "submitted_via": "Web", "company_response": "Closed with explanation", "timely": true},
  {"complaint_id": 8216890, "date_received": "2024-02-03", "product": "Credit reporting or other personal consumer reports", "sub_product": "Credit reporting", "issue": "Improper use of your report", "sub_issue": "Reporting company used your report improperly", "company": "TRANSUNION INTERMEDIATE HOLDINGS, INC.", "state": "GA", "zip_code": "30303", "submitted_via": "Web", "company_response": "In progress", "timely": true},
  {"complaint_id": 8217013, "date_received": "2024-02-04", "product": "Money transfer, virtual currency, or money service", "sub_product": "Mobile or digital wallet", "issue": "Fraud or scam", "sub_issue": null, "company": "Block, Inc.", "state": "IL", "zip_code": "60601", "submitted_via": "Web", "company_response": "Closed with explanation", "timely": true},
  {"complaint_id": 8217290, "date_received": "2024-02-04", "product": "Student loan", "sub_product": "Federal student loan servicing", "issue": "Dealing with your lender or servicer", "sub_issue": "Received bad information about your loan", "company": "Nelnet, Inc.", "state": "NE", "zip_code": "68508", "submitted_via": "Referral", "company_response": "Closed with explanation", "timely": false},
  {"complaint_id": 8217544, "date_received": "2024-02-05", "product": "Vehicle loan or lease", "sub_product": "Loan", "issue": "Managing the loan or lease", "sub_issue": "Billing problem", "company": "Santander Consumer USA Holdings Inc.", "state": "AZ", "zip_code": "85004", "submitted_via": "Web", "company_response": "Closed with non-monetary relief", "timely": true},
  {"complaint_id": 8217801, "date_received": "2024-02-05", "product": "Checking or savings account", "sub_product": "Savings account", "issue": "Opening an account", "sub_issue": "Account opened without my consent or knowledge", "company": "JPMORGAN CHASE & CO.", "state": "OH", "zip_code": "43215", "submitted_via": "Postal mail", "company_response": "Closed with explanation", "timely": true}
]"#;
