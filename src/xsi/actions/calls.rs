//! Call control on the user's `calls` resource:
//!
//! | path (after `v2.0/user/{u}/`) | methods | document |
//! |---|---|---|
//! | `calls` | GET | `Calls`: the user's calls in progress, with their URIs |
//! | `calls/HookStatus` | GET | `HookStatus` |
//! | `calls/new?address=…` | POST | 201 `CallStartInfo`, `Location` (dialled by a call bridge) |
//! | `calls/{callId}` | GET | `Call` |
//! | `calls/{callId}[?decline=true]` | DELETE | releases the call (declines a ringing incoming one) |
//!
//! The model (`telephony::calls`) decides what a call's state allows; a refusal is 400
//! with errorCode 120402.

use hyper::header::HeaderValue;
use hyper::{Method, Response, StatusCode};

use crate::http::ResponseBody;
use crate::telephony::calls::Call;
use crate::telephony::User;

use super::{user_uri, XsiActions};
use crate::xsi::codec::{self, Format};
use crate::xsi::error::ApiError;
use crate::xsi::model::{self, XSI_NS};
use crate::xsi::response::{empty, ok};

/// Milliseconds since the epoch (XSD `Timestamp`).
fn millis(at: time::OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The `Call` document of `call`.
fn call_document(call: &Call) -> model::CallDocument {
    model::CallDocument {
        xmlns: XSI_NS,
        call_id: call.id.to_string(),
        ext_tracking_id: call.ext_tracking_id.clone(),
        personality: call.personality.as_str(),
        state: call.state.as_str(),
        release_cause: call.release_cause.map(|cause| model::ReleaseCauseDocument {
            internal_release_cause: cause.as_str(),
        }),
        releasing_party: call.releasing_party.map(|p| p.as_str()),
        remote_party: model::PartyInformation {
            name: call.remote.name.clone(),
            address: call.remote.address.clone(),
            user_id: call.remote.user_id.clone(),
            call_type: Some(call.remote.call_type.as_str()),
        },
        start_time: millis(call.start_time),
        answer_time: call.answer_time.map(millis),
        held_time: call.held_time.map(millis),
        release_time: call.release_time.map(millis),
    }
}

impl XsiActions {
    pub(super) fn calls(
        &self,
        user: &User,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let calls = model::Calls {
            xmlns: XSI_NS,
            call: self
                .telephony
                .calls()
                .calls_of(&user.id)
                .into_iter()
                .map(|c| model::CallEntry {
                    uri: user_uri(&user.id, &format!("calls/{}", c.id)),
                    call_id: c.id.to_string(),
                })
                .collect(),
        };
        Ok(ok(codec::render(&calls, None, format)?, format))
    }

    pub(super) fn hook_status(
        &self,
        user: &User,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let status = model::HookStatus {
            xmlns: XSI_NS,
            hook_status: self.telephony.calls().hook_status(&user.id).as_str(),
        };
        Ok(ok(codec::render(&status, None, format)?, format))
    }

    /// `GET calls/{id}`: the `Call`; `DELETE calls/{id}`: releases it.
    pub(super) fn call(
        &self,
        method: &Method,
        query: Option<&str>,
        user: &User,
        call_id: &str,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        if method == Method::DELETE {
            let decline = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .any(|(k, v)| k == "decline" && v.eq_ignore_ascii_case("true"));
            self.telephony.release_call(user, call_id, decline)?;
            return Ok(empty(StatusCode::OK));
        }
        let call = self
            .telephony
            .calls()
            .call_of(&user.id, call_id)
            .ok_or_else(|| ApiError::UnknownEntry(format!("call {call_id}")))?;
        Ok(ok(
            codec::render(&call_document(&call), None, format)?,
            format,
        ))
    }

    /// `POST calls/new?address=…`: 201 with `CallStartInfo` and the call's `Location`.
    pub(super) async fn new_call(
        &self,
        query: Option<&str>,
        user: &User,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let address = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "address")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| ApiError::BadQuery {
                name: "address".into(),
                reason: "the address to call is required".into(),
            })?;
        let call = self.telephony.place_call(user, &address).await?;
        let info = model::CallStartInfo {
            xmlns: XSI_NS,
            call_id: call.id.to_string(),
            external_tracking_id: call.ext_tracking_id.clone(),
        };
        let mut response = ok(codec::render(&info, None, format)?, format);
        *response.status_mut() = StatusCode::CREATED;
        let location = user_uri(&user.id, &format!("calls/{}", call.id));
        if let Ok(location) = HeaderValue::from_str(&location) {
            response
                .headers_mut()
                .insert(hyper::header::LOCATION, location);
        }
        Ok(response)
    }
}
