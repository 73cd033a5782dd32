//! The schema: migrations in order, each producing the version after it, applied in one
//! transaction under an advisory lock (so nodes starting together migrate once) and
//! recorded in `bridgehead_schema`; a newer database is refused.
//! The tables mirror SQLite's ([`crate::store::SqliteStore`]); `bridgehead_nocase` stands
//! for SQLite's `COLLATE NOCASE`.

use crate::store::StoreError;

/// The advisory lock key the migrations hold ("bhschema").
const MIGRATION_LOCK: i64 = 0x6268_7363_6865_6d61;

/// Schema migrations; index + 1 is the version each one produces.
const MIGRATIONS: &[&str] = &[
    // 1: everything SQLite has at its version 5, at once.
    "CREATE COLLATION bridgehead_nocase
         (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
     CREATE TABLE enterprises (
         id   TEXT PRIMARY KEY,
         name TEXT NOT NULL
     );
     CREATE TABLE groups (
         enterprise_id TEXT NOT NULL REFERENCES enterprises(id) ON DELETE CASCADE,
         id            TEXT NOT NULL,
         name          TEXT NOT NULL,
         PRIMARY KEY (enterprise_id, id)
     );
     CREATE TABLE users (
         id            TEXT COLLATE bridgehead_nocase PRIMARY KEY,
         first_name    TEXT NOT NULL,
         last_name     TEXT NOT NULL,
         number        TEXT,
         extension     TEXT,
         enterprise_id TEXT NOT NULL,
         group_id      TEXT NOT NULL,
         role          TEXT NOT NULL,
         verifiers     TEXT NOT NULL,
         FOREIGN KEY (enterprise_id, group_id) REFERENCES groups(enterprise_id, id)
     );
     CREATE INDEX users_number ON users (number);
     CREATE INDEX users_extension ON users (extension);
     CREATE TABLE components (
         name            TEXT COLLATE bridgehead_nocase PRIMARY KEY,
         secret          TEXT NOT NULL,
         max_connections BIGINT NOT NULL,
         on_conflict     TEXT NOT NULL,
         hold_secs       BIGINT NOT NULL
     );
     CREATE TABLE service_settings (
         user_id  TEXT COLLATE bridgehead_nocase NOT NULL
                  REFERENCES users(id) ON DELETE CASCADE,
         service  TEXT NOT NULL,
         settings TEXT NOT NULL,
         PRIMARY KEY (user_id, service)
     );
     CREATE TABLE devices (
         user_id     TEXT COLLATE bridgehead_nocase NOT NULL
                     REFERENCES users(id) ON DELETE CASCADE,
         name        TEXT NOT NULL,
         device_type TEXT NOT NULL,
         line_port   TEXT NOT NULL,
         PRIMARY KEY (user_id, name)
     );
     CREATE TABLE personal_contacts (
         user_id TEXT COLLATE bridgehead_nocase NOT NULL
                 REFERENCES users(id) ON DELETE CASCADE,
         name    TEXT NOT NULL,
         number  TEXT NOT NULL,
         PRIMARY KEY (user_id, name)
     );
     CREATE TABLE call_logs (
         id           BIGSERIAL PRIMARY KEY,
         user_id      TEXT COLLATE bridgehead_nocase NOT NULL
                      REFERENCES users(id) ON DELETE CASCADE,
         kind         TEXT NOT NULL,
         name         TEXT,
         number       TEXT NOT NULL,
         country_code TEXT,
         time         TEXT NOT NULL
     );
     CREATE INDEX call_logs_by_user ON call_logs (user_id, kind, id);
     CREATE TABLE subscriptions (
         id              TEXT PRIMARY KEY,
         owner           TEXT NOT NULL,
         owner_is_client BOOLEAN NOT NULL,
         target          TEXT NOT NULL,
         events          TEXT NOT NULL,
         channel_set_id  TEXT NOT NULL,
         application_id  TEXT,
         expires_at      BIGINT
     );
     CREATE TABLE roster_items (
         user_id      TEXT COLLATE bridgehead_nocase NOT NULL
                      REFERENCES users(id) ON DELETE CASCADE,
         jid          TEXT COLLATE bridgehead_nocase NOT NULL,
         name         TEXT,
         groups       TEXT NOT NULL,
         subscription TEXT NOT NULL,
         ask_out      BOOLEAN NOT NULL,
         pending_in   BOOLEAN NOT NULL,
         PRIMARY KEY (user_id, jid)
     );
     CREATE FUNCTION bridgehead_users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         PERFORM pg_notify('bridgehead_users', '');
         RETURN NULL;
     END $$;
     CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE ON users
         FOR EACH STATEMENT EXECUTE FUNCTION bridgehead_users_changed();
     CREATE FUNCTION bridgehead_settings_changed() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         PERFORM pg_notify('bridgehead_settings', lower(COALESCE(NEW.user_id, OLD.user_id)));
         RETURN NULL;
     END $$;
     CREATE TRIGGER settings_changed AFTER INSERT OR UPDATE OR DELETE ON service_settings
         FOR EACH ROW EXECUTE FUNCTION bridgehead_settings_changed();",
    // 2: where the live XMPP connections are (components and client sessions, per node),
    // and each node's lease on its own entries.
    "CREATE TABLE node_leases (
         node       TEXT PRIMARY KEY,
         expires_at TIMESTAMPTZ NOT NULL
     );
     CREATE TABLE xmpp_routes (
         node       TEXT NOT NULL,
         connection BIGINT NOT NULL,
         kind       TEXT NOT NULL,
         address    TEXT NOT NULL,
         resource   TEXT NOT NULL,
         priority   INTEGER NOT NULL,
         available  BOOLEAN NOT NULL,
         since      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
         PRIMARY KEY (node, connection)
     );
     CREATE INDEX xmpp_routes_address ON xmpp_routes (address);
     CREATE FUNCTION bridgehead_routes_changed() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         PERFORM pg_notify('bridgehead_routes', COALESCE(NEW.address, OLD.address));
         RETURN NULL;
     END $$;
     CREATE TRIGGER routes_changed AFTER INSERT OR UPDATE OR DELETE ON xmpp_routes
         FOR EACH ROW EXECUTE FUNCTION bridgehead_routes_changed();",
    // 3: the event channel sets' shared backlog: what each subscription's set has not
    // acknowledged yet, wherever the set is held.
    "CREATE TABLE set_events (
         seq             BIGSERIAL PRIMARY KEY,
         set_id          TEXT NOT NULL,
         subscription_id TEXT NOT NULL,
         event_id        TEXT NOT NULL,
         event           TEXT NOT NULL,
         queued_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
         UNIQUE (subscription_id, event_id)
     );
     CREATE INDEX set_events_set ON set_events (set_id, seq);
     CREATE INDEX set_events_age ON set_events (queued_at);",
    // 4: each set's next sequence number as of its last acknowledgement, so that a set
    // that moves to another node numbers on from there.
    "CREATE TABLE set_sequences (
         set_id        TEXT PRIMARY KEY,
         next_sequence BIGINT NOT NULL,
         updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
     );
     CREATE INDEX set_sequences_age ON set_sequences (updated_at);",
];

pub(super) async fn migrate(client: &mut deadpool_postgres::Client) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS bridgehead_schema (version BIGINT NOT NULL)")
        .await?;
    let version: i64 = tx
        .query_opt("SELECT version FROM bridgehead_schema", &[])
        .await?
        .map_or(0, |row| row.get(0));
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).await?;
        tracing::info!(version = index + 1, "store schema migrated");
    }
    if version < known {
        tx.execute("DELETE FROM bridgehead_schema", &[]).await?;
        tx.execute(
            "INSERT INTO bridgehead_schema (version) VALUES ($1)",
            &[&known],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
