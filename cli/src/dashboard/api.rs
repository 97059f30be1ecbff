//! The JSON API under `/api/`: what the pages' script reads, and what users can script
//! against. Shapes match `flowcore … --json`. Every error is `{"error": "…"}`, those of a bad
//! query string or body included: axum's own extractors answer them in plain text, so the
//! handlers take [`ApiQuery`], [`ApiPath`] and [`RunRequest`] instead.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use flowcore::store::RunFilter;
use flowcore::{StateKind, StoreError, Timestamp};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::App;
use super::error::{ApiError, PageError};
use super::pages::{blocking, parse_id, stats as window_stats};
use super::window::Window;
use crate::runs;

/// An axum rejection (a bad query string, path or body) as a JSON error, with its status.
fn rejected(rejection: impl IntoResponse + std::fmt::Display) -> ApiError {
    let message = rejection.to_string();
    ApiError::new(rejection.into_response().status(), message)
}

/// The query string, read as `T`; a bad one is a JSON error (400).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(q) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(rejected)?;
        Ok(ApiQuery(q))
    }
}

/// The path's parameters, read as `T`; a bad one is a JSON error (400).
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(p) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(rejected)?;
        Ok(ApiPath(p))
    }
}

#[derive(Deserialize)]
pub struct StatsQuery {
    window: Option<String>,
}

/// `GET /api/stats?window=hour|day|week`
pub async fn stats(
    State(app): State<App>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Json<Value>, ApiError> {
    let window = Window::parse(q.window.as_deref()).map_err(PageError::bad_request)?;
    let stats = blocking(&app, move |store| window_stats(store, window)).await?;
    let buckets: Vec<Value> = stats
        .buckets
        .iter()
        .map(|b| json!({ "start": b.start, "counts": b.counts }))
        .collect();
    Ok(Json(json!({
        "window": stats.window.as_str(),
        "since": stats.since,
        "counts": stats.counts,
        "total": stats.total,
        "buckets": buckets,
    })))
}

#[derive(Deserialize)]
pub struct RunsQuery {
    flow: Option<String>,
    state: Option<String>,
    tag: Option<String>,
    window: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// `POST /api/runs/<id>/cancel`: `{"id", "outcome": "cancelled" | "cancelling"}`; 404 for an
/// unknown run, 409 for one that cannot be cancelled (ended, a subflow run, not a deployment's).
pub async fn cancel(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let outcome = blocking(&app, move |store| {
        store
            .cancel_run(&id.to_string(), super::pages::BY_THE_DASHBOARD)
            .map_err(PageError::of_cancel)
    })
    .await?;
    Ok(Json(json!({ "id": id, "outcome": outcome })))
}

/// `GET /api/runs?flow=&state=&tag=&window=&limit=50&offset=0`
pub async fn runs(
    State(app): State<App>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(s.parse::<StateKind>().map_err(PageError::bad_request)?),
        None => None,
    };
    let since = match q.window.as_deref().filter(|w| !w.is_empty()) {
        Some(w) => Some(
            Window::parse(Some(w))
                .map_err(PageError::bad_request)?
                .start(Timestamp::wall_now()),
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let offset = q.offset.unwrap_or(0);
    let filter = RunFilter {
        flow: q.flow.filter(|f| !f.is_empty()),
        state,
        tag: q.tag.filter(|t| !t.is_empty()),
        since,
        limit,
        offset,
    };
    let found = blocking(&app, move |store| Ok(store.flow_runs(&filter)?)).await?;
    let list: Vec<Value> = found
        .iter()
        .map(runs::summary_json)
        .collect::<Result<_, _>>()?;
    Ok(Json(
        json!({ "runs": list, "limit": limit, "offset": offset }),
    ))
}

/// `GET /api/runs/<id>`: as `flowcore runs show --json`.
pub async fn run(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let value = blocking(&app, move |store| {
        let record = store
            .flow_run(id)?
            .ok_or_else(|| PageError::not_found(format!("no flow run with id {id}")))?;
        let summary = store.flow_run_summary(id)?;
        let parent = match record.parent_id {
            Some(p) => Some((p, store.flow_run_summary(p)?.map(|s| s.name))),
            None => None,
        };
        Ok(runs::show_json(
            &record,
            store.parameters(id)?,
            summary.and_then(|s| s.deployment),
            &store.logs(id)?,
            parent,
        )?)
    })
    .await?;
    Ok(Json(value))
}

/// `GET /api/runs/<id>/state`: just enough for a page to tell that the run moved on.
pub async fn run_state(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let value = blocking(&app, move |store| {
        let run = store
            .flow_run_summary(id)?
            .ok_or_else(|| PageError::not_found(format!("no flow run with id {id}")))?;
        Ok(json!({
            "state": run.state,
            "final": run.state.is_final(),
            "task_runs": run.task_runs.values().sum::<usize>(),
            "task_run_states": run.task_runs,
        }))
    })
    .await?;
    Ok(Json(value))
}

/// `GET /api/deployments`: as `flowcore deployment ls --json`.
pub async fn deployments(State(app): State<App>) -> Result<Json<Value>, ApiError> {
    let list = blocking(&app, |store| Ok(store.deployments()?)).await?;
    Ok(Json(
        serde_json::to_value(list).map_err(|e| PageError::internal(e.to_string()))?,
    ))
}

/// `GET /api/workers`: as `flowcore worker ls --json`.
pub async fn workers(State(app): State<App>) -> Result<Json<Value>, ApiError> {
    let list = blocking(&app, |store| Ok(store.workers()?)).await?;
    Ok(Json(
        serde_json::to_value(list).map_err(|e| PageError::internal(e.to_string()))?,
    ))
}

/// The largest body taken, as axum's default limit.
const MAX_BODY: u64 = 2 << 20;

/// The body of a run's request: `{"parameters": {…}}`, both optional (an empty body is `{}`).
/// It must be sent as `Content-Type: application/json` (415 otherwise): a page of another
/// site cannot send that without asking first, which the dashboard never allows.
#[derive(Deserialize, Default)]
pub struct RunRequest {
    #[serde(default)]
    parameters: serde_json::Map<String, Value>,
}

impl<S: Send + Sync> FromRequest<S> for RunRequest {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let body = json_body(request, state).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(RunRequest::default());
        }
        serde_json::from_slice(&body).map_err(|e| {
            if e.is_data() {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("the body should be {{\"parameters\": {{\"name\": value, …}}}}: {e}"),
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not JSON: {e}"),
                )
            }
        })
    }
}

/// The body of `POST /api/runs/<id>/input`: `{"input": <the answer, any JSON>}`, sent as JSON.
pub struct InputBody {
    input: Value,
}

impl<S: Send + Sync> FromRequest<S> for InputBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let body = json_body(request, state).await?;
        let value: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            )
        })?;
        match value {
            Value::Object(mut fields) if fields.contains_key("input") => Ok(InputBody {
                input: fields.remove("input").unwrap_or(Value::Null),
            }),
            _ => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the body should be {\"input\": <the answer>}",
            )),
        }
    }
}

/// A body that must be JSON: refused unless sent as `Content-Type: application/json` (a page of
/// another site cannot send that without asking first, which the dashboard never allows), and
/// above 2 MiB.
async fn json_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON, with Content-Type: application/json",
        ));
    }
    // Refused from its length before it is sent; a longer body of unknown length stops
    // at the same limit, axum's (`DefaultBodyLimit`).
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if length.is_some_and(|n| n > MAX_BODY) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than 2 MiB",
        ));
    }
    Bytes::from_request(request, state).await.map_err(rejected)
}

/// `POST /api/runs/<id>/input` with `{"input": …}`: gives input to a paused run (202); 404 for
/// an unknown run, 409 for one that waits for no input.
pub async fn give_input(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    body: InputBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_id(&id)?;
    let input = body.input.to_string();
    blocking(&app, move |store| {
        store
            .give_input(&id.to_string(), &input, super::pages::BY_THE_DASHBOARD)
            .map_err(|e| match e {
                StoreError::UnknownRun { .. } => PageError::not_found(e.to_string()),
                StoreError::NotPaused { .. } => PageError::conflict(e.to_string()),
                other => other.into(),
            })
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "status": "given" })),
    ))
}

/// `POST /api/deployments/<name>/runs` with `{"parameters": {"key": "value"}}` (optional):
/// requests a run as `flowcore deployment run` does.
pub async fn request_run(
    State(app): State<App>,
    ApiPath(name): ApiPath<String>,
    request: RunRequest,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Values are given as on the command line: text, read as the parameter's type. A JSON
    // number or boolean is taken as its text.
    let parameters: Vec<(String, String)> = request
        .parameters
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    let requested = blocking(&app, move |store| {
        store.request_run(&name, &parameters).map_err(|e| match e {
            StoreError::UnknownDeployment { .. } => PageError::not_found(e.to_string()),
            StoreError::BadParameter(message) => PageError::bad_request(message),
            other => other.into(),
        })
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": requested.id,
            "name": requested.name,
            "deployment": requested.deployment,
            "parameters": requested.parameters,
        })),
    ))
}
