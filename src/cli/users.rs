//! `bridgehead user add|passwd|list|remove`: users in the store; adding one creates its
//! enterprise and group when they are new.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{read_first_line, usage, ConfigArgs};
use crate::credentials::PasswordVerifiers;
use crate::telephony::{Role, User};

/// How a password is given.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of this file.
    #[arg(long, conflicts_with = "password_stdin")]
    pub password_file: Option<PathBuf>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

impl PasswordArgs {
    /// Reads the password and makes its verifiers at `iterations`.
    fn verifiers(&self, iterations: u32) -> anyhow::Result<PasswordVerifiers> {
        let secret = read_first_line(
            self.password_file.as_deref(),
            self.password_stdin,
            "password",
        )?;
        Ok(PasswordVerifiers::new(&secret, iterations)?)
    }
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (its enterprise and group are created if missing).
    Add {
        /// The user id, `user@domain`.
        id: String,
        /// First name.
        #[arg(long, default_value = "")]
        first_name: String,
        /// Last name.
        #[arg(long, default_value = "")]
        last_name: String,
        /// Phone number.
        #[arg(long)]
        number: Option<String>,
        /// Extension.
        #[arg(long)]
        extension: Option<String>,
        /// Enterprise id.
        #[arg(long, default_value = "default")]
        enterprise: String,
        /// Group id within the enterprise.
        #[arg(long, default_value = "default")]
        group: String,
        /// Role.
        #[arg(long, value_enum, default_value_t = Role::User)]
        role: Role,
        /// How the password is given.
        #[command(flatten)]
        password: PasswordArgs,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Set a user's password.
    Passwd {
        /// The user id.
        id: String,
        /// How the password is given.
        #[command(flatten)]
        password: PasswordArgs,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List users.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Remove a user.
    Remove {
        /// The user id.
        id: String,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Serialize)]
struct UserRow<'a> {
    id: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    number: Option<&'a str>,
    extension: Option<&'a str>,
    enterprise: &'a str,
    group: &'a str,
    role: Role,
}

pub(super) async fn user_command(command: UserCommand) -> anyhow::Result<u8> {
    match command {
        UserCommand::Add {
            id,
            first_name,
            last_name,
            number,
            extension,
            enterprise,
            group,
            role,
            password,
            config,
        } => {
            let (config, store) = config.open_store().await?;
            check_user_id(&id, &config.server.domain)?;
            if store.user(&id).await?.is_some() {
                bail!("user {id} already exists");
            }
            let verifiers = password.verifiers(config.store.scram_iterations)?;
            // The model creates the user's enterprise and group when they are new.
            let telephony = crate::telephony::Telephony::new(
                store,
                crate::telephony::EventBus::new(1),
                config.quotas.clone(),
            );
            telephony
                .add_user(&User {
                    id: id.clone(),
                    first_name,
                    last_name,
                    number,
                    extension,
                    enterprise_id: enterprise,
                    group_id: group,
                    role,
                    verifiers,
                })
                .await?;
            println!("added user {id}");
            Ok(0)
        }
        UserCommand::Passwd {
            id,
            password,
            config,
        } => {
            let (config, store) = config.open_store().await?;
            if store.user(&id).await?.is_none() {
                bail!("no user {id}");
            }
            let verifiers = password.verifiers(config.store.scram_iterations)?;
            store.set_password(&id, &verifiers).await?;
            println!("password of {id} changed");
            Ok(0)
        }
        UserCommand::List { json, config } => {
            let (_, store) = config.open_store().await?;
            let users = store.users().await?;
            let rows: Vec<UserRow<'_>> = users
                .iter()
                .map(|u| UserRow {
                    id: &u.id,
                    first_name: &u.first_name,
                    last_name: &u.last_name,
                    number: u.number.as_deref(),
                    extension: u.extension.as_deref(),
                    enterprise: &u.enterprise_id,
                    group: &u.group_id,
                    role: u.role,
                })
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "{:<32} {:<24} {:<8} {:<24} ROLE",
                    "ID", "NAME", "EXT", "GROUP"
                )?;
                for r in rows {
                    writeln!(
                        out,
                        "{:<32} {:<24} {:<8} {:<24} {}",
                        r.id,
                        format!("{} {}", r.first_name, r.last_name).trim(),
                        r.extension.unwrap_or("-"),
                        format!("{}/{}", r.enterprise, r.group),
                        r.role
                    )?;
                }
            }
            Ok(0)
        }
        UserCommand::Remove { id, config } => {
            let (_, store) = config.open_store().await?;
            if !store.remove_user(&id).await? {
                bail!("no user {id}");
            }
            println!("removed user {id}");
            Ok(0)
        }
    }
}

fn check_user_id(id: &str, default_domain: &str) -> anyhow::Result<()> {
    let Some((local, domain)) = id.split_once('@') else {
        return Err(usage(format!(
            "a user id is user@domain (for example {id}@{default_domain})"
        )));
    };
    if local.is_empty() || local.contains(['/', ' ', '"', '&', '\'', ':', '<', '>', '@']) {
        return Err(usage(format!("\"{local}\" is not a valid user name")));
    }
    crate::config::check_domain(domain).map_err(|why| usage(format!("domain of {id}: {why}")))?;
    if !domain.eq_ignore_ascii_case(default_domain) {
        eprintln!(
            "warning: {domain} is not the server's domain ({default_domain}, server.domain): \
             {id} can use XSI, but XMPP logins are only for users of {default_domain}"
        );
    }
    Ok(())
}
