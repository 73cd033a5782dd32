//! XEP-0114 components registered at run time (`bridgehead component add`); the XMPP
//! face joins them with the config file's `[[components]]` (config wins for a name in
//! both) and reads them again on every lookup, so an added component needs no restart.

use super::{ComponentRecord, Telephony, TelephonyError};

impl Telephony {
    /// Every registered component, ordered by name.
    pub async fn registered_components(&self) -> Result<Vec<ComponentRecord>, TelephonyError> {
        Ok(self.store.components().await?)
    }

    /// The registered component named `name` (ASCII case-insensitive), if any.
    pub async fn registered_component(
        &self,
        name: &str,
    ) -> Result<Option<ComponentRecord>, TelephonyError> {
        Ok(self
            .registered_components()
            .await?
            .into_iter()
            .find(|c| c.name.eq_ignore_ascii_case(name)))
    }
}
