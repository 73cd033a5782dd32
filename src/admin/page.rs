//! The status page: one self-contained HTML document (no CDN, no external file) that
//! polls the admin API every two seconds and shows the listeners, the certificate's
//! expiry in green, amber or red, live counts and lists, and the latest refusals. It asks
//! for the bearer token when the API wants one and keeps it for the browser tab only.

use hyper::body::Bytes;
use hyper::StatusCode;

use super::Answer;

/// `GET /`.
pub(super) fn page() -> Answer {
    Answer::Body(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Bytes::from_static(include_bytes!("status.html")),
    )
}
