//! Reading a request body within the configured size and time.

use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_LENGTH;
use hyper::Request;

use crate::config::HttpConfig;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than `http.max_body_bytes`.
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Not complete within `http.body_read_timeout_secs`.
    #[error("the body did not arrive within {0:?}")]
    Timeout(Duration),
    /// The connection failed while reading.
    #[error("reading the body failed: {0}")]
    Io(String),
}

/// Reads the whole body of `request`, refusing a declared or actual size over the limit
/// and a body that trickles in slower than the timeout allows.
pub async fn read_body(
    request: Request<Incoming>,
    limits: &HttpConfig,
) -> Result<Bytes, BodyError> {
    let limit = limits.max_body_bytes;
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit.get() as u64) {
        return Err(BodyError::TooLarge { limit: limit.get() });
    }
    let timeout = Duration::from_secs(limits.body_read_timeout_secs.get());
    let collect = Limited::new(request.into_body(), limit.get()).collect();
    match tokio::time::timeout(timeout, collect).await {
        Err(_) => Err(BodyError::Timeout(timeout)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(BodyError::TooLarge { limit: limit.get() })
        }
        Ok(Err(e)) => Err(BodyError::Io(e.to_string())),
    }
}
