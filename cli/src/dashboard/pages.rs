//! The HTML pages: home, runs, one run, deployments, workers.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use flowcore::graph::TaskGraph;
use flowcore::store::{DeploymentInfo, FlowRunSummary, RunFilter, ServedBy};
use flowcore::{FlowRunRecord, StateKind, Store, Timestamp, Uuid};
use maud::{Markup, html};
use serde::Deserialize;

use super::chart::{self, Bucket};
use super::error::PageError;
use super::layout::{self, Section, badge, page};
use super::window::Window;
use super::{App, artifacts, graph_svg, timeline};
use crate::format;

/// Runs per page of the runs list.
const PAGE_SIZE: usize = 50;

/// Runs on the home page.
const LATEST: usize = 10;

/// Runs `f` with the store off the runtime's threads: the store's reads block on SQLite.
pub async fn blocking<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&Store) -> Result<T, PageError> + Send + 'static,
) -> Result<T, PageError> {
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| PageError::internal(format!("the request failed: {e}")))?
}

/// Flow runs by state over a window, and in buckets for the chart.
pub struct Stats {
    pub window: Window,
    pub since: Timestamp,
    pub counts: BTreeMap<StateKind, usize>,
    pub total: usize,
    pub buckets: Vec<Bucket>,
}

pub fn stats(store: &Store, window: Window) -> Result<Stats, PageError> {
    // A dead process's runs read as Crashed (the store shows them so to a reader) without
    // the dashboard writing anything.
    let now = Timestamp::wall_now();
    let since = window.start(now);
    let width = window.bucket().as_micros() as i64;
    let span = now.as_micros() - since.as_micros();
    let n = usize::try_from(span / width + 1).unwrap_or(1);
    let mut buckets: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            start: Timestamp::from_micros(since.as_micros() + i as i64 * width),
            counts: BTreeMap::new(),
        })
        .collect();
    let mut counts = BTreeMap::new();
    let mut total = 0;
    for (at, state) in store.flow_states_since(since)? {
        let i = usize::try_from((at.as_micros() - since.as_micros()) / width).unwrap_or(0);
        if let Some(bucket) = buckets.get_mut(i) {
            *bucket.counts.entry(state).or_insert(0) += 1;
        }
        *counts.entry(state).or_insert(0) += 1;
        total += 1;
    }
    Ok(Stats {
        window,
        since,
        counts,
        total,
        buckets,
    })
}

#[derive(Deserialize)]
pub struct HomeQuery {
    window: Option<String>,
}

/// `/`: counts of flow runs by state over a window, a chart of them, the latest runs.
pub async fn home(State(app): State<App>, Query(q): Query<HomeQuery>) -> Result<Markup, PageError> {
    let window = Window::parse(q.window.as_deref()).map_err(PageError::bad_request)?;
    let (stats, latest) = blocking(&app, move |store| {
        let latest = store.flow_runs(&RunFilter {
            limit: LATEST,
            ..RunFilter::default()
        })?;
        Ok((stats(store, window)?, latest))
    })
    .await?;
    let body = html! {
        h1 { "Flow runs" }
        nav.windows {
            @for w in Window::ALL {
                a href=(format!("/?window={}", w.as_str())) class=[(w == window).then_some("here")] {
                    "Last " (w.as_str())
                }
            }
        }
        section #counts {
            div.total { span #total-count { (stats.total) } " runs since " (layout::time(stats.since)) }
            @for (state, n) in &stats.counts {
                div.count-box {
                    span.count data-state=(state.as_str()) { (n) }
                    " " (badge(*state))
                }
            }
        }
        section.chart { (chart::runs_chart(&stats.buckets, stats.window.bucket())) }
        h2 { "Latest runs" }
        (runs_table("latest-runs", &latest))
        p { a href="/runs" { "All runs →" } }
    };
    Ok(page("Home", Section::Home, None, body))
}

/// A table of flow runs, one `tr.run` each.
fn runs_table(id: &str, runs: &[FlowRunSummary]) -> Markup {
    html! {
        table #(id) .runs {
            thead { tr { th { "Run" } th { "Flow" } th { "Deployment" } th { "State" } th { "Created" } th.num { "Duration" } th { "Task runs" } } }
            tbody {
                @for run in runs {
                    tr.run data-run-id=(run.id) {
                        td {
                            a.run-link href=(format!("/runs/{}", run.id)) { (run.name) }
                            @for tag in &run.tags {
                                " " a.tag href=(format!("/runs?tag={}", encode(tag))) { (tag) }
                            }
                        }
                        td.flow { (run.flow) }
                        td.deployment { (run.deployment.as_deref().unwrap_or("")) }
                        td { (badge(run.state)) }
                        td { (layout::time(run.created_at)) }
                        td.num { (run.duration().map(format::duration).unwrap_or_default()) }
                        td.task-counts {
                            @for (state, n) in &run.task_runs {
                                span.mini data-state=(state.as_str()) { (n) " " (state.as_str()) }
                                " "
                            }
                        }
                    }
                }
                @if runs.is_empty() {
                    tr { td colspan="7" .empty { "No runs." } }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct RunsQuery {
    flow: Option<String>,
    state: Option<String>,
    tag: Option<String>,
    window: Option<String>,
    page: Option<usize>,
}

/// `/runs`: every flow run, filtered by flow, state and window, a page at a time.
pub async fn runs(State(app): State<App>, Query(q): Query<RunsQuery>) -> Result<Markup, PageError> {
    let flow = q.flow.clone().filter(|f| !f.trim().is_empty());
    let tag = q.tag.clone().filter(|t| !t.trim().is_empty());
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(s.parse::<StateKind>().map_err(PageError::bad_request)?),
        None => None,
    };
    let window = match q.window.as_deref().filter(|w| !w.is_empty()) {
        Some(w) => Some(Window::parse(Some(w)).map_err(PageError::bad_request)?),
        None => None,
    };
    let page_no = q.page.unwrap_or(1).max(1);
    let filter = RunFilter {
        flow: flow.clone(),
        state,
        tag: tag.clone(),
        since: window.map(|w| w.start(Timestamp::wall_now())),
        // One more than a page tells whether there is a next one.
        limit: PAGE_SIZE + 1,
        offset: (page_no - 1).saturating_mul(PAGE_SIZE),
    };
    let mut found = blocking(&app, move |store| Ok(store.flow_runs(&filter)?)).await?;
    let more = found.len() > PAGE_SIZE;
    found.truncate(PAGE_SIZE);
    let link = |to: usize| {
        let mut query = vec![format!("page={to}")];
        if let Some(f) = &flow {
            query.push(format!("flow={}", encode(f)));
        }
        if let Some(s) = state {
            query.push(format!("state={}", s.as_str()));
        }
        if let Some(t) = &tag {
            query.push(format!("tag={}", encode(t)));
        }
        if let Some(w) = window {
            query.push(format!("window={}", w.as_str()));
        }
        format!("/runs?{}", query.join("&"))
    };
    let body = html! {
        h1 { "Runs" }
        form #filters method="get" action="/runs" {
            label { "Flow " input name="flow" value=(flow.as_deref().unwrap_or("")) placeholder="any"; }
            label { "Tag " input name="tag" value=(tag.as_deref().unwrap_or("")) placeholder="any"; }
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    @for s in StateKind::ALL {
                        option value=(s.as_str()) selected[state == Some(s)] { (s.as_str()) }
                    }
                }
            }
            label { "Created "
                select name="window" {
                    option value="" { "any time" }
                    @for w in Window::ALL {
                        option value=(w.as_str()) selected[window == Some(w)] { "last " (w.as_str()) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        (runs_table("runs", &found))
        nav.pages {
            @if page_no > 1 { a #prev-page href=(link(page_no - 1)) { "← Newer" } }
            span { "Page " (page_no) }
            @if more { a #next-page href=(link(page_no + 1)) { "Older →" } }
        }
    };
    Ok(page("Runs", Section::Runs, None, body))
}

/// A query-string value, percent-encoded.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Everything the page of one run shows.
struct RunPage {
    record: FlowRunRecord,
    parameters: Option<serde_json::Value>,
    deployment: Option<String>,
    logs: Vec<flowcore::store::LogLine>,
    artifacts: Vec<flowcore::artifact::Artifact>,
    input: Option<flowcore::pause::InputRequest>,
}

pub fn parse_id(id: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(id).map_err(|_| PageError::not_found(format!("no flow run with id {id:?}")))
}

/// `/runs/<id>`: a run's history, timeline, task graph, task runs and logs.
pub async fn run(State(app): State<App>, Path(id): Path<String>) -> Result<Markup, PageError> {
    let id = parse_id(&id)?;
    let data = blocking(&app, move |store| {
        let record = store
            .flow_run(id)?
            .ok_or_else(|| PageError::not_found(format!("no flow run with id {id}")))?;
        Ok(RunPage {
            parameters: store.parameters(id)?,
            deployment: store.flow_run_summary(id)?.and_then(|s| s.deployment),
            logs: store.logs(id)?,
            artifacts: store.artifacts_of(id)?,
            input: store.input_request(&id.to_string())?,
            record,
        })
    })
    .await?;
    let record = &data.record;
    let state = record.state();
    let now = Timestamp::wall_now();
    let task_names: HashMap<Uuid, String> = record
        .task_runs
        .iter()
        .map(|t| (t.id, t.name().to_string()))
        .collect();
    let graph = TaskGraph::from_record(record);
    let body = html! {
        div.run-head data-run-id=(record.id) data-history=(record.history.len()) data-task-runs=(record.task_runs.len()) {
            h1 #run-name { (record.name) }
            span #run-state .badge data-state=(state.kind.as_str()) {
                (state.kind.as_str())
            }
            // Only a deployment's run can be dropped by the process serving it.
            @if data.deployment.is_some() && record.parent_id.is_none() && !state.is_final() && state.kind != StateKind::Cancelling {
                form #cancel-run method="post" action=(format!("/runs/{}/cancel", record.id)) {
                    button type="submit" { "Cancel" }
                }
            }
        }
        @if let Some(error) = record.error() {
            pre #run-error { (error) }
        }
        @if let (StateKind::Paused, Some(input)) = (state.kind, &data.input) {
            section #input {
                h2 { "Waiting for input" }
                p.question { (input.question) }
                @if let Some(reason) = &input.refused {
                    p #input-refused { "The last input was refused: " (reason) }
                }
                details { summary { "The answer's JSON schema" } pre { (input.schema) } }
                form #input-form method="post" action=(format!("/runs/{}/input", record.id)) {
                    textarea name="input" rows="4" cols="60" placeholder="{\"ok\": true}" {}
                    button type="submit" { "Resume" }
                }
            }
        }
        dl.facts {
            dt { "Flow" } dd { (record.flow) }
            @if !record.tags.is_empty() {
                dt { "Tags" } dd #run-tags {
                    @for tag in &record.tags {
                        a.tag href=(format!("/runs?tag={}", encode(tag))) { (tag) } " "
                    }
                }
            }
            @if let Some(d) = &data.deployment {
                dt { "Deployment" } dd { a href="/deployments" { (d) } }
            }
            dt { "Id" } dd { code { (record.id) } }
            dt { "Parameters" } dd { code { (match &data.parameters {
                Some(p) => p.to_string(),
                None => "not recorded (not serializable)".to_owned(),
            }) } }
            dt { "Started" } dd { (record.history.started_at().map(layout::time).unwrap_or_else(|| "not yet".to_owned())) }
            dt { "Duration" } dd { (record.duration().map(format::duration).unwrap_or_else(|| "—".to_owned())) }
            dt { "Attempts" } dd { (record.attempts) }
        }
        h2 { "State history" }
        ol #history {
            @for s in record.history.iter() {
                li { span.time { (layout::time_of_day(s.at)) } " " (badge(s.kind)) @if let Some(m) = &s.message { " " span.message { (m) } } }
            }
        }
        h2 { "Timeline" }
        section.timeline { (timeline::timeline(record, now)) }
        h2 { "Task graph" }
        section.graph { (graph_svg::task_graph(&graph)) }
        h2 { "Task runs" }
        table #task-runs {
            thead { tr { th { "Task run" } th { "State" } th.num { "Attempts" } th.num { "Duration" } th { "Cache" } th { "Error" } } }
            tbody {
                @for t in &record.task_runs {
                    tr.task-run data-task-run-id=(t.id) {
                        td.task-name { (t.name().to_string()) }
                        td { (badge(t.state().kind)) }
                        td.attempts.num { (t.attempts) }
                        td.duration.num { (t.duration().map(format::duration).unwrap_or_default()) }
                        td.cache { (t.cache.as_str()) }
                        td.error { (t.error().unwrap_or("")) }
                    }
                }
                @if record.task_runs.is_empty() {
                    tr { td colspan="6" .empty { "No task runs." } }
                }
            }
        }
        @if !record.subflow_runs.is_empty() {
            h2 { "Subflow runs" }
            ul.subflows {
                @for sub in &record.subflow_runs {
                    li { a href=(format!("/runs/{}", sub.id)) { (sub.name) } " " (badge(sub.state().kind)) }
                }
            }
        }
        (artifacts::section(&data.artifacts))
        h2 { "Logs" }
        div #logs {
            @for line in &data.logs {
                div.log-line data-level=(line.level) {
                    span.time { (layout::time_of_day(line.at)) } " "
                    span.level { (line.level) } " "
                    span.source { (task_names.get(&line.run_id).map(String::as_str).unwrap_or("flow")) } " "
                    span.message { (line.message) }
                }
            }
            @if data.logs.is_empty() { p.empty { "No log lines." } }
        }
    };
    Ok(page(
        &record.name,
        Section::Runs,
        Some(state.is_final()),
        body,
    ))
}

/// `/deployments`: each deployment, its schedule and next run (or `paused`), its last runs,
/// "Run now", and "Pause" or "Resume" for its schedule.
pub async fn deployments(State(app): State<App>) -> Result<Markup, PageError> {
    let list = blocking(&app, |store| Ok(store.deployments()?)).await?;
    let body = html! {
        h1 { "Deployments" }
        table #deployments {
            thead { tr { th { "Deployment" } th { "Flow" } th { "Schedule" } th { "Next run" } th { "Served by" } th { "Last runs" } th {} } }
            tbody {
                @for d in &list {
                    tr.deployment data-deployment=(d.name) data-paused=[d.paused_at.map(|_| "true")] {
                        td.name { (d.name) }
                        td.flow { (d.flow) }
                        td.schedule { (d.schedule.as_deref().unwrap_or("when requested")) }
                        td.next-run {
                            @if let Some(at) = d.paused_at {
                                span.paused title=(format!("paused at {}", layout::time(at))) { "paused" }
                            } @else {
                                (d.next_run_at.map(layout::time).unwrap_or_else(|| "—".to_owned()))
                            }
                        }
                        td.served-by { (served_by(d)) }
                        td.last-runs {
                            @for r in &d.last_runs {
                                a href=(format!("/runs/{}", r.id)) title=(r.name) { (badge(r.state)) } " "
                            }
                        }
                        td.actions {
                            form.run-now method="post" action=(format!("/deployments/{}/run", encode(&d.name))) {
                                button.run-now type="submit" { "Run now" }
                            }
                            @if d.paused_at.is_some() {
                                form.resume method="post" action=(format!("/deployments/{}/resume", encode(&d.name))) {
                                    button.resume type="submit" { "Resume" }
                                }
                            } @else {
                                form.pause method="post" action=(format!("/deployments/{}/pause", encode(&d.name))) {
                                    button.pause type="submit" { "Pause" }
                                }
                            }
                        }
                    }
                }
                @if list.is_empty() {
                    tr { td colspan="7" .empty { "No deployments: a program serves them with flowcore::serve([Deployment::new(…)])." } }
                }
            }
        }
        p.hint { "\"Run now\" requests a run as " code { "flowcore deployment run NAME" } " does: one of the workers serving the deployment starts it within a second; with none serving it, it waits, Scheduled." }
        p.hint { "\"Pause\" stops the schedule from starting runs, as " code { "flowcore deployment pause NAME" } " does; runs requested by hand still run. \"Resume\" lets it start them again from its next time due: the times that passed while it was paused are not made up." }
    };
    Ok(page("Deployments", Section::Deployments, None, body))
}

/// Who serves a deployment, in the words of `flowcore deployment ls`: `not served`, its one
/// worker, or `2 workers: pid 1 on a, pid 2 on b` (oldest first).
fn served_by(d: &DeploymentInfo) -> Markup {
    let worker = |p: &ServedBy| {
        html! { span.worker data-pid=(p.pid) data-host=(p.host) { "pid " (p.pid) " on " (p.host) } }
    };
    match (d.workers.as_slice(), &d.served_by) {
        ([], None) => html! { "not served" },
        // A store that names its serving process without listing its workers: one written
        // before workers were recorded.
        ([], Some(p)) | ([p], _) => worker(p),
        (all, _) => html! {
            a href="/workers" { (all.len()) " workers" } ": "
            @for (i, p) in all.iter().enumerate() {
                @if i > 0 { ", " }
                (worker(p))
            }
        },
    }
}

/// What the workers page and `flowcore worker ls` say when no process serves anything.
const NO_WORKERS: &str =
    "No workers: no live process serves a deployment or a background task with this store.";

/// `/workers`: the live processes serving deployments or background tasks with this store,
/// oldest first.
pub async fn workers(State(app): State<App>) -> Result<Markup, PageError> {
    let list = blocking(&app, |store| Ok(store.workers()?)).await?;
    let now = Timestamp::wall_now();
    let body = html! {
        h1 { "Workers" }
        table #workers {
            thead { tr { th { "Worker" } th { "Host" } th.num { "Pid" } th { "Started" } th { "Last heartbeat" } th.num { "Runs held" } th { "Deployments" } th { "Tasks" } } }
            tbody {
                @for w in &list {
                    tr.worker data-worker-id=(w.id) {
                        td.id { code { (w.id) } }
                        td.host { (w.host) }
                        td.pid.num { (w.pid) }
                        td.started { (layout::time(w.started_at)) }
                        td.heartbeat {
                            (layout::time(w.heartbeat_at))
                            // Whole seconds: the heartbeat comes every few, so finer is noise.
                            " " span.age { "(" (now.duration_since(w.heartbeat_at).as_secs()) " s ago)" }
                        }
                        td.runs-held.num { (w.runs_held + w.task_runs_held) }
                        td.deployments {
                            @for (i, name) in w.deployments.iter().enumerate() {
                                @if i > 0 { ", " }
                                span.deployment { (name) }
                            }
                        }
                        td.tasks {
                            @for (i, name) in w.tasks.iter().enumerate() {
                                @if i > 0 { ", " }
                                span.task { (name) }
                            }
                        }
                    }
                }
                @if list.is_empty() {
                    tr { td colspan="8" .empty { (NO_WORKERS) } }
                }
            }
        }
        p.hint { "A worker is a process serving deployments with " code { "flowcore::serve" } ", on any host; several may serve the same deployment, and each run goes to one of them. One that stops is gone at once; one that dies, once it is known dead: at once if it ran on this dashboard's host (by host name), else once it has gone longer than its lease without a heartbeat." }
    };
    Ok(page("Workers", Section::Workers, None, body))
}

/// Who asks, as a cancelled run's states (or a paused run's input) say it.
pub const BY_THE_DASHBOARD: &str = "the dashboard";

/// The run page's input form.
#[derive(Deserialize)]
pub struct InputForm {
    input: String,
}

/// `POST /runs/<id>/input`: gives a paused run the form's input (JSON), then shows the run:
/// its page says if the input was refused, and why.
pub async fn give_input(
    State(app): State<App>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<InputForm>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    blocking(&app, move |store| {
        store
            .give_input(&id.to_string(), &form.input, BY_THE_DASHBOARD)
            .map_err(|e| match e {
                flowcore::StoreError::UnknownRun { .. } => PageError::not_found(e.to_string()),
                flowcore::StoreError::NotPaused { .. } => PageError::conflict(e.to_string()),
                flowcore::StoreError::BadParameter(m) => PageError::bad_request(m),
                other => other.into(),
            })
    })
    .await?;
    Ok(Redirect::to(&format!("/runs/{id}")).into_response())
}

/// `POST /runs/<id>/cancel`: cancels a deployment's run, then shows it.
pub async fn cancel(State(app): State<App>, Path(id): Path<String>) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    blocking(&app, move |store| {
        store
            .cancel_run(&id.to_string(), BY_THE_DASHBOARD)
            .map_err(PageError::of_cancel)
    })
    .await?;
    Ok(Redirect::to(&format!("/runs/{id}")).into_response())
}

/// `POST /deployments/<name>/run`: requests a run, then shows it.
pub async fn run_now(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let requested = blocking(&app, move |store| {
        store.request_run(&name, &[]).map_err(|e| match e {
            flowcore::StoreError::UnknownDeployment { .. } => PageError::not_found(e.to_string()),
            other => other.into(),
        })
    })
    .await?;
    // 303 See Other: the browser follows with a GET.
    Ok(Redirect::to(&format!("/runs/{}", requested.id)).into_response())
}

/// `POST /deployments/<name>/pause`: pauses its schedule, then shows the deployments.
pub async fn pause(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    set_paused(app, name, true).await
}

/// `POST /deployments/<name>/resume`: resumes its schedule, then shows the deployments.
pub async fn resume(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    set_paused(app, name, false).await
}

async fn set_paused(app: App, name: String, pause: bool) -> Result<Response, PageError> {
    blocking(&app, move |store| {
        let done = if pause {
            store.pause_deployment(&name)
        } else {
            store.resume_deployment(&name)
        };
        done.map_err(|e| match e {
            flowcore::StoreError::UnknownDeployment { .. } => PageError::not_found(e.to_string()),
            other => other.into(),
        })
    })
    .await?;
    // 303 See Other: the browser follows with a GET.
    Ok(Redirect::to("/deployments").into_response())
}

/// Any other address: a page, or a JSON error under `/api/`.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    super::error::respond(
        uri.path(),
        axum::http::StatusCode::NOT_FOUND,
        format!("nothing at {}", uri.path()),
    )
}
