//! The repository config (format §4).

use crate::crypto::{EncKey, MasterKey, RepoKeys};
use crate::error::FormatError;
use crate::names::ObjectName;
use crate::sealed::{self, CONFIG};
use cairn_chunker::{ChunkerParams, GearKey, IdKey};
use rand::RngCore;

/// The only chunking algorithm of format v1.
pub const CHUNKER_ALGORITHM: &str = "fastcdc-2020-keyed-gear";
/// Default target size of a pack's blob region (see `docs/format.md` §4).
pub const DEFAULT_PACK_SIZE: u32 = 32 << 20;
/// Default zstd level.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// Repository parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// 16 random bytes naming the repository (for caches).
    pub repository_id: [u8; 16],
    /// Chunker parameters; never change after init.
    pub chunker: ChunkerParams,
    /// zstd level for new blobs.
    pub zstd_level: i32,
    /// Target size of a pack's blob region.
    pub pack_size: u32,
    /// Another repository's chunking keys, when this one chunks and
    /// identifies blobs as that one does (format §4).
    pub chunking_keys: Option<ChunkingKeys>,
}

/// `K_id` and `K_gear` of another repository (format §4), so that blob
/// ids and cut points are the same in both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkingKeys {
    /// The repository they come from.
    pub from: [u8; 16],
    /// Its `K_id`.
    pub id: IdKey,
    /// Its `K_gear`.
    pub gear: GearKey,
}

impl ChunkingKeys {
    /// The chunking keys of a repository opened with `keys`, whose id is
    /// `repository_id`: its own, or those it shares itself.
    pub fn of(repository_id: [u8; 16], config: &Config, keys: &RepoKeys) -> Self {
        config.chunking_keys.clone().unwrap_or_else(|| Self {
            from: repository_id,
            id: keys.id.clone(),
            gear: keys.gear.clone(),
        })
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Json {
    repository_id: String,
    chunker: ChunkerJson,
    compression: CompressionJson,
    pack_size: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunking_keys: Option<ChunkingKeysJson>,
}
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunkingKeysJson {
    from: String,
    id: String,
    gear: String,
}
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunkerJson {
    algorithm: String,
    min_size: u32,
    avg_size: u32,
    max_size: u32,
    normalization: u8,
}
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CompressionJson {
    algorithm: String,
    level: i32,
}

impl Config {
    /// A new config with a random repository id.
    ///
    /// # Errors
    /// [`FormatError::OutOfRange`] if the zstd level or pack size are out of range.
    pub fn new(
        chunker: ChunkerParams,
        zstd_level: i32,
        pack_size: u32,
    ) -> Result<Self, FormatError> {
        let mut repository_id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut repository_id);
        let c = Config {
            repository_id,
            chunker,
            zstd_level,
            pack_size,
            chunking_keys: None,
        };
        c.check()?;
        Ok(c)
    }

    /// The working keys of this repository, whose master key is `master`:
    /// derived from it, but for `K_id` and `K_gear` when the config
    /// carries another repository's (format §2, §4).
    pub fn keys(&self, master: &MasterKey) -> RepoKeys {
        let mut keys = master.derive();
        if let Some(shared) = &self.chunking_keys {
            keys.id = shared.id.clone();
            keys.gear = shared.gear.clone();
        }
        keys
    }

    fn check(&self) -> Result<(), FormatError> {
        if !(-7..=22).contains(&self.zstd_level) {
            return Err(FormatError::range(
                "config",
                "compression.level",
                self.zstd_level.unsigned_abs().into(),
            ));
        }
        if !((1 << 20)..=(1 << 30)).contains(&self.pack_size) {
            return Err(FormatError::range(
                "config",
                "pack_size",
                self.pack_size.into(),
            ));
        }
        Ok(())
    }

    /// The repository id as 32 hex digits.
    pub fn repository_id_hex(&self) -> String {
        hex::encode(self.repository_id)
    }

    /// Encrypts the config object.
    pub fn seal(&self, enc: &EncKey) -> Vec<u8> {
        let j = Json {
            repository_id: self.repository_id_hex(),
            chunker: ChunkerJson {
                algorithm: CHUNKER_ALGORITHM.into(),
                min_size: self.chunker.min_size(),
                avg_size: self.chunker.avg_size(),
                max_size: self.chunker.max_size(),
                normalization: self.chunker.normalization(),
            },
            compression: CompressionJson {
                algorithm: "zstd".into(),
                level: self.zstd_level,
            },
            pack_size: self.pack_size,
            chunking_keys: self.chunking_keys.as_ref().map(|k| ChunkingKeysJson {
                from: hex::encode(k.from),
                id: hex::encode(k.id.expose_secret()),
                gear: hex::encode(k.gear.expose_secret()),
            }),
        };
        let bytes =
            serde_json::to_vec(&j).unwrap_or_else(|e| unreachable!("config serialises: {e}"));
        sealed::seal(enc, CONFIG, &ObjectName::Config.path(), &bytes)
    }

    /// Decrypts and validates the config object.
    ///
    /// # Errors
    /// [`FormatError`] if it is of another version, fails authentication, or
    /// holds values format §4 does not allow.
    pub fn open(enc: &EncKey, data: &[u8]) -> Result<Self, FormatError> {
        let payload = sealed::open(enc, CONFIG, &ObjectName::Config.path(), data)?;
        Self::decode_payload(&payload)
    }

    /// Decodes the JSON payload (exposed for fuzzing).
    ///
    /// # Errors
    /// [`FormatError`] if the payload is not a valid v1 config.
    pub fn decode_payload(payload: &[u8]) -> Result<Self, FormatError> {
        let what = "config";
        let j: Json = serde_json::from_slice(payload)
            .map_err(|e| FormatError::invalid(what, e.to_string()))?;
        if j.chunker.algorithm != CHUNKER_ALGORITHM {
            return Err(FormatError::invalid(
                what,
                format!("unknown chunker algorithm {:?}", j.chunker.algorithm),
            ));
        }
        if j.compression.algorithm != "zstd" {
            return Err(FormatError::invalid(
                what,
                format!("unknown compression {:?}", j.compression.algorithm),
            ));
        }
        let chunker = ChunkerParams::new(
            j.chunker.min_size,
            j.chunker.avg_size,
            j.chunker.max_size,
            j.chunker.normalization,
        )
        .map_err(|e| FormatError::invalid(what, e.to_string()))?;
        let mut repository_id = [0u8; 16];
        hex::decode_to_slice(&j.repository_id, &mut repository_id)
            .map_err(|_| FormatError::invalid(what, "repository_id is not 32 hex digits"))?;
        let chunking_keys = match j.chunking_keys {
            None => None,
            Some(k) => {
                let mut from = [0u8; 16];
                let mut id = [0u8; 32];
                let mut gear = [0u8; 32];
                hex::decode_to_slice(&k.from, &mut from)
                    .and_then(|()| hex::decode_to_slice(&k.id, &mut id))
                    .and_then(|()| hex::decode_to_slice(&k.gear, &mut gear))
                    .map_err(|_| {
                        FormatError::invalid(
                            what,
                            "chunking_keys: from is 32 hex digits, id and gear 64",
                        )
                    })?;
                Some(ChunkingKeys {
                    from,
                    id: IdKey::from_bytes(id),
                    gear: GearKey::from_bytes(gear),
                })
            }
        };
        let c = Config {
            repository_id,
            chunker,
            zstd_level: j.compression.level,
            pack_size: j.pack_size,
            chunking_keys,
        };
        c.check()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn round_trip() -> Result<(), FormatError> {
        let enc = MasterKey::generate().derive().enc;
        let c = Config::new(ChunkerParams::DEFAULT, 3, DEFAULT_PACK_SIZE)?;
        assert_eq!(Config::open(&enc, &c.seal(&enc))?, c);
        Ok(())
    }

    #[test]
    fn chunking_keys_replace_the_derived_ones() -> Result<(), FormatError> {
        let (a, b) = (MasterKey::generate(), MasterKey::generate());
        let source = Config::new(ChunkerParams::DEFAULT, 1, DEFAULT_PACK_SIZE)?;
        let source_keys = source.keys(&a);
        let mut target = Config::new(ChunkerParams::DEFAULT, 1, DEFAULT_PACK_SIZE)?;
        target.chunking_keys = Some(ChunkingKeys::of(
            source.repository_id,
            &source,
            &source_keys,
        ));
        let enc = b.derive().enc;
        let opened = Config::open(&enc, &target.seal(&enc))?;
        assert_eq!(opened, target);
        let keys = opened.keys(&b);
        assert_eq!(keys.id, source_keys.id);
        assert_eq!(keys.gear, source_keys.gear);
        assert_ne!(keys.id, b.derive().id);
        // A third repository made from the target shares the source's.
        let again = ChunkingKeys::of(opened.repository_id, &opened, &keys);
        assert_eq!(again.from, source.repository_id);
        assert!(!format!("{opened:?}").contains(&hex::encode(source_keys.id.expose_secret())));
        Ok(())
    }

    #[test]
    fn rejects_unknown_fields_and_values() {
        let good = r#"{"repository_id":"00112233445566778899aabbccddeeff","chunker":{"algorithm":"fastcdc-2020-keyed-gear","min_size":32768,"avg_size":131072,"max_size":524288,"normalization":1},"compression":{"algorithm":"zstd","level":3},"pack_size":33554432}"#;
        assert!(Config::decode_payload(good.as_bytes()).is_ok());
        for bad in [
            good.replace("\"pack_size\"", "\"extra\":1,\"pack_size\""),
            good.replace("131072", "131000"),
            good.replace("keyed-gear", "other"),
            good.replace("\"level\":3", "\"level\":99"),
            good.replace("33554432", "1"),
            good.replace("00112233", "zz112233"),
            good.replace(
                "\"pack_size\"",
                "\"chunking_keys\":{\"from\":\"00\",\"id\":\"00\",\"gear\":\"00\"},\"pack_size\"",
            ),
        ] {
            assert!(Config::decode_payload(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
