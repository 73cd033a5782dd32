//! `bridgehead component add|list|remove`: XEP-0114 components in the store.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use clap::Subcommand;
use serde::Serialize;

use super::{read_first_line, usage, ConfigArgs};
use crate::embedded::random_secret;
use crate::telephony::ComponentRecord;
use crate::telephony::OnConflict;

/// `component` subcommands.
#[derive(Debug, Subcommand)]
pub enum ComponentCommand {
    /// Add a component; without a secret option a random secret is generated and printed.
    Add {
        /// The component's domain, e.g. bridge1.example.com.
        name: String,
        /// Read the secret from the first line of this file.
        #[arg(long, conflicts_with = "secret_stdin")]
        secret_file: Option<PathBuf>,
        /// Read the secret from the first line of standard input.
        #[arg(long)]
        secret_stdin: bool,
        /// Live connections allowed under this name [default: 2 with `--on-conflict
        /// balance`, else 1].
        #[arg(long)]
        max_connections: Option<u32>,
        /// Policy when a second connection arrives.
        #[arg(long, value_enum, default_value_t = OnConflict::Replace)]
        on_conflict: OnConflict,
        /// Seconds to hold stanzas for the component after it drops.
        #[arg(long, default_value_t = 0)]
        hold_secs: u64,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List components from the config file and the store.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Remove a component from the store.
    Remove {
        /// The component's domain.
        name: String,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Serialize)]
struct ComponentRow<'a> {
    name: &'a str,
    source: &'static str,
    max_connections: u32,
    on_conflict: OnConflict,
    hold_secs: u64,
}

pub(super) async fn component_command(command: ComponentCommand) -> anyhow::Result<u8> {
    match command {
        ComponentCommand::Add {
            name,
            secret_file,
            secret_stdin,
            max_connections,
            on_conflict,
            hold_secs,
            config,
        } => {
            let (config, store) = config.open_store().await?;
            crate::config::check_domain(&name)
                .map_err(|why| usage(format!("component name: {why}")))?;
            if config
                .components
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(&name))
            {
                bail!("component {name} is declared in the configuration file; change it there");
            }
            let domain = &config.server.domain;
            let suffix = format!(".{domain}");
            if !name
                .to_ascii_lowercase()
                .ends_with(&suffix.to_ascii_lowercase())
            {
                eprintln!(
                    "warning: {name} is not under the server's domain {domain}: clients route \
                     to a component by its name, and a name outside the domain needs its own \
                     DNS and certificates (usually it is bridge.{domain})"
                );
            }
            let max_connections = max_connections.unwrap_or(match on_conflict {
                OnConflict::Balance => 2,
                _ => 1,
            });
            if on_conflict == OnConflict::Balance && max_connections < 2 {
                return Err(usage(
                    "--on-conflict balance needs --max-connections 2 or more",
                ));
            }
            let generated = secret_file.is_none() && !secret_stdin;
            let secret = if generated {
                random_secret()
            } else {
                read_first_line(secret_file.as_deref(), secret_stdin, "secret")?
            };
            store
                .add_component(&ComponentRecord {
                    name: name.clone(),
                    secret: secret.clone(),
                    max_connections,
                    on_conflict,
                    hold_secs,
                })
                .await?;
            println!("added component {name}");
            if generated {
                println!("secret: {secret}");
            }
            Ok(0)
        }
        ComponentCommand::List { json, config } => {
            let (config, store) = config.open_store().await?;
            let stored = store.components().await?;
            let mut rows: Vec<ComponentRow<'_>> = config
                .components
                .iter()
                .map(|c| ComponentRow {
                    name: &c.name,
                    source: "config",
                    max_connections: c.max_connections,
                    on_conflict: c.on_conflict,
                    hold_secs: c.hold_secs,
                })
                .collect();
            rows.extend(stored.iter().map(|c| ComponentRow {
                name: &c.name,
                source: "store",
                max_connections: c.max_connections,
                on_conflict: c.on_conflict,
                hold_secs: c.hold_secs,
            }));
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "{:<40} {:<7} {:>5} {:<8} HOLD",
                    "NAME", "SOURCE", "CONNS", "CONFLICT"
                )?;
                for r in rows {
                    writeln!(
                        out,
                        "{:<40} {:<7} {:>5} {:<8} {}s",
                        r.name,
                        r.source,
                        r.max_connections,
                        r.on_conflict.as_str(),
                        r.hold_secs
                    )?;
                }
            }
            Ok(0)
        }
        ComponentCommand::Remove { name, config } => {
            let (config, store) = config.open_store().await?;
            if !store.remove_component(&name).await? {
                if config
                    .components
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case(&name))
                {
                    return Err(anyhow!(
                        "component {name} is declared in the configuration file; remove it there"
                    ));
                }
                bail!("no component {name}");
            }
            println!("removed component {name}");
            Ok(0)
        }
    }
}
