//! `bridgehead device add|list|remove`: a user's devices in the store.

use std::io::Write;

use anyhow::bail;
use clap::Subcommand;

use super::ConfigArgs;

/// `device` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Add a device to a user.
    Add {
        /// The user id, `user@domain`.
        user: String,
        /// Device name, unique per user (e.g. alice-pc).
        name: String,
        /// Device type.
        #[arg(long = "type", default_value = "Business Communicator - PC")]
        device_type: String,
        /// Line/port (SIP address of record). Default: `<name>@<user's domain>`.
        #[arg(long)]
        line_port: Option<String>,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List a user's devices.
    List {
        /// The user id.
        user: String,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Remove a device from a user.
    Remove {
        /// The user id.
        user: String,
        /// Device name.
        name: String,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
}

pub(super) async fn device_command(command: DeviceCommand) -> anyhow::Result<u8> {
    match command {
        DeviceCommand::Add {
            user,
            name,
            device_type,
            line_port,
            config,
        } => {
            let (_, store) = config.open_store().await?;
            let domain = user.rsplit_once('@').map_or("", |(_, d)| d);
            let line_port = line_port.unwrap_or_else(|| format!("{name}@{domain}"));
            store
                .add_device(&crate::telephony::Device {
                    user_id: user.clone(),
                    name: name.clone(),
                    device_type,
                    line_port,
                })
                .await?;
            println!("added device {name} to {user}");
            Ok(0)
        }
        DeviceCommand::List { user, json, config } => {
            let (_, store) = config.open_store().await?;
            if json {
                let devices = store.devices(&user).await?;
                println!("{}", serde_json::to_string_pretty(&devices)?);
                return Ok(0);
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "{:<24} {:<32} LINE/PORT", "NAME", "TYPE")?;
            for d in store.devices(&user).await? {
                writeln!(out, "{:<24} {:<32} {}", d.name, d.device_type, d.line_port)?;
            }
            Ok(0)
        }
        DeviceCommand::Remove { user, name, config } => {
            let (_, store) = config.open_store().await?;
            if !store.remove_device(&user, &name).await? {
                bail!("{user} has no device {name}");
            }
            println!("removed device {name} from {user}");
            Ok(0)
        }
    }
}
