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
//! An address that comes with no caller (the called party of an offer from a bridge's SIP
//! side) is read the same way, except that an extension must be unique in the directory.
//!
//! [`Telephony::place_call`] resolves the destination and asks the node's
//! [`CallCarrier`](super::calls::CallCarrier) (the Rayo client of the XMPP face) to dial
//! it: `sip:<user id>` with the [`LOCAL_USER_HEADER`] for a local user (the bridge offers
//! it back for that user, see `telephony::call_control`), the `tel:`/`sip:` URI otherwise,
//! and the call's `extTrackingId` in the [`TRACKING_HEADER`]. The caller's call
//! (Originator, Alerting) is kept and announced (CallOriginated).

use super::calls::{
    Call, CallEventKind, CallType, DialRequest, Personality, RemoteParty, LOCAL_USER_HEADER,
    TRACKING_HEADER,
};
use super::services::check_address;
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

/// The party `user` is to someone whose relation to the user is `call_type`.
pub(super) fn party(user: &User, call_type: CallType) -> RemoteParty {
    RemoteParty {
        name: Some(
            format!("{} {}", user.first_name, user.last_name)
                .trim()
                .to_owned(),
        )
        .filter(|n| !n.is_empty()),
        address: user.number.as_ref().map(|n| format!("tel:{n}")),
        user_id: Some(user.id.clone()),
        call_type,
    }
}

impl Destination {
    /// What the destination is to the caller.
    pub fn party(&self) -> RemoteParty {
        match self {
            Destination::Local { user, call_type } => party(user, *call_type),
            Destination::Network { uri } => RemoteParty {
                name: None,
                address: Some(uri.clone()),
                user_id: None,
                call_type: CallType::Network,
            },
        }
    }

    /// How a bridge is asked to reach it, for a call with `extTrackingId` `tracking_id`
    /// from `from`.
    pub fn dial_request(&self, from: String, tracking_id: &str) -> DialRequest {
        let mut headers = vec![(TRACKING_HEADER.to_owned(), tracking_id.to_owned())];
        let to = match self {
            Destination::Local { user, .. } => {
                headers.push((LOCAL_USER_HEADER.to_owned(), user.id.clone()));
                format!("sip:{}", user.id)
            }
            Destination::Network { uri } => uri.clone(),
        };
        DialRequest { from, to, headers }
    }
}

impl Telephony {
    /// Resolves what `caller` dialled (see the module docs); an address that is neither a
    /// number nor a SIP address is [`TelephonyError::Invalid`] (`address`).
    pub async fn resolve(
        &self,
        caller: &User,
        address: &str,
    ) -> Result<Destination, TelephonyError> {
        self.resolve_for(Some(caller), address).await
    }

    /// [`Telephony::resolve`] with an optional caller: without one, every local user is
    /// Network and an extension must be unique.
    pub(super) async fn resolve_for(
        &self,
        caller: Option<&User>,
        address: &str,
    ) -> Result<Destination, TelephonyError> {
        let (sip, number) = parse(address)?;
        let local = |user: &User| Destination::Local {
            call_type: caller.map_or(CallType::Network, |c| call_type(c, user)),
            user: Box::new(user.clone()),
        };
        if let Some(sip) = sip {
            return Ok(match self.user(&sip).await? {
                Some(user) => local(&user),
                None => Destination::Network {
                    uri: format!("sip:{sip}"),
                },
            });
        }
        let number = number.unwrap_or_default();
        let by_number = self.store.users_by_number(digits(&number)).await?;
        if let Some(user) = by_number.first() {
            return Ok(local(user));
        }
        let extensions = self.store.users_by_extension(&number).await?;
        let with_extension = |kind: Option<CallType>| {
            let mut found = extensions
                .iter()
                .filter(|u| caller.map(|c| call_type(c, u)) == kind);
            let first = found.next();
            // Without a caller an extension only counts when one user has it.
            match (kind, found.next()) {
                (None, Some(_)) => None,
                _ => first,
            }
        };
        let by_extension = match caller {
            Some(_) => with_extension(Some(CallType::Group))
                .or_else(|| with_extension(Some(CallType::Enterprise))),
            None => with_extension(None),
        };
        Ok(match by_extension {
            Some(user) => local(user),
            None => Destination::Network {
                uri: format!("tel:{number}"),
            },
        })
    }

    /// Places a call for `caller` to `address`: the destination is resolved (an invalid
    /// address fails first), a call bridge dials it, and the caller's call (Originator,
    /// Alerting) is kept and announced. [`TelephonyError::NoCallBridge`] when no bridge is
    /// connected or every one refused.
    pub async fn place_call(&self, caller: &User, address: &str) -> Result<Call, TelephonyError> {
        let destination = self.resolve(caller, address).await?;
        let limit = self.quotas().max_calls_per_user.get();
        if self.calls.count_of(&caller.id) >= limit {
            crate::telemetry::quota_refusal("max_calls_per_user");
            return Err(TelephonyError::Quota {
                what: "calls in progress",
                limit,
            });
        }
        let tracking_id = self.calls.new_tracking_id();
        let request = destination.dial_request(format!("sip:{}", caller.id), &tracking_id);
        let to = request.to.clone();
        let Ok(carrier) = self.carrier() else {
            tracing::warn!(user = %caller.id, %to, "call refused: nothing carries calls on this node");
            return Err(TelephonyError::NoCallBridge);
        };
        let dialed = match carrier.dial(request).await {
            Ok(dialed) => dialed,
            Err(e) => {
                tracing::warn!(user = %caller.id, %to, error = %e, "call refused: no call bridge placed it");
                return Err(TelephonyError::NoCallBridge);
            }
        };
        let call = Call::new(
            self.calls.new_id(),
            tracking_id,
            dialed.call_ref,
            caller.scope(),
            Personality::Originator,
            destination.party(),
            time::OffsetDateTime::now_utc(),
        );
        tracing::info!(user = %caller.id, call = %call.id, bridge = %dialed.bridge, %to, "call placed");
        self.keep(call.clone(), CallEventKind::Originated);
        Ok(call)
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
