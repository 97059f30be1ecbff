//! Each run is a tracing span named for its task or flow, with the run's name, id, kind and
//! final state as fields: what OpenTelemetry, tokio-console or any subscriber of your own sees.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use flowcore::{flow, task, testing};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

/// A span as opened: its name, its target and its fields as text.
type Seen = (String, String, BTreeMap<String, String>);

/// Every span opened, by id.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<BTreeMap<u64, Seen>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let meta = attrs.metadata();
        self.0.lock().unwrap().insert(
            id.into_u64(),
            (meta.name().to_owned(), meta.target().to_owned(), fields),
        );
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some((_, _, fields)) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
}

#[task]
async fn extract(n: u32) -> Vec<u32> {
    (0..n).collect()
}

#[task(name = "load_rows")]
async fn load(rows: Vec<u32>) -> Result<usize, String> {
    if rows.is_empty() {
        Err("nothing to load".to_owned())
    } else {
        Ok(rows.len())
    }
}

#[flow(name = "etl")]
async fn etl() -> Result<usize, String> {
    let rows = extract(3).await;
    let loaded = load(rows).await?;
    let _ = load(Vec::new()).await;
    Ok(loaded)
}

#[tokio::test(flavor = "current_thread")]
async fn each_run_is_a_span_named_for_its_task_or_flow_with_its_run_and_final_state() {
    let spans = Spans::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let ((out, run), _) = testing::isolated(etl().with_run()).await;
    assert_eq!(out, Ok(3));

    let seen: Vec<Seen> = spans.0.lock().unwrap().values().cloned().collect();
    let by_name = |name: &str| -> Vec<&BTreeMap<String, String>> {
        seen.iter()
            .filter(|(n, target, _)| n == name && target == "flowcore")
            .map(|(_, _, fields)| fields)
            .collect()
    };
    let flow = by_name("etl");
    assert_eq!(flow.len(), 1);
    assert_eq!(flow[0]["run"], run.name);
    assert_eq!(flow[0]["id"], run.id.to_string());
    assert_eq!(flow[0]["kind"], "flow");
    assert_eq!(flow[0]["state"], "Completed");

    let extract = by_name("extract");
    assert_eq!(extract.len(), 1);
    assert_eq!(extract[0]["run"], run.task_runs[0].name().to_string());
    assert_eq!(extract[0]["kind"], "task");
    assert_eq!(extract[0]["state"], "Completed");

    let loads = by_name("load_rows");
    let states: Vec<&str> = loads.iter().map(|f| f["state"].as_str()).collect();
    assert_eq!(states, ["Completed", "Failed"]);
    assert!(
        seen.iter()
            .all(|(n, ..)| n != "task_run" && n != "flow_run"),
        "no generic span names: {seen:?}"
    );
}
