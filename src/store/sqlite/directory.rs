//! Enterprises, groups, users and devices.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::rows::{is_constraint, user_from_row, user_row_error, verifiers_json};
use super::{BumpAfter, SqliteStore};
use crate::credentials::PasswordVerifiers;
use crate::store::{DirectoryStore, StoreError};
use crate::telephony::{Device, Enterprise, Group, User};

impl SqliteStore {
    /// The users matching the SQL condition `condition` over `params`, ordered by id.
    async fn users_where(
        &self,
        condition: &'static str,
        params: Vec<String>,
    ) -> Result<Vec<User>, StoreError> {
        self.with(move |c| {
            let sql = format!("SELECT * FROM users WHERE {condition} ORDER BY id");
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
            let mut users = Vec::new();
            while let Some(row) = rows.next()? {
                users.push(user_from_row(row)?);
            }
            Ok(users)
        })
        .await
    }
}

#[async_trait]
impl DirectoryStore for SqliteStore {
    fn users_generation(&self) -> u64 {
        self.check_external_changes();
        self.changes.local.load(Ordering::Acquire) + self.changes.external.load(Ordering::Acquire)
    }

    async fn put_enterprise(&self, enterprise: &Enterprise) -> Result<(), StoreError> {
        let e = enterprise.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO enterprises (id, name) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name",
                params![e.id, e.name],
            )?;
            Ok(())
        })
        .await
    }

    async fn put_group(&self, group: &Group) -> Result<(), StoreError> {
        let g = group.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO groups (enterprise_id, id, name) VALUES (?1, ?2, ?3)
                 ON CONFLICT (enterprise_id, id) DO UPDATE SET name = excluded.name",
                params![g.enterprise_id, g.id, g.name],
            )
            .map_err(|e| match is_constraint(&e) {
                Some(_) => StoreError::Missing(format!("enterprise \"{}\"", g.enterprise_id)),
                None => e.into(),
            })?;
            Ok(())
        })
        .await
    }

    async fn enterprises(&self) -> Result<Vec<Enterprise>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT id, name FROM enterprises ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok(Enterprise {
                    id: r.get(0)?,
                    name: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn groups(&self) -> Result<Vec<Group>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT enterprise_id, id, name FROM groups ORDER BY enterprise_id, id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Group {
                    enterprise_id: r.get(0)?,
                    id: r.get(1)?,
                    name: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn add_user(&self, user: &User) -> Result<(), StoreError> {
        let u = user.clone();
        let _bump = BumpAfter(self);
        self.with(move |c| {
            let exists: Option<String> = c
                .query_row("SELECT id FROM users WHERE id = ?1", [&u.id], |r| r.get(0))
                .optional()?;
            if exists.is_some() {
                return Err(StoreError::Exists(format!("user \"{}\"", u.id)));
            }
            c.execute(
                "INSERT INTO users (id, first_name, last_name, number, extension, enterprise_id,
                                    group_id, role, verifiers)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    u.id,
                    u.first_name,
                    u.last_name,
                    u.number,
                    u.extension,
                    u.enterprise_id,
                    u.group_id,
                    u.role.as_str(),
                    verifiers_json(&u.verifiers)?
                ],
            )
            .map_err(|e| match is_constraint(&e) {
                Some(_) => StoreError::Missing(format!(
                    "group \"{}\" in enterprise \"{}\"",
                    u.group_id, u.enterprise_id
                )),
                None => e.into(),
            })?;
            Ok(())
        })
        .await
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let id = id.to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare_cached("SELECT * FROM users WHERE id = ?1")?;
            let mut rows = stmt.query([id])?;
            match rows.next()? {
                Some(row) => Ok(Some(user_from_row(row)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        self.users_where("1", Vec::new()).await
    }

    async fn users_by_number(&self, digits: &str) -> Result<Vec<User>, StoreError> {
        let forms = vec![digits.to_owned(), format!("+{digits}")];
        self.users_where("number IN (?1, ?2)", forms).await
    }

    async fn users_by_extension(&self, extension: &str) -> Result<Vec<User>, StoreError> {
        self.users_where("extension = ?1", vec![extension.to_owned()])
            .await
    }

    async fn set_password(
        &self,
        id: &str,
        verifiers: &PasswordVerifiers,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let json = verifiers_json(verifiers)?;
        let _bump = BumpAfter(self);
        self.with(move |c| {
            Ok(c.execute(
                "UPDATE users SET verifiers = ?2 WHERE id = ?1",
                params![id, json],
            )? > 0)
        })
        .await
    }

    async fn remove_user(&self, id: &str) -> Result<bool, StoreError> {
        let _bump = BumpAfter(self);
        let id = id.to_owned();
        self.with(move |c| Ok(c.execute("DELETE FROM users WHERE id = ?1", [id])? > 0))
            .await
    }

    async fn devices(&self, user_id: &str) -> Result<Vec<Device>, StoreError> {
        let user_id = user_id.to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT user_id, name, device_type, line_port FROM devices
                 WHERE user_id = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map([user_id], |r| {
                Ok(Device {
                    user_id: r.get(0)?,
                    name: r.get(1)?,
                    device_type: r.get(2)?,
                    line_port: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn add_device(&self, device: &Device) -> Result<(), StoreError> {
        let d = device.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO devices (user_id, name, device_type, line_port)
                 VALUES (?1, ?2, ?3, ?4)",
                params![d.user_id, d.name, d.device_type, d.line_port],
            )
            .map_err(|e| user_row_error(e, &d.user_id, || format!("device \"{}\"", d.name)))?;
            Ok(())
        })
        .await
    }

    async fn remove_device(&self, user_id: &str, name: &str) -> Result<bool, StoreError> {
        let (user_id, name) = (user_id.to_owned(), name.to_owned());
        self.with(move |c| {
            Ok(c.execute(
                "DELETE FROM devices WHERE user_id = ?1 AND name = ?2",
                params![user_id, name],
            )? > 0)
        })
        .await
    }
}
