//! DDL notifications from PostgreSQL for `dk drift --watch`.
//!
//! [`DdlWatch::install`] creates, in one transaction, a function `dk_watch.notify_<id>()` and two
//! event triggers (`ddl_command_end` and `sql_drop`) that `pg_notify` a channel private to this
//! watcher with `{tag, object, schema}` for every DDL command, then `LISTEN`s on it over a dedicated
//! connection. [`DdlWatch::remove`] drops both triggers and the function (and the `dk_watch`
//! schema when no other watcher uses it). Event triggers need a superuser (PostgreSQL's rule): when
//! the role may not create them, `install` fails with [`ProviderError::Database`] and the caller
//! falls back to polling. A watcher killed with `kill -9` leaves its triggers behind; they only
//! send notifications nobody listens to, and `dk drift --watch` removes such leftovers (triggers
//! whose channel has no listener) when it starts.

use std::time::{SystemTime, UNIX_EPOCH};

use dk_env::ResolvedStore;
use futures_util::{stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client};

use super::{connect_message, describe, error_text, settings_for};
use crate::{ProviderError, Result};

/// One DDL command reported by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DdlEvent {
    /// `ALTER TABLE`, `DROP TABLE`, …
    pub tag: String,
    /// The object's identity (`public.orders`, `public.orders.amount`).
    pub object: Option<String>,
    pub schema: Option<String>,
}

/// A live watch: triggers installed and a connection listening.
pub struct DdlWatch {
    store: String,
    client: Client,
    id: String,
    events: mpsc::Receiver<DdlEvent>,
}

const SCHEMA: &str = "dk_watch";

impl DdlWatch {
    /// Installs the event triggers and starts listening.
    pub async fn install(store: &ResolvedStore) -> Result<DdlWatch> {
        let (config, connector) = settings_for(store)?;
        let target = describe(&config);
        let (client, mut connection) =
            connector
                .connect_raw(&config)
                .await
                .map_err(|e| ProviderError::Connect {
                    store: store.name.clone(),
                    message: connect_message(
                        &format!("{target}, sslmode={}", connector.mode()),
                        &e,
                    ),
                })?;
        let (tx, events) = mpsc::channel(1024);
        tokio::spawn(async move {
            let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(m)) = messages.next().await {
                if let AsyncMessage::Notification(n) = m {
                    let event = serde_json::from_str(n.payload()).unwrap_or(DdlEvent {
                        tag: n.payload().to_string(),
                        object: None,
                        schema: None,
                    });
                    if tx.send(event).await.is_err() {
                        break;
                    }
                }
            }
        });
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let id = format!("{}_{:x}", std::process::id(), nanos % 0xffff_ffff);
        let watch = DdlWatch {
            store: store.name.clone(),
            client,
            id,
            events,
        };
        watch.remove_orphans().await?;
        let channel = watch.channel();
        let install = format!(
            "BEGIN;
             CREATE SCHEMA IF NOT EXISTS {SCHEMA};
             CREATE FUNCTION {SCHEMA}.notify_{id}() RETURNS event_trigger LANGUAGE plpgsql AS $dk$
             DECLARE r record;
             BEGIN
               IF TG_EVENT = 'sql_drop' THEN
                 FOR r IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
                   IF r.original THEN
                     PERFORM pg_notify('{channel}', json_build_object('tag', TG_TAG,
                       'object', r.object_identity, 'schema', r.schema_name)::text);
                   END IF;
                 END LOOP;
               ELSE
                 FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
                   PERFORM pg_notify('{channel}', json_build_object('tag', r.command_tag,
                     'object', r.object_identity, 'schema', r.schema_name)::text);
                 END LOOP;
               END IF;
             END $dk$;
             CREATE EVENT TRIGGER {channel}_end ON ddl_command_end EXECUTE FUNCTION {SCHEMA}.notify_{id}();
             CREATE EVENT TRIGGER {channel}_drop ON sql_drop EXECUTE FUNCTION {SCHEMA}.notify_{id}();
             COMMIT;
             LISTEN {channel};",
            id = watch.id,
        );
        if let Err(e) = watch.client.batch_execute(&install).await {
            let _ = watch.client.batch_execute("ROLLBACK").await;
            return Err(watch.db_err("install the DDL event triggers", &e));
        }
        Ok(watch)
    }

    fn channel(&self) -> String {
        format!("dk_watch_{}", self.id)
    }

    fn db_err(&self, context: &str, e: &tokio_postgres::Error) -> ProviderError {
        ProviderError::Database {
            store: self.store.clone(),
            context: context.to_string(),
            message: error_text(e),
        }
    }

    /// The next DDL event (`None` when the connection closed).
    pub async fn next(&mut self) -> Option<DdlEvent> {
        self.events.recv().await
    }

    /// Every event already received, without waiting.
    pub fn drain(&mut self) -> Vec<DdlEvent> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }

    /// Drops this watcher's triggers and function (and the schema when it is empty).
    pub async fn remove(self) -> Result<()> {
        let sql = format!(
            "DROP EVENT TRIGGER IF EXISTS {channel}_end;
             DROP EVENT TRIGGER IF EXISTS {channel}_drop;
             DROP FUNCTION IF EXISTS {SCHEMA}.notify_{id}();",
            channel = self.channel(),
            id = self.id
        );
        self.client
            .batch_execute(&sql)
            .await
            .map_err(|e| self.db_err("remove the DDL event triggers", &e))?;
        self.drop_schema_if_empty().await;
        Ok(())
    }

    async fn drop_schema_if_empty(&self) {
        // RESTRICT: fails (harmlessly) while another watcher's function is there.
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} RESTRICT"))
            .await;
    }

    /// Removes triggers of watchers that are gone (their channel has no listener).
    async fn remove_orphans(&self) -> Result<()> {
        let rows = self
            .client
            .query(
                "SELECT t.evtname::text, p.proname::text FROM pg_catalog.pg_event_trigger t \
                 JOIN pg_catalog.pg_proc p ON p.oid = t.evtfoid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                 WHERE n.nspname = $1 \
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a \
                       WHERE a.pid <> pg_catalog.pg_backend_pid() AND position( \
                         'LISTEN ' || regexp_replace(t.evtname, '_(end|drop)$', '') || ';' \
                         IN a.query) > 0)",
                &[&SCHEMA],
            )
            .await
            .map_err(|e| self.db_err("look for leftover DDL event triggers", &e))?;
        for r in rows {
            let trigger: String = r.get(0);
            let function: String = r.get(1);
            let _ = self
                .client
                .batch_execute(&format!(
                    "DROP EVENT TRIGGER IF EXISTS {}; DROP FUNCTION IF EXISTS {SCHEMA}.{}()",
                    crate::quote_ident(&trigger),
                    crate::quote_ident(&function)
                ))
                .await;
        }
        Ok(())
    }
}
