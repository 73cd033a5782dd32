//! Call control on the user's `calls` resource:
//!
//! | path (after `v2.0/user/{u}/`) | methods | document |
//! |---|---|---|
//! | `calls` | GET | `Calls`: the user's calls in progress, with their URIs |
//! | `calls/HookStatus` | GET | `HookStatus` |
//! | `calls/new?address=…` | POST | 201 `CallStartInfo`, `Location` (dialled by a call bridge) |
//! | `calls/{callId}` | GET | `Call` |
//! | `calls/{callId}[?decline=true]` | DELETE | releases the call (declines a ringing incoming one) |
//! | `calls/{callId}/Talk` | PUT | answers a ringing call, takes a held one back |
//! | `calls/{callId}/Hold` | PUT | holds an active call |
//! | `calls/{callId}/BlindTransfer?address=…` | PUT | hands the call to the address (a ringing one is deflected) |
//! | `calls/{callId}/ConsultTransfer/{callId2}` | PUT | joins the far ends of two calls |
//! | `calls/{callId}/TransmitDTMF?playdtmf=…` | PUT | sends tones on an active call |
//!
//! The model (`telephony::calls`) decides what a call's state allows; a refusal is 400
//! with errorCode 120402. A bridge that refuses or does not confirm an action is 502
//! with errorCode 120403, and the call is unchanged.
//!
//! Each request is first a [`CallRequest`]; in a cluster `actions/forward.rs` decides
//! which node answers it (the call id names the node that holds the call).

use hyper::header::HeaderValue;
use hyper::{Method, Response, StatusCode};

use crate::http::ResponseBody;
use crate::telephony::calls::HookStatus;
use crate::telephony::User;

use super::{user_uri, XsiActions};
use crate::xsi::codec::{self, Format};
use crate::xsi::error::ApiError;
use crate::xsi::model::{self, XSI_NS};
use crate::xsi::response::{empty, ok};

/// An action on one call (`PUT calls/{id}/{verb}`; the verb matched without regard to case).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum CallVerb {
    /// Answer, or retrieve.
    Talk,
    /// Hold.
    Hold,
    /// Hand the call to `?address=`.
    BlindTransfer,
    /// Send `?playdtmf=` tones.
    TransmitDtmf,
    /// Join with the user's other call.
    ConsultTransfer(String),
}

impl CallVerb {
    /// The verb of `calls/{id}/{verb}[/{other}]`.
    pub(super) fn parse(verb: &str, other: Option<&str>) -> Option<Self> {
        let is = |name: &str| verb.eq_ignore_ascii_case(name);
        Some(match other {
            Some(other) if is("ConsultTransfer") => CallVerb::ConsultTransfer(other.to_owned()),
            Some(_) => return None,
            None if is("Talk") => CallVerb::Talk,
            None if is("Hold") => CallVerb::Hold,
            None if is("BlindTransfer") => CallVerb::BlindTransfer,
            None if is("TransmitDTMF") => CallVerb::TransmitDtmf,
            None => return None,
        })
    }
}

/// One request on the user's `calls` resource, as any node of a cluster can answer it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "resource")]
pub(super) enum CallRequest {
    /// `GET calls`.
    List,
    /// `GET calls/HookStatus`.
    HookStatus,
    /// The user's calls as they are (for a call subscription's initial state; only ever
    /// forwarded to another node).
    Snapshot,
    /// `POST calls/new?address=…`.
    New {
        /// The request's query.
        query: Option<String>,
    },
    /// `GET calls/{id}`.
    Get {
        /// The call.
        call_id: String,
    },
    /// `DELETE calls/{id}[?decline=true]`.
    Release {
        /// The call.
        call_id: String,
        /// The request's query.
        query: Option<String>,
    },
    /// `PUT calls/{id}/{verb}`.
    Verb {
        /// The call.
        call_id: String,
        /// What to do.
        verb: CallVerb,
        /// The request's query.
        query: Option<String>,
    },
}

impl CallRequest {
    /// The call it names, if one.
    pub(super) fn call_id(&self) -> Option<&str> {
        match self {
            CallRequest::Get { call_id }
            | CallRequest::Release { call_id, .. }
            | CallRequest::Verb { call_id, .. } => Some(call_id),
            CallRequest::List
            | CallRequest::HookStatus
            | CallRequest::Snapshot
            | CallRequest::New { .. } => None,
        }
    }
}

/// The query parameter `name`, required.
fn required(query: Option<&str>, name: &str, what: &str) -> Result<String, ApiError> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| ApiError::BadQuery {
            name: name.into(),
            reason: format!("{what} is required"),
        })
}

impl XsiActions {
    /// Answers `request` from this node's calls only.
    pub(super) async fn call_request_here(
        &self,
        user: &User,
        request: CallRequest,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        match request {
            CallRequest::List | CallRequest::Snapshot => {
                self.render_calls(user, self.call_ids_here(user), format)
            }
            CallRequest::HookStatus => self.render_hook_status(self.off_hook_here(user), format),
            CallRequest::New { query } => self.new_call(query.as_deref(), user, format).await,
            CallRequest::Get { call_id } => self.call(&Method::GET, None, user, &call_id, format),
            CallRequest::Release { call_id, query } => {
                self.call(&Method::DELETE, query.as_deref(), user, &call_id, format)
            }
            CallRequest::Verb {
                call_id,
                verb,
                query,
            } => self.call_verb(query.as_deref(), user, &call_id, verb).await,
        }
    }

    /// `PUT calls/{id}/{verb}`: 200 once the bridge confirmed.
    pub(super) async fn call_verb(
        &self,
        query: Option<&str>,
        user: &User,
        call_id: &str,
        verb: CallVerb,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let telephony = &self.telephony;
        match verb {
            CallVerb::Talk => telephony.talk(user, call_id).await?,
            CallVerb::Hold => telephony.hold(user, call_id).await?,
            CallVerb::BlindTransfer => {
                let address = required(query, "address", "the address to transfer to")?;
                telephony.blind_transfer(user, call_id, &address).await?
            }
            CallVerb::TransmitDtmf => {
                let tones = required(query, "playdtmf", "the tones to play")?;
                telephony.transmit_dtmf(user, call_id, &tones).await?
            }
            CallVerb::ConsultTransfer(other) => {
                telephony.consult_transfer(user, call_id, &other).await?
            }
        };
        Ok(empty(StatusCode::OK))
    }

    /// The ids of `user`'s calls on this node.
    pub(super) fn call_ids_here(&self, user: &User) -> Vec<String> {
        self.telephony
            .calls()
            .calls_of(&user.id)
            .into_iter()
            .map(|c| c.id.to_string())
            .collect()
    }

    /// Whether `user` is off hook on this node.
    pub(super) fn off_hook_here(&self, user: &User) -> bool {
        self.telephony.calls().hook_status(&user.id) == HookStatus::OffHook
    }

    /// `GET calls`: the `Calls` of `call_ids`.
    pub(super) fn render_calls(
        &self,
        user: &User,
        call_ids: Vec<String>,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let calls = model::Calls {
            xmlns: XSI_NS,
            call: call_ids
                .into_iter()
                .map(|call_id| model::CallEntry {
                    uri: user_uri(&user.id, &format!("calls/{call_id}")),
                    call_id,
                })
                .collect(),
        };
        Ok(ok(codec::render(&calls, None, format)?, format))
    }

    /// `GET calls/HookStatus`.
    pub(super) fn render_hook_status(
        &self,
        off_hook: bool,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let status = if off_hook {
            HookStatus::OffHook
        } else {
            HookStatus::OnHook
        };
        let status = model::HookStatus {
            xmlns: XSI_NS,
            hook_status: status.as_str(),
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
            codec::render(&model::CallDocument::of(&call), None, format)?,
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
        let address = required(query, "address", "the address to call")?;
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
