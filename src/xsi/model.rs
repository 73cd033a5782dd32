//! The XSI-Actions documents, typed. Each type mirrors one element of `schemas/xsi.xsd`,
//! in the namespace `http://schema.broadsoft.com/xsi`, and is written and read by
//! quick-xml's serde support (JSON is a view of the same XML, see [`super::json`]).
//!
//! Request documents (PUT bodies) use the same types with every field optional. A PUT
//! changes only the fields it carries, as BroadWorks does.

use serde::{Deserialize, Serialize};

/// The XSI namespace.
pub const XSI_NS: &str = "http://schema.broadsoft.com/xsi";

fn ns() -> &'static str {
    XSI_NS
}

/// `<ErrorInfo>`.
#[derive(Debug, Serialize)]
#[serde(rename = "ErrorInfo")]
pub struct ErrorInfo {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// What went wrong (in the server's language).
    pub summary: String,
    /// What went wrong, in English.
    #[serde(rename = "summaryEnglish")]
    pub summary_english: String,
    /// Bridgehead's error code.
    #[serde(rename = "errorCode")]
    pub error_code: u32,
}

/// `<Versions>`.
#[derive(Debug, Serialize)]
#[serde(rename = "Versions")]
pub struct Versions {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// Supported interface versions.
    pub version: Vec<String>,
}

/// `<serviceProvider isEnterprise="true">id</serviceProvider>`.
#[derive(Debug, Serialize)]
pub struct ServiceProvider {
    /// Always true: Bridgehead's service providers are enterprises.
    #[serde(rename = "@isEnterprise")]
    pub is_enterprise: bool,
    /// The enterprise id.
    #[serde(rename = "$text")]
    pub id: String,
}

/// `<details>` of a profile.
#[derive(Debug, Serialize)]
pub struct ProfileDetails {
    /// `user@domain`.
    #[serde(rename = "userId")]
    pub user_id: String,
    /// First name.
    #[serde(rename = "firstName")]
    pub first_name: String,
    /// Last name.
    #[serde(rename = "lastName")]
    pub last_name: String,
    /// Group.
    #[serde(rename = "groupId")]
    pub group_id: String,
    /// Enterprise.
    #[serde(rename = "serviceProvider")]
    pub service_provider: ServiceProvider,
    /// Number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
}

/// `<additionalDetails>`: BroadWorks' contact fields (mobile, e-mail, address …); the XSD
/// requires the element, and Bridgehead keeps none of them yet.
#[derive(Debug, Serialize)]
pub struct AdditionalDetails {}

/// `<Profile>`, in BroadWorks' order. Devices, services and call logs are not linked from
/// here: clients reach them at the URIs BroadWorks uses (`profile/Device`, `services`,
/// `directories/CallLogs`).
#[derive(Debug, Serialize)]
#[serde(rename = "Profile")]
pub struct Profile {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// Who the user is.
    pub details: ProfileDetails,
    /// Contact fields.
    #[serde(rename = "additionalDetails")]
    pub additional_details: AdditionalDetails,
    /// URI of the user's feature access codes.
    pub fac: String,
    /// URI of the user's registrations.
    pub registrations: String,
    /// URI of the user's schedules.
    #[serde(rename = "scheduleList")]
    pub schedule_list: String,
    /// URI that changes the user's portal password.
    #[serde(rename = "portalPasswordChange")]
    pub portal_password_change: String,
    /// The country code of the user's numbers (`[xsi] country_code`).
    #[serde(rename = "countryCode")]
    pub country_code: String,
}

/// One `<featureAccessCode>`.
#[derive(Debug, Serialize)]
pub struct FeatureAccessCode {
    /// What the code does (`Do Not Disturb Activation`).
    #[serde(rename = "codeName")]
    pub code_name: String,
    /// The code (`*78`).
    pub code: String,
}

/// `<FAC>`: the feature access codes of the user's services.
#[derive(Debug, Serialize)]
#[serde(rename = "FAC")]
pub struct Fac {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// The codes.
    #[serde(rename = "featureAccessCode")]
    pub feature_access_code: Vec<FeatureAccessCode>,
}

/// `<Registrations>`: the user's SIP registrations. Bridgehead has no SIP registrar, so
/// the list is empty.
#[derive(Debug, Serialize)]
#[serde(rename = "Registrations")]
pub struct Registrations {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
}

/// `<ScheduleUri>`: the user's time and holiday schedules (none yet).
#[derive(Debug, Serialize)]
#[serde(rename = "ScheduleUri")]
pub struct ScheduleUri {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
}

/// `<Portal>`: the PUT body that changes the user's password.
#[derive(Debug, Deserialize)]
#[serde(rename = "Portal")]
pub struct Portal {
    /// The current password (required when users change their own).
    #[serde(rename = "oldPassword", default)]
    pub old_password: Option<String>,
    /// The new password.
    #[serde(rename = "newPassword")]
    pub new_password: String,
}

/// One `<accessDevice>`.
#[derive(Debug, Serialize)]
pub struct AccessDevice {
    /// Device name.
    #[serde(rename = "deviceName")]
    pub device_name: String,
    /// Where the device profile lives (`System`, `Service Provider`, `Group`): Bridgehead's
    /// devices belong to their user's group.
    #[serde(rename = "deviceLevel")]
    pub device_level: &'static str,
    /// Device type.
    #[serde(rename = "deviceType")]
    pub device_type: String,
    /// Line/port.
    #[serde(rename = "deviceLinePort")]
    pub device_line_port: String,
}

/// `<AccessDevices>`.
#[derive(Debug, Serialize)]
#[serde(rename = "AccessDevices")]
pub struct AccessDevices {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// The devices.
    #[serde(rename = "accessDevice")]
    pub access_device: Vec<AccessDevice>,
}

/// One `<service>` of the service list.
#[derive(Debug, Serialize)]
pub struct ServiceEntry {
    /// Display name (`Do Not Disturb`).
    pub name: String,
    /// The service's URI.
    pub uri: String,
}

/// `<Services>`.
#[derive(Debug, Serialize)]
#[serde(rename = "Services")]
pub struct Services {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// The assigned services.
    pub service: Vec<ServiceEntry>,
}

/// One `<directoryDetails>` of a directory search.
#[derive(Debug, Serialize)]
pub struct DirectoryDetails {
    /// `user@domain`.
    #[serde(rename = "userId")]
    pub user_id: String,
    /// First name.
    #[serde(rename = "firstName")]
    pub first_name: String,
    /// Last name.
    #[serde(rename = "lastName")]
    pub last_name: String,
    /// Group.
    #[serde(rename = "groupId")]
    pub group_id: String,
    /// Number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
}

/// The entries of a directory page.
#[derive(Debug, Serialize)]
pub struct DirectoryList {
    /// The entries.
    #[serde(rename = "directoryDetails")]
    pub details: Vec<DirectoryDetails>,
}

/// `<Enterprise>` and `<Group>` directory pages (the root and list names differ).
#[derive(Debug, Serialize)]
pub struct DirectoryPage {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// Position of the first entry, 1-based.
    #[serde(rename = "startIndex")]
    pub start_index: usize,
    /// Entries on this page.
    #[serde(rename = "numberOfRecords")]
    pub number_of_records: usize,
    /// Every match.
    #[serde(rename = "totalAvailableRecords")]
    pub total_available_records: usize,
    /// `enterpriseDirectory` for Enterprise.
    #[serde(
        rename = "enterpriseDirectory",
        skip_serializing_if = "Option::is_none"
    )]
    pub enterprise_directory: Option<DirectoryList>,
    /// `groupDirectory` for Group.
    #[serde(rename = "groupDirectory", skip_serializing_if = "Option::is_none")]
    pub group_directory: Option<DirectoryList>,
}

/// One `<entry>` of the personal directory.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PersonalEntry {
    /// Name.
    pub name: String,
    /// Number.
    pub number: String,
}

/// `<Personal>`: a page of the personal directory, and the POST body that adds entries
/// (which carries no counters).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename = "Personal")]
pub struct Personal {
    /// The namespace.
    #[serde(rename = "@xmlns", default = "ns", skip_deserializing)]
    pub xmlns: &'static str,
    /// Position of the first entry, 1-based.
    #[serde(
        rename = "startIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_index: Option<usize>,
    /// Entries on this page.
    #[serde(
        rename = "numberOfRecords",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub number_of_records: Option<usize>,
    /// Every match.
    #[serde(
        rename = "totalAvailableRecords",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub total_available_records: Option<usize>,
    /// The entries.
    #[serde(default)]
    pub entry: Vec<PersonalEntry>,
}

/// One `<callLogsEntry>`.
#[derive(Debug, Serialize)]
pub struct CallLogsEntry {
    /// Country code.
    #[serde(rename = "countryCode", skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// The other party's number.
    #[serde(rename = "phoneNumber")]
    pub phone_number: String,
    /// The other party's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When, RFC 3339.
    pub time: String,
    /// The record id.
    #[serde(rename = "callLogId")]
    pub call_log_id: String,
}

/// A list of call log entries.
#[derive(Debug, Serialize)]
pub struct CallLogsEntries {
    /// The entries, newest first.
    #[serde(rename = "callLogsEntry")]
    pub entry: Vec<CallLogsEntry>,
}

/// `<CallLogs>`.
#[derive(Debug, Serialize)]
#[serde(rename = "CallLogs")]
pub struct CallLogs {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// Placed calls.
    pub placed: CallLogsEntries,
    /// Received calls.
    pub received: CallLogsEntries,
    /// Missed calls.
    pub missed: CallLogsEntries,
}

/// `<Placed>`, `<Received>` or `<Missed>` (the root name is given when written).
#[derive(Debug, Serialize)]
pub struct CallLogList {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// The entries, newest first.
    #[serde(rename = "callLogsEntry")]
    pub entry: Vec<CallLogsEntry>,
}

/// One `<call>` of the call list.
#[derive(Debug, Serialize)]
pub struct CallEntry {
    /// The call id.
    #[serde(rename = "callId")]
    pub call_id: String,
    /// The call's URI.
    pub uri: String,
}

/// `<Call>`: one of the user's calls (BroadWorks' `Call` type, the fields Bridgehead keeps,
/// in the XSD's order).
#[derive(Debug, Serialize)]
#[serde(rename = "Call")]
pub struct CallDocument {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// The call id.
    #[serde(rename = "callId")]
    pub call_id: String,
    /// The id both sides share.
    #[serde(rename = "extTrackingId")]
    pub ext_tracking_id: String,
    /// `Originator`, `Terminator`, `Click-to-Dial`.
    pub personality: &'static str,
    /// `Alerting`, `Active`, `Held`, `Remote Held`, `Released`.
    pub state: &'static str,
    /// Why it failed.
    #[serde(rename = "releaseCause", skip_serializing_if = "Option::is_none")]
    pub release_cause: Option<ReleaseCauseDocument>,
    /// `localRelease` or `remoteRelease`.
    #[serde(rename = "releasingParty", skip_serializing_if = "Option::is_none")]
    pub releasing_party: Option<&'static str>,
    /// The other side.
    #[serde(rename = "remoteParty")]
    pub remote_party: PartyInformation,
    /// Where it was redirected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RedirectDocument>,
    /// Present when the user may answer it through XSI (`Talk`).
    #[serde(rename = "allowAnswer", skip_serializing_if = "Option::is_none")]
    pub allow_answer: Option<Empty>,
    /// Milliseconds since the epoch.
    #[serde(rename = "startTime")]
    pub start_time: i64,
    /// When answered.
    #[serde(rename = "answerTime", skip_serializing_if = "Option::is_none")]
    pub answer_time: Option<i64>,
    /// When held (while held).
    #[serde(rename = "heldTime", skip_serializing_if = "Option::is_none")]
    pub held_time: Option<i64>,
    /// Milliseconds held before the current hold, when it was held.
    #[serde(rename = "totalHeldTime", skip_serializing_if = "Option::is_none")]
    pub total_held_time: Option<u64>,
    /// When the user left it (redirected).
    #[serde(rename = "detachedTime", skip_serializing_if = "Option::is_none")]
    pub detached_time: Option<i64>,
    /// When released.
    #[serde(rename = "releaseTime", skip_serializing_if = "Option::is_none")]
    pub release_time: Option<i64>,
}

/// An element with no content (XSD `EmptyContent`).
#[derive(Debug, Serialize)]
pub struct Empty {}

/// `<redirect>` (XSD `Redirect`).
#[derive(Debug, Serialize)]
pub struct RedirectDocument {
    /// The new destination.
    pub address: String,
    /// `unconditional`, `do-not-disturb`, `user-busy`, `deflection`.
    pub reason: &'static str,
    /// Milliseconds since the epoch.
    #[serde(rename = "redirectTime")]
    pub redirect_time: i64,
}

/// Milliseconds since the epoch (XSD `Timestamp`).
fn millis(at: time::OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl CallDocument {
    /// The document of `call`.
    pub fn of(call: &crate::telephony::calls::Call) -> Self {
        use crate::telephony::calls::CallState;
        CallDocument {
            xmlns: XSI_NS,
            call_id: call.id.to_string(),
            ext_tracking_id: call.ext_tracking_id.clone(),
            personality: call.personality.as_str(),
            state: call.state.as_str(),
            release_cause: call.release_cause.map(|cause| ReleaseCauseDocument {
                internal_release_cause: cause.as_str(),
            }),
            releasing_party: call.releasing_party.map(|p| p.as_str()),
            remote_party: PartyInformation {
                name: call.remote.name.clone(),
                address: call.remote.address.clone(),
                user_id: call.remote.user_id.clone(),
                call_type: Some(call.remote.call_type.as_str()),
            },
            redirect: call.redirect.as_ref().map(|r| RedirectDocument {
                address: r.address.clone(),
                reason: r.reason.as_str(),
                redirect_time: millis(r.time),
            }),
            allow_answer: (call.state == CallState::Alerting && call.personality.answers())
                .then_some(Empty {}),
            start_time: millis(call.start_time),
            answer_time: call.answer_time.map(millis),
            held_time: call.held_time.map(millis),
            total_held_time: (call.total_held_ms > 0).then_some(call.total_held_ms),
            detached_time: call.detached_time.map(millis),
            release_time: call.release_time.map(millis),
        }
    }
}

/// `<releaseCause>`.
#[derive(Debug, Serialize)]
pub struct ReleaseCauseDocument {
    /// The cause.
    #[serde(rename = "internalReleaseCause")]
    pub internal_release_cause: &'static str,
}

/// `<remoteParty>` (XSD `PartyInformation`).
#[derive(Debug, Serialize)]
pub struct PartyInformation {
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `tel:` or `sip:` address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The user id of a local party.
    #[serde(rename = "userId", skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `Group`, `Enterprise`, `Network`.
    #[serde(rename = "callType", skip_serializing_if = "Option::is_none")]
    pub call_type: Option<&'static str>,
}

/// `<CallStartInfo>`: the answer to `POST calls/new`.
#[derive(Debug, Serialize)]
#[serde(rename = "CallStartInfo")]
pub struct CallStartInfo {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// The new call's id.
    #[serde(rename = "callId")]
    pub call_id: String,
    /// The id both sides share.
    #[serde(rename = "externalTrackingId")]
    pub external_tracking_id: String,
}

/// `<HookStatus>`: whether the user is on a call.
#[derive(Debug, Serialize)]
#[serde(rename = "HookStatus")]
pub struct HookStatus {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// `On-Hook` or `Off-Hook`.
    #[serde(rename = "hookStatus")]
    pub hook_status: &'static str,
}

/// `<Calls>`: the user's active calls.
#[derive(Debug, Serialize)]
#[serde(rename = "Calls")]
pub struct Calls {
    /// The namespace.
    #[serde(rename = "@xmlns")]
    pub xmlns: &'static str,
    /// The calls.
    pub call: Vec<CallEntry>,
}
