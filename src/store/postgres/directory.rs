//! Enterprises, groups, users and devices.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{constraint_error, PostgresStore};
use crate::credentials::PasswordVerifiers;
use crate::store::{DirectoryStore, StoreError};
use crate::telephony::{Device, Enterprise, Group, User};

const USER_COLUMNS: &str =
    "id, first_name, last_name, number, extension, enterprise_id, group_id, role, verifiers";

fn user_from_row(row: &Row) -> Result<User, StoreError> {
    let role: String = row.try_get("role")?;
    let verifiers: String = row.try_get("verifiers")?;
    Ok(User {
        id: row.try_get("id")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        number: row.try_get("number")?,
        extension: row.try_get("extension")?,
        enterprise_id: row.try_get("enterprise_id")?,
        group_id: row.try_get("group_id")?,
        role: role.parse()?,
        verifiers: serde_json::from_str(&verifiers)
            .map_err(|e| StoreError::Corrupt(format!("password verifiers: {e}")))?,
    })
}

fn verifiers_json(v: &PasswordVerifiers) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl PostgresStore {
    /// The users matching `condition` over `params`, ordered by id.
    async fn users_where(
        &self,
        condition: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {condition} ORDER BY id");
        self.client()
            .await?
            .query(&sql, params)
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }
}

#[async_trait]
impl DirectoryStore for PostgresStore {
    fn users_generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    async fn put_enterprise(&self, enterprise: &Enterprise) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO enterprises (id, name) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name",
                &[&enterprise.id, &enterprise.name],
            )
            .await?;
        Ok(())
    }

    async fn put_group(&self, group: &Group) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO groups (enterprise_id, id, name) VALUES ($1, $2, $3)
                 ON CONFLICT (enterprise_id, id) DO UPDATE SET name = excluded.name",
                &[&group.enterprise_id, &group.id, &group.name],
            )
            .await
            .map_err(|e| {
                constraint_error(
                    e,
                    || format!("group \"{}\"", group.id),
                    || format!("enterprise \"{}\"", group.enterprise_id),
                )
            })?;
        Ok(())
    }

    async fn enterprises(&self) -> Result<Vec<Enterprise>, StoreError> {
        let rows = self
            .client()
            .await?
            .query("SELECT id, name FROM enterprises ORDER BY id", &[])
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Enterprise {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                })
            })
            .collect()
    }

    async fn groups(&self) -> Result<Vec<Group>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT enterprise_id, id, name FROM groups ORDER BY enterprise_id, id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Group {
                    enterprise_id: r.try_get(0)?,
                    id: r.try_get(1)?,
                    name: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn add_user(&self, user: &User) -> Result<(), StoreError> {
        let u = user;
        let verifiers = verifiers_json(&u.verifiers)?;
        self.client()
            .await?
            .execute(
                "INSERT INTO users (id, first_name, last_name, number, extension, enterprise_id,
                                    group_id, role, verifiers)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &u.id,
                    &u.first_name,
                    &u.last_name,
                    &u.number,
                    &u.extension,
                    &u.enterprise_id,
                    &u.group_id,
                    &u.role.as_str(),
                    &verifiers,
                ],
            )
            .await
            .map_err(|e| {
                constraint_error(
                    e,
                    || format!("user \"{}\"", u.id),
                    || {
                        format!(
                            "group \"{}\" in enterprise \"{}\"",
                            u.group_id, u.enterprise_id
                        )
                    },
                )
            })?;
        self.users_changed_here();
        Ok(())
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .users_where("id = $1", &[&id])
            .await?
            .into_iter()
            .next())
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        self.users_where("TRUE", &[]).await
    }

    async fn users_by_number(&self, digits: &str) -> Result<Vec<User>, StoreError> {
        let plus = format!("+{digits}");
        self.users_where("number IN ($1, $2)", &[&digits, &plus])
            .await
    }

    async fn users_by_extension(&self, extension: &str) -> Result<Vec<User>, StoreError> {
        self.users_where("extension = $1", &[&extension]).await
    }

    async fn set_password(
        &self,
        id: &str,
        verifiers: &PasswordVerifiers,
    ) -> Result<bool, StoreError> {
        let json = verifiers_json(verifiers)?;
        let changed = self
            .client()
            .await?
            .execute(
                "UPDATE users SET verifiers = $2 WHERE id = $1",
                &[&id, &json],
            )
            .await?;
        self.users_changed_here();
        Ok(changed > 0)
    }

    async fn remove_user(&self, id: &str) -> Result<bool, StoreError> {
        let removed = self
            .client()
            .await?
            .execute("DELETE FROM users WHERE id = $1", &[&id])
            .await?;
        self.users_changed_here();
        Ok(removed > 0)
    }

    async fn devices(&self, user_id: &str) -> Result<Vec<Device>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT user_id, name, device_type, line_port FROM devices
                 WHERE user_id = $1 ORDER BY name",
                &[&user_id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Device {
                    user_id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    device_type: r.try_get(2)?,
                    line_port: r.try_get(3)?,
                })
            })
            .collect()
    }

    async fn add_device(&self, device: &Device) -> Result<(), StoreError> {
        let d = device;
        self.client()
            .await?
            .execute(
                "INSERT INTO devices (user_id, name, device_type, line_port)
                 VALUES ($1, $2, $3, $4)",
                &[&d.user_id, &d.name, &d.device_type, &d.line_port],
            )
            .await
            .map_err(|e| {
                constraint_error(
                    e,
                    || format!("device \"{}\"", d.name),
                    || format!("user \"{}\"", d.user_id),
                )
            })?;
        Ok(())
    }

    async fn remove_device(&self, user_id: &str, name: &str) -> Result<bool, StoreError> {
        let removed = self
            .client()
            .await?
            .execute(
                "DELETE FROM devices WHERE user_id = $1 AND name = $2",
                &[&user_id, &name],
            )
            .await?;
        Ok(removed > 0)
    }
}
