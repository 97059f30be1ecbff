//! What a page or an API call answers when it cannot do what was asked.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::layout;

/// An error of a page: a page saying what went wrong, with its status.
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn not_found(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }

    /// A store error of a cancel request: an unknown run is not found, a run that cannot be
    /// cancelled a conflict with its state, anything else the store's failure.
    pub fn of_cancel(e: flowcore::StoreError) -> PageError {
        match e {
            flowcore::StoreError::UnknownRun { .. } => PageError::not_found(e.to_string()),
            flowcore::StoreError::CannotCancel { .. } => PageError::conflict(e.to_string()),
            other => other.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

impl From<flowcore::StoreError> for PageError {
    fn from(e: flowcore::StoreError) -> PageError {
        PageError::internal(e.to_string())
    }
}

impl From<crate::Failure> for PageError {
    fn from(e: crate::Failure) -> PageError {
        PageError::internal(e.0)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        // "Not found", "Bad request", "Misdirected request", …
        let title = match self.status.canonical_reason() {
            Some(reason) if self.status.is_client_error() => {
                let mut words = reason.split(' ');
                let first = words.next().unwrap_or_default().to_owned();
                words.fold(first, |title, w| title + " " + &w.to_ascii_lowercase())
            }
            _ => "Error".to_owned(),
        };
        (self.status, layout::error_page(&title, &self.message)).into_response()
    }
}

/// An error of the JSON API: `{"error": "…"}` with its status.
pub struct ApiError(pub PageError);

impl<E: Into<PageError>> From<E> for ApiError {
    fn from(e: E) -> ApiError {
        ApiError(e.into())
    }
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError(PageError {
            status,
            message: message.into(),
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0.status, Json(json!({ "error": self.0.message }))).into_response()
    }
}

/// Whether `path` is the JSON API's: its errors are JSON, never a page.
pub fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// An error answered before or instead of a handler: JSON under `/api/`, a page elsewhere.
pub fn respond(path: &str, status: StatusCode, message: impl Into<String>) -> Response {
    let error = PageError {
        status,
        message: message.into(),
    };
    if is_api(path) {
        ApiError(error).into_response()
    } else {
        error.into_response()
    }
}

/// Any route, with a method it does not take: 405, with the methods it takes in `Allow`.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    respond(
        uri.path(),
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
    )
}
