//! What the user types, and what the softphone remembers of the events to make the typing
//! short: the call ringing last (for `answer`) and the calls still up (for `hangup`).
//!
//! The commands are in [`HELP`], which `help` prints.

use std::sync::Arc;

use bridgehead::client::Notice;

use crate::Client;

/// Whether to go on after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

/// The softphone's state.
pub struct Phone {
    client: Arc<Client>,
    user: String,
    authorization: String,
    /// The call that rang last and was neither answered nor released.
    ringing: Option<String>,
    /// Calls seen in events and not released, oldest first.
    calls: Vec<String>,
}

impl Phone {
    pub fn new(client: Arc<Client>, user: String, authorization: String) -> Self {
        Phone {
            client,
            user,
            authorization,
            ringing: None,
            calls: Vec::new(),
        }
    }

    /// Prints what the channel told, and follows the calls.
    pub fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::Opened { channel_id } => println!("channel opened {channel_id}"),
            Notice::Rebuilding { reason } => println!("channel rebuilding: {reason}"),
            Notice::Event {
                sequence,
                kind,
                call_id,
                ..
            } => {
                let sequence = sequence.map_or("-".to_owned(), |s| s.to_string());
                match &call_id {
                    Some(call) => {
                        println!("event {sequence} {kind} call={call}");
                        self.follow(&kind, call);
                    }
                    None => println!("event {sequence} {kind}"),
                }
            }
        }
    }

    fn follow(&mut self, kind: &str, call: &str) {
        match kind {
            "CallReleasedEvent" | "CallRedirectedEvent" | "CallDetachedEvent" => {
                self.calls.retain(|c| c != call);
                if self.ringing.as_deref() == Some(call) {
                    self.ringing = None;
                }
            }
            _ => {
                if kind == "CallReceivedEvent" {
                    self.ringing = Some(call.to_owned());
                } else if kind == "CallAnsweredEvent" && self.ringing.as_deref() == Some(call) {
                    self.ringing = None;
                }
                if !self.calls.iter().any(|c| c == call) {
                    self.calls.push(call.to_owned());
                }
            }
        }
    }

    /// Runs one line of input.
    pub async fn command(&mut self, line: &str) -> Flow {
        let words: Vec<&str> = line.split_whitespace().collect();
        if matches!(words.as_slice(), ["quit" | "exit"]) {
            return Flow::Quit;
        }
        if let Err(e) = self.run(&words).await {
            println!("error: {e}");
        }
        Flow::Continue
    }

    async fn run(&mut self, words: &[&str]) -> Result<(), String> {
        match words {
            [] => {}
            ["help"] => println!("{HELP}"),
            ["status"] => crate::print_status(&self.client.status(), &self.client),
            ["dnd"] => self.show_dnd().await?,
            ["dnd", setting @ ("on" | "off")] => self.set_dnd(*setting == "on").await?,
            ["call", address] => self.call(address).await?,
            ["answer", rest @ ..] => {
                let call = pick(rest, self.ringing.clone(), "ringing")?;
                self.answer(&call).await?
            }
            ["decline", rest @ ..] => {
                let call = pick(rest, self.ringing.clone(), "ringing")?;
                self.release(&call, true).await?
            }
            ["hangup", rest @ ..] => {
                let call = pick(rest, self.calls.last().cloned(), "up")?;
                self.release(&call, false).await?
            }
            _ => return Err(format!("unknown command {:?} (try help)", words.join(" "))),
        }
        Ok(())
    }

    async fn show_dnd(&self) -> Result<(), String> {
        let active = self
            .client
            .do_not_disturb(&self.user, &self.authorization)
            .await
            .map_err(|e| e.to_string())?;
        println!("dnd {}", on_off(active));
        Ok(())
    }

    async fn set_dnd(&self, active: bool) -> Result<(), String> {
        self.client
            .set_do_not_disturb(&self.user, &self.authorization, active)
            .await
            .map_err(|e| e.to_string())?;
        println!("dnd {}", on_off(active));
        Ok(())
    }

    async fn answer(&self, call: &str) -> Result<(), String> {
        self.client
            .answer(&self.user, &self.authorization, call)
            .await
            .map_err(|e| e.to_string())
    }

    async fn call(&self, address: &str) -> Result<(), String> {
        let call = self
            .client
            .dial(&self.user, &self.authorization, address)
            .await
            .map_err(|e| e.to_string())?;
        println!("call {call}");
        Ok(())
    }

    async fn release(&mut self, call: &str, decline: bool) -> Result<(), String> {
        self.client
            .release(&self.user, &self.authorization, call, decline)
            .await
            .map_err(|e| e.to_string())?;
        if self.ringing.as_deref() == Some(call) {
            self.ringing = None;
        }
        Ok(())
    }
}

/// The call named in `rest`, else `default`.
fn pick(rest: &[&str], default: Option<String>, what: &str) -> Result<String, String> {
    match rest {
        [call] => Ok((*call).to_owned()),
        [] => default.ok_or_else(|| format!("no call is {what}; name one")),
        _ => Err("give one call id".to_owned()),
    }
}

/// What `help` prints.
pub const HELP: &str = "\
dnd | dnd on | dnd off   show or set Do Not Disturb
call ADDRESS             place a call (a user, a number, a tel: or sip: URI)
answer [CALL]            answer CALL, or the call ringing last
decline [CALL]           refuse CALL, or the call ringing last
hangup [CALL]            release CALL, or the latest call
status                   the per-interface status
quit                     delete the channel and end";

fn on_off(active: bool) -> &'static str {
    if active {
        "on"
    } else {
        "off"
    }
}
