//! Each service's settings: its fields (with their XSI element names, in document order),
//! its defaults and its rules. The Rust field names are also the stored JSON's keys, so
//! they stay as they are once released.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::fields::{fields, invalid, BadValue, FieldValue, ListItem, Node, Value};
use super::{check_address, check_target, Service};
use crate::telephony::TelephonyError;

/// The rule of every Call Forwarding variant: a target when on, a valid one when given.
fn forwarding(active: bool, forward_to: Option<&str>) -> Result<(), TelephonyError> {
    check_target("forwardToPhoneNumber", active, forward_to)
}

/// Default rings before Call Forwarding No Answer forwards.
pub const DEFAULT_NUMBER_OF_RINGS: u8 = 3;

/// Most locations Simultaneous Ring Personal may ring.
pub const MAX_SIM_RING_LOCATIONS: usize = 10;

fields! {
    /// Do Not Disturb: calls are refused while it is on.
    #[derive(Default)]
    pub struct DoNotDisturb {
        /// On or off.
        active: bool => "active",
        /// Play a short ring when a call is rejected.
        ring_splash: bool => "ringSplash",
    }
}

impl Service for DoNotDisturb {}

fields! {
    /// Call Forwarding Always.
    #[derive(Default)]
    pub struct CallForwardingAlways {
        /// On or off.
        active: bool => "active",
        /// Where calls go.
        forward_to: Option<String> => "forwardToPhoneNumber",
        /// Play a short ring when a call is forwarded.
        ring_splash: bool => "ringSplash",
    }
}

impl Service for CallForwardingAlways {
    fn validate(&self) -> Result<(), TelephonyError> {
        forwarding(self.active, self.forward_to.as_deref())
    }
}

fields! {
    /// Call Forwarding Busy.
    #[derive(Default)]
    pub struct CallForwardingBusy {
        /// On or off.
        active: bool => "active",
        /// Where calls go.
        forward_to: Option<String> => "forwardToPhoneNumber",
    }
}

impl Service for CallForwardingBusy {
    fn validate(&self) -> Result<(), TelephonyError> {
        forwarding(self.active, self.forward_to.as_deref())
    }
}

fields! {
    /// Call Forwarding No Answer.
    pub struct CallForwardingNoAnswer {
        /// On or off.
        active: bool => "active",
        /// Where calls go.
        forward_to: Option<String> => "forwardToPhoneNumber",
        /// Rings before forwarding (2 to 20).
        number_of_rings: u8 => "numberOfRings",
    }
}

impl Default for CallForwardingNoAnswer {
    fn default() -> Self {
        CallForwardingNoAnswer {
            active: false,
            forward_to: None,
            number_of_rings: DEFAULT_NUMBER_OF_RINGS,
        }
    }
}

impl Service for CallForwardingNoAnswer {
    fn validate(&self) -> Result<(), TelephonyError> {
        if !(2..=20).contains(&self.number_of_rings) {
            return Err(invalid(
                "numberOfRings",
                format!("{} is not between 2 and 20", self.number_of_rings),
            ));
        }
        forwarding(self.active, self.forward_to.as_deref())
    }
}

fields! {
    /// Remote Office: calls ring another number instead of the user's devices.
    #[derive(Default)]
    pub struct RemoteOffice {
        /// On or off.
        active: bool => "active",
        /// The number that rings instead of the user's devices.
        number: Option<String> => "remoteOfficeNumber",
    }
}

impl Service for RemoteOffice {
    fn validate(&self) -> Result<(), TelephonyError> {
        check_target("remoteOfficeNumber", self.active, self.number.as_deref())
    }
}

fields! {
    /// Simultaneous Ring Personal: calls ring up to ten other places as well.
    #[derive(Default)]
    pub struct SimultaneousRingPersonal {
        /// On or off.
        active: bool => "active",
        /// Whether the locations ring while the user is on a call (stored as a boolean:
        /// true for [`IncomingCalls::DoNotRingIfOnACall`]).
        #[serde(rename = "do_not_ring_if_on_call")]
        incoming_calls: IncomingCalls => "incomingCalls",
        /// Where to ring as well.
        locations: Vec<SimRingLocation> => "simRingLocations",
    }
}

impl Service for SimultaneousRingPersonal {
    fn validate(&self) -> Result<(), TelephonyError> {
        let locations = &self.locations;
        if locations.len() > MAX_SIM_RING_LOCATIONS {
            return Err(invalid(
                "simRingLocations",
                format!(
                    "{} locations given, at most {MAX_SIM_RING_LOCATIONS} allowed",
                    locations.len()
                ),
            ));
        }
        if self.active && locations.is_empty() {
            return Err(invalid(
                "simRingLocations",
                "at least one location is needed to turn the service on",
            ));
        }
        let mut seen = HashSet::new();
        for location in locations {
            check_address("address", &location.address)?;
            if !seen.insert(location.address.as_str()) {
                return Err(invalid(
                    "address",
                    format!("{} is listed twice", location.address),
                ));
            }
        }
        Ok(())
    }
}

fields! {
    /// One place Simultaneous Ring Personal rings.
    #[derive(Default)]
    pub struct SimRingLocation {
        /// Number or SIP URI.
        address: String => "address",
        /// The callee must confirm before the call is connected.
        answer_confirmation_required: bool => "answerConfirmationRequired",
    }
}

impl ListItem for SimRingLocation {
    const ELEMENT: &'static str = "simRingLocation";
}

/// Which calls Simultaneous Ring Personal rings the locations for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "bool", into = "bool")]
pub enum IncomingCalls {
    /// Every call.
    #[default]
    RingForAll,
    /// Only calls that arrive while the user is not on a call.
    DoNotRingIfOnACall,
}

impl IncomingCalls {
    /// Both, with their XSI spellings.
    const SPELLINGS: [(IncomingCalls, &'static str); 2] = [
        (IncomingCalls::RingForAll, "Ring for all Incoming Calls"),
        (
            IncomingCalls::DoNotRingIfOnACall,
            "Do not Ring if on a Call",
        ),
    ];

    /// The XSI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            IncomingCalls::RingForAll => Self::SPELLINGS[0].1,
            IncomingCalls::DoNotRingIfOnACall => Self::SPELLINGS[1].1,
        }
    }
}

impl From<bool> for IncomingCalls {
    fn from(do_not_ring_if_on_call: bool) -> Self {
        if do_not_ring_if_on_call {
            IncomingCalls::DoNotRingIfOnACall
        } else {
            IncomingCalls::RingForAll
        }
    }
}

impl From<IncomingCalls> for bool {
    fn from(calls: IncomingCalls) -> Self {
        calls == IncomingCalls::DoNotRingIfOnACall
    }
}

impl FieldValue for IncomingCalls {
    fn to_value(&self) -> Option<Value> {
        Some(Value::Text(self.as_str().to_owned()))
    }

    fn from_node(node: &Node, field: &'static str) -> Result<Self, BadValue> {
        Self::SPELLINGS
            .into_iter()
            .find(|(_, spelling)| *spelling == node.text)
            .map(|(value, _)| value)
            .ok_or_else(|| BadValue::Invalid {
                field,
                reason: format!(
                    "\"{}\" is neither \"{}\" nor \"{}\"",
                    node.text,
                    Self::SPELLINGS[0].1,
                    Self::SPELLINGS[1].1
                ),
            })
    }
}
