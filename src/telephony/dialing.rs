//! Where a call goes: the address a user dials (`POST calls/new?address=…`), read the way
//! BroadWorks reads it and resolved against the directory.
//!
//! | address | read as |
//! |---|---|
//! | `sip:bob@acme.test`, `bob@acme.test` | a local user with that id, else a SIP URI on the network |
//! | `tel:+15550102`, `+15550102`, `15550102` | a local user with that number, else a number on the network |
//! | `102` | an extension in the caller's group, then enterprise; else a number on the network |
//!
//! Whether a local user is Group or Enterprise to the caller (XSD `CallType`) follows from
//! their groups; everything else is Network.
//!
//! [`Telephony::place_call`] resolves the destination and asks the node's
//! [`CallCarrier`](super::calls::CallCarrier) (the Rayo client of the XMPP face) to dial
//! it: `sip:<user id>` for a local user, the `tel:`/`sip:` URI otherwise. What the code
//! does now: the caller's side of a placed call is kept (Alerting); the bridge's call
//! events, the callee's side, call actions and XSI call events are the next steps.

use super::calls::{Call, CallAction, CallError, CallType, Personality, RemoteParty};
use super::services::check_address;
use super::{CallLogKind, CallLogRecord};
use super::{Telephony, TelephonyError, User};

/// A resolved destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A user of this system.
    Local {
        /// The user.
        user: Box<User>,
        /// What the user is to the caller.
        call_type: CallType,
    },
    /// Anyone else: a `tel:` or `sip:` URI for a bridge's SIP side.
    Network {
        /// `tel:+15550100` or `sip:bob@example.com`.
        uri: String,
    },
}

/// The address without its scheme: `(sip address, number)`, one of them set.
fn parse(address: &str) -> Result<(Option<String>, Option<String>), TelephonyError> {
    let address = address.trim();
    if let Some(number) = address.strip_prefix("tel:") {
        check_address("address", number)?;
        return Ok((None, Some(number.to_owned())));
    }
    check_address("address", address)?;
    if address.contains('@') {
        let sip = address.strip_prefix("sip:").unwrap_or(address);
        return Ok((Some(sip.to_ascii_lowercase()), None));
    }
    Ok((None, Some(address.to_owned())))
}

fn call_type(caller: &User, callee: &User) -> CallType {
    if caller.enterprise_id != callee.enterprise_id {
        CallType::Network
    } else if caller.group_id == callee.group_id {
        CallType::Group
    } else {
        CallType::Enterprise
    }
}

/// Digits only (a leading `+` dropped), for comparing numbers however they are written.
fn digits(number: &str) -> &str {
    number.strip_prefix('+').unwrap_or(number)
}

impl Telephony {
    /// Resolves what `caller` dialled (see the module docs); an address that is neither a
    /// number nor a SIP address is [`TelephonyError::Invalid`] (`address`).
    pub async fn resolve(
        &self,
        caller: &User,
        address: &str,
    ) -> Result<Destination, TelephonyError> {
        let (sip, number) = parse(address)?;
        let users = self.store.users().await?;
        let local = |user: &User| Destination::Local {
            call_type: call_type(caller, user),
            user: Box::new(user.clone()),
        };
        if let Some(sip) = sip {
            return Ok(
                match users.iter().find(|u| u.id.eq_ignore_ascii_case(&sip)) {
                    Some(user) => local(user),
                    None => Destination::Network {
                        uri: format!("sip:{sip}"),
                    },
                },
            );
        }
        let number = number.unwrap_or_default();
        let by_number = users.iter().find(|u| {
            u.number
                .as_deref()
                .is_some_and(|n| digits(n) == digits(&number))
        });
        let by_extension = || {
            let in_group = users.iter().find(|u| {
                u.extension.as_deref() == Some(number.as_str())
                    && call_type(caller, u) == CallType::Group
            });
            in_group.or_else(|| {
                users.iter().find(|u| {
                    u.extension.as_deref() == Some(number.as_str())
                        && call_type(caller, u) == CallType::Enterprise
                })
            })
        };
        Ok(match by_number.or_else(by_extension) {
            Some(user) => local(user),
            None => Destination::Network {
                uri: format!("tel:{number}"),
            },
        })
    }

    /// Places a call for `caller` to `address`: the destination is resolved (an invalid
    /// address fails first), a call bridge dials it, and the caller's call (Originator,
    /// Alerting, its `extTrackingId` the bridge's reference) is kept in the registry.
    /// [`TelephonyError::NoCallBridge`] when no bridge is connected or every one refused.
    pub async fn place_call(&self, caller: &User, address: &str) -> Result<Call, TelephonyError> {
        let destination = self.resolve(caller, address).await?;
        let limit = self.quotas.max_calls_per_user.get();
        if self.calls.calls_of(&caller.id).len() >= limit {
            crate::telemetry::quota_refusal("max_calls_per_user");
            return Err(TelephonyError::Quota {
                what: "calls in progress",
                limit,
            });
        }
        let (to, remote) = match &destination {
            Destination::Local { user, call_type } => (
                format!("sip:{}", user.id),
                RemoteParty {
                    name: Some(
                        format!("{} {}", user.first_name, user.last_name)
                            .trim()
                            .to_owned(),
                    )
                    .filter(|n| !n.is_empty()),
                    address: user.number.as_ref().map(|n| format!("tel:{n}")),
                    user_id: Some(user.id.clone()),
                    call_type: *call_type,
                },
            ),
            Destination::Network { uri } => (
                uri.clone(),
                RemoteParty {
                    name: None,
                    address: Some(uri.clone()),
                    user_id: None,
                    call_type: CallType::Network,
                },
            ),
        };
        let Some(carrier) = self.carrier.get() else {
            tracing::warn!(user = %caller.id, %to, "call refused: nothing carries calls on this node");
            return Err(TelephonyError::NoCallBridge);
        };
        let dialed = match carrier.dial(&format!("sip:{}", caller.id), &to).await {
            Ok(dialed) => dialed,
            Err(e) => {
                tracing::warn!(user = %caller.id, %to, error = %e, "call refused: no call bridge placed it");
                return Err(TelephonyError::NoCallBridge);
            }
        };
        let call = Call::new(
            self.calls.new_id(),
            dialed.call_ref,
            caller.id.clone(),
            Personality::Originator,
            remote,
            time::OffsetDateTime::now_utc(),
        );
        tracing::info!(user = %caller.id, call = %call.id, bridge = %dialed.bridge, %to, "call placed");
        self.calls.track(call.clone());
        Ok(call)
    }
}

impl Telephony {
    /// Releases `user`'s call `call_id` (declines it, for a ringing incoming call, with
    /// `decline`): the call ends at once (released by the user), is written to the call
    /// log, and its bridge is told to hang up (in the background; a bridge that does not
    /// confirm is logged).
    pub fn release_call(
        &self,
        user: &User,
        call_id: &str,
        decline: bool,
    ) -> Result<Call, TelephonyError> {
        let call = self
            .calls
            .call_of(&user.id, call_id)
            .ok_or_else(|| TelephonyError::UnknownCall(call_id.to_owned()))?;
        let released = self
            .call_event(&call.ext_tracking_id, CallAction::Release { decline })?
            .ok_or_else(|| TelephonyError::UnknownCall(call_id.to_owned()))?;
        if let Some(carrier) = self.carrier.get().cloned() {
            // The call is over for the user now; the bridge's confirmation is not waited for.
            let (call_ref, id) = (released.ext_tracking_id.clone(), released.id.clone());
            tokio::spawn(async move {
                if let Err(e) = carrier.hangup(&call_ref).await {
                    tracing::warn!(call = %id, error = %e, "the bridge did not confirm the hangup");
                }
            });
        }
        Ok(released)
    }

    /// What the bridge reports about the call it knows as `call_ref` (its Rayo events):
    /// applied to that call. A call that ends leaves the registry and is written to its
    /// user's call log (placed; received or missed for an incoming call). `Ok(None)` when
    /// no call has that reference.
    pub fn call_event(
        &self,
        call_ref: &str,
        action: CallAction,
    ) -> Result<Option<Call>, CallError> {
        let Some(mut call) = self.calls.find_by_ref(call_ref) else {
            return Ok(None);
        };
        call.apply(action, time::OffsetDateTime::now_utc())?;
        self.calls.track(call.clone());
        if call.is_released() {
            let record = call_log_record(&call);
            let telephony = self.clone();
            tokio::spawn(async move {
                if let Err(e) = telephony.record_call(record).await {
                    tracing::warn!(error = %e, "cannot write a call log record");
                }
            });
        }
        Ok(Some(call))
    }
}

/// The call log record of a finished call.
fn call_log_record(call: &Call) -> CallLogRecord {
    let kind = match (call.personality, call.was_answered()) {
        (Personality::Originator | Personality::ClickToDial, _) => CallLogKind::Placed,
        (Personality::Terminator, true) => CallLogKind::Received,
        (Personality::Terminator, false) => CallLogKind::Missed,
    };
    let number = call
        .remote
        .address
        .as_deref()
        .map(|a| a.strip_prefix("tel:").unwrap_or(a).to_owned())
        .or_else(|| call.remote.user_id.clone())
        .unwrap_or_default();
    CallLogRecord {
        id: 0,
        user_id: call.user_id.clone(),
        kind,
        name: call.remote.name.clone(),
        number,
        country_code: None,
        time: call
            .start_time
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::QuotasConfig;

    use crate::store::SqliteStore;
    use crate::telephony::EventBus;

    fn user(id: &str, group: &str, enterprise: &str, number: &str, ext: &str) -> User {
        User {
            number: Some(number.into()),
            extension: Some(ext.into()),
            ..User::test(id, enterprise, group)
        }
    }

    #[tokio::test]
    async fn addresses_resolve_to_local_users_or_the_network() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db.sqlite3")).unwrap();
        let telephony = Telephony::new(Arc::new(store), EventBus::new(4), QuotasConfig::default());
        let alice = user("alice@acme.test", "sales", "acme", "+15550101", "101");
        for u in [
            alice.clone(),
            user("bob@acme.test", "sales", "acme", "+15550102", "102"),
            user("carol@acme.test", "support", "acme", "+15550103", "103"),
            user("dave@other.test", "g", "other", "+15550104", "102"),
        ] {
            telephony.add_user(&u).await.unwrap();
        }
        let resolve = |address: &'static str| {
            let (telephony, alice) = (telephony.clone(), alice.clone());
            async move { telephony.resolve(&alice, address).await }
        };
        let local = |d: Destination| match d {
            Destination::Local { user, call_type } => (user.id, call_type),
            other => panic!("not local: {other:?}"),
        };
        for address in [
            "sip:bob@acme.test",
            "Bob@Acme.Test",
            "tel:+15550102",
            "15550102",
            "102",
        ] {
            assert_eq!(
                local(resolve(address).await.unwrap()),
                ("bob@acme.test".to_owned(), CallType::Group),
                "{address}"
            );
        }
        assert_eq!(
            local(resolve("103").await.unwrap()),
            ("carol@acme.test".to_owned(), CallType::Enterprise)
        );
        assert_eq!(
            local(resolve("dave@other.test").await.unwrap()),
            ("dave@other.test".to_owned(), CallType::Network)
        );
        assert_eq!(
            resolve("+4930123456").await.unwrap(),
            Destination::Network {
                uri: "tel:+4930123456".into()
            }
        );
        assert_eq!(
            resolve("sip:someone@example.com").await.unwrap(),
            Destination::Network {
                uri: "sip:someone@example.com".into()
            }
        );
        for bad in ["", "bob", "tel:", "sip:@x", "55 50"] {
            assert!(
                matches!(
                    resolve(bad).await,
                    Err(TelephonyError::Invalid {
                        field: "address",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            telephony.place_call(&alice, "102").await,
            Err(TelephonyError::NoCallBridge)
        ));
    }
}
