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
        let title = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Bad request",
            _ => "Error",
        };
        (self.status, layout::error_page(title, &self.message)).into_response()
    }
}

/// An error of the JSON API: `{"error": "…"}` with its status.
pub struct ApiError(pub PageError);

impl<E: Into<PageError>> From<E> for ApiError {
    fn from(e: E) -> ApiError {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0.status, Json(json!({ "error": self.0.message }))).into_response()
    }
}
