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

use hyper::header::HeaderValue;
use hyper::{Method, Response, StatusCode};

use crate::http::ResponseBody;
use crate::telephony::User;

use super::{user_uri, XsiActions};
use crate::xsi::codec::{self, Format};
use crate::xsi::error::ApiError;
use crate::xsi::model::{self, XSI_NS};
use crate::xsi::response::{empty, ok};

/// An action on one call (`PUT calls/{id}/{verb}`; the verb matched without regard to case).
#[derive(Debug, Clone, PartialEq, Eq)]
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
