//! Every way an XSI request can fail, and its one translation into an HTTP status plus an
//! `ErrorInfo{summary, summaryEnglish, errorCode}` body. The codes are Bridgehead's own and
//! are listed in `docs/xsi.md`. Internal detail (store errors) is logged, never sent.

use hyper::StatusCode;

use crate::http::BodyError;
use crate::telephony::TelephonyError;

/// Why an XSI request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not well-formed XML or JSON, or not the document the resource takes.
    #[error("the request body is not a valid {expected} document: {detail}")]
    Malformed {
        /// The root element the resource takes.
        expected: &'static str,
        /// What the parser said.
        detail: String,
    },
    /// A value does not fit its field.
    #[error("invalid value for {field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// A query parameter is wrong.
    #[error("invalid query parameter {name}: {reason}")]
    BadQuery {
        /// The parameter.
        name: String,
        /// Why.
        reason: String,
    },
    /// No credentials were given.
    #[error("authentication required")]
    AuthenticationRequired,
    /// The credentials are wrong (or malformed).
    #[error("invalid user name or password")]
    BadCredentials,
    /// Too many failed logins from this user or address.
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    Throttled {
        /// Seconds until the next attempt is considered.
        retry_after_secs: u64,
    },
    /// The authenticated user may not reach this resource.
    #[error("not allowed to access this resource")]
    Forbidden,
    /// No such user.
    #[error("user {0} not found")]
    UnknownUser(String),
    /// No such resource or service.
    #[error("resource {0} not found")]
    UnknownResource(String),
    /// No such entry (e.g. in the personal directory).
    #[error("{0} not found")]
    UnknownEntry(String),
    /// The record exists already.
    #[error("{0} already exists")]
    Exists(String),
    /// The user is at one of its `[quotas]`.
    #[error("too many {what}: the limit is {limit}")]
    QuotaExceeded {
        /// What is at its limit, in words.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The method is not one the resource takes.
    #[error("method not allowed; allowed: {allow}")]
    MethodNotAllowed {
        /// The `Allow` header value.
        allow: &'static str,
    },
    /// The body's content type is neither XML nor JSON.
    #[error("unsupported content type {0}; send application/xml or application/json")]
    UnsupportedMediaType(String),
    /// The body is larger than the limit.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body did not arrive in time.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The call's state does not allow the action.
    #[error("{0}")]
    CallRefused(String),
    /// No call bridge can carry the call (`POST calls/new`).
    #[error("no call bridge is available to carry the call")]
    NoCallBridge,
    /// The bridge carrying the call refused the action or did not confirm it.
    #[error("{0}")]
    BridgeFailed(String),
    /// The node that holds what the request names cannot be reached now (the cluster's
    /// messaging is down, or the node is slow to answer); trying again may succeed.
    #[error("{0}")]
    NodeUnavailable(String),
    /// Something failed inside the server (logged; not described to the client).
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed { .. } | ApiError::Invalid { .. } | ApiError::BadQuery { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::AuthenticationRequired | ApiError::BadCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden | ApiError::QuotaExceeded { .. } => StatusCode::FORBIDDEN,
            ApiError::UnknownUser(_) | ApiError::UnknownResource(_) | ApiError::UnknownEntry(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::Exists(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::NoCallBridge | ApiError::NodeUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::CallRefused(_) => StatusCode::BAD_REQUEST,
            ApiError::BridgeFailed(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Bridgehead's `errorCode` (see `docs/xsi.md`).
    pub fn code(&self) -> u32 {
        match self {
            ApiError::Malformed { .. } => 120_001,
            ApiError::Invalid { .. } => 120_002,
            ApiError::BadQuery { .. } => 120_003,
            ApiError::AuthenticationRequired => 120_101,
            ApiError::BadCredentials => 120_102,
            ApiError::Forbidden => 120_103,
            ApiError::Throttled { .. } => 120_104,
            ApiError::UnknownUser(_) => 120_201,
            ApiError::UnknownResource(_) => 120_202,
            ApiError::UnknownEntry(_) => 120_203,
            ApiError::Exists(_) => 120_204,
            ApiError::QuotaExceeded { .. } => 120_205,
            ApiError::MethodNotAllowed { .. } => 120_301,
            ApiError::UnsupportedMediaType(_) => 120_302,
            ApiError::TooLarge { .. } => 120_303,
            ApiError::BodyTimeout => 120_304,
            ApiError::NoCallBridge => 120_401,
            ApiError::CallRefused(_) => 120_402,
            ApiError::BridgeFailed(_) => 120_403,
            ApiError::NodeUnavailable(_) => 120_501,
            ApiError::Internal => 120_901,
        }
    }
}

impl From<TelephonyError> for ApiError {
    fn from(e: TelephonyError) -> Self {
        match e {
            TelephonyError::Invalid { field, reason } => ApiError::Invalid {
                field: field.to_owned(),
                reason,
            },
            TelephonyError::UnknownUser(user) => ApiError::UnknownUser(user),
            TelephonyError::Exists(what) => ApiError::Exists(what),
            TelephonyError::Quota { what, limit } => ApiError::QuotaExceeded { what, limit },
            TelephonyError::NoCallBridge => ApiError::NoCallBridge,
            TelephonyError::UnknownCall(id) => ApiError::UnknownEntry(format!("call {id}")),
            TelephonyError::Call(e) => ApiError::CallRefused(e.to_string()),
            TelephonyError::Carrier(e) => {
                tracing::warn!(error = %e, "a call bridge failed a call action");
                ApiError::BridgeFailed(e.to_string())
            }
            TelephonyError::Store(e) => {
                tracing::error!(error = %e, "store failed while serving XSI");
                ApiError::Internal
            }
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { limit } => ApiError::TooLarge { limit },
            BodyError::Timeout(_) => ApiError::BodyTimeout,
            BodyError::Io(detail) => ApiError::Malformed {
                expected: "request",
                detail,
            },
        }
    }
}
