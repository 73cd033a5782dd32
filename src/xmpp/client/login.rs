//! SASL on client streams: SCRAM-SHA-256/-1 (with -PLUS channel binding) and PLAIN, the
//! checks every mechanism makes first (the account is ours, the authorization identity is
//! the account, a reservation in the login limiter), decoy work for unknown accounts, the
//! failure delay, and `auth_via_component` for accounts the store does not know.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use minidom::Element;

use super::transport::Transport;
use super::{ClientService, COMPONENT_AUTH, SASL};
use crate::credentials::Reservation;
use crate::xmpp::error::XmppError;
use crate::xmpp::roster::bare_of;
use crate::xmpp::router::RequestError;
use crate::xmpp::sasl::{self, Failure, Mechanism, ScramExchange};
use crate::xmpp::{ns, stanza};

/// Proof that SASL succeeded on this stream, for this account. Only
/// [`ClientService::authenticate`] makes one, and binding or resuming a session needs one:
/// a stream that has not authenticated cannot reach the router.
#[derive(Debug)]
pub(super) struct Authenticated {
    account: String,
}

impl Authenticated {
    /// The account: `user@domain`, lower-case.
    pub(super) fn account(&self) -> &str {
        &self.account
    }
}

impl ClientService {
    /// The store id of a SASL username (`alice` or `alice@domain`), if it names one here.
    pub(super) fn account_id(&self, username: &str) -> Option<String> {
        let username = username.to_lowercase();
        let node = match username.rsplit_once('@') {
            Some((node, domain)) if domain == self.domain => node.to_owned(),
            Some(_) => return None,
            None => username,
        };
        jid::BareJid::new(&format!("{node}@{}", self.domain))
            .ok()
            .filter(|jid| jid.node().is_some())
            .map(|jid| jid.as_str().to_lowercase())
    }

    /// The checks every mechanism makes before any credential: the name is an account here,
    /// the authorization identity (if any) is that account, neither the account nor the
    /// address is over its failure budget. Returns the account and its store record
    /// (`None` for an account the store does not know).
    #[allow(clippy::type_complexity)]
    pub(super) async fn admit(
        &self,
        username: &str,
        authzid: Option<&str>,
        peer: IpAddr,
    ) -> Result<(String, Option<crate::telephony::User>, Reservation<'_>), (Failure, Option<String>)>
    {
        let Some(account) = self.account_id(username) else {
            // No account can have this name: counted against the address only.
            self.throttle.fail_unnamed(peer);
            return Err((Failure::NotAuthorized, None));
        };
        if authzid.is_some_and(|authzid| bare_of(authzid).as_deref() != Some(account.as_str())) {
            return Err((Failure::InvalidAuthzid, Some(account)));
        }
        let Ok(attempt) = self.throttle.reserve(Some(&account), peer) else {
            crate::telemetry::throttled_attempt("sasl");
            return Err((Failure::TemporaryAuthFailure, Some(account)));
        };
        match self.telephony.user(&account).await {
            Ok(user) => Ok((account, user, attempt)),
            Err(e) => {
                tracing::error!(error = %e, "cannot read a user for a login");
                Err((Failure::TemporaryAuthFailure, Some(account)))
            }
        }
    }

    /// One SASL exchange: `Some` on success; `None` after a failure was sent.
    pub(super) async fn authenticate<T: Transport>(
        &self,
        transport: &mut T,
        auth: &Element,
        peer: IpAddr,
    ) -> Result<Option<Authenticated>, XmppError> {
        let started = std::time::Instant::now();
        let outcome = self.sasl_exchange(transport, auth, peer).await?;
        let mechanism = auth
            .attr("mechanism")
            .and_then(Mechanism::parse)
            .map_or("unknown", Mechanism::name);
        match outcome {
            Ok((account, additional)) => {
                crate::telemetry::client_login("ok", mechanism, started.elapsed());
                let mut success = Element::builder("success", SASL);
                if let Some(data) = additional {
                    success = success.append(sasl::encode(data.as_bytes()));
                }
                transport.write(&success.build())?;
                transport.flush().await?;
                tracing::info!(account = %account, transport = T::NAME, mechanism, "client authenticated");
                Ok(Some(Authenticated { account }))
            }
            Err((failure, account)) => {
                let result = if failure == Failure::TemporaryAuthFailure {
                    "throttled"
                } else {
                    "failed"
                };
                crate::telemetry::client_login(result, mechanism, started.elapsed());
                if failure == Failure::NotAuthorized {
                    tokio::time::sleep(Duration::from_millis(self.settings.auth_failure_delay_ms))
                        .await;
                }
                tracing::info!(account = ?account, %peer, condition = failure.as_str(), "client login failed");
                transport.write(&sasl_failure(failure))?;
                transport.flush().await?;
                Ok(None)
            }
        }
    }

    /// The exchange proper: the account and the success data, or the failure (with the
    /// account name when one was given).
    #[allow(clippy::type_complexity)]
    pub(super) async fn sasl_exchange<T: Transport>(
        &self,
        transport: &mut T,
        auth: &Element,
        peer: IpAddr,
    ) -> Result<Result<(String, Option<String>), (Failure, Option<String>)>, XmppError> {
        let offered = self.mechanisms(transport);
        let mechanism = auth.attr("mechanism").and_then(Mechanism::parse);
        let Some(mechanism) = mechanism.filter(|m| offered.contains(m)) else {
            let failure = if auth.attr("mechanism") == Some("PLAIN") {
                Failure::EncryptionRequired
            } else {
                Failure::InvalidMechanism
            };
            return Ok(Err((failure, None)));
        };
        let initial = match sasl::decode(&auth.text()) {
            Ok(initial) => initial,
            Err(failure) => return Ok(Err((failure, None))),
        };
        let Some(hash) = mechanism.scram_hash() else {
            return Ok(self.plain(&initial, peer).await);
        };
        let binding_offered = offered.iter().any(|m| m.is_plus());
        let first = match sasl::parse_client_first(&initial, mechanism, binding_offered) {
            Ok(first) => first,
            Err(failure) => return Ok(Err((failure, None))),
        };
        let (account, user, attempt) = match self
            .admit(&first.username, first.authzid.as_deref(), peer)
            .await
        {
            Ok(admitted) => admitted,
            Err(failure) => return Ok(Err(failure)),
        };
        let (exchange, server_first) = ScramExchange::start(
            hash,
            first,
            transport.channel_binding(),
            user.as_ref().map(|u| u.verifiers.for_hash(hash)),
            &self.decoy_key,
            self.scram_iterations,
        );
        transport.write(
            &Element::builder("challenge", SASL)
                .append(sasl::encode(server_first.as_bytes()))
                .build(),
        )?;
        transport.flush().await?;
        let Some(response) = transport.read().await? else {
            return Err(XmppError::Closed);
        };
        if response.is("abort", SASL) {
            return Ok(Err((Failure::Aborted, Some(account))));
        }
        if !response.is("response", SASL) {
            return Ok(Err((Failure::MalformedRequest, Some(account))));
        }
        let outcome = sasl::decode(&response.text()).and_then(|m| exchange.finish(&m));
        Ok(match outcome {
            Ok(server_final) => Ok((account, Some(server_final))),
            Err(failure) => {
                if failure == Failure::NotAuthorized {
                    attempt.failed();
                }
                Err((failure, Some(account)))
            }
        })
    }

    /// PLAIN: the store's verifier, or `auth_via_component` for accounts the store does not
    /// know.
    pub(super) async fn plain(
        &self,
        message: &[u8],
        peer: IpAddr,
    ) -> Result<(String, Option<String>), (Failure, Option<String>)> {
        let credentials = sasl::parse_plain(message).map_err(|f| (f, None))?;
        let (account, user, attempt) = self
            .admit(&credentials.username, credentials.authzid.as_deref(), peer)
            .await?;
        let (verifiers, known) = match (user, &self.settings.auth_via_component) {
            (Some(user), _) => (Arc::new(user.verifiers), true),
            (None, Some(component)) => {
                let answer = self
                    .ask_component(component, &account, &credentials.password, peer)
                    .await;
                if answer == Err(Failure::NotAuthorized) {
                    attempt.failed();
                }
                return answer
                    .map(|()| (account.clone(), None))
                    .map_err(|f| (f, Some(account)));
            }
            // The same PBKDF2 work as a real check, on a verifier nothing matches.
            (None, None) => (Arc::clone(&self.decoy_verifiers), false),
        };
        let password = credentials.password.clone();
        let matches = tokio::task::spawn_blocking(move || verifiers.verify_plain(&password))
            .await
            .unwrap_or(false);
        if matches && known {
            Ok((account, None))
        } else {
            attempt.failed();
            Err((Failure::NotAuthorized, Some(account)))
        }
    }

    /// Asks `component` whether `password` is good for `account`.
    pub(super) async fn ask_component(
        &self,
        component: &str,
        account: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<(), Failure> {
        let id = format!("bh-auth-{}", hex::encode(rand::random::<[u8; 12]>()));
        let username = account.split('@').next().unwrap_or_default();
        let request = stanza::element(
            "iq",
            ns::CLIENT,
            &[
                ("type", "get"),
                ("id", &id),
                ("from", &self.domain),
                ("to", component),
            ],
        )
        .append(
            Element::builder("query", COMPONENT_AUTH)
                .append(
                    Element::builder("username", COMPONENT_AUTH)
                        .append(username)
                        .build(),
                )
                .append(
                    Element::builder("password", COMPONENT_AUTH)
                        .append(password)
                        .build(),
                )
                .append(
                    Element::builder("address", COMPONENT_AUTH)
                        .append(peer.to_string())
                        .build(),
                )
                .build(),
        )
        .build();
        let timeout = Duration::from_secs(self.settings.auth_via_component_timeout_secs.get());
        match self.router.request(request, component, timeout).await {
            Ok(answer) if answer.attr("type") == Some("result") => Ok(()),
            Ok(_) => Err(Failure::NotAuthorized),
            Err(RequestError::Timeout) | Err(RequestError::Undelivered(_)) => {
                tracing::warn!(component, "the authenticating component did not answer");
                Err(Failure::TemporaryAuthFailure)
            }
        }
    }
}

fn sasl_failure(condition: Failure) -> Element {
    stanza::element("failure", SASL, &[])
        .append(Element::bare(condition.as_str(), SASL))
        .build()
}
