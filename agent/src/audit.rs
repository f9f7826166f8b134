//! The audit trail (format §7.3): a create-only record in the repository
//! for each completed backup, forget, prune, key change, copy, restore and
//! drill, naming who did it (host, user, Kubernetes pod) and what changed.

use crate::backend::PutMode;
use crate::error::Result;
use crate::repo::Repository;
use crate::util;
use bytes::Bytes;
use cairn_repo_format::{
    AuditId, AuditRecord, ObjectKind, ObjectName, SnapshotId, MAX_AUDIT_SNAPSHOTS, MAX_AUDIT_TEXT,
};
use futures::{StreamExt, TryStreamExt};

/// Records reads in flight while listing the trail.
const READS: usize = 16;

/// The writer's pod, `<namespace>/<pod>`, from the environment the chart's
/// manifests give (`POD_NAMESPACE`, `POD_NAME`, by the downward API).
fn pod() -> Option<String> {
    let name = util::env_set("POD_NAME")?;
    let ns = util::env_set("POD_NAMESPACE").unwrap_or_default();
    Some(format!(
        "{}/{}",
        ns.to_string_lossy(),
        name.to_string_lossy()
    ))
}

/// Writes the record of an event, unless the repository was opened with
/// the trail off (`--no-audit`). A record that cannot be written is
/// reported and does not fail the operation it records.
pub async fn record(repo: &Repository, event: &str, snapshots: &[SnapshotId], text: String) {
    if !repo.audits() {
        return;
    }
    let mut text = text;
    if text.len() > MAX_AUDIT_TEXT {
        let mut end = MAX_AUDIT_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    let r = AuditRecord {
        version: 1,
        time_ns: util::now_ns(),
        event: event.to_owned(),
        hostname: util::host(),
        username: util::username(),
        pod: pod(),
        snapshots: snapshots
            .iter()
            .take(MAX_AUDIT_SNAPSHOTS)
            .copied()
            .collect(),
        text,
    };
    let id = AuditId::random();
    let sealed = Bytes::from(r.seal(&repo.keys.enc, id));
    if let Err(e) = repo
        .backend
        .put(&ObjectName::Audit(id), sealed, PutMode::Create)
        .await
    {
        tracing::warn!("the {event} is done, but its audit record could not be written ({e}); with credentials that may only read, pass --no-audit");
    }
}

/// Every record of the trail, oldest first.
///
/// # Errors
/// Storage failures; a record that fails authentication
/// ([`crate::Error::Corrupt`]).
pub async fn list(repo: &Repository) -> Result<Vec<(AuditId, AuditRecord)>> {
    let names = repo.backend.list(ObjectKind::Audit).await?;
    let mut records: Vec<(AuditId, AuditRecord)> = futures::stream::iter(names)
        .filter_map(|n| async move {
            match n {
                ObjectName::Audit(id) => Some(id),
                _ => None,
            }
        })
        .map(|id| async move {
            let data = repo.backend.get(&ObjectName::Audit(id)).await?;
            let r = AuditRecord::open(&repo.keys.enc, id, &data)
                .map_err(|e| crate::Error::Corrupt(format!("audit/{}: {e}", id.to_hex())))?;
            Ok::<_, crate::Error>((id, r))
        })
        .buffer_unordered(READS)
        .try_collect()
        .await?;
    records.sort_by_key(|a| (a.1.time_ns, a.0));
    Ok(records)
}
