//! Secret keys of the chunker. They are never `Copy`, never printed, and are
//! zeroed when dropped.

use zeroize::{Zeroize, ZeroizeOnDrop};

macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps 32 bytes of key material (derived by the repository from its master key).
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            pub(crate) fn bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The key's bytes, to be stored sealed (a repository config
            /// that shares another's chunking keys, format §4) and for
            /// nothing else: never log or print them.
            pub fn expose_secret(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                // Not secret-dependent in any way an attacker can time:
                // both keys are the caller's own.
                self.0 == other.0
            }
        }

        impl Eq for $name {}

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_key!(
    /// The key the chunker's gear table is derived from (`K_gear`, format §2.2).
    GearKey
);
secret_key!(
    /// The key of keyed-BLAKE3 chunk ids (`K_id`, format §2.1).
    IdKey
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let k = IdKey::from_bytes([0xAB; 32]);
        let shown = format!("{k:?}");
        assert_eq!(shown, "IdKey(<redacted>)");
        assert!(!shown.to_lowercase().contains("ab"));
    }
}
