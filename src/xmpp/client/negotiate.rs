//! The stream before a session, under the login deadline, in two phases whose types keep
//! them apart:
//!
//! ```text
//! authenticate_stream: header, features, STARTTLS | SASL (login) ──▶ Authenticated
//! bind_stream(&Authenticated): header, features, bind | <resume/> (park) ──▶ Bound
//! ```
//!
//! Only `login` makes an [`Authenticated`], and only a `Bound` (from bind or resume) runs
//! the session loop that routes stanzas. A stream that fails here is closed with its
//! stream error, after the server's header when it had not been sent; a refused bind is
//! answered at once.

use crate::xmpp::error::StanzaCondition;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use minidom::Element;

use super::login::Authenticated;
use super::transport::Transport;
use super::{Bound, ClientService, Negotiated, Phase, BIND, SASL, SESSION, TLS};
use crate::xmpp::error::{StreamCondition, XmppError};
use crate::xmpp::roster::SessionPresence;
use crate::xmpp::router::ConnectionInfo;
use crate::xmpp::sasl::{self, Mechanism};
use crate::xmpp::sm::SM;
use crate::xmpp::{ns, stanza};

impl ClientService {
    /// [`Self::negotiate`] until the login deadline, shutdown or eviction.
    pub(super) async fn negotiate_until<T: Transport>(
        &self,
        transport: &mut T,
        phase: &Phase<'_>,
    ) -> Result<Negotiated, XmppError> {
        phase
            .run(phase.deadline, self.negotiate(transport, phase.peer))
            .await
            .unwrap_or_else(|end| {
                Err(XmppError::unfinished(
                    end,
                    self.settings.login_timeout_secs.get(),
                ))
            })
    }

    /// Runs the session of a transport that negotiated (or closes it with the reason).
    pub(super) async fn finish_negotiation<T: Transport>(
        self: &Arc<Self>,
        transport: &mut T,
        negotiated: Result<Negotiated, XmppError>,
        phase: &Phase<'_>,
    ) {
        let error = match negotiated {
            Ok(Negotiated::Bound(mut bound)) => {
                if phase.admission.is_none_or(|a| a.authenticated().is_ok()) {
                    return self.session(transport, bound, phase.shutdown.clone()).await;
                }
                Box::pin(self.end_session(&mut bound)).await;
                XmppError::stream(
                    StreamCondition::ResourceConstraint,
                    "the c2s listener is at max_client_connections",
                )
            }
            Ok(Negotiated::StartTls) => {
                XmppError::stream(StreamCondition::PolicyViolation, "STARTTLS twice")
            }
            Err(error) => error,
        };
        tracing::info!(%error, transport = T::NAME, "client stream ended before a resource was bound");
        transport.close(error.condition()).await;
    }

    pub(super) fn features<T: Transport>(&self, transport: &T, account: Option<&str>) -> Element {
        let mut features = Element::builder("features", ns::STREAM);
        let starttls_possible = !transport.is_secure() && self.tls.is_some();
        if starttls_possible {
            let mut starttls = Element::builder("starttls", TLS);
            if self.settings.require_tls {
                starttls = starttls.append(Element::bare("required", TLS));
            }
            features = features.append(starttls.build());
        }
        if account.is_none() {
            if transport.is_secure() || !self.settings.require_tls || self.tls.is_none() {
                let mut mechanisms = Element::builder("mechanisms", SASL);
                let offered = self.mechanisms(transport);
                for mechanism in &offered {
                    mechanisms = mechanisms.append(
                        Element::builder("mechanism", SASL)
                            .append(mechanism.name())
                            .build(),
                    );
                }
                features = features.append(mechanisms.build());
                if offered.iter().any(|m| m.is_plus()) {
                    // XEP-0440: which binding the -PLUS variants use.
                    features = features.append(
                        Element::builder("sasl-channel-binding", sasl::SASL_CB)
                            .append(
                                stanza::attr(
                                    Element::builder("channel-binding", sasl::SASL_CB),
                                    "type",
                                    sasl::TLS_EXPORTER,
                                )
                                .build(),
                            )
                            .build(),
                    );
                }
            }
        } else {
            features = features
                .append(Element::bare("bind", BIND))
                .append(Element::bare("sm", SM))
                .append(
                    Element::builder("session", SESSION)
                        .append(Element::bare("optional", SESSION))
                        .build(),
                );
        }
        features.build()
    }

    /// The mechanisms offered on `transport`: -PLUS only with channel binding, PLAIN only
    /// over TLS, and only PLAIN when a component checks credentials.
    pub(super) fn mechanisms<T: Transport>(&self, transport: &T) -> Vec<Mechanism> {
        let secure = transport.is_secure();
        let binding = transport.channel_binding().is_some();
        let via_component = self.settings.auth_via_component.is_some();
        Mechanism::ALL
            .into_iter()
            .filter(|m| match m {
                Mechanism::Plain => secure,
                _ if via_component => false,
                m if m.is_plus() => binding,
                _ => true,
            })
            .collect()
    }

    /// Stream headers, features, STARTTLS, SASL and resource binding, in two typed
    /// phases: [`Self::authenticate_stream`] ends in STARTTLS or an [`Authenticated`]
    /// account, which alone lets [`Self::bind_stream`] bind or resume a session.
    pub(super) async fn negotiate<T: Transport>(
        &self,
        transport: &mut T,
        peer: SocketAddr,
    ) -> Result<Negotiated, XmppError> {
        match self.authenticate_stream(transport, peer.ip()).await? {
            BeforeSession::StartTls => Ok(Negotiated::StartTls),
            BeforeSession::Authenticated(account) => {
                transport.restart();
                self.bind_stream(transport, &account, peer).await
            }
        }
    }

    /// Reads a stream header, answers it with the server's and the features.
    async fn open_stream<T: Transport>(
        &self,
        transport: &mut T,
        account: Option<&Authenticated>,
    ) -> Result<(), XmppError> {
        let header = transport.read_open().await?;
        transport.write_open(&self.domain, &hex::encode(rand::random::<[u8; 16]>()))?;
        if header
            .default_ns
            .as_deref()
            .is_some_and(|n| n != ns::CLIENT)
        {
            return Err(XmppError::stream(
                StreamCondition::InvalidNamespace,
                format!("stream namespace {:?}", header.default_ns),
            ));
        }
        let to = header.to.unwrap_or_default().to_ascii_lowercase();
        if to != self.domain {
            return Err(XmppError::stream(
                StreamCondition::HostUnknown,
                format!("this server is {}, not {to:?}", self.domain),
            ));
        }
        transport.write(&self.features(transport, account.map(Authenticated::account)))?;
        transport.flush().await?;
        Ok(())
    }

    /// Before authentication: STARTTLS (once, on a plain stream) and SASL. Anything else
    /// ends the stream with `not-authorized`.
    async fn authenticate_stream<T: Transport>(
        &self,
        transport: &mut T,
        peer: IpAddr,
    ) -> Result<BeforeSession, XmppError> {
        self.open_stream(transport, None).await?;
        loop {
            let Some(element) = transport.read().await? else {
                return Err(XmppError::Closed);
            };
            let starttls_possible = !transport.is_secure() && self.tls.is_some();
            if element.is("starttls", TLS) && starttls_possible {
                transport.write(&Element::bare("proceed", TLS))?;
                transport.flush().await?;
                return Ok(BeforeSession::StartTls);
            }
            let may_authenticate =
                transport.is_secure() || !self.settings.require_tls || self.tls.is_none();
            if element.is("auth", SASL) && may_authenticate {
                match self.authenticate(transport, &element, peer).await? {
                    Some(account) => return Ok(BeforeSession::Authenticated(account)),
                    None => continue,
                }
            }
            return Err(XmppError::stream(
                StreamCondition::NotAuthorized,
                format!("<{}> before authentication", element.name()),
            ));
        }
    }

    /// After authentication, on the restarted stream: resource binding or an XEP-0198
    /// resumption. Anything else ends the stream with `not-authorized`.
    async fn bind_stream<T: Transport>(
        &self,
        transport: &mut T,
        account: &Authenticated,
        peer: SocketAddr,
    ) -> Result<Negotiated, XmppError> {
        self.open_stream(transport, Some(account)).await?;
        loop {
            let Some(element) = transport.read().await? else {
                return Err(XmppError::Closed);
            };
            if element.is("resume", SM) {
                match self.resume(transport, account, &element).await? {
                    Some(bound) => return Ok(Negotiated::Bound(bound)),
                    None => continue,
                }
            }
            if stanza::kind(&element) == Some(stanza::Kind::Iq) {
                if let Some(bind) = element.get_child("bind", BIND) {
                    if let Some(bound) = self.bind(transport, account, &element, bind, peer)? {
                        return Ok(Negotiated::Bound(bound));
                    }
                    // The refusal goes out now: the client waits for it.
                    transport.flush().await?;
                    continue;
                }
            }
            return Err(XmppError::stream(
                StreamCondition::NotAuthorized,
                format!("<{}> before binding", element.name()),
            ));
        }
    }

    /// Answers a bind request: `Some` when bound, `None` after an error reply.
    pub(super) fn bind<T: Transport>(
        &self,
        transport: &mut T,
        account: &Authenticated,
        request: &Element,
        bind: &Element,
        peer: SocketAddr,
    ) -> Result<Option<Box<Bound>>, XmppError> {
        let reply_error = |transport: &mut T,
                           condition: StanzaCondition|
         -> Result<Option<Box<Bound>>, XmppError> {
            if let Some(error) = stanza::error_reply(request, condition) {
                transport.write(&error)?;
            }
            Ok(None)
        };
        if request.attr("type") != Some("set") {
            return reply_error(transport, StanzaCondition::BadRequest);
        }
        let resource = bind
            .get_child("resource", BIND)
            .map(|r| r.text().trim().to_owned())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| format!("bh-{}", hex::encode(rand::random::<[u8; 6]>())));
        let bare = account.account();
        let Ok(full) = jid::FullJid::new(&format!("{bare}/{resource}")) else {
            return reply_error(transport, StanzaCondition::BadRequest);
        };
        let resource = full.resource().as_str().to_owned();
        let info = ConnectionInfo::new(peer, T::NAME);
        let attachment = match self.router.attach_client(
            bare,
            &resource,
            self.settings.resource_conflict,
            Arc::clone(&info),
        ) {
            Ok(attachment) => attachment,
            Err(_) => return reply_error(transport, StanzaCondition::Conflict),
        };
        transport.write(
            &stanza::iq_result(request)
                .append(
                    Element::builder("bind", BIND)
                        .append(Element::builder("jid", BIND).append(full.as_str()).build())
                        .build(),
                )
                .build(),
        )?;
        Ok(Some(Box::new(Bound {
            presence: SessionPresence {
                bare: full.to_bare(),
                full,
                id: attachment.id,
                directed: Default::default(),
            },
            queue: attachment.queue,
            sm: None,
            resumed: false,
            info,
        })))
    }
}

/// How the phase before authentication ended.
enum BeforeSession {
    /// The client asked for TLS; `<proceed/>` was sent.
    StartTls,
    /// SASL succeeded; the stream restarts.
    Authenticated(Authenticated),
}
