//! Audit records (format §7.3): one event of the trail per object.

use crate::crypto::EncKey;
use crate::error::FormatError;
use crate::ids::{AuditId, SnapshotId};
use crate::names::ObjectName;
use crate::sealed::{open_json, seal_json, AUDIT};

/// Most snapshots one record names.
pub const MAX_AUDIT_SNAPSHOTS: usize = 10_000;
/// Longest `text`, in bytes.
pub const MAX_AUDIT_TEXT: usize = 4096;

/// One event: who did what, when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Always 1.
    pub version: u32,
    /// When the event ended, ns since the epoch.
    pub time_ns: i64,
    /// What happened (`backup`, `forget`, `prune`, `key-add`, `key-remove`,
    /// `copy`, `restore`, `drill`; others are kept as they are).
    pub event: String,
    /// The writer's host.
    pub hostname: String,
    /// The writer's user.
    pub username: String,
    /// `<namespace>/<pod>` of the writer's pod, in Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The snapshots the event concerns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SnapshotId>,
    /// What changed, in words.
    pub text: String,
}

impl AuditRecord {
    /// Encrypts as `audit/<id>`.
    pub fn seal(&self, enc: &EncKey, id: AuditId) -> Vec<u8> {
        seal_json(enc, AUDIT, &ObjectName::Audit(id).path(), self)
    }

    /// Decrypts and decodes `audit/<id>`.
    ///
    /// # Errors
    /// [`FormatError`] if it fails authentication or is not a valid record.
    pub fn open(enc: &EncKey, id: AuditId, data: &[u8]) -> Result<Self, FormatError> {
        let r: AuditRecord = open_json(enc, AUDIT, &ObjectName::Audit(id).path(), data)?;
        FormatError::check_version("audit record", r.version, 1u32)?;
        if r.event.is_empty()
            || r.text.len() > MAX_AUDIT_TEXT
            || r.snapshots.len() > MAX_AUDIT_SNAPSHOTS
        {
            return Err(FormatError::invalid("audit record", "invalid fields"));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn records_round_trip_and_are_bound_to_their_name() -> Result<(), FormatError> {
        let enc = MasterKey::generate().derive().enc;
        let r = AuditRecord {
            version: 1,
            time_ns: 5,
            event: "forget".into(),
            hostname: "node-a".into(),
            username: "root".into(),
            pod: Some("shop/agent-1".into()),
            snapshots: vec![SnapshotId::random()],
            text: "forgot 1 snapshot(s)".into(),
        };
        let id = AuditId::random();
        let sealed = r.seal(&enc, id);
        assert_eq!(AuditRecord::open(&enc, id, &sealed)?, r);
        // Moved to another name, it fails authentication.
        assert!(AuditRecord::open(&enc, AuditId::random(), &sealed).is_err());
        let long = AuditRecord {
            text: "x".repeat(MAX_AUDIT_TEXT + 1),
            ..r
        };
        assert!(AuditRecord::open(&enc, id, &long.seal(&enc, id)).is_err());
        Ok(())
    }
}
