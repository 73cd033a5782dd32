//! Service settings between the telephony model and the XSI documents: the document of
//! the current settings, and a PUT body merged onto them (absent fields keep their value).

use hyper::body::Bytes;

use crate::telephony::services::SimRingLocation as Location;
use crate::telephony::ServiceSettings;

use super::codec::{self, Format};
use super::error::ApiError;
use super::model::{self, XSI_NS};

/// The document of `settings` in `format`.
pub(super) fn render(settings: &ServiceSettings, format: Format) -> Result<Bytes, ApiError> {
    match settings.clone() {
        ServiceSettings::DoNotDisturb {
            active,
            ring_splash,
        } => codec::render(
            &model::DoNotDisturb {
                xmlns: XSI_NS,
                active: Some(active),
                ring_splash: Some(ring_splash),
            },
            None,
            format,
        ),
        ServiceSettings::CallForwardingAlways {
            active,
            forward_to,
            ring_splash,
        } => codec::render(
            &model::CallForwardingAlways {
                xmlns: XSI_NS,
                active: Some(active),
                forward_to_phone_number: forward_to,
                ring_splash: Some(ring_splash),
            },
            None,
            format,
        ),
        ServiceSettings::CallForwardingBusy { active, forward_to } => codec::render(
            &model::CallForwardingBusy {
                xmlns: XSI_NS,
                active: Some(active),
                forward_to_phone_number: forward_to,
            },
            None,
            format,
        ),
        ServiceSettings::CallForwardingNoAnswer {
            active,
            forward_to,
            number_of_rings,
        } => codec::render(
            &model::CallForwardingNoAnswer {
                xmlns: XSI_NS,
                active: Some(active),
                forward_to_phone_number: forward_to,
                number_of_rings: Some(number_of_rings),
            },
            None,
            format,
        ),
        ServiceSettings::RemoteOffice { active, number } => codec::render(
            &model::RemoteOffice {
                xmlns: XSI_NS,
                active: Some(active),
                remote_office_number: number,
            },
            None,
            format,
        ),
        ServiceSettings::SimultaneousRingPersonal {
            active,
            do_not_ring_if_on_call,
            locations,
        } => codec::render(
            &model::SimultaneousRingPersonal {
                xmlns: XSI_NS,
                active: Some(active),
                incoming_calls: Some(
                    if do_not_ring_if_on_call {
                        model::DO_NOT_RING_IF_ON_A_CALL
                    } else {
                        model::RING_FOR_ALL
                    }
                    .to_owned(),
                ),
                sim_ring_locations: Some(model::SimRingLocations {
                    location: locations
                        .into_iter()
                        .map(|l| model::SimRingLocation {
                            address: l.address,
                            answer_confirmation_required: l.answer_confirmation_required,
                        })
                        .collect(),
                }),
            },
            None,
            format,
        ),
    }
}

/// An empty element clears an optional number (`<forwardToPhoneNumber/>`).
fn number(given: Option<String>, current: Option<String>) -> Option<String> {
    match given {
        Some(value) if value.trim().is_empty() => None,
        Some(value) => Some(value.trim().to_owned()),
        None => current,
    }
}

/// `current` with the fields of a PUT `body` applied.
pub(super) fn apply(
    current: ServiceSettings,
    body: &[u8],
    format: Format,
    max_depth: usize,
) -> Result<ServiceSettings, ApiError> {
    Ok(match current {
        ServiceSettings::DoNotDisturb {
            active,
            ring_splash,
        } => {
            let put: model::DoNotDisturb = codec::parse(body, format, "DoNotDisturb", max_depth)?;
            ServiceSettings::DoNotDisturb {
                active: put.active.unwrap_or(active),
                ring_splash: put.ring_splash.unwrap_or(ring_splash),
            }
        }
        ServiceSettings::CallForwardingAlways {
            active,
            forward_to,
            ring_splash,
        } => {
            let put: model::CallForwardingAlways =
                codec::parse(body, format, "CallForwardingAlways", max_depth)?;
            ServiceSettings::CallForwardingAlways {
                active: put.active.unwrap_or(active),
                forward_to: number(put.forward_to_phone_number, forward_to),
                ring_splash: put.ring_splash.unwrap_or(ring_splash),
            }
        }
        ServiceSettings::CallForwardingBusy { active, forward_to } => {
            let put: model::CallForwardingBusy =
                codec::parse(body, format, "CallForwardingBusy", max_depth)?;
            ServiceSettings::CallForwardingBusy {
                active: put.active.unwrap_or(active),
                forward_to: number(put.forward_to_phone_number, forward_to),
            }
        }
        ServiceSettings::CallForwardingNoAnswer {
            active,
            forward_to,
            number_of_rings,
        } => {
            let put: model::CallForwardingNoAnswer =
                codec::parse(body, format, "CallForwardingNoAnswer", max_depth)?;
            ServiceSettings::CallForwardingNoAnswer {
                active: put.active.unwrap_or(active),
                forward_to: number(put.forward_to_phone_number, forward_to),
                number_of_rings: put.number_of_rings.unwrap_or(number_of_rings),
            }
        }
        ServiceSettings::RemoteOffice {
            active,
            number: office,
        } => {
            let put: model::RemoteOffice = codec::parse(body, format, "RemoteOffice", max_depth)?;
            ServiceSettings::RemoteOffice {
                active: put.active.unwrap_or(active),
                number: number(put.remote_office_number, office),
            }
        }
        ServiceSettings::SimultaneousRingPersonal {
            active,
            do_not_ring_if_on_call,
            locations,
        } => {
            let put: model::SimultaneousRingPersonal =
                codec::parse(body, format, "SimultaneousRingPersonal", max_depth)?;
            let do_not_ring_if_on_call = match put.incoming_calls.as_deref().map(str::trim) {
                None => do_not_ring_if_on_call,
                Some(model::RING_FOR_ALL) => false,
                Some(model::DO_NOT_RING_IF_ON_A_CALL) => true,
                Some(other) => {
                    return Err(ApiError::Invalid {
                        field: "incomingCalls".into(),
                        reason: format!(
                            "\"{other}\" is neither \"{}\" nor \"{}\"",
                            model::RING_FOR_ALL,
                            model::DO_NOT_RING_IF_ON_A_CALL
                        ),
                    })
                }
            };
            ServiceSettings::SimultaneousRingPersonal {
                active: put.active.unwrap_or(active),
                do_not_ring_if_on_call,
                locations: match put.sim_ring_locations {
                    Some(given) => given
                        .location
                        .into_iter()
                        .map(|l| Location {
                            address: l.address.trim().to_owned(),
                            answer_confirmation_required: l.answer_confirmation_required,
                        })
                        .collect(),
                    None => locations,
                },
            }
        }
    })
}
