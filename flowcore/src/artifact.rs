//! Artifacts: what a run produced for people to read, kept with the run (Prefect's
//! `create_markdown_artifact`, `create_table_artifact`, `create_link_artifact`): a report in
//! markdown, a table of rows, a link to what was written elsewhere. Each has a key; the latest
//! artifact of a key is what `flowcore artifact show KEY` and the dashboard show, the older ones
//! its history.
//!
//! ```
//! use flowcore::{artifact, flow, task};
//! use serde::Serialize;
//!
//! #[derive(Serialize)]
//! struct Row {
//!     region: &'static str,
//!     orders: u32,
//! }
//!
//! #[task]
//! async fn report() -> Result<(), artifact::ArtifactError> {
//!     let rows = [Row { region: "north", orders: 12 }, Row { region: "south", orders: 7 }];
//!     artifact::table("orders-by-region", &rows)?;
//!     artifact::markdown("summary", "# Orders\n\n**19** orders today.")?;
//!     artifact::link("dashboard", "https://example.com/orders")?;
//!     Ok(())
//! }
//!
//! #[flow]
//! async fn nightly() -> Result<(), artifact::ArtifactError> {
//!     report().await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = flowcore::Store::memory();
//! let (_, run) = store.scope(nightly().with_run()).await;
//! let made = store.artifacts_of(run.id).unwrap();
//! assert_eq!(made.len(), 3);
//! assert_eq!(made[0].key, "orders-by-region");
//! assert_eq!(made[0].task_run_id, Some(run.task_runs[0].id));
//! # }
//! ```

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::context::FlowContext;
use crate::store::{Event, RunStore};

thread_local! {
    /// The task run being polled on this thread: artifacts made in its body are its. Set for
    /// the length of each poll of a task call, which costs two thread-local writes (tokio's
    /// task-local, wrapped around the whole run, cost 0.15 µs per task run).
    static CURRENT_TASK_RUN: std::cell::Cell<Option<Uuid>> = const { std::cell::Cell::new(None) };
}

/// While alive, the task run being polled on this thread; the one before it after.
pub(crate) struct CurrentTaskRun(Option<Uuid>);

impl CurrentTaskRun {
    pub(crate) fn enter(id: Option<Uuid>) -> CurrentTaskRun {
        CurrentTaskRun(CURRENT_TASK_RUN.with(|current| current.replace(id)))
    }
}

impl Drop for CurrentTaskRun {
    fn drop(&mut self) {
        CURRENT_TASK_RUN.with(|current| current.set(self.0));
    }
}

/// What kind of artifact, and so how it is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ArtifactKind {
    /// Markdown text, rendered (raw HTML in it is shown as text, never run).
    Markdown,
    /// Rows: a JSON array of objects, shown as a table whose columns are their keys.
    Table,
    /// A URL (http or https), shown as a link.
    Link,
}

impl ArtifactKind {
    /// Its name as stored: `"markdown"`, `"table"`, `"link"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Markdown => "markdown",
            ArtifactKind::Table => "table",
            ArtifactKind::Link => "link",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<ArtifactKind> {
        match text {
            "markdown" => Some(ArtifactKind::Markdown),
            "table" => Some(ArtifactKind::Table),
            "link" => Some(ArtifactKind::Link),
            _ => None,
        }
    }
}

/// An artifact as the store keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Artifact {
    /// Its own id.
    pub id: Uuid,
    /// Its key: lowercase letters, digits and dashes.
    pub key: String,
    /// How to show it.
    pub kind: ArtifactKind,
    /// The markdown text, the rows as JSON, or the URL.
    pub body: String,
    /// The flow run it was made in, if any.
    pub flow_run_id: Option<Uuid>,
    /// The task run it was made in, if it was made in a task.
    pub task_run_id: Option<Uuid>,
    /// When it was made.
    pub created_at: Timestamp,
}

/// Which artifacts a store is asked for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ArtifactsOf<'a> {
    FlowRun(Uuid),
    Key(&'a str),
    LatestOfEachKey,
}

/// Why an artifact was not made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// A key must be lowercase letters, digits and dashes, as Prefect's.
    #[error(
        "artifact key {0:?} is not a key: use lowercase letters, digits and dashes, like \"orders-by-region\""
    )]
    BadKey(String),
    /// The rows of a table did not serialize to JSON objects.
    #[error("the rows of table artifact {key:?} are not a list of objects: {reason}")]
    BadRows {
        /// The artifact's key.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// A link must be an http or https URL.
    #[error("link artifact {key:?} is not an http or https URL: {url:?}")]
    BadUrl {
        /// The artifact's key.
        key: String,
        /// The URL given.
        url: String,
    },
}

/// Keeps a markdown artifact with the run this is called in.
pub fn markdown(key: &str, text: &str) -> Result<Uuid, ArtifactError> {
    make(key, ArtifactKind::Markdown, text.to_owned())
}

/// Keeps a table artifact: `rows` serialize to JSON objects (structs, maps), one per row.
pub fn table<R: Serialize>(key: &str, rows: &[R]) -> Result<Uuid, ArtifactError> {
    let bad = |reason: String| ArtifactError::BadRows {
        key: key.to_owned(),
        reason,
    };
    // Kept as serialized, so that the columns keep the order of the rows' fields.
    let body = serde_json::to_string(rows).map_err(|e| bad(e.to_string()))?;
    if table_rows(&body).is_none() {
        return Err(bad("each row must serialize to an object".to_owned()));
    }
    make(key, ArtifactKind::Table, body)
}

/// Keeps a link artifact: an http or https URL.
pub fn link(key: &str, url: &str) -> Result<Uuid, ArtifactError> {
    let lower = url.trim().to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(ArtifactError::BadUrl {
            key: key.to_owned(),
            url: url.to_owned(),
        });
    }
    make(key, ArtifactKind::Link, url.trim().to_owned())
}

impl Artifact {
    /// A table artifact's columns (its rows' keys, in the order they first appear) and rows
    /// (a value per column, `null` where a row lacks it); `None` for other kinds.
    pub fn table(&self) -> Option<(Vec<String>, Vec<Vec<serde_json::Value>>)> {
        if self.kind != ArtifactKind::Table {
            return None;
        }
        let rows = table_rows(&self.body)?;
        let mut columns: Vec<String> = Vec::new();
        for row in &rows {
            for (key, _) in &row.0 {
                if !columns.contains(key) {
                    columns.push(key.clone());
                }
            }
        }
        let cells = rows
            .into_iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|c| {
                        row.0
                            .iter()
                            .find(|(k, _)| k == c)
                            .map_or(serde_json::Value::Null, |(_, v)| v.clone())
                    })
                    .collect()
            })
            .collect();
        Some((columns, cells))
    }
}

/// A row of a table artifact: its fields in the order written (serde_json's map sorts them).
struct OrderedRow(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for OrderedRow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = OrderedRow;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedRow, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(OrderedRow(fields))
            }
        }
        d.deserialize_map(Fields)
    }
}

fn table_rows(body: &str) -> Option<Vec<OrderedRow>> {
    serde_json::from_str(body).ok()
}

fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 200
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn make(key: &str, kind: ArtifactKind, body: String) -> Result<Uuid, ArtifactError> {
    if !is_key(key) {
        return Err(ArtifactError::BadKey(key.to_owned()));
    }
    let at = Timestamp::now();
    let artifact = Artifact {
        id: crate::names::new_run_id_at(at),
        key: key.to_owned(),
        kind,
        body,
        flow_run_id: FlowContext::with_current(|flow| flow.id),
        task_run_id: CURRENT_TASK_RUN.with(std::cell::Cell::get),
        created_at: at,
    };
    let id = artifact.id;
    // The store of the run it is made in, else the one in scope.
    let store =
        FlowContext::with_current(|flow| flow.store.clone()).unwrap_or_else(RunStore::current);
    store.send(Event::Artifact(Box::new(artifact)));
    Ok(id)
}
