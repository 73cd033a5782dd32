//! The service catalogue: every telephony service a user has (Do Not Disturb, the three
//! Call Forwarding variants, Remote Office, Simultaneous Ring Personal) is declared once,
//! and everything else derives from that declaration.
//!
//! A service is one line of the `catalogue!` below (its name, its XSI-Events package
//! name, its feature access codes) plus, in [`settings`], its settings struct declared with
//! [`fields!`](fields) (each field with its XSI element name) and its [`Service`] impl
//! (defaults and validation). From those come [`ServiceName`] (URL names, package names,
//! codes), [`ServiceSettings`] (what the store keeps and the event bus carries), the
//! XSI-Actions document and its PUT (`xsi::services`, generic over [`Fields`]), and the
//! `info` of its XSI-Events event (`xsi::events::documents`). Adding a service:
//!
//! ```text
//! // services.rs, in catalogue!:
//! CallWaiting => "Call Waiting", [];
//! // settings.rs:
//! fields! {
//!     /// Call Waiting.
//!     #[derive(Default)]
//!     pub struct CallWaiting {
//!         /// On or off.
//!         active: bool => "active",
//!     }
//! }
//! impl Service for CallWaiting {}
//! ```
//!
//! plus its tests: the XSD in `schemas/` and the integration tests name each document.

pub mod fields;
pub mod settings;

use serde::{Deserialize, Serialize};

use super::TelephonyError;
pub use fields::{BadValue, Field, Fields, Node, Value};
pub use settings::*;

/// What every service's settings do beyond their fields.
pub trait Service: Fields + Default + Into<ServiceSettings> {
    /// Checks the rules every interface applies (field names as XSI spells them).
    fn validate(&self) -> Result<(), TelephonyError> {
        Ok(())
    }
}

/// Declares the services: `Type => "Package name", [(code name, code)…];`, in the order
/// XSI lists them.
macro_rules! catalogue {
    ($( $(#[$doc:meta])* $name:ident => $package:literal, [$(($fac:literal, $code:literal)),* $(,)?]; )*) => {
        /// The services Bridgehead offers to every user.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ServiceName {
            $( $(#[$doc])* $name, )*
        }

        impl ServiceName {
            /// Every service, in the order they are listed.
            pub const ALL: &'static [ServiceName] = &[$(ServiceName::$name),*];

            /// The name in URLs and documents (`DoNotDisturb`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( ServiceName::$name => stringify!($name), )*
                }
            }

            /// The display name, which is also the XSI-Events package name
            /// (`Do Not Disturb`).
            pub fn display_name(self) -> &'static str {
                match self {
                    $( ServiceName::$name => $package, )*
                }
            }

            /// The service's feature access codes, `(name, code)`: BroadWorks' default
            /// codes, which clients show next to the service. (Dialling them needs call
            /// control through a bridge; the codes are published so that a phone and the
            /// XSI view agree.)
            pub fn feature_access_codes(self) -> &'static [(&'static str, &'static str)] {
                match self {
                    $( ServiceName::$name => &[$(($fac, $code)),*], )*
                }
            }
        }

        /// Settings of one service. Stored as JSON tagged with the service name (the
        /// struct's fields beside `"service"`).
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "service")]
        pub enum ServiceSettings {
            $( $(#[$doc])* $name($name), )*
        }

        $(
            impl From<$name> for ServiceSettings {
                fn from(settings: $name) -> Self {
                    ServiceSettings::$name(settings)
                }
            }
        )*

        impl ServiceSettings {
            /// The settings of a service that was never changed.
            pub fn default_for(service: ServiceName) -> Self {
                match service {
                    $( ServiceName::$name => $name::default().into(), )*
                }
            }

            /// Which service these settings belong to.
            pub fn name(&self) -> ServiceName {
                match self {
                    $( ServiceSettings::$name(_) => ServiceName::$name, )*
                }
            }

            fn service(&self) -> &dyn DynService {
                match self {
                    $( ServiceSettings::$name(s) => s, )*
                }
            }

            fn service_mut(&mut self) -> &mut dyn DynService {
                match self {
                    $( ServiceSettings::$name(s) => s, )*
                }
            }
        }
    };
}

catalogue! {
    /// Call Forwarding Always.
    CallForwardingAlways => "Call Forwarding Always", [
        ("Call Forwarding Always Activation", "*72"),
        ("Call Forwarding Always Deactivation", "*73"),
    ];
    /// Call Forwarding Busy.
    CallForwardingBusy => "Call Forwarding Busy", [
        ("Call Forwarding Busy Activation", "*90"),
        ("Call Forwarding Busy Deactivation", "*91"),
    ];
    /// Call Forwarding No Answer.
    CallForwardingNoAnswer => "Call Forwarding No Answer", [
        ("Call Forwarding No Answer Activation", "*92"),
        ("Call Forwarding No Answer Deactivation", "*93"),
    ];
    /// Do Not Disturb.
    DoNotDisturb => "Do Not Disturb", [
        ("Do Not Disturb Activation", "*78"),
        ("Do Not Disturb Deactivation", "*79"),
    ];
    /// Remote Office.
    RemoteOffice => "Remote Office", [];
    /// Simultaneous Ring Personal.
    SimultaneousRingPersonal => "Simultaneous Ring Personal", [];
}

/// [`Service`] and [`Fields`] as one object-safe view, for [`ServiceSettings`]' dispatch.
trait DynService: Fields {
    fn validate(&self) -> Result<(), TelephonyError>;
}

impl<T: Service> DynService for T {
    fn validate(&self) -> Result<(), TelephonyError> {
        Service::validate(self)
    }
}

impl ServiceName {
    /// The service named `name` in a URL (exact spelling).
    pub fn from_url(name: &str) -> Option<Self> {
        ServiceName::ALL
            .iter()
            .copied()
            .find(|s| s.as_str() == name)
    }
}

impl ServiceSettings {
    /// Checks the rules every interface applies (field names as XSI spells them).
    pub fn validate(&self) -> Result<(), TelephonyError> {
        self.service().validate()
    }

    /// The fields, in the order of the service's XSI document.
    pub fn fields(&self) -> Vec<Field> {
        self.service().fields()
    }

    /// These settings with the children of `given` laid over them (absent fields keep
    /// their value). Not validated: [`Telephony::set_service`](super::Telephony::set_service)
    /// validates what it stores.
    pub fn apply(mut self, given: &Node) -> Result<Self, BadValue> {
        self.service_mut().apply(given)?;
        Ok(self)
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
        let on_without_target = ServiceSettings::from(CallForwardingAlways {
            active: true,
            ..Default::default()
        });
        assert!(on_without_target.validate().is_err());
        let rings = ServiceSettings::from(CallForwardingNoAnswer {
            number_of_rings: 21,
            ..Default::default()
        });
        assert!(matches!(
            rings.validate(),
            Err(TelephonyError::Invalid {
                field: "numberOfRings",
                ..
            })
        ));
        for &service in ServiceName::ALL {
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
        let too_many = ServiceSettings::from(SimultaneousRingPersonal {
            active: true,
            incoming_calls: IncomingCalls::RingForAll,
            locations: (0..11).map(location).collect(),
        });
        assert!(too_many.validate().is_err());
        let twice = ServiceSettings::from(SimultaneousRingPersonal {
            active: true,
            incoming_calls: IncomingCalls::RingForAll,
            locations: vec![location(1), location(1)],
        });
        assert!(twice.validate().is_err());
    }

    /// What earlier releases stored reads back unchanged, and is written the same way.
    #[test]
    fn stored_settings_keep_their_json() {
        for stored in [
            r#"{"service":"DoNotDisturb","active":true,"ring_splash":false}"#,
            r#"{"service":"CallForwardingAlways","active":true,"forward_to":"+15550100","ring_splash":true}"#,
            r#"{"service":"CallForwardingBusy","active":false,"forward_to":null}"#,
            r#"{"service":"CallForwardingNoAnswer","active":false,"forward_to":null,"number_of_rings":5}"#,
            r#"{"service":"RemoteOffice","active":true,"number":"2001"}"#,
            r#"{"service":"SimultaneousRingPersonal","active":true,"do_not_ring_if_on_call":true,"locations":[{"address":"+15550101","answer_confirmation_required":true}]}"#,
        ] {
            let settings: ServiceSettings = serde_json::from_str(stored).unwrap();
            settings.validate().unwrap();
            assert_eq!(serde_json::to_string(&settings).unwrap(), stored);
        }
        let sim_ring: ServiceSettings = serde_json::from_str(
            r#"{"service":"SimultaneousRingPersonal","active":false,"do_not_ring_if_on_call":true,"locations":[]}"#,
        )
        .unwrap();
        assert!(matches!(
            sim_ring,
            ServiceSettings::SimultaneousRingPersonal(SimultaneousRingPersonal {
                incoming_calls: IncomingCalls::DoNotRingIfOnACall,
                ..
            })
        ));
    }

    fn node(name: &str, text: &str, children: Vec<Node>) -> Node {
        Node {
            name: name.into(),
            text: text.into(),
            children,
        }
    }

    /// A request's fields lie over the current ones: absent fields keep their value, an
    /// empty number clears it, a given list replaces the list, a wrong shape is malformed.
    #[test]
    fn given_fields_lie_over_the_current_ones() {
        let current = ServiceSettings::from(CallForwardingAlways {
            active: true,
            forward_to: Some("+15550100".into()),
            ring_splash: false,
        });
        let updated = current
            .clone()
            .apply(&node(
                "CallForwardingAlways",
                "",
                vec![node("ringSplash", "1", vec![])],
            ))
            .unwrap();
        assert_eq!(
            updated.fields(),
            vec![
                Field {
                    name: "active",
                    value: Value::Text("true".into())
                },
                Field {
                    name: "forwardToPhoneNumber",
                    value: Value::Text("+15550100".into())
                },
                Field {
                    name: "ringSplash",
                    value: Value::Text("true".into())
                },
            ]
        );
        let cleared = current
            .clone()
            .apply(&node(
                "CallForwardingAlways",
                "",
                vec![node("forwardToPhoneNumber", "", vec![])],
            ))
            .unwrap();
        assert!(matches!(
            cleared,
            ServiceSettings::CallForwardingAlways(CallForwardingAlways {
                forward_to: None,
                ..
            })
        ));
        assert!(matches!(
            current.apply(&node("x", "", vec![node("active", "perhaps", vec![])])),
            Err(BadValue::Malformed {
                field: "active",
                ..
            })
        ));

        let location = |address: &str| {
            node(
                "simRingLocation",
                "",
                vec![node("address", address, vec![])],
            )
        };
        let sim_ring =
            ServiceSettings::default_for(ServiceName::SimultaneousRingPersonal).apply(&node(
                "SimultaneousRingPersonal",
                "",
                vec![
                    node("incomingCalls", "Do not Ring if on a Call", vec![]),
                    node(
                        "simRingLocations",
                        "",
                        vec![location("+15550101"), location("bob@example.com")],
                    ),
                ],
            ));
        let ServiceSettings::SimultaneousRingPersonal(sim_ring) = sim_ring.unwrap() else {
            panic!("another service")
        };
        assert_eq!(sim_ring.incoming_calls, IncomingCalls::DoNotRingIfOnACall);
        assert_eq!(sim_ring.locations.len(), 2);
        assert!(!sim_ring.locations[1].answer_confirmation_required);
        assert!(matches!(
            ServiceSettings::default_for(ServiceName::SimultaneousRingPersonal).apply(&node(
                "x",
                "",
                vec![node("incomingCalls", "Sometimes", vec![])]
            )),
            Err(BadValue::Invalid {
                field: "incomingCalls",
                ..
            })
        ));
    }
}
