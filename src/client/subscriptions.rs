//! Subscriptions, which route a user's events to a channel set:
//!
//! ```text
//! subscribe  POST /com.broadsoft.xsi-events/v2.0/user/{user}   Subscription{eventPackageList,
//!            expires, channelSetId, applicationId}  ← 200 Subscription{subscriptionId, expires}
//! renew      PUT  /com.broadsoft.xsi-events/v2.0/subscription/{id}  Subscription{expires}
//!            ← 200 Subscription{expires}; 404 when it already ended (subscribe again)
//! ```
//!
//! A subscription lives in the XSP's store, not in a channel: it outlives channel rebuilds
//! and node restarts, and the set's events wait for a channel while none is open.

use super::XsiRequest;
use super::{decode, expect, path_segment, ChannelOptions, ClientError, Transport, XsiClient};
use crate::xsi::events::documents::{EventPackageList, Subscription};

const EVENTS: &str = "/com.broadsoft.xsi-events/v2.0";

/// A subscription the XSP granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// Its id.
    pub subscription_id: String,
    /// Its lifetime in seconds, as granted.
    pub expires_secs: u64,
}

fn body(subscription: &Subscription) -> Vec<u8> {
    crate::xsi::codec::to_xml(subscription, None)
        .unwrap_or_default()
        .into_bytes()
}

fn granted(answer: Subscription, id: Option<&str>) -> Result<Granted, ClientError> {
    let subscription_id = answer
        .subscription_id
        .or_else(|| id.map(str::to_owned))
        .ok_or_else(|| ClientError::Unexpected("a Subscription without its id".into()))?;
    Ok(Granted {
        subscription_id,
        expires_secs: answer.expires.unwrap_or_default(),
    })
}

impl<T: Transport> XsiClient<T> {
    /// Subscribes `user` to event `packages` (`"Do Not Disturb"`, `"Advanced Call"` …) for
    /// `options`' channel set and lifetime, as application `application_id`.
    pub async fn subscribe(
        &self,
        user: &str,
        packages: &[&str],
        application_id: &str,
        options: &ChannelOptions,
    ) -> Result<Granted, ClientError> {
        let asked = Subscription {
            xmlns: crate::xsi::model::XSI_NS,
            event_package_list: Some(EventPackageList {
                event_package: packages.iter().map(|p| (*p).to_owned()).collect(),
            }),
            expires: Some(options.expires_secs),
            channel_set_id: Some(options.channel_set_id.clone()),
            application_id: Some(application_id.to_owned()),
            ..Default::default()
        };
        let path = format!("{EVENTS}/user/{}", path_segment(user));
        let request = XsiRequest::xml("POST", path, &options.authorization, body(&asked));
        let answer = expect(self.request(request).await?, 200)?;
        granted(decode(&answer.body)?, None)
    }

    /// Renews subscription `id` for `options`' lifetime ([`ClientError::Refused`] with 404
    /// when it ended: subscribe again).
    pub async fn renew_subscription(
        &self,
        id: &str,
        options: &ChannelOptions,
    ) -> Result<Granted, ClientError> {
        let asked = Subscription {
            xmlns: crate::xsi::model::XSI_NS,
            expires: Some(options.expires_secs),
            ..Default::default()
        };
        let path = format!("{EVENTS}/subscription/{}", path_segment(id));
        let request = XsiRequest::xml("PUT", path, &options.authorization, body(&asked));
        let answer = expect(self.request(request).await?, 200)?;
        granted(decode(&answer.body)?, Some(id))
    }
}
