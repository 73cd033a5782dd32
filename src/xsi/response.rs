//! Building XSI responses: a document in the request's representation, an empty answer,
//! and the one translation of an [`ApiError`] into a status, headers and an `ErrorInfo`.

use hyper::body::Bytes;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};

use crate::http::{self, ResponseBody};

use super::codec::{self, Format};
use super::error::ApiError;
use super::model::{self, XSI_NS};

/// The `WWW-Authenticate` value that asks for HTTP Basic credentials in `realm`.
pub(super) fn basic_challenge(realm: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"BroadWorks\""))
}

/// 200 with `bytes` in `format`.
pub(super) fn ok(bytes: Bytes, format: Format) -> Response<ResponseBody> {
    let mut response = Response::new(http::full(bytes));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}

/// `status` with no body.
pub(super) fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(http::full(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// The response for a handler's result: the response itself, or the error's ErrorInfo
/// (logged: server errors at error level, refusals at debug).
pub(super) fn respond(
    result: Result<Response<ResponseBody>, ApiError>,
    format: Format,
    challenge: &HeaderValue,
) -> Response<ResponseBody> {
    match result {
        Ok(response) => response,
        Err(error) => {
            if error.status().is_server_error() {
                tracing::error!(error = %error, "XSI request failed");
            } else {
                tracing::debug!(error = %error, status = error.status().as_u16(), "XSI request refused");
            }
            error_response(&error, format, challenge)
        }
    }
}

/// The ErrorInfo response for `error`, with the headers its status calls for.
fn error_response(
    error: &ApiError,
    format: Format,
    challenge: &HeaderValue,
) -> Response<ResponseBody> {
    let info = model::ErrorInfo {
        xmlns: XSI_NS,
        summary: error.to_string(),
        summary_english: error.to_string(),
        error_code: error.code(),
    };
    let body = codec::render(&info, None, format).unwrap_or_default();
    let mut response = ok(body, format);
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    match error {
        ApiError::AuthenticationRequired | ApiError::BadCredentials => {
            headers.insert(WWW_AUTHENTICATE, challenge.clone());
        }
        ApiError::MethodNotAllowed { allow } => {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        ApiError::Throttled { retry_after_secs } => {
            headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        _ => {}
    }
    response
}
