//! The XSI-Actions a softphone needs beyond the channel, typed:
//!
//! ```text
//! GET    …/user/{user}/services/DoNotDisturb          ← DoNotDisturb{active, ringSplash}
//! PUT    …/user/{user}/services/DoNotDisturb          DoNotDisturb{active}   ← 200
//! POST   …/user/{user}/calls/new?address={address}    ← 201 CallStartInfo{callId}
//! PUT    …/user/{user}/calls/{callId}/Talk            ← 200 (answers a ringing call)
//! DELETE …/user/{user}/calls/{callId}[?decline=true]  ← 200 (hangs up, or declines)
//! ```
//!
//! Every request goes through the failover rules; an XSP's refusal comes back as
//! [`ClientError::Refused`] with the summary of its `ErrorInfo`.

use serde::{Deserialize, Serialize};

use super::{decode, expect, path_segment, ClientError, Transport, XsiClient, XsiRequest};

const ACTIONS: &str = "/com.broadsoft.xsi-actions/v2.0/user";

fn xsi_ns() -> &'static str {
    crate::xsi::model::XSI_NS
}

/// `<DoNotDisturb>`, as read and as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "DoNotDisturb")]
struct DoNotDisturb {
    #[serde(rename = "@xmlns", default = "xsi_ns", skip_deserializing)]
    xmlns: &'static str,
    active: bool,
}

/// `<CallStartInfo>`, the answer to a new call.
#[derive(Debug, Deserialize)]
struct CallStartInfo {
    #[serde(rename = "callId")]
    call_id: String,
}

/// `…/user/{user}/{rest}`.
fn user_path(user: &str, rest: &str) -> String {
    format!("{ACTIONS}/{}/{rest}", path_segment(user))
}

impl<T: Transport> XsiClient<T> {
    /// Whether `user`'s Do Not Disturb is on.
    pub async fn do_not_disturb(
        &self,
        user: &str,
        authorization: &str,
    ) -> Result<bool, ClientError> {
        let path = user_path(user, "services/DoNotDisturb");
        let request = XsiRequest::xml("GET", path, authorization, Vec::new());
        let answer = expect(self.request(request).await?, 200)?;
        Ok(decode::<DoNotDisturb>(&answer.body)?.active)
    }

    /// Turns `user`'s Do Not Disturb on or off.
    pub async fn set_do_not_disturb(
        &self,
        user: &str,
        authorization: &str,
        active: bool,
    ) -> Result<(), ClientError> {
        let document = DoNotDisturb {
            xmlns: xsi_ns(),
            active,
        };
        let body = crate::xsi::codec::to_xml(&document, None)
            .map_err(|e| ClientError::Unexpected(e.to_string()))?
            .into_bytes();
        let path = user_path(user, "services/DoNotDisturb");
        expect(
            self.request(XsiRequest::xml("PUT", path, authorization, body))
                .await?,
            200,
        )?;
        Ok(())
    }

    /// Calls `address` (an extension, a number, a `tel:` or `sip:` URI) from `user`; the
    /// new call's id.
    pub async fn dial(
        &self,
        user: &str,
        authorization: &str,
        address: &str,
    ) -> Result<String, ClientError> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("address", address)
            .finish();
        let path = user_path(user, &format!("calls/new?{query}"));
        let request = XsiRequest::xml("POST", path, authorization, Vec::new());
        let answer = expect(self.request(request).await?, 201)?;
        Ok(decode::<CallStartInfo>(&answer.body)?.call_id)
    }

    /// Answers `user`'s ringing call `call_id` (or takes a held one back).
    pub async fn answer(
        &self,
        user: &str,
        authorization: &str,
        call_id: &str,
    ) -> Result<(), ClientError> {
        let path = user_path(user, &format!("calls/{}/Talk", path_segment(call_id)));
        let request = XsiRequest::xml("PUT", path, authorization, Vec::new());
        expect(self.request(request).await?, 200)?;
        Ok(())
    }

    /// Hangs up `user`'s call `call_id`; with `decline`, refuses a ringing one.
    pub async fn release(
        &self,
        user: &str,
        authorization: &str,
        call_id: &str,
        decline: bool,
    ) -> Result<(), ClientError> {
        let mut rest = format!("calls/{}", path_segment(call_id));
        if decline {
            rest.push_str("?decline=true");
        }
        let request = XsiRequest::xml("DELETE", user_path(user, &rest), authorization, Vec::new());
        expect(self.request(request).await?, 200)?;
        Ok(())
    }
}
