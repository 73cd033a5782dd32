//! XSI-Events v2.0: event channels, heartbeats, subscriptions and acknowledged delivery,
//! on the shared HTTPS front.
//!
//! | request | answer |
//! |---|---|
//! | `POST /com.broadsoft.async/com.broadsoft.xsi-events/v2.0/channel` `Channel{channelSetId, priority, weight, expires, applicationId?}` | 200, streamed: `Channel{channelId, expires}`, then events and heartbeats, one single-line document per chunk |
//! | `PUT …/v2.0/channel/{id}` `Channel{expires}` | `Channel{channelId, expires}` |
//! | `DELETE …/v2.0/channel/{id}` | 200; the stream gets ChannelTerminatedEvent `ExplicitDelete` and ends |
//! | `PUT …/v2.0/channel/{id}/heartbeat` | 200; a `ChannelHeartBeat` goes down the stream |
//! | `POST …/v2.0/channel/eventresponse` `EventResponse{eventID, statusCode, reason}` | 200 |
//! | `GET …/v2.0/channelset/{csid}` | `ChannelSet` |
//! | `POST …/v2.0/user/{u}` (or `…/user/{u}/subscription`), `…/enterprise/{e}[/group/{g}]` (`serviceprovider` is a synonym), `…/system` `Subscription{event or eventPackageList, expires, channelSetId, applicationId?}` | `Subscription{subscriptionId, expires}` |
//! | `GET …/v2.0/subscription[?subscriberId&targetId&event&extAppId]` | `SubscriptionList` |
//! | `GET`, `PUT` `Subscription{expires}`, `DELETE …/v2.0/subscription/{id}` | `Subscription` / 200 |
//!
//! `…` is `/com.broadsoft.xsi-events`. Credentials are the same HTTP Basic as XSI-Actions.
//! A channel, set or subscription is reachable only by its owner. A channel id and an
//! event id name the node that holds them (`node:uuid`); a heartbeat, update, delete or
//! event response for another node's is forwarded to it with `[cluster]` ([`forward`]),
//! and gets 404 without. The hub ([`hub`]) does the delivery.

mod background;
pub mod documents;
mod fanout;
mod forward;
pub mod hub;
mod journal;

pub use background::spawn_background;
pub use fanout::Fanout;
pub use forward::serve_forwarded;
pub use journal::{Journal, JournalWrite, JOURNAL_QUEUE};

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::mpsc;

use crate::http::{self, Handler, RequestContext, ResponseBody};
use crate::telephony::calls::HookStatus;
use crate::telephony::{may_reach, Reach, ServiceName, Telephony};
use crate::telephony::{SubscriptionRecord, SubscriptionTarget, User};

use self::documents::EventData;
use self::forward::{Applied, ChannelOp};
use self::hub::{ChannelRequest, Hub, HubError, Owner, SubscribeRequest};
use super::actions::XsiActions;
use super::auth::Authenticator;
use super::codec::{self, Format};
use super::error::ApiError;
use super::model::XSI_NS;
use super::response::{basic_challenge, empty, ok, respond};

/// Where the streaming channel request is mounted.
pub const ASYNC_MOUNT: &str = "/com.broadsoft.async/com.broadsoft.xsi-events/";
/// Where every other XSI-Events request is mounted.
pub const MOUNT: &str = "/com.broadsoft.xsi-events/";

const ASYNC_ROOT: &str = "/com.broadsoft.async/com.broadsoft.xsi-events/v2.0";
const ROOT: &str = "/com.broadsoft.xsi-events/v2.0";

/// The XSI-Events handler (mounted at both prefixes).
pub struct XsiEvents {
    hub: Hub,
    /// The other nodes, with `[cluster]`.
    fanout: Option<Fanout>,
    telephony: Telephony,
    /// XSI-Actions, for the user's calls on every node (a call subscription's initial
    /// state).
    calls: Arc<XsiActions>,
    auth: Authenticator,
    challenge: HeaderValue,
}

impl std::fmt::Debug for XsiEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XsiEvents").finish_non_exhaustive()
    }
}

/// The documents of one channel, as a streamed response body: each document is one chunk,
/// and the body ends when the hub drops the channel.
struct ChannelStream(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|next| next.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// What a path names.
#[derive(Debug, PartialEq, Eq)]
enum Resource {
    OpenChannel,
    Channel(String),
    Heartbeat(String),
    EventResponse,
    ChannelSet(String),
    Subscribe(SubscriptionTarget),
    Subscriptions,
    Subscription(String),
}

impl Resource {
    fn parse(path: &str) -> Result<Resource, ApiError> {
        let unknown = || ApiError::UnknownResource(path.to_owned());
        if path.strip_prefix(ASYNC_ROOT) == Some("/channel") {
            return Ok(Resource::OpenChannel);
        }
        let segments = super::path_segments(path, ROOT)
            .filter(|segments| !segments.is_empty())
            .ok_or_else(unknown)?;
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let enterprise = |e: &str| {
            e.eq_ignore_ascii_case("enterprise") || e.eq_ignore_ascii_case("serviceprovider")
        };
        Ok(match segments.as_slice() {
            ["channel", "eventresponse"] => Resource::EventResponse,
            ["channel", id] => Resource::Channel((*id).to_owned()),
            ["channel", id, "heartbeat"] => Resource::Heartbeat((*id).to_owned()),
            ["channelset", id] => Resource::ChannelSet((*id).to_owned()),
            ["user", u] | ["user", u, "subscription"] => {
                Resource::Subscribe(SubscriptionTarget::User {
                    user_id: (*u).to_owned(),
                })
            }
            [e, id] if enterprise(e) => Resource::Subscribe(SubscriptionTarget::Enterprise {
                enterprise_id: (*id).to_owned(),
            }),
            [e, id, "group", g] if enterprise(e) => {
                Resource::Subscribe(SubscriptionTarget::Group {
                    enterprise_id: (*id).to_owned(),
                    group_id: (*g).to_owned(),
                })
            }
            ["system"] => Resource::Subscribe(SubscriptionTarget::System),
            ["subscription"] => Resource::Subscriptions,
            ["subscription", id] => Resource::Subscription((*id).to_owned()),
            _ => return Err(unknown()),
        })
    }

    /// The route template, for metrics.
    fn template(&self) -> &'static str {
        match self {
            Resource::OpenChannel => "v2.0/channel",
            Resource::Channel(_) => "v2.0/channel/{channel}",
            Resource::Heartbeat(_) => "v2.0/channel/{channel}/heartbeat",
            Resource::EventResponse => "v2.0/channel/eventresponse",
            Resource::ChannelSet(_) => "v2.0/channelset/{set}",
            Resource::Subscribe(SubscriptionTarget::User { .. }) => "v2.0/user/{user}",
            Resource::Subscribe(SubscriptionTarget::Group { .. }) => {
                "v2.0/enterprise/{e}/group/{g}"
            }
            Resource::Subscribe(SubscriptionTarget::Enterprise { .. }) => "v2.0/enterprise/{e}",
            Resource::Subscribe(SubscriptionTarget::System) => "v2.0/system",
            Resource::Subscriptions => "v2.0/subscription",
            Resource::Subscription(_) => "v2.0/subscription/{subscription}",
        }
    }

    fn allow(&self) -> &'static str {
        match self {
            Resource::OpenChannel | Resource::EventResponse | Resource::Subscribe(_) => "POST",
            Resource::Channel(_) => "PUT, DELETE",
            Resource::Heartbeat(_) => "PUT",
            Resource::ChannelSet(_) | Resource::Subscriptions => "GET",
            Resource::Subscription(_) => "GET, PUT, DELETE",
        }
    }
}

/// The error for a required field that is missing.
fn required(field: &str) -> ApiError {
    ApiError::Invalid {
        field: field.into(),
        reason: "required".into(),
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::NotFound(what) => ApiError::UnknownEntry(what),
            HubError::Refused(why) => ApiError::Invalid {
                field: "request".into(),
                reason: why,
            },
            HubError::Quota { what, limit } => ApiError::QuotaExceeded { what, limit },
            HubError::Telephony(e) => {
                tracing::error!(error = %e, "store failed while serving XSI-Events");
                ApiError::Internal
            }
        }
    }
}

/// True when `user` may subscribe to `target` (the rule is `telephony::access`'s).
fn may_watch(user: &User, target: &SubscriptionTarget, target_user: Option<&User>) -> bool {
    let reach = match target {
        SubscriptionTarget::User { user_id } => Reach::User {
            id: user_id,
            record: target_user,
        },
        SubscriptionTarget::Group {
            enterprise_id,
            group_id,
        } => Reach::Group {
            enterprise_id,
            group_id,
        },
        SubscriptionTarget::Enterprise { enterprise_id } => Reach::Enterprise { enterprise_id },
        SubscriptionTarget::System => Reach::System,
    };
    may_reach(user, reach)
}

fn describe(record: &SubscriptionRecord, expires: Option<u64>) -> documents::Subscription {
    let (kind, id) = match &record.target {
        SubscriptionTarget::User { user_id } => ("User", user_id.clone()),
        SubscriptionTarget::Group { group_id, .. } => ("Group", group_id.clone()),
        SubscriptionTarget::Enterprise { enterprise_id } => {
            ("ServiceProvider", enterprise_id.clone())
        }
        SubscriptionTarget::System => ("System", String::new()),
    };
    let remaining = expires.or_else(|| {
        Some(record.expires_at.map_or(hub::NEVER_EXPIRES, |at| {
            (at - time::OffsetDateTime::now_utc().unix_timestamp()).max(0) as u64
        }))
    });
    documents::Subscription {
        xmlns: XSI_NS,
        subscription_id: Some(record.id.clone()),
        subscriber_id: Some(record.owner.clone()),
        target_id_type: Some(kind.to_owned()),
        target_id: (!id.is_empty()).then_some(id),
        event_package_list: Some(documents::EventPackageList {
            event_package: record.events.clone(),
        }),
        expires: remaining,
        channel_set_id: Some(record.channel_set_id.clone()),
        application_id: record.application_id.clone(),
        ..Default::default()
    }
}

impl XsiEvents {
    /// The handler; with `fanout` (a cluster), requests for other nodes' channels go to
    /// them and events come from them. `calls` answers what calls a user has (on every
    /// node, in a cluster); its telephony model is this handler's too.
    pub fn new(
        hub: Hub,
        fanout: Option<Fanout>,
        calls: Arc<XsiActions>,
        auth: Authenticator,
        realm: &str,
    ) -> Self {
        let challenge = basic_challenge(realm);
        XsiEvents {
            hub,
            fanout,
            telephony: calls.telephony().clone(),
            calls,
            auth,
            challenge,
        }
    }

    /// A channel request, applied here or by the node that holds its channel or event.
    async fn channel_op(&self, owner: &Owner, op: ChannelOp) -> Result<Applied, ApiError> {
        let cluster = self.fanout.as_ref().map(Fanout::cluster);
        forward::channel_op(&self.hub, cluster, owner, op).await
    }

    /// In a cluster, listens for the events of `set_id`'s subscriptions from the other
    /// nodes before the client hears its channel or subscription is there.
    async fn listen_for_others(&self, set_id: &str) {
        if let Some(fanout) = &self.fanout {
            if self.hub.holds_set(set_id) {
                fanout.listen_for(&self.hub.targets_of_set(set_id)).await;
            }
        }
    }

    async fn body<T: serde::de::DeserializeOwned>(
        request: Request<Incoming>,
        context: &RequestContext,
        root: &'static str,
    ) -> Result<T, ApiError> {
        let format = Format::of_body(request.headers())?;
        let body = http::read_body(request, &context.limits).await?;
        codec::parse(&body, format, root, context.max_xml_depth)
    }

    async fn serve(
        &self,
        request: Request<Incoming>,
        context: &RequestContext,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        // A CTI application is admitted by its certificate; everyone else by Basic.
        let (caller, owner) = match &context.client_id {
            Some(application) => (
                None,
                Owner {
                    id: application.clone(),
                    is_client: true,
                },
            ),
            None => {
                let user = self
                    .auth
                    .authenticate(
                        request
                            .headers()
                            .get(AUTHORIZATION)
                            .map(HeaderValue::as_bytes),
                        context.peer.ip(),
                    )
                    .await?;
                let owner = Owner {
                    id: user.id.clone(),
                    is_client: false,
                };
                (Some(user), owner)
            }
        };
        let resource = Resource::parse(request.uri().path())?;
        if !resource
            .allow()
            .split(", ")
            .any(|m| m == request.method().as_str())
        {
            return Err(ApiError::MethodNotAllowed {
                allow: resource.allow(),
            });
        }
        match resource {
            Resource::OpenChannel => {
                let asked: documents::Channel = Self::body(request, context, "Channel").await?;
                let channel_set_id = asked
                    .channel_set_id
                    .filter(|id| !id.trim().is_empty())
                    .ok_or_else(|| required("channelSetId"))?;
                let opened = self.hub.open_channel(
                    &owner,
                    ChannelRequest {
                        channel_set_id: channel_set_id.clone(),
                        priority: asked.priority.unwrap_or(1),
                        weight: asked.weight.unwrap_or(50),
                        expires: asked.expires.unwrap_or(0),
                        application_id: asked.application_id,
                    },
                )?;
                self.listen_for_others(&channel_set_id).await;
                if opened.restoring {
                    if let Some(fanout) = &self.fanout {
                        fanout.restore(&channel_set_id).await;
                    }
                }
                let mut response = Response::new(ChannelStream(opened.stream).boxed());
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/xml;charset=UTF-8"),
                );
                Ok(response)
            }
            Resource::Heartbeat(channel_id) => {
                self.channel_op(&owner, ChannelOp::Heartbeat { channel_id })
                    .await?;
                Ok(empty(StatusCode::OK))
            }
            Resource::Channel(channel_id) if request.method() == Method::DELETE => {
                self.channel_op(&owner, ChannelOp::Delete { channel_id })
                    .await?;
                Ok(empty(StatusCode::OK))
            }
            Resource::Channel(id) => {
                let asked: documents::Channel = Self::body(request, context, "Channel").await?;
                let expires = asked.expires.ok_or_else(|| required("expires"))?;
                let update = ChannelOp::Update {
                    channel_id: id.clone(),
                    expires,
                };
                let granted = match self.channel_op(&owner, update).await? {
                    Applied::Granted(granted) => granted,
                    Applied::Done | Applied::Delivers(_) => expires,
                };
                let answer = documents::Channel {
                    xmlns: XSI_NS,
                    channel_id: Some(id),
                    expires: Some(granted),
                    ..Default::default()
                };
                Ok(ok(codec::render(&answer, None, format)?, format))
            }
            Resource::EventResponse => {
                let response: documents::EventResponse =
                    Self::body(request, context, "EventResponse").await?;
                let op = ChannelOp::EventResponse {
                    event_id: response.event_id,
                    status_code: response.status_code,
                };
                self.channel_op(&owner, op).await?;
                Ok(empty(StatusCode::OK))
            }
            Resource::ChannelSet(id) => {
                let set = self.hub.channel_set(&owner, &id)?;
                Ok(ok(codec::render(&set, None, format)?, format))
            }
            Resource::Subscribe(target) => {
                let asked: documents::Subscription =
                    Self::body(request, context, "Subscription").await?;
                let set_id = asked.channel_set_id.clone().unwrap_or_default();
                let answer = self
                    .subscribe(caller.as_ref(), &owner, target, asked, format)
                    .await;
                self.listen_for_others(&set_id).await;
                answer
            }
            Resource::Subscriptions => {
                let filters: Vec<(String, String)> =
                    form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
                        .into_owned()
                        .collect();
                let wanted = |key: &str| {
                    filters
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.as_str())
                };
                let list = self.hub.subscriptions(|s| {
                    s.owner == owner.id
                        && wanted("subscriberId").is_none_or(|v| v == s.owner)
                        && wanted("event").is_none_or(|v| s.events.iter().any(|e| e == v))
                        && wanted("extAppId").is_none_or(|v| s.application_id.as_deref() == Some(v))
                        && wanted("targetId").is_none_or(|v| match &s.target {
                            SubscriptionTarget::User { user_id } => user_id == v,
                            SubscriptionTarget::Group { group_id, .. } => group_id == v,
                            SubscriptionTarget::Enterprise { enterprise_id } => enterprise_id == v,
                            SubscriptionTarget::System => false,
                        })
                });
                let document = documents::SubscriptionList {
                    xmlns: XSI_NS,
                    subscription: list.iter().map(|s| describe(s, None)).collect(),
                };
                Ok(ok(codec::render(&document, None, format)?, format))
            }
            Resource::Subscription(id) => {
                let record = self
                    .hub
                    .subscriptions(|s| s.id == id && s.owner == owner.id)
                    .pop()
                    .ok_or_else(|| ApiError::UnknownEntry(format!("subscription {id}")))?;
                match *request.method() {
                    Method::DELETE => {
                        self.hub.remove_subscription(&id, true).await?;
                        Ok(empty(StatusCode::OK))
                    }
                    Method::PUT => {
                        let asked: documents::Subscription =
                            Self::body(request, context, "Subscription").await?;
                        let expires = asked.expires.ok_or_else(|| required("expires"))?;
                        let granted = self.hub.renew_subscription(&id, expires).await?;
                        let answer = documents::Subscription {
                            xmlns: XSI_NS,
                            subscription_id: Some(id),
                            expires: Some(granted),
                            ..Default::default()
                        };
                        Ok(ok(codec::render(&answer, None, format)?, format))
                    }
                    _ => Ok(ok(
                        codec::render(&describe(&record, None), None, format)?,
                        format,
                    )),
                }
            }
        }
    }

    /// Subscribes for `caller` (a user), or for a CTI application (`None`), which may
    /// watch any target.
    async fn subscribe(
        &self,
        caller: Option<&User>,
        owner: &Owner,
        target: SubscriptionTarget,
        asked: documents::Subscription,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        if asked.http_contact.is_some() {
            return Err(ApiError::Invalid {
                field: "httpContact".into(),
                reason: "HTTP-contact delivery is not offered; subscribe with a channelSetId"
                    .into(),
            });
        }
        let channel_set_id = asked
            .channel_set_id
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| required("channelSetId"))?;
        let mut events: Vec<String> = asked.event.into_iter().collect();
        events.extend(
            asked
                .event_package_list
                .map(|l| l.event_package)
                .unwrap_or_default(),
        );
        if events.is_empty() {
            return Err(ApiError::Invalid {
                field: "event".into(),
                reason: "an event or eventPackageList is required".into(),
            });
        }
        if let Some(unknown) = events.iter().find(|e| !hub::is_package(e)) {
            return Err(ApiError::Invalid {
                field: "event".into(),
                reason: format!("\"{unknown}\" is not an event package Bridgehead delivers"),
            });
        }
        // Every failed subscription is a 403, as in BroadWorks: no hint whether a target exists.
        let target_user = match &target {
            SubscriptionTarget::User { user_id } => Some(
                self.telephony
                    .user(user_id)
                    .await?
                    .ok_or(ApiError::Forbidden)?,
            ),
            _ => None,
        };
        if caller.is_some_and(|user| !may_watch(user, &target, target_user.as_ref())) {
            return Err(ApiError::Forbidden);
        }
        let target = match (target, &target_user) {
            (SubscriptionTarget::User { .. }, Some(user)) => SubscriptionTarget::User {
                user_id: user.id.clone(),
            },
            (other, _) => other,
        };
        // The narrowest target (a user) gets the current state at once: each service's
        // settings, and for a call package the CallSubscriptionEvent.
        let mut initial = Vec::new();
        if let Some(user) = &target_user {
            for &service in ServiceName::ALL {
                if events.iter().any(|e| e == service.display_name()) {
                    let settings = self.telephony.service(&user.id, service).await?;
                    initial.push((user.id.clone(), EventData::Service(settings)));
                }
            }
            if events
                .iter()
                .any(|e| hub::CALL_PACKAGES.contains(&e.as_str()))
            {
                // Every node's calls of the user (a call lives on its bridge's node).
                let calls = self.calls.calls_everywhere(user).await;
                let hook_status = if calls.is_empty() {
                    HookStatus::OnHook
                } else {
                    HookStatus::OffHook
                };
                initial.push((
                    user.id.clone(),
                    EventData::CallSubscription { hook_status, calls },
                ));
            }
        }
        let (record, granted) = self
            .hub
            .subscribe(
                owner,
                SubscribeRequest {
                    target,
                    events,
                    expires: asked.expires.unwrap_or(0),
                    channel_set_id,
                    application_id: asked.application_id,
                    initial,
                },
            )
            .await?;
        let answer = documents::Subscription {
            xmlns: XSI_NS,
            subscription_id: Some(record.id),
            expires: Some(granted),
            ..Default::default()
        };
        Ok(ok(codec::render(&answer, None, format)?, format))
    }
}

#[async_trait]
impl Handler for XsiEvents {
    fn route(&self, path: &str) -> &'static str {
        Resource::parse(path).map_or("unknown", |r| r.template())
    }

    async fn handle(
        &self,
        request: Request<Incoming>,
        context: &RequestContext,
    ) -> Response<ResponseBody> {
        let format = Format::for_response(request.uri().query(), request.headers());
        let result = self.serve(request, context, format).await;
        respond(result, format, &self.challenge)
    }
}
