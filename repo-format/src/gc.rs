//! The collector's objects (format §10.1): `gc/state`, and the pack sets of
//! a plan (condemned packs) and of its deletions.

use crate::crypto::EncKey;
use crate::error::FormatError;
use crate::ids::{PackId, PlanId, SessionId};
use crate::names::ObjectName;
use crate::sealed::{self, open_json, seal_json, SealedKind, DELETIONS, GC_STATE, PLAN};
use crate::wire::Reader;

/// Where a collection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// No collection.
    Idle,
    /// A collector is computing a plan.
    Marking,
    /// A plan is published; sessions are being settled.
    Marked,
    /// The deletion set is final; packs are being deleted.
    Deleting,
}

impl Phase {
    /// The name the spec gives it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Marking => "marking",
            Phase::Marked => "marked",
            Phase::Deleting => "deleting",
        }
    }
}

/// `gc/state`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcState {
    /// Always 1.
    pub version: u32,
    /// One more than the version it replaced.
    pub generation: u64,
    /// The phase.
    pub phase: Phase,
    /// The running collector's session; `None` only when idle.
    pub pruner: Option<SessionId>,
    /// The plan, in `marked` and `deleting`.
    pub plan: Option<PlanId>,
    /// Who wrote it last (messages only).
    pub hostname: String,
    /// When it was written last (messages only).
    pub updated_ns: i64,
}

impl GcState {
    /// The state of a repository that has none: idle at generation 0.
    pub fn initial(hostname: String, updated_ns: i64) -> Self {
        Self {
            version: 1,
            generation: 0,
            phase: Phase::Idle,
            pruner: None,
            plan: None,
            hostname,
            updated_ns,
        }
    }

    /// Encrypts as `gc/state`.
    pub fn seal(&self, enc: &EncKey) -> Vec<u8> {
        seal_json(enc, GC_STATE, &ObjectName::GcState.path(), self)
    }

    /// Decrypts and decodes `gc/state`.
    ///
    /// # Errors
    /// [`FormatError`] if it fails authentication or breaks §10.1.
    pub fn open(enc: &EncKey, data: &[u8]) -> Result<Self, FormatError> {
        let s: GcState = open_json(enc, GC_STATE, &ObjectName::GcState.path(), data)?;
        FormatError::check_version("gc state", s.version, 1u32)?;
        let consistent = match s.phase {
            Phase::Idle => s.pruner.is_none() && s.plan.is_none(),
            Phase::Marking => s.pruner.is_some() && s.plan.is_none(),
            Phase::Marked | Phase::Deleting => s.pruner.is_some() && s.plan.is_some(),
        };
        if !consistent {
            return Err(FormatError::invalid(
                "gc state",
                format!(
                    "phase {} with pruner {:?} and plan {:?}",
                    s.phase.name(),
                    s.pruner.map(|p| p.short()),
                    s.plan.map(|p| p.short())
                ),
            ));
        }
        Ok(s)
    }
}

/// A pack, by its object name's two ids.
pub type PackName = (SessionId, PackId);

/// Most packs a pack set holds.
pub const MAX_PACK_SET: usize = 4 << 20;

/// A plan's condemned packs, or its deletion set: sorted, no repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackSet(Vec<PackName>);

impl PackSet {
    /// The set of `packs` (sorted and deduplicated here).
    pub fn new(mut packs: Vec<PackName>) -> Self {
        packs.sort_unstable();
        packs.dedup();
        Self(packs)
    }

    /// The packs, sorted.
    pub fn packs(&self) -> &[PackName] {
        &self.0
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether it holds `pack`.
    pub fn contains(&self, pack: &PackName) -> bool {
        self.0.binary_search(pack).is_ok()
    }

    /// The binary payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 64 * self.0.len());
        out.push(1);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(
            &u32::try_from(self.0.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        for (s, p) in &self.0 {
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(p.as_bytes());
        }
        out
    }

    /// Decodes a payload.
    ///
    /// # Errors
    /// [`FormatError`] for anything §10.1 does not allow.
    pub fn decode(what: &str, data: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(what, data);
        FormatError::check_version(what, r.u8()?, 1u8)?;
        r.reserved(3)?;
        let n = r.u32()? as usize;
        if n > MAX_PACK_SET {
            return Err(FormatError::range(what, "count", n as u64));
        }
        if n.saturating_mul(64) != r.remaining() {
            return Err(FormatError::invalid(
                what,
                format!("{n} packs in {} bytes", r.remaining()),
            ));
        }
        let mut packs = Vec::with_capacity(n);
        for _ in 0..n {
            let pack = (
                SessionId::from_bytes(r.array()?),
                PackId::from_bytes(r.array()?),
            );
            if packs.last().is_some_and(|last| *last >= pack) {
                return Err(FormatError::invalid(what, "packs not sorted, or repeated"));
            }
            packs.push(pack);
        }
        r.finish()?;
        Ok(Self(packs))
    }

    fn kind(name: &ObjectName) -> SealedKind {
        if matches!(name, ObjectName::Deletions(_)) {
            DELETIONS
        } else {
            PLAN
        }
    }

    /// Encrypts as `name` (`gc/plans/<id>` or `gc/deletions/<id>`).
    pub fn seal(&self, enc: &EncKey, name: &ObjectName) -> Vec<u8> {
        sealed::seal(enc, Self::kind(name), &name.path(), &self.encode())
    }

    /// Decrypts and decodes `name` (`gc/plans/<id>` or `gc/deletions/<id>`).
    ///
    /// # Errors
    /// [`FormatError`] if it fails authentication or decoding.
    pub fn open(enc: &EncKey, name: &ObjectName, data: &[u8]) -> Result<Self, FormatError> {
        let kind = Self::kind(name);
        Self::decode(kind.what, &sealed::open(enc, kind, &name.path(), data)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    #[test]
    fn state_round_trips_and_is_checked() -> Result<(), FormatError> {
        let enc = MasterKey::generate().derive().enc;
        let mut s = GcState::initial("h".into(), 5);
        assert_eq!(GcState::open(&enc, &s.seal(&enc))?, s);
        s.phase = Phase::Marked;
        s.pruner = Some(SessionId::random());
        assert!(
            GcState::open(&enc, &s.seal(&enc)).is_err(),
            "marked without a plan"
        );
        s.plan = Some(PlanId::random());
        assert_eq!(GcState::open(&enc, &s.seal(&enc))?, s);
        Ok(())
    }

    #[test]
    fn pack_sets_are_bound_to_their_names() -> Result<(), FormatError> {
        let enc = MasterKey::generate().derive().enc;
        let set = PackSet::new(vec![
            (SessionId::random(), PackId::random()),
            (SessionId::random(), PackId::random()),
        ]);
        let plan = PlanId::random();
        let name = ObjectName::Plan(plan);
        assert_eq!(PackSet::open(&enc, &name, &set.seal(&enc, &name))?, set);
        let other = ObjectName::Deletions(plan);
        assert!(PackSet::open(&enc, &other, &set.seal(&enc, &name)).is_err());
        Ok(())
    }

    proptest! {
        #[test]
        fn pack_sets_round_trip(n in 0usize..50) {
            let set = PackSet::new((0..n).map(|_| (SessionId::random(), PackId::random())).collect());
            prop_assert_eq!(PackSet::decode("plan", &set.encode()).ok(), Some(set.clone()));
            for p in set.packs() {
                prop_assert!(set.contains(p));
            }
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = PackSet::decode("plan", &data);
        }
    }

    #[test]
    fn unsorted_sets_are_refused() {
        let set = PackSet::new(vec![
            (SessionId::random(), PackId::random()),
            (SessionId::random(), PackId::random()),
        ]);
        let mut data = set.encode();
        let (a, b) = data[8..].split_at_mut(64);
        a.swap_with_slice(b);
        assert!(PackSet::decode("plan", &data).is_err());
    }
}
