//! Typed random ids for objects. Each kind of object has its own type, so a
//! pack id can never be passed where a snapshot id is meant.

use rand::RngCore;

pub use cairn_chunker::{ChunkId, ParseIdError};

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        impl $name {
            /// A fresh id: 32 bytes from the OS-seeded CSPRNG.
            pub fn random() -> Self {
                let mut b = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut b);
                Self(b)
            }
            /// Wraps raw bytes.
            pub fn from_bytes(b: [u8; 32]) -> Self {
                Self(b)
            }
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            /// Lowercase hex, 64 digits: the form used in object names.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// The first 8 hex digits, for display.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
            /// Parses 64 hex digits.
            ///
            /// # Errors
            /// [`ParseIdError`] if `s` is not exactly 64 hex digits.
            pub fn from_hex(s: &str) -> Result<Self, ParseIdError> {
                let mut b = [0u8; 32];
                hex::decode_to_slice(s, &mut b).map_err(|_| ParseIdError(s.chars().take(80).collect()))?;
                Ok(Self(b))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex())
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s: std::borrow::Cow<'de, str> = serde::Deserialize::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

random_id!(
    /// A backup session (format §8).
    SessionId
);
random_id!(
    /// A pack file (format §5).
    PackId
);
random_id!(
    /// An index file (format §6).
    IndexId
);
random_id!(
    /// A snapshot (format §7).
    SnapshotId
);
random_id!(
    /// A key file (format §3).
    KeyId
);
random_id!(
    /// A collection's plan (format §10).
    PlanId
);
random_id!(
    /// An audit record (format §7.3).
    AuditId
);

/// Serde helpers for [`ChunkId`], which lives in the chunker crate and has no
/// serde of its own: ids are written as 64 hex digits.
pub(crate) mod chunk_hex {
    use super::ChunkId;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::borrow::Cow;

    pub(crate) fn serialize<S: Serializer>(id: &ChunkId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_hex())
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ChunkId, D::Error> {
        let s: Cow<'de, str> = Deserialize::deserialize(d)?;
        ChunkId::from_hex(&s).map_err(serde::de::Error::custom)
    }

    pub(crate) mod opt {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(
            id: &Option<ChunkId>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match id {
                Some(id) => s.serialize_some(&id.to_hex()),
                None => s.serialize_none(),
            }
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<ChunkId>, D::Error> {
            let s: Option<Cow<'de, str>> = Deserialize::deserialize(d)?;
            s.map(|s| ChunkId::from_hex(&s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }

    pub(crate) mod vec {
        use super::*;
        use serde::ser::SerializeSeq;
        pub(crate) fn serialize<S: Serializer>(
            ids: &Option<Vec<ChunkId>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match ids {
                None => s.serialize_none(),
                Some(ids) => {
                    let mut seq = s.serialize_seq(Some(ids.len()))?;
                    for id in ids {
                        seq.serialize_element(&id.to_hex())?;
                    }
                    seq.end()
                }
            }
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Vec<ChunkId>>, D::Error> {
            let v: Option<Vec<Cow<'de, str>>> = Deserialize::deserialize(d)?;
            v.map(|v| {
                v.iter()
                    .map(|s| ChunkId::from_hex(s).map_err(serde::de::Error::custom))
                    .collect()
            })
            .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_differ_and_round_trip() {
        let a = SnapshotId::random();
        assert_ne!(a, SnapshotId::random());
        assert_eq!(SnapshotId::from_hex(&a.to_hex()).ok(), Some(a));
        assert_eq!(a.short().len(), 8);
        let json = serde_json::to_string(&a).unwrap_or_default();
        assert_eq!(serde_json::from_str::<SnapshotId>(&json).ok(), Some(a));
        assert!(serde_json::from_str::<SnapshotId>("\"abc\"").is_err());
    }
}
