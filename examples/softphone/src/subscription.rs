//! Keeping the user's subscriptions for the channel set:
//!
//! ```text
//! subscribe (Do Not Disturb, Advanced Call)   until an XSP grants it (retry every 5 s)
//! at half the granted lifetime: renew          404: subscribe again; no XSP: retry in 5 s
//! ```
//!
//! Subscriptions name the channel set, not a channel, so a rebuilt channel keeps them.

use std::sync::Arc;
use std::time::Duration;

use bridgehead::client::{ChannelOptions, ClientError, Granted};
use tokio_util::sync::CancellationToken;

use crate::Client;

/// The event packages the softphone shows.
const PACKAGES: &[&str] = &["Do Not Disturb", "Advanced Call"];
/// The application id the XSP records.
const APPLICATION: &str = "bridgehead-softphone";
/// Between attempts when no XSP granted the subscription.
const RETRY: Duration = Duration::from_secs(5);

/// Subscribes `user` and keeps the subscription until `stop`.
pub async fn keep(
    client: Arc<Client>,
    user: String,
    options: ChannelOptions,
    stop: CancellationToken,
) {
    let mut current: Option<Granted> = None;
    loop {
        let wait = match &current {
            None => match client
                .subscribe(&user, PACKAGES, APPLICATION, &options)
                .await
            {
                Ok(granted) => {
                    println!(
                        "subscribed {}: {} for {} s",
                        PACKAGES.join(", "),
                        granted.subscription_id,
                        granted.expires_secs
                    );
                    let wait = half(&granted);
                    current = Some(granted);
                    wait
                }
                Err(e) => {
                    println!("error: subscribing: {e}");
                    RETRY
                }
            },
            Some(granted) => match client
                .renew_subscription(&granted.subscription_id, &options)
                .await
            {
                Ok(renewed) => {
                    let wait = half(&renewed);
                    current = Some(renewed);
                    wait
                }
                Err(ClientError::Refused { status: 404, .. }) => {
                    println!(
                        "subscription {} ended; subscribing again",
                        granted.subscription_id
                    );
                    current = None;
                    Duration::ZERO
                }
                Err(e) => {
                    println!("error: renewing: {e}");
                    RETRY
                }
            },
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn half(granted: &Granted) -> Duration {
    Duration::from_secs((granted.expires_secs / 2).max(1))
}
