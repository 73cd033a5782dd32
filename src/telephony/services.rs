//! User services and their settings: what Do Not Disturb, the three Call Forwarding
//! variants, Remote Office and Simultaneous Ring Personal hold, their defaults, and the
//! rules every interface applies before a setting is stored.

use serde::{Deserialize, Serialize};

use super::TelephonyError;

/// The services Bridgehead offers to every user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceName {
    /// Do Not Disturb.
    DoNotDisturb,
    /// Call Forwarding Always.
    CallForwardingAlways,
    /// Call Forwarding Busy.
    CallForwardingBusy,
    /// Call Forwarding No Answer.
    CallForwardingNoAnswer,
    /// Remote Office.
    RemoteOffice,
    /// Simultaneous Ring Personal.
    SimultaneousRingPersonal,
}

impl ServiceName {
    /// Every service, in the order they are listed.
    pub const ALL: [ServiceName; 6] = [
        ServiceName::CallForwardingAlways,
        ServiceName::CallForwardingBusy,
        ServiceName::CallForwardingNoAnswer,
        ServiceName::DoNotDisturb,
        ServiceName::RemoteOffice,
        ServiceName::SimultaneousRingPersonal,
    ];

    /// The name in URLs and documents (`DoNotDisturb`).
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::DoNotDisturb => "DoNotDisturb",
            ServiceName::CallForwardingAlways => "CallForwardingAlways",
            ServiceName::CallForwardingBusy => "CallForwardingBusy",
            ServiceName::CallForwardingNoAnswer => "CallForwardingNoAnswer",
            ServiceName::RemoteOffice => "RemoteOffice",
            ServiceName::SimultaneousRingPersonal => "SimultaneousRingPersonal",
        }
    }

    /// The display name, which is also the XSI-Events package name (`Do Not Disturb`).
    pub fn display_name(self) -> &'static str {
        match self {
            ServiceName::DoNotDisturb => "Do Not Disturb",
            ServiceName::CallForwardingAlways => "Call Forwarding Always",
            ServiceName::CallForwardingBusy => "Call Forwarding Busy",
            ServiceName::CallForwardingNoAnswer => "Call Forwarding No Answer",
            ServiceName::RemoteOffice => "Remote Office",
            ServiceName::SimultaneousRingPersonal => "Simultaneous Ring Personal",
        }
    }

    /// The service's feature access codes, `(name, code)`: BroadWorks' default codes, which
    /// clients show next to the service. (Dialling them needs call control through a
    /// bridge; the codes are published so that a phone and the XSI view agree.)
    pub fn feature_access_codes(self) -> &'static [(&'static str, &'static str)] {
        match self {
            ServiceName::DoNotDisturb => &[
                ("Do Not Disturb Activation", "*78"),
                ("Do Not Disturb Deactivation", "*79"),
            ],
            ServiceName::CallForwardingAlways => &[
                ("Call Forwarding Always Activation", "*72"),
                ("Call Forwarding Always Deactivation", "*73"),
            ],
            ServiceName::CallForwardingBusy => &[
                ("Call Forwarding Busy Activation", "*90"),
                ("Call Forwarding Busy Deactivation", "*91"),
            ],
            ServiceName::CallForwardingNoAnswer => &[
                ("Call Forwarding No Answer Activation", "*92"),
                ("Call Forwarding No Answer Deactivation", "*93"),
            ],
            ServiceName::RemoteOffice | ServiceName::SimultaneousRingPersonal => &[],
        }
    }

    /// The service named `name` in a URL (exact spelling).
    pub fn from_url(name: &str) -> Option<Self> {
        ServiceName::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// One place Simultaneous Ring Personal rings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimRingLocation {
    /// Number or SIP URI.
    pub address: String,
    /// The callee must confirm before the call is connected.
    pub answer_confirmation_required: bool,
}

/// Most locations Simultaneous Ring Personal may ring.
pub const MAX_SIM_RING_LOCATIONS: usize = 10;

/// Settings of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "service")]
pub enum ServiceSettings {
    /// Do Not Disturb.
    DoNotDisturb {
        /// On or off.
        active: bool,
        /// Play a short ring when a call is rejected.
        ring_splash: bool,
    },
    /// Call Forwarding Always.
    CallForwardingAlways {
        /// On or off.
        active: bool,
        /// Where calls go.
        forward_to: Option<String>,
        /// Play a short ring when a call is forwarded.
        ring_splash: bool,
    },
    /// Call Forwarding Busy.
    CallForwardingBusy {
        /// On or off.
        active: bool,
        /// Where calls go.
        forward_to: Option<String>,
    },
    /// Call Forwarding No Answer.
    CallForwardingNoAnswer {
        /// On or off.
        active: bool,
        /// Where calls go.
        forward_to: Option<String>,
        /// Rings before forwarding (2 to 20).
        number_of_rings: u8,
    },
    /// Remote Office.
    RemoteOffice {
        /// On or off.
        active: bool,
        /// The number that rings instead of the user's devices.
        number: Option<String>,
    },
    /// Simultaneous Ring Personal.
    SimultaneousRingPersonal {
        /// On or off.
        active: bool,
        /// Ring the locations only when the user is not already on a call.
        do_not_ring_if_on_call: bool,
        /// Where to ring as well.
        locations: Vec<SimRingLocation>,
    },
}

/// Default rings before Call Forwarding No Answer forwards.
pub const DEFAULT_NUMBER_OF_RINGS: u8 = 3;

impl ServiceSettings {
    /// The settings of a service that was never changed.
    pub fn default_for(service: ServiceName) -> Self {
        match service {
            ServiceName::DoNotDisturb => ServiceSettings::DoNotDisturb {
                active: false,
                ring_splash: false,
            },
            ServiceName::CallForwardingAlways => ServiceSettings::CallForwardingAlways {
                active: false,
                forward_to: None,
                ring_splash: false,
            },
            ServiceName::CallForwardingBusy => ServiceSettings::CallForwardingBusy {
                active: false,
                forward_to: None,
            },
            ServiceName::CallForwardingNoAnswer => ServiceSettings::CallForwardingNoAnswer {
                active: false,
                forward_to: None,
                number_of_rings: DEFAULT_NUMBER_OF_RINGS,
            },
            ServiceName::RemoteOffice => ServiceSettings::RemoteOffice {
                active: false,
                number: None,
            },
            ServiceName::SimultaneousRingPersonal => ServiceSettings::SimultaneousRingPersonal {
                active: false,
                do_not_ring_if_on_call: false,
                locations: Vec::new(),
            },
        }
    }

    /// Which service these settings belong to.
    pub fn name(&self) -> ServiceName {
        match self {
            ServiceSettings::DoNotDisturb { .. } => ServiceName::DoNotDisturb,
            ServiceSettings::CallForwardingAlways { .. } => ServiceName::CallForwardingAlways,
            ServiceSettings::CallForwardingBusy { .. } => ServiceName::CallForwardingBusy,
            ServiceSettings::CallForwardingNoAnswer { .. } => ServiceName::CallForwardingNoAnswer,
            ServiceSettings::RemoteOffice { .. } => ServiceName::RemoteOffice,
            ServiceSettings::SimultaneousRingPersonal { .. } => {
                ServiceName::SimultaneousRingPersonal
            }
        }
    }

    /// Checks the rules every interface applies (field names as XSI spells them).
    pub fn validate(&self) -> Result<(), TelephonyError> {
        match self {
            ServiceSettings::DoNotDisturb { .. } => Ok(()),
            ServiceSettings::CallForwardingAlways {
                active, forward_to, ..
            }
            | ServiceSettings::CallForwardingBusy { active, forward_to } => {
                check_target("forwardToPhoneNumber", *active, forward_to.as_deref())
            }
            ServiceSettings::CallForwardingNoAnswer {
                active,
                forward_to,
                number_of_rings,
            } => {
                if !(2..=20).contains(number_of_rings) {
                    return Err(TelephonyError::Invalid {
                        field: "numberOfRings",
                        reason: format!("{number_of_rings} is not between 2 and 20"),
                    });
                }
                check_target("forwardToPhoneNumber", *active, forward_to.as_deref())
            }
            ServiceSettings::RemoteOffice { active, number } => {
                check_target("remoteOfficeNumber", *active, number.as_deref())
            }
            ServiceSettings::SimultaneousRingPersonal {
                active, locations, ..
            } => {
                if locations.len() > MAX_SIM_RING_LOCATIONS {
                    return Err(TelephonyError::Invalid {
                        field: "simRingLocations",
                        reason: format!(
                            "{} locations given, at most {MAX_SIM_RING_LOCATIONS} allowed",
                            locations.len()
                        ),
                    });
                }
                if *active && locations.is_empty() {
                    return Err(TelephonyError::Invalid {
                        field: "simRingLocations",
                        reason: "at least one location is needed to turn the service on".into(),
                    });
                }
                let mut seen = std::collections::HashSet::new();
                for location in locations {
                    check_address("address", &location.address)?;
                    if !seen.insert(location.address.as_str()) {
                        return Err(TelephonyError::Invalid {
                            field: "address",
                            reason: format!("{} is listed twice", location.address),
                        });
                    }
                }
                Ok(())
            }
        }
    }
}

/// A forwarding target: required when the service is on, checked when present.
fn check_target(
    field: &'static str,
    active: bool,
    target: Option<&str>,
) -> Result<(), TelephonyError> {
    match target {
        Some(target) => check_address(field, target),
        None if active => Err(TelephonyError::Invalid {
            field,
            reason: "required when the service is active".into(),
        }),
        None => Ok(()),
    }
}

/// A phone number (digits with an optional leading `+`, and `*`/`#` for feature codes,
/// 1 to 30 characters) or a SIP address (`sip:` optional, `user@host`, no spaces, at most
/// 161 characters).
pub fn check_address(field: &'static str, value: &str) -> Result<(), TelephonyError> {
    let invalid = |reason: &str| TelephonyError::Invalid {
        field,
        reason: format!("\"{value}\" {reason}"),
    };
    if value.contains('@') {
        let address = value.strip_prefix("sip:").unwrap_or(value);
        let (user, host) = address.split_once('@').unwrap_or_default();
        if address.len() > 161
            || user.is_empty()
            || host.is_empty()
            || host.contains('@')
            || address.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid("is not a valid SIP address"));
        }
        return Ok(());
    }
    let digits = value.strip_prefix('+').unwrap_or(value);
    if digits.is_empty() || value.len() > 30 {
        return Err(invalid("is not a phone number of 1 to 30 characters"));
    }
    if !digits
        .chars()
        .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
    {
        return Err(invalid(
            "is not a phone number (digits, an optional leading +, * and #)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_sip_addresses() {
        for good in [
            "+15550100",
            "2001",
            "*72",
            "sip:bob@example.com",
            "bob@example.com",
        ] {
            assert!(check_address("n", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "+",
            "555 0100",
            "abc",
            "@example.com",
            "bob@",
            "a@b@c",
            "+1-555",
        ] {
            assert!(check_address("n", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn active_forwarding_needs_a_target_and_rings_stay_in_range() {
        let on_without_target = ServiceSettings::CallForwardingAlways {
            active: true,
            forward_to: None,
            ring_splash: false,
        };
        assert!(on_without_target.validate().is_err());
        let rings = ServiceSettings::CallForwardingNoAnswer {
            active: false,
            forward_to: None,
            number_of_rings: 21,
        };
        assert!(matches!(
            rings.validate(),
            Err(TelephonyError::Invalid {
                field: "numberOfRings",
                ..
            })
        ));
        for service in ServiceName::ALL {
            ServiceSettings::default_for(service).validate().unwrap();
            assert_eq!(ServiceSettings::default_for(service).name(), service);
            assert_eq!(ServiceName::from_url(service.as_str()), Some(service));
        }
    }

    #[test]
    fn sim_ring_limits_locations() {
        let location = |n: usize| SimRingLocation {
            address: format!("+1555010{n}"),
            answer_confirmation_required: false,
        };
        let too_many = ServiceSettings::SimultaneousRingPersonal {
            active: true,
            do_not_ring_if_on_call: false,
            locations: (0..11).map(location).collect(),
        };
        assert!(too_many.validate().is_err());
        let twice = ServiceSettings::SimultaneousRingPersonal {
            active: true,
            do_not_ring_if_on_call: false,
            locations: vec![location(1), location(1)],
        };
        assert!(twice.validate().is_err());
    }
}
