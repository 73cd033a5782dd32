//! The calls in progress on this node: by user (ids compared ASCII case-insensitively), by
//! the bridge's reference to each side, and counted per bridge. What `GET calls`,
//! `GET calls/HookStatus` and a call subscription's first event report, and what the
//! bridges' call events are applied to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use time::OffsetDateTime;

use super::{Call, CallId, CallState, HookStatus};

#[derive(Debug, Default)]
struct Calls {
    /// User (lower case) → the user's calls, oldest first.
    by_user: HashMap<String, Vec<Call>>,
    /// Call reference (lower case) → its user (lower case).
    by_ref: HashMap<String, String>,
    /// Bridge (lower case) → calls it carries.
    per_bridge: HashMap<String, usize>,
}

/// The bridge of a call reference, lower case (the registry's keys).
fn bridge_key(call_ref: &str) -> String {
    super::bridge_of(call_ref).to_ascii_lowercase()
}

/// What keeping a call changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    /// The user's hook status, when the call changed it.
    pub hook_changed: Option<HookStatus>,
}

/// The registry.
#[derive(Debug)]
pub struct CallRegistry {
    calls: Mutex<Calls>,
    node_id: String,
    numbers: AtomicU64,
}

impl CallRegistry {
    /// An empty registry whose call ids name node `node_id`.
    pub fn new(node_id: &str) -> Self {
        CallRegistry {
            calls: Mutex::default(),
            node_id: node_id.to_owned(),
            numbers: AtomicU64::new(0),
        }
    }

    fn next(&self) -> u64 {
        self.numbers.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A call id not used before on this node (`callhalf-<node>-<n>`).
    pub fn new_id(&self) -> CallId {
        CallId::new(&self.node_id, self.next())
    }

    /// An `extTrackingId` not used before on this node (`<node>-<n>:1`, the shape
    /// BroadWorks gives them).
    pub fn new_tracking_id(&self) -> String {
        format!("{}-{}:1", self.node_id, self.next())
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `call` (replacing the user's call with the same id); a call that is over
    /// leaves.
    pub fn track(&self, call: Call) -> Tracked {
        let key = call.user.id.to_ascii_lowercase();
        let reference = call.call_ref.to_ascii_lowercase();
        let mut guard = self.calls();
        let calls = &mut *guard;
        let was_on_hook = !calls.by_user.contains_key(&key);
        let user = calls.by_user.entry(key.clone()).or_default();
        let known = user.iter().position(|c| c.id == call.id);
        if let Some(i) = known {
            user.remove(i);
        }
        if call.is_over() {
            if known.is_some() && calls.by_ref.remove(&reference).is_some() {
                let bridge = bridge_key(&reference);
                if let Some(n) = calls.per_bridge.get_mut(&bridge) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        calls.per_bridge.remove(&bridge);
                    }
                }
            }
        } else {
            user.push(call);
            if known.is_none() {
                calls.by_ref.insert(reference.clone(), key.clone());
                *calls.per_bridge.entry(bridge_key(&reference)).or_default() += 1;
            }
        }
        let on_hook = user.is_empty();
        if on_hook {
            calls.by_user.remove(&key);
        }
        Tracked {
            hook_changed: match (was_on_hook, on_hook) {
                (true, false) => Some(HookStatus::OffHook),
                (false, true) => Some(HookStatus::OnHook),
                _ => None,
            },
        }
    }

    /// A user's calls, oldest first.
    pub fn calls_of(&self, user_id: &str) -> Vec<Call> {
        self.calls()
            .by_user
            .get(&user_id.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    /// How many calls a user has.
    pub fn count_of(&self, user_id: &str) -> usize {
        self.calls()
            .by_user
            .get(&user_id.to_ascii_lowercase())
            .map_or(0, Vec::len)
    }

    /// The user's call `id`.
    pub fn call_of(&self, user_id: &str, id: &str) -> Option<Call> {
        self.calls()
            .by_user
            .get(&user_id.to_ascii_lowercase())?
            .iter()
            .find(|c| c.id.as_str() == id)
            .cloned()
    }

    /// The call the bridge knows as `call_ref`.
    pub fn find_by_ref(&self, call_ref: &str) -> Option<Call> {
        let calls = self.calls();
        let user = calls.by_ref.get(&call_ref.to_ascii_lowercase())?;
        calls
            .by_user
            .get(user)?
            .iter()
            .find(|c| c.call_ref.eq_ignore_ascii_case(call_ref))
            .cloned()
    }

    /// The calls sharing `extTrackingId` `tracking_id` (the sides of one call).
    pub fn with_tracking_id(&self, tracking_id: &str) -> Vec<Call> {
        self.calls()
            .by_user
            .values()
            .flatten()
            .filter(|c| c.ext_tracking_id == tracking_id)
            .cloned()
            .collect()
    }

    /// The references of every call a bridge (component domain `bridge`) carries.
    pub fn refs_of_bridge(&self, bridge: &str) -> Vec<String> {
        let bridge = bridge.to_ascii_lowercase();
        self.calls()
            .by_ref
            .keys()
            .filter(|r| bridge_key(r) == bridge)
            .cloned()
            .collect()
    }

    /// How many calls a bridge carries.
    pub fn count_on_bridge(&self, bridge: &str) -> usize {
        self.calls()
            .per_bridge
            .get(&bridge.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Calls still ringing that started before their personality's deadline:
    /// `ringing_since` for calls the user answers, `dialing_since` for the user's
    /// outgoing calls.
    pub fn unanswered(
        &self,
        ringing_since: OffsetDateTime,
        dialing_since: OffsetDateTime,
    ) -> Vec<Call> {
        self.calls()
            .by_user
            .values()
            .flatten()
            .filter(|c| {
                c.state == CallState::Alerting
                    && c.start_time
                        < if c.personality.answers() {
                            ringing_since
                        } else {
                            dialing_since
                        }
            })
            .cloned()
            .collect()
    }

    /// Whether the user is on a call.
    pub fn hook_status(&self, user_id: &str) -> HookStatus {
        if self
            .calls()
            .by_user
            .contains_key(&user_id.to_ascii_lowercase())
        {
            HookStatus::OffHook
        } else {
            HookStatus::OnHook
        }
    }
}
