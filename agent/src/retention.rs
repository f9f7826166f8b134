//! Retention rules (`cairn forget`): which snapshots to keep, and why.
//!
//! Pure: snapshots in, a decision per snapshot out. The rules are restic's,
//! so that people who know `restic forget` know these:
//!
//! - snapshots are grouped (by default by host and source) and each group
//!   is decided on its own, newest first;
//! - `last N` keeps the N newest;
//! - `hourly/daily/weekly/monthly/yearly N` keep the newest snapshot of
//!   each of the N newest hours (days, ISO weeks, months, years) that have
//!   one, by the snapshot's own start time in the given time zone;
//! - `within D` keeps every snapshot taken within D of the group's newest
//!   (not of now: a node that stopped backing up keeps its last ones), and
//!   `within-daily D` and its kin keep one a bucket within D of it;
//! - `tag T` keeps every snapshot tagged T.
//!
//! A snapshot is kept if any rule keeps it; each rule it matched is a
//! reason. With no rule at all nothing is decided: [`Rules::is_empty`]
//! lets the caller refuse.

use cairn_repo_format::{Snapshot, SnapshotId, Source};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};

/// A duration as restic writes them: `90d`, `2w`, `1y6m` (`y` years, `m`
/// months, `w` weeks, `d` days, `h` hours), in calendar terms of the time
/// zone the rules are applied in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Within {
    years: i16,
    months: i32,
    weeks: i32,
    days: i32,
    hours: i32,
}

impl Within {
    fn span(self) -> Span {
        Span::new()
            .years(self.years)
            .months(self.months)
            .weeks(self.weeks)
            .days(self.days)
            .hours(self.hours)
    }
}

impl std::str::FromStr for Within {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("{s:?} is not a duration: write it as numbers with units y, m (months), w, d, h, e.g. 90d or 1y6m")
        };
        let mut w = Within::default();
        let mut digits = String::new();
        let mut any = false;
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let n: i32 = digits.parse().map_err(|_| bad())?;
            digits.clear();
            // Bounded so that the span stays within jiff's limits.
            let n = n.min(100_000);
            match c {
                'y' => w.years = i16::try_from(n.min(200)).map_err(|_| bad())?,
                'm' => w.months = n,
                'w' => w.weeks = n,
                'd' => w.days = n,
                'h' => w.hours = n,
                _ => return Err(bad()),
            }
            any = true;
        }
        if !digits.is_empty() || !any {
            return Err(bad());
        }
        Ok(w)
    }
}

impl std::fmt::Display for Within {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, unit) in [
            (i32::from(self.years), 'y'),
            (self.months, 'm'),
            (self.weeks, 'w'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for Within {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Within {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Calendar buckets, finest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Bucket {
    const ALL: [Bucket; 5] = [
        Bucket::Hourly,
        Bucket::Daily,
        Bucket::Weekly,
        Bucket::Monthly,
        Bucket::Yearly,
    ];

    fn name(self) -> &'static str {
        match self {
            Bucket::Hourly => "hourly",
            Bucket::Daily => "daily",
            Bucket::Weekly => "weekly",
            Bucket::Monthly => "monthly",
            Bucket::Yearly => "yearly",
        }
    }

    /// The bucket a time falls in (a number unique per bucket).
    fn of(self, t: &Zoned) -> i64 {
        let (y, m, d, h) = (
            i64::from(t.year()),
            i64::from(t.month()),
            i64::from(t.day()),
            i64::from(t.hour()),
        );
        match self {
            Bucket::Hourly => ((y * 100 + m) * 100 + d) * 100 + h,
            Bucket::Daily => (y * 100 + m) * 100 + d,
            Bucket::Weekly => {
                let w = t.date().iso_week_date();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            Bucket::Monthly => y * 100 + m,
            Bucket::Yearly => y,
        }
    }
}

/// Which snapshots to keep. Field names are those of the CLI and the agent's
/// configuration (`keep-daily = 7`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rules {
    /// The N newest.
    #[serde(default)]
    pub keep_last: Option<u32>,
    /// The newest of each of the N newest hours.
    #[serde(default)]
    pub keep_hourly: Option<u32>,
    /// The newest of each of the N newest days.
    #[serde(default)]
    pub keep_daily: Option<u32>,
    /// The newest of each of the N newest ISO weeks.
    #[serde(default)]
    pub keep_weekly: Option<u32>,
    /// The newest of each of the N newest months.
    #[serde(default)]
    pub keep_monthly: Option<u32>,
    /// The newest of each of the N newest years.
    #[serde(default)]
    pub keep_yearly: Option<u32>,
    /// All taken within this of the group's newest.
    #[serde(default)]
    pub keep_within: Option<Within>,
    /// The newest of each hour within this of the group's newest.
    #[serde(default)]
    pub keep_within_hourly: Option<Within>,
    /// The newest of each day within this of the group's newest.
    #[serde(default)]
    pub keep_within_daily: Option<Within>,
    /// The newest of each ISO week within this of the group's newest.
    #[serde(default)]
    pub keep_within_weekly: Option<Within>,
    /// The newest of each month within this of the group's newest.
    #[serde(default)]
    pub keep_within_monthly: Option<Within>,
    /// The newest of each year within this of the group's newest.
    #[serde(default)]
    pub keep_within_yearly: Option<Within>,
    /// All tagged with one of these.
    #[serde(default)]
    pub keep_tag: Vec<String>,
}

impl Rules {
    fn counts(&self) -> [Option<u32>; 5] {
        [
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
    }

    fn withins(&self) -> [Option<Within>; 5] {
        [
            self.keep_within_hourly,
            self.keep_within_daily,
            self.keep_within_weekly,
            self.keep_within_monthly,
            self.keep_within_yearly,
        ]
    }

    /// Whether no rule is given (forgetting by rules would then forget
    /// everything: callers refuse).
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none()
            && self.counts().iter().all(Option::is_none)
            && self.keep_within.is_none()
            && self.withins().iter().all(Option::is_none)
            && self.keep_tag.is_empty()
    }
}

/// What snapshots are grouped by before the rules apply; written
/// `host,source` (the default), any subset of `host`, `source`, `tags`, or
/// empty for one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    /// The host that took them.
    pub host: bool,
    /// What they are of (the source's kind and name, paths, database or
    /// server).
    pub source: bool,
    /// Their tags.
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        Self {
            host: true,
            source: true,
            tags: false,
        }
    }
}

impl std::fmt::Display for GroupBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<&str> = [
            (self.host, "host"),
            (self.source, "source"),
            (self.tags, "tags"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
        f.write_str(&parts.join(","))
    }
}

impl serde::Serialize for GroupBy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for GroupBy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for GroupBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut g = GroupBy {
            host: false,
            source: false,
            tags: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "source" => g.source = true,
                "tags" => g.tags = true,
                other => {
                    return Err(format!(
                        "cannot group by {other:?}: use host, source, tags, or a comma-separated list of them"
                    ))
                }
            }
        }
        Ok(g)
    }
}

/// What a snapshot is of, as one string (`command:db.dump`,
/// `files:/srv/data`, `postgres:app`, `redis:10.0.0.5:6379`,
/// `pvc:shop/data-pg-0`).
pub fn source_key(source: &Source) -> String {
    match source {
        Source::Stdin { name } => format!("stdin:{name}"),
        Source::Command { name, .. } => format!("command:{name}"),
        Source::Files { paths } => format!("files:{}", paths.join(",")),
        Source::Postgres { dbname, .. } => format!("postgres:{dbname}"),
        Source::Redis { address, .. } => format!("redis:{address}"),
        Source::Pvc {
            namespace, claim, ..
        } => format!("pvc:{namespace}/{claim}"),
        Source::Other { kind, record } => {
            format!("{kind}:{}", serde_json::Value::Object(record.clone()))
        }
    }
}

/// The newest snapshot of each host and source (ties broken by id).
pub fn newest_per_group(
    snapshots: impl IntoIterator<Item = (SnapshotId, Snapshot)>,
) -> Vec<(SnapshotId, Snapshot)> {
    let mut newest: std::collections::BTreeMap<GroupKey, (SnapshotId, Snapshot)> =
        std::collections::BTreeMap::new();
    for (id, s) in snapshots {
        let key = group_key(&s, GroupBy::default());
        match newest.get(&key) {
            Some((nid, n)) if (n.time_ns, *nid) >= (s.time_ns, id) => {}
            _ => {
                newest.insert(key, (id, s));
            }
        }
    }
    newest.into_values().collect()
}

/// One group's key: the parts grouped by.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct GroupKey {
    /// The host, when grouped by host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The source, when grouped by source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The tags, when grouped by tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// The group `snap` is in when grouped by `by`.
pub fn group_key(snap: &Snapshot, by: GroupBy) -> GroupKey {
    GroupKey {
        // A claim's snapshots are one group whichever node read them (its
        // pod moves between nodes).
        host: (by.host && !matches!(snap.source, Source::Pvc { .. }))
            .then(|| snap.hostname.clone()),
        source: by.source.then(|| source_key(&snap.source)),
        tags: by.tags.then(|| snap.tags.clone()),
    }
}

/// What the rules decided for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// The snapshot.
    pub id: SnapshotId,
    /// Its start time (as RFC 3339, `time`, in JSON).
    #[serde(rename = "time", serialize_with = "crate::util::serialize_rfc3339")]
    pub time_ns: i64,
    /// Whether it stays.
    pub keep: bool,
    /// The rules that keep it (empty when it goes).
    pub reasons: Vec<String>,
}

/// One group's decisions, newest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Group {
    /// What its snapshots share.
    pub key: GroupKey,
    /// A decision per snapshot, newest first.
    pub snapshots: Vec<Decision>,
}

fn zoned(time_ns: i64, tz: &TimeZone) -> Zoned {
    Timestamp::from_nanosecond(i128::from(time_ns))
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone())
}

/// Applies `rules` to `snapshots` grouped by `by`, with calendar buckets
/// in `tz`. Groups are sorted by key.
pub fn apply(
    snapshots: &[(SnapshotId, Snapshot)],
    rules: &Rules,
    by: GroupBy,
    tz: &TimeZone,
) -> Vec<Group> {
    let mut groups: std::collections::BTreeMap<GroupKey, Vec<&(SnapshotId, Snapshot)>> =
        std::collections::BTreeMap::new();
    for s in snapshots {
        groups.entry(group_key(&s.1, by)).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|(key, mut members)| {
            members.sort_by(|a, b| b.1.time_ns.cmp(&a.1.time_ns).then(b.0.cmp(&a.0)));
            Group {
                key,
                snapshots: decide(&members, rules, tz),
            }
        })
        .collect()
}

/// The decisions for one group, sorted newest first.
fn decide(members: &[&(SnapshotId, Snapshot)], rules: &Rules, tz: &TimeZone) -> Vec<Decision> {
    let Some(newest) = members.first() else {
        return Vec::new();
    };
    let newest = zoned(newest.1.time_ns, tz);
    // The earliest time a `within` rule reaches: calendar arithmetic in the
    // zone; a span past the calendar's start reaches everything.
    let since = |w: Within| {
        newest
            .checked_sub(w.span())
            .map_or(i128::MIN, |t| t.timestamp().as_nanosecond())
    };
    let within_all = rules.keep_within.map(since);
    let withins: Vec<Option<i128>> = rules.withins().iter().map(|w| w.map(since)).collect();
    let mut last_left = rules.keep_last;
    let mut counts = rules.counts();
    let mut last_bucket: [Option<i64>; 5] = [None; 5];
    let mut last_within_bucket: [Option<i64>; 5] = [None; 5];
    members
        .iter()
        .map(|(id, s)| {
            let t = zoned(s.time_ns, tz);
            let ns = i128::from(s.time_ns);
            let mut reasons = Vec::new();
            for tag in &rules.keep_tag {
                if s.tags.contains(tag) {
                    reasons.push(format!("tag {tag}"));
                }
            }
            if let (Some(from), Some(w)) = (within_all, rules.keep_within) {
                if ns >= from {
                    reasons.push(format!("within {w}"));
                }
            }
            if let Some(n) = last_left.as_mut().filter(|n| **n > 0) {
                *n -= 1;
                reasons.push("last".into());
            }
            for (i, b) in Bucket::ALL.iter().enumerate() {
                let here = b.of(&t);
                if let Some(n) = counts[i].as_mut().filter(|n| **n > 0) {
                    if last_bucket[i] != Some(here) {
                        *n -= 1;
                        last_bucket[i] = Some(here);
                        reasons.push(b.name().into());
                    }
                }
                if let (Some(from), Some(w)) = (withins[i], rules.withins()[i]) {
                    if ns >= from && last_within_bucket[i] != Some(here) {
                        last_within_bucket[i] = Some(here);
                        reasons.push(format!("{} within {w}", b.name()));
                    }
                }
            }
            Decision {
                id: *id,
                time_ns: s.time_ns,
                keep: !reasons.is_empty(),
                reasons,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
