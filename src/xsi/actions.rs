//! XSI-Actions v2.0: the resources under `/com.broadsoft.xsi-actions/v2.0/` and their
//! methods (see the module docs of [`crate::xsi`] for the request flow).
//!
//! | path (after `v2.0/`) | methods | document |
//! |---|---|---|
//! | `versions` | GET (no credentials) | `Versions` |
//! | `user/{u}/profile…` | GET, PUT | `Profile`, `AccessDevices`, `FAC` … (see `profile`) |
//! | `user/{u}/services` | GET | `Services` |
//! | `user/{u}/services/{Service}` | GET, PUT | the service's document |
//! | `user/{u}/directories/Enterprise`, `…/Group` | GET (search, paging) | `Enterprise`, `Group` |
//! | `user/{u}/directories/Personal` | GET (search `name`/`number`, paging), POST (add entries → 201), DELETE `?name=` | `Personal` |
//! | `user/{u}/directories/CallLogs[/Placed\|Received\|Missed]` | GET | `CallLogs`, `Placed` … |
//! | `user/{u}/calls…` | GET, POST, PUT, DELETE | `Calls`, `Call`, `CallStartInfo`, `HookStatus` (see `calls`) |
//!
//! Service names in paths are matched without regard to case (`services/donotdisturb`),
//! as BroadWorks does, and so are boolean query values (`searchCriteriaModeOr=False`).
//! URIs inside documents are relative to the Xsi-Actions root (`/v2.0/user/…`).

use std::sync::Arc;

use async_trait::async_trait;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::config::XsiConfig;
use crate::http::{self, Handler, RequestContext, ResponseBody};
use crate::telephony::directory::{page_of, Pattern};
use crate::telephony::{may_reach, DirectoryQuery, DirectoryScope, Reach, ServiceName, Telephony};
use crate::telephony::{CallLogKind, CallLogRecord, PersonalContact, Role, User};

use super::auth::Authenticator;
use super::codec::{self, Format};
use super::error::ApiError;
use super::model::{self, XSI_NS};
use super::response::{basic_challenge, empty, ok, respond};
use super::services;
use calls::CallRequest;

mod calls;
mod forward;
mod profile;

pub use forward::serve_forwarded_calls;

/// Where XSI-Actions is mounted on the HTTPS front.
pub const MOUNT: &str = "/com.broadsoft.xsi-actions/";

/// The one version served.
const VERSION_ROOT: &str = "/com.broadsoft.xsi-actions/v2.0";
/// The same, relative to the Xsi-Actions root, as URIs in documents are written.
const RELATIVE_ROOT: &str = "/v2.0";
/// How long a change's answer waits for its events to be kept, at most (the fan-out
/// gives up on a write after a second).
const KEPT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Characters escaped in a user id placed in a URI path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'<')
    .add(b'>');

/// The XSI-Actions handler.
pub struct XsiActions {
    telephony: Telephony,
    auth: Authenticator,
    config: Arc<XsiConfig>,
    challenge: HeaderValue,
    /// The other nodes, with `[cluster]` (see `actions/forward.rs`).
    cluster: Option<crate::cluster::Cluster>,
}

impl std::fmt::Debug for XsiActions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XsiActions").finish_non_exhaustive()
    }
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resource {
    Versions,
    Profile(String),
    Devices(String),
    Fac(String),
    Registrations(String),
    Schedules(String),
    PortalPassword(String),
    Services(String),
    Service(String, ServiceName),
    Directory(String, Directory),
    Personal(String),
    CallLogs(String, Option<CallLogKind>),
    Calls(String),
    HookStatus(String),
    NewCall(String),
    Call(String, String),
    CallVerb(String, String, calls::CallVerb),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directory {
    Enterprise,
    Group,
}

impl Resource {
    /// The route template, for metrics (never the raw path: ids would grow the series).
    fn template(&self) -> &'static str {
        match self {
            Resource::Versions => "v2.0/versions",
            Resource::Profile(_) => "v2.0/user/{user}/profile",
            Resource::Devices(_) => "v2.0/user/{user}/profile/Device",
            Resource::Fac(_) => "v2.0/user/{user}/profile/Fac",
            Resource::Registrations(_) => "v2.0/user/{user}/profile/Registrations",
            Resource::Schedules(_) => "v2.0/user/{user}/profile/Schedule",
            Resource::PortalPassword(_) => "v2.0/user/{user}/profile/Password/Portal",
            Resource::Services(_) => "v2.0/user/{user}/services",
            Resource::Service(..) => "v2.0/user/{user}/services/{service}",
            Resource::Directory(_, Directory::Enterprise) => {
                "v2.0/user/{user}/directories/Enterprise"
            }
            Resource::Directory(_, Directory::Group) => "v2.0/user/{user}/directories/Group",
            Resource::Personal(_) => "v2.0/user/{user}/directories/Personal",
            Resource::CallLogs(..) => "v2.0/user/{user}/directories/CallLogs",
            Resource::Calls(_) => "v2.0/user/{user}/calls",
            Resource::HookStatus(_) => "v2.0/user/{user}/calls/HookStatus",
            Resource::NewCall(_) => "v2.0/user/{user}/calls/new",
            Resource::Call(..) => "v2.0/user/{user}/calls/{call}",
            Resource::CallVerb(..) => "v2.0/user/{user}/calls/{call}/{verb}",
        }
    }

    fn parse(path: &str) -> Result<Resource, ApiError> {
        let unknown = || ApiError::UnknownResource(path.to_owned());
        let segments = super::path_segments(path, VERSION_ROOT).ok_or_else(unknown)?;
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let user = |u: &str| u.to_owned();
        Ok(match segments.as_slice() {
            ["versions"] => Resource::Versions,
            ["user", u, "profile"] => Resource::Profile(user(u)),
            ["user", u, "profile", device] if device.eq_ignore_ascii_case("Device") => {
                Resource::Devices(user(u))
            }
            ["user", u, "profile", fac] if fac.eq_ignore_ascii_case("Fac") => {
                Resource::Fac(user(u))
            }
            ["user", u, "profile", r] if r.eq_ignore_ascii_case("Registrations") => {
                Resource::Registrations(user(u))
            }
            ["user", u, "profile", s] if s.eq_ignore_ascii_case("Schedule") => {
                Resource::Schedules(user(u))
            }
            ["user", u, "profile", p, portal]
                if p.eq_ignore_ascii_case("Password") && portal.eq_ignore_ascii_case("Portal") =>
            {
                Resource::PortalPassword(user(u))
            }
            ["user", u, "services"] => Resource::Services(user(u)),
            ["user", u, "services", name] => Resource::Service(
                user(u),
                ServiceName::ALL
                    .iter()
                    .copied()
                    .find(|s| s.as_str().eq_ignore_ascii_case(name))
                    .ok_or_else(unknown)?,
            ),
            ["user", u, "directories", d] if d.eq_ignore_ascii_case("Enterprise") => {
                Resource::Directory(user(u), Directory::Enterprise)
            }
            ["user", u, "directories", d] if d.eq_ignore_ascii_case("Group") => {
                Resource::Directory(user(u), Directory::Group)
            }
            ["user", u, "directories", d] if d.eq_ignore_ascii_case("Personal") => {
                Resource::Personal(user(u))
            }
            ["user", u, "directories", d] if d.eq_ignore_ascii_case("CallLogs") => {
                Resource::CallLogs(user(u), None)
            }
            ["user", u, "directories", d, kind] if d.eq_ignore_ascii_case("CallLogs") => {
                let kind = CallLogKind::ALL
                    .into_iter()
                    .find(|k| k.as_str().eq_ignore_ascii_case(kind))
                    .ok_or_else(unknown)?;
                Resource::CallLogs(user(u), Some(kind))
            }
            ["user", u, "calls"] => Resource::Calls(user(u)),
            ["user", u, "calls", h] if h.eq_ignore_ascii_case("HookStatus") => {
                Resource::HookStatus(user(u))
            }
            ["user", u, "calls", n] if n.eq_ignore_ascii_case("new") => Resource::NewCall(user(u)),
            ["user", u, "calls", id] => Resource::Call(user(u), (*id).to_owned()),
            ["user", u, "calls", id, verb] => Resource::CallVerb(
                user(u),
                (*id).to_owned(),
                calls::CallVerb::parse(verb, None).ok_or_else(unknown)?,
            ),
            ["user", u, "calls", id, verb, other] => Resource::CallVerb(
                user(u),
                (*id).to_owned(),
                calls::CallVerb::parse(verb, Some(other)).ok_or_else(unknown)?,
            ),
            _ => return Err(unknown()),
        })
    }

    fn allow(&self) -> &'static str {
        match self {
            Resource::Service(..) => "GET, PUT",
            Resource::PortalPassword(_) => "PUT",
            Resource::Personal(_) => "GET, POST, DELETE",
            Resource::NewCall(_) => "POST",
            Resource::Call(..) => "GET, DELETE",
            Resource::CallVerb(..) => "PUT",
            _ => "GET",
        }
    }

    fn allows(&self, method: &Method) -> bool {
        self.allow()
            .split(", ")
            .any(|allowed| allowed == method.as_str())
    }

    fn user(&self) -> Option<&str> {
        match self {
            Resource::Versions => None,
            Resource::Profile(u)
            | Resource::Devices(u)
            | Resource::Fac(u)
            | Resource::Registrations(u)
            | Resource::Schedules(u)
            | Resource::PortalPassword(u)
            | Resource::Services(u)
            | Resource::Service(u, _)
            | Resource::Directory(u, _)
            | Resource::Personal(u)
            | Resource::CallLogs(u, _)
            | Resource::Calls(u)
            | Resource::HookStatus(u)
            | Resource::NewCall(u)
            | Resource::Call(u, _)
            | Resource::CallVerb(u, ..) => Some(u),
        }
    }
}

/// The URI of a user's resource as documents write it, relative to the Xsi-Actions root:
/// `user_uri("a@b", "services")` is `/v2.0/user/a@b/services`.
fn user_uri(user_id: &str, rest: &str) -> String {
    format!(
        "{RELATIVE_ROOT}/user/{}/{rest}",
        utf8_percent_encode(user_id, SEGMENT)
    )
}

impl XsiActions {
    /// The handler, over the telephony model, checking credentials with `auth`.
    pub fn new(telephony: Telephony, config: Arc<XsiConfig>, auth: Authenticator) -> Self {
        let challenge = basic_challenge(&config.realm);
        XsiActions {
            auth,
            telephony,
            config,
            challenge,
            cluster: None,
        }
    }

    /// The telephony model it serves.
    pub fn telephony(&self) -> &Telephony {
        &self.telephony
    }

    /// In a cluster a change is answered once the events made so far on this node are in
    /// the shared backlog, so that they outlive it (at most [`KEPT_WAIT`]; see
    /// `EventBus::kept`).
    async fn events_kept(&self) {
        if !self.telephony.events().kept(KEPT_WAIT).await {
            tracing::warn!("a change is answered before its events were kept");
        }
    }

    /// The user whose resource is asked for, if `caller` may reach it. A caller without an
    /// admin role learns nothing about other users: it gets 403 whether they exist or not.
    /// A CTI application (`None`) has application rights: every user.
    async fn target(&self, caller: Option<&User>, target_id: &str) -> Result<User, ApiError> {
        let Some(caller) = caller else {
            return self
                .telephony
                .user(target_id)
                .await?
                .ok_or_else(|| ApiError::UnknownUser(target_id.to_owned()));
        };
        if caller.id.eq_ignore_ascii_case(target_id) {
            return Ok(caller.clone());
        }
        if caller.role == Role::User {
            return Err(ApiError::Forbidden);
        }
        let target = self
            .telephony
            .user(target_id)
            .await?
            .ok_or_else(|| ApiError::UnknownUser(target_id.to_owned()))?;
        if may_reach(
            caller,
            Reach::User {
                id: &target.id,
                record: Some(&target),
            },
        ) {
            Ok(target)
        } else {
            Err(ApiError::Forbidden)
        }
    }

    async fn serve(
        &self,
        request: Request<Incoming>,
        context: &RequestContext,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let resource = Resource::parse(request.uri().path());
        if matches!(resource, Ok(Resource::Versions)) {
            if request.method() != Method::GET {
                return Err(ApiError::MethodNotAllowed { allow: "GET" });
            }
            let versions = model::Versions {
                xmlns: XSI_NS,
                version: vec!["v2.0".to_owned()],
            };
            return Ok(ok(codec::render(&versions, None, format)?, format));
        }
        let caller = match &context.client_id {
            Some(_) => None,
            None => Some(
                self.auth
                    .authenticate(
                        request
                            .headers()
                            .get(AUTHORIZATION)
                            .map(HeaderValue::as_bytes),
                        context.peer.ip(),
                    )
                    .await?,
            ),
        };
        let resource = resource?;
        if !resource.allows(request.method()) {
            return Err(ApiError::MethodNotAllowed {
                allow: resource.allow(),
            });
        }
        let Some(target_id) = resource.user() else {
            return Err(ApiError::UnknownResource(request.uri().path().to_owned()));
        };
        let target = self.target(caller.as_ref(), target_id).await?;
        tracing::debug!(target_user = %target.id, method = %request.method(), path = request.uri().path(), "xsi request");
        match resource {
            // Answered above, before authentication.
            Resource::Versions => Err(ApiError::UnknownResource(request.uri().path().to_owned())),
            Resource::Profile(_) => self.profile(&target, format),
            Resource::Devices(_) => self.devices(&target, format).await,
            Resource::Fac(_) => self.feature_access_codes(&target, format),
            Resource::Registrations(_) => self.registrations(format),
            Resource::Schedules(_) => self.schedules(format),
            Resource::PortalPassword(_) => {
                self.change_password(request, context, caller.as_ref(), &target)
                    .await
            }
            Resource::Services(_) => self.services(&target, format),
            Resource::Service(_, name) => {
                self.service(request, context, &target, name, format).await
            }
            Resource::Directory(_, which) => {
                self.directory(request.uri().query(), &target, which, format)
                    .await
            }
            Resource::Personal(_) => self.personal(request, context, &target, format).await,
            Resource::CallLogs(_, kind) => self.call_logs(&target, kind, format).await,
            Resource::Calls(_) => self.call_request(&target, CallRequest::List, format).await,
            Resource::HookStatus(_) => {
                self.call_request(&target, CallRequest::HookStatus, format)
                    .await
            }
            Resource::NewCall(_) => {
                let query = request.uri().query().map(str::to_owned);
                self.call_request(&target, CallRequest::New { query }, format)
                    .await
            }
            Resource::Call(_, call_id) => {
                let query = request.uri().query().map(str::to_owned);
                let call = if request.method() == Method::DELETE {
                    CallRequest::Release { call_id, query }
                } else {
                    CallRequest::Get { call_id }
                };
                self.call_request(&target, call, format).await
            }
            Resource::CallVerb(_, call_id, verb) => {
                let query = request.uri().query().map(str::to_owned);
                let call = CallRequest::Verb {
                    call_id,
                    verb,
                    query,
                };
                self.call_request(&target, call, format).await
            }
        }
    }

    fn services(&self, user: &User, format: Format) -> Result<Response<ResponseBody>, ApiError> {
        let services = model::Services {
            xmlns: XSI_NS,
            service: self
                .telephony
                .services(user)
                .iter()
                .map(|s| model::ServiceEntry {
                    name: s.display_name().to_owned(),
                    uri: user_uri(&user.id, &format!("services/{}", s.as_str())),
                })
                .collect(),
        };
        Ok(ok(codec::render(&services, None, format)?, format))
    }

    async fn service(
        &self,
        request: Request<Incoming>,
        context: &RequestContext,
        user: &User,
        name: ServiceName,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let current = self.telephony.service(&user.id, name).await?;
        if request.method() == Method::GET {
            return Ok(ok(services::render(&current, format)?, format));
        }
        let body_format = Format::of_body(request.headers())?;
        let body = http::read_body(request, &context.limits).await?;
        let updated = services::apply(current, &body, body_format, context.max_xml_depth)?;
        self.telephony.set_service(user, updated).await?;
        Ok(empty(StatusCode::OK))
    }

    async fn directory(
        &self,
        query: Option<&str>,
        user: &User,
        which: Directory,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let query = self.directory_query(query)?;
        let scope = match which {
            Directory::Enterprise => DirectoryScope::Enterprise(user.enterprise_id.clone()),
            Directory::Group => DirectoryScope::Group {
                enterprise_id: user.enterprise_id.clone(),
                group_id: user.group_id.clone(),
            },
        };
        let page = self.telephony.search_directory(&scope, &query).await?;
        let list = model::DirectoryList {
            details: page
                .entries
                .into_iter()
                .map(|e| model::DirectoryDetails {
                    user_id: e.user_id,
                    first_name: e.first_name,
                    last_name: e.last_name,
                    group_id: e.group_id,
                    number: e.number,
                    extension: e.extension,
                })
                .collect(),
        };
        let (root, enterprise_directory, group_directory) = match which {
            Directory::Enterprise => ("Enterprise", Some(list), None),
            Directory::Group => ("Group", None, Some(list)),
        };
        let number_of_records = enterprise_directory
            .as_ref()
            .or(group_directory.as_ref())
            .map_or(0, |l| l.details.len());
        let document = model::DirectoryPage {
            xmlns: XSI_NS,
            start_index: page.start_index,
            number_of_records,
            total_available_records: page.total,
            enterprise_directory,
            group_directory,
        };
        Ok(ok(codec::render(&document, Some(root), format)?, format))
    }

    fn directory_query(&self, query: Option<&str>) -> Result<DirectoryQuery, ApiError> {
        let mut parsed = DirectoryQuery {
            start: 1,
            results: self.config.directory_page_size.get(),
            ..DirectoryQuery::default()
        };
        let bad = |name: &str, reason: String| ApiError::BadQuery {
            name: name.to_owned(),
            reason,
        };
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "firstName" => parsed.first_name = Some(Pattern::parse(&value)),
                "lastName" => parsed.last_name = Some(Pattern::parse(&value)),
                "number" => parsed.number = Some(Pattern::parse(&value)),
                "extension" => parsed.extension = Some(Pattern::parse(&value)),
                "userId" => parsed.user_id = Some(Pattern::parse(&value)),
                "name" => parsed.name = Some(Pattern::parse(&value)),
                // BroadWorks (Java) reads booleans without regard to case: Python's
                // requests sends `False`.
                "searchCriteriaModeOr" => {
                    parsed.any = match value.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(bad("searchCriteriaModeOr", "must be true or false".into()))
                        }
                    }
                }
                "start" => {
                    parsed.start = value
                        .parse()
                        .ok()
                        .filter(|start| *start >= 1)
                        .ok_or_else(|| bad("start", "must be a whole number from 1".into()))?
                }
                "results" => {
                    let max = self.config.directory_max_page_size;
                    parsed.results = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=max.get()).contains(n))
                        .ok_or_else(|| bad("results", format!("must be from 1 to {max}")))?
                }
                _ => {}
            }
        }
        Ok(parsed)
    }

    async fn personal(
        &self,
        request: Request<Incoming>,
        context: &RequestContext,
        user: &User,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        match *request.method() {
            Method::POST => {
                let body_format = Format::of_body(request.headers())?;
                let body = http::read_body(request, &context.limits).await?;
                let added: model::Personal =
                    codec::parse(&body, body_format, "Personal", context.max_xml_depth)?;
                if added.entry.is_empty() {
                    return Err(ApiError::Invalid {
                        field: "entry".into(),
                        reason: "at least one entry is needed".into(),
                    });
                }
                let entries: Vec<PersonalContact> = added
                    .entry
                    .iter()
                    .map(|entry| PersonalContact {
                        name: entry.name.trim().to_owned(),
                        number: entry.number.trim().to_owned(),
                    })
                    .collect();
                self.telephony
                    .add_personal_contacts(&user.id, &entries)
                    .await?;
                Ok(empty(StatusCode::CREATED))
            }
            Method::DELETE => {
                let name =
                    form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
                        .find(|(k, _)| k == "name")
                        .map(|(_, v)| v.into_owned())
                        .ok_or_else(|| ApiError::BadQuery {
                            name: "name".into(),
                            reason: "the entry to delete is required".into(),
                        })?;
                if self
                    .telephony
                    .remove_personal_contact(&user.id, &name)
                    .await?
                {
                    Ok(empty(StatusCode::OK))
                } else {
                    Err(ApiError::UnknownEntry(format!(
                        "personal directory entry \"{name}\""
                    )))
                }
            }
            _ => {
                let query = self.directory_query(request.uri().query())?;
                let found: Vec<PersonalContact> = self
                    .telephony
                    .personal_contacts(&user.id)
                    .await?
                    .into_iter()
                    .filter(|c| query.matches_contact(c))
                    .collect();
                let (start, total, page) = page_of(found, &query);
                let personal = model::Personal {
                    xmlns: XSI_NS,
                    start_index: Some(start),
                    number_of_records: Some(page.len()),
                    total_available_records: Some(total),
                    entry: page
                        .into_iter()
                        .map(|c| model::PersonalEntry {
                            name: c.name,
                            number: c.number,
                        })
                        .collect(),
                };
                Ok(ok(codec::render(&personal, None, format)?, format))
            }
        }
    }

    async fn call_logs(
        &self,
        user: &User,
        kind: Option<CallLogKind>,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let records = self.telephony.call_logs(&user.id, kind).await?;
        let entries = |wanted: CallLogKind| -> Vec<model::CallLogsEntry> {
            records
                .iter()
                .filter(|r| r.kind == wanted)
                .map(entry)
                .collect()
        };
        let body = match kind {
            None => codec::render(
                &model::CallLogs {
                    xmlns: XSI_NS,
                    placed: model::CallLogsEntries {
                        entry: entries(CallLogKind::Placed),
                    },
                    received: model::CallLogsEntries {
                        entry: entries(CallLogKind::Received),
                    },
                    missed: model::CallLogsEntries {
                        entry: entries(CallLogKind::Missed),
                    },
                },
                None,
                format,
            )?,
            Some(kind) => {
                let root = match kind {
                    CallLogKind::Placed => "Placed",
                    CallLogKind::Received => "Received",
                    CallLogKind::Missed => "Missed",
                };
                codec::render(
                    &model::CallLogList {
                        xmlns: XSI_NS,
                        entry: entries(kind),
                    },
                    Some(root),
                    format,
                )?
            }
        };
        Ok(ok(body, format))
    }
}

fn entry(record: &CallLogRecord) -> model::CallLogsEntry {
    model::CallLogsEntry {
        country_code: record.country_code.clone(),
        phone_number: record.number.clone(),
        name: record.name.clone(),
        time: record.time.clone(),
        call_log_id: record.id.to_string(),
    }
}

#[async_trait]
impl Handler for XsiActions {
    fn route(&self, path: &str) -> &'static str {
        Resource::parse(path).map_or("unknown", |r| r.template())
    }

    async fn handle(
        &self,
        request: Request<Incoming>,
        context: &RequestContext,
    ) -> Response<ResponseBody> {
        let format = Format::for_response(request.uri().query(), request.headers());
        let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
        let result = self.serve(request, context, format).await;
        if changes {
            self.events_kept().await;
        }
        respond(result, format, &self.challenge)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_resources() {
        let parse = |p: &str| Resource::parse(p).ok();
        assert_eq!(
            parse("/com.broadsoft.xsi-actions/v2.0/user/alice%40example.com/services/donotdisturb"),
            Some(Resource::Service(
                "alice@example.com".into(),
                ServiceName::DoNotDisturb
            ))
        );
        assert_eq!(
            parse("/com.broadsoft.xsi-actions/v2.0/user/a@b/directories/CallLogs/Missed"),
            Some(Resource::CallLogs("a@b".into(), Some(CallLogKind::Missed)))
        );
        for unknown in [
            "/com.broadsoft.xsi-actions/v1.0/user/a@b/profile",
            "/com.broadsoft.xsi-actions/v2.0x/versions",
            "/com.broadsoft.xsi-actions/v2.0/user/a@b/services/Nope",
            "/com.broadsoft.xsi-actions/v2.0/user/a@b/profile/extra/more",
            "/com.broadsoft.xsi-actions/v2.0/user/%ff/profile",
        ] {
            assert!(parse(unknown).is_none(), "{unknown}");
        }
    }

    #[test]
    fn user_uris_escape_what_a_segment_cannot_hold() {
        assert_eq!(
            user_uri("a b@example.com", "services"),
            "/v2.0/user/a%20b@example.com/services"
        );
    }
}
