//! Golden policy tests, table-driven: each case lists snapshots by their
//! UTC start times and the ones the rules keep.

use super::*;
use cairn_chunker::ChunkId;
use cairn_repo_format::{SessionId, Summary};

/// Central European time with its daylight saving rules (POSIX form, so
/// the tests need no time zone database): summer time from the last
/// Sunday of March, 02:00, to the last Sunday of October, 03:00.
const BERLIN: &str = "CET-1CEST,M3.5.0,M10.5.0/3";

fn snap(host: &str, name: &str, utc: &str, tags: &[&str]) -> (SnapshotId, Snapshot) {
    let t: Timestamp = utc.parse().unwrap_or_else(|e| panic!("{utc}: {e}"));
    let ns = i64::try_from(t.as_nanosecond()).unwrap_or(0);
    (
        SnapshotId::random(),
        Snapshot {
            version: 1,
            session: SessionId::random(),
            time_ns: ns,
            finished_ns: ns,
            hostname: host.into(),
            username: "root".into(),
            source: Source::Command {
                name: name.into(),
                argv: vec!["pg_dump".into()],
            },
            tree: ChunkId::from_bytes([0; 32]),
            partial: false,
            summary: Summary::default(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            copy_of: None,
            counts: None,
        },
    )
}

struct Case {
    what: &'static str,
    times: &'static [&'static str],
    rules: Rules,
    tz: &'static str,
    /// The UTC times of the snapshots kept.
    kept: &'static [&'static str],
}

fn tz(name: &str) -> TimeZone {
    if name == "UTC" {
        TimeZone::UTC
    } else {
        TimeZone::posix(name).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

fn run(case: &Case) {
    let snaps: Vec<_> = case
        .times
        .iter()
        .map(|t| snap("node-a", "db.dump", t, &[]))
        .collect();
    let groups = apply(&snaps, &case.rules, GroupBy::default(), &tz(case.tz));
    assert_eq!(groups.len(), 1, "{}", case.what);
    let kept: std::collections::BTreeSet<i64> = groups[0]
        .snapshots
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.time_ns)
        .collect();
    let want: std::collections::BTreeSet<i64> = case
        .kept
        .iter()
        .map(|t| {
            let t: Timestamp = t.parse().unwrap_or_else(|e| panic!("{t}: {e}"));
            i64::try_from(t.as_nanosecond()).unwrap_or(0)
        })
        .collect();
    let show = |s: &std::collections::BTreeSet<i64>| {
        s.iter()
            .map(|ns| {
                Timestamp::from_nanosecond(i128::from(*ns))
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(show(&kept), show(&want), "{}", case.what);
    // Every decision is explained: kept ones by a reason, the others by none.
    for d in &groups[0].snapshots {
        assert_eq!(d.keep, !d.reasons.is_empty(), "{}", case.what);
    }
}

fn rules() -> Rules {
    Rules::default()
}

#[test]
fn golden_policies() {
    let five_days = &[
        "2026-11-01T02:00:00Z",
        "2026-11-02T02:00:00Z",
        "2026-11-03T02:00:00Z",
        "2026-11-04T02:00:00Z",
        "2026-11-05T02:00:00Z",
    ];
    let cases = [
        Case {
            what: "keep-last keeps the newest",
            times: five_days,
            rules: Rules {
                keep_last: Some(3),
                ..rules()
            },
            tz: "UTC",
            kept: &[
                "2026-11-03T02:00:00Z",
                "2026-11-04T02:00:00Z",
                "2026-11-05T02:00:00Z",
            ],
        },
        Case {
            what: "keep-last larger than the group keeps all",
            times: five_days,
            rules: Rules {
                keep_last: Some(10),
                ..rules()
            },
            tz: "UTC",
            kept: five_days,
        },
        Case {
            what: "keep-daily keeps the newest of each day",
            times: &[
                "2026-11-01T02:00:00Z",
                "2026-11-01T14:00:00Z",
                "2026-11-02T02:00:00Z",
                "2026-11-02T14:00:00Z",
                "2026-11-03T02:00:00Z",
            ],
            rules: Rules {
                keep_daily: Some(2),
                ..rules()
            },
            tz: "UTC",
            kept: &["2026-11-02T14:00:00Z", "2026-11-03T02:00:00Z"],
        },
        Case {
            what: "days skipped by the backups do not count",
            times: &[
                "2026-11-01T02:00:00Z",
                "2026-11-05T02:00:00Z",
                "2026-11-09T02:00:00Z",
            ],
            rules: Rules {
                keep_daily: Some(2),
                ..rules()
            },
            tz: "UTC",
            kept: &["2026-11-05T02:00:00Z", "2026-11-09T02:00:00Z"],
        },
        Case {
            what: "keep-within is measured from the newest snapshot, not from now",
            times: five_days,
            rules: Rules {
                keep_within: Some("2d".parse().unwrap_or_default()),
                ..rules()
            },
            tz: "UTC",
            kept: &[
                "2026-11-03T02:00:00Z",
                "2026-11-04T02:00:00Z",
                "2026-11-05T02:00:00Z",
            ],
        },
        Case {
            what: "keep-within-daily keeps one a day within the span",
            times: &[
                "2026-11-01T02:00:00Z",
                "2026-11-03T02:00:00Z",
                "2026-11-03T14:00:00Z",
                "2026-11-04T02:00:00Z",
                "2026-11-04T14:00:00Z",
            ],
            rules: Rules {
                keep_within_daily: Some("2d".parse().unwrap_or_default()),
                ..rules()
            },
            tz: "UTC",
            kept: &["2026-11-03T14:00:00Z", "2026-11-04T14:00:00Z"],
        },
        // Summer time ends on 2026-10-25: 03:00 CEST becomes 02:00 CET, so
        // the local hour 02:00-03:00 happens twice (00:00-01:00 and
        // 01:00-02:00 UTC). By local hours those are one bucket.
        Case {
            what: "hourly buckets in local time across the end of summer time",
            times: &[
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:30:00Z",
                "2026-10-25T02:30:00Z",
            ],
            rules: Rules {
                keep_hourly: Some(5),
                ..rules()
            },
            tz: BERLIN,
            kept: &["2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z"],
        },
        Case {
            what: "the same snapshots by UTC hours are three buckets",
            times: &[
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:30:00Z",
                "2026-10-25T02:30:00Z",
            ],
            rules: Rules {
                keep_hourly: Some(5),
                ..rules()
            },
            tz: "UTC",
            kept: &[
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:30:00Z",
                "2026-10-25T02:30:00Z",
            ],
        },
        // Summer time starts on 2026-03-29: 02:00 CET becomes 03:00 CEST.
        // 22:30 UTC on the 28th is 23:30 local, 22:30 UTC on the 29th is
        // 00:30 local on the 30th: local days differ from UTC days.
        Case {
            what: "daily buckets follow the local date across the start of summer time",
            times: &[
                "2026-03-28T22:30:00Z",
                "2026-03-28T23:30:00Z",
                "2026-03-29T21:30:00Z",
                "2026-03-29T22:30:00Z",
            ],
            rules: Rules {
                keep_daily: Some(10),
                ..rules()
            },
            tz: BERLIN,
            kept: &[
                "2026-03-28T22:30:00Z",
                "2026-03-29T21:30:00Z",
                "2026-03-29T22:30:00Z",
            ],
        },
        Case {
            what: "the same snapshots by UTC days are two buckets",
            times: &[
                "2026-03-28T22:30:00Z",
                "2026-03-28T23:30:00Z",
                "2026-03-29T21:30:00Z",
                "2026-03-29T22:30:00Z",
            ],
            rules: Rules {
                keep_daily: Some(10),
                ..rules()
            },
            tz: "UTC",
            kept: &["2026-03-28T23:30:00Z", "2026-03-29T22:30:00Z"],
        },
        // 2026-12-31 is a Thursday: 2026 has an ISO week 53, which holds
        // 2027-01-01 to 01-03 as well.
        Case {
            what: "ISO weeks run across the new year",
            times: &[
                "2026-12-27T12:00:00Z",
                "2026-12-28T12:00:00Z",
                "2026-12-31T12:00:00Z",
                "2027-01-03T12:00:00Z",
                "2027-01-04T12:00:00Z",
            ],
            rules: Rules {
                keep_weekly: Some(10),
                ..rules()
            },
            tz: "UTC",
            kept: &[
                "2026-12-27T12:00:00Z",
                "2027-01-03T12:00:00Z",
                "2027-01-04T12:00:00Z",
            ],
        },
        Case {
            what: "months and years change at local midnight on new year's eve",
            times: &[
                "2026-11-30T12:00:00Z",
                "2026-12-31T12:00:00Z",
                "2026-12-31T23:30:00Z",
            ],
            rules: Rules {
                keep_monthly: Some(10),
                keep_yearly: Some(10),
                ..rules()
            },
            tz: BERLIN,
            // 23:30 UTC is 00:30 on 2027-01-01 in Berlin: a month and year
            // of its own; 2026-12-31T12:00 is then December's newest.
            kept: &[
                "2026-11-30T12:00:00Z",
                "2026-12-31T12:00:00Z",
                "2026-12-31T23:30:00Z",
            ],
        },
        Case {
            what: "by UTC the new year's eve snapshots share a month",
            times: &[
                "2026-11-30T12:00:00Z",
                "2026-12-31T12:00:00Z",
                "2026-12-31T23:30:00Z",
            ],
            rules: Rules {
                keep_monthly: Some(10),
                ..rules()
            },
            tz: "UTC",
            kept: &["2026-11-30T12:00:00Z", "2026-12-31T23:30:00Z"],
        },
        Case {
            what: "yearly keeps the newest of each year",
            times: &[
                "2024-06-01T00:00:00Z",
                "2025-03-01T00:00:00Z",
                "2025-09-01T00:00:00Z",
                "2026-01-01T00:00:00Z",
            ],
            rules: Rules {
                keep_yearly: Some(2),
                ..rules()
            },
            tz: "UTC",
            kept: &["2025-09-01T00:00:00Z", "2026-01-01T00:00:00Z"],
        },
        Case {
            what: "rules combine: last 1 and monthly 2",
            times: &[
                "2026-09-15T00:00:00Z",
                "2026-10-10T00:00:00Z",
                "2026-10-20T00:00:00Z",
                "2026-11-01T00:00:00Z",
                "2026-11-02T00:00:00Z",
            ],
            rules: Rules {
                keep_last: Some(1),
                keep_monthly: Some(2),
                ..rules()
            },
            tz: "UTC",
            kept: &["2026-10-20T00:00:00Z", "2026-11-02T00:00:00Z"],
        },
    ];
    for case in &cases {
        run(case);
    }
}

#[test]
fn tags_keep_and_groups_are_decided_apart() {
    let snaps = vec![
        snap("node-a", "db.dump", "2026-11-01T00:00:00Z", &["release"]),
        snap("node-a", "db.dump", "2026-11-02T00:00:00Z", &[]),
        snap("node-a", "db.dump", "2026-11-03T00:00:00Z", &[]),
        snap("node-b", "db.dump", "2026-11-01T00:00:00Z", &[]),
        snap("node-a", "other", "2026-10-01T00:00:00Z", &[]),
    ];
    let rules = Rules {
        keep_last: Some(1),
        keep_tag: vec!["release".into()],
        ..Rules::default()
    };
    let groups = apply(&snaps, &rules, GroupBy::default(), &TimeZone::UTC);
    assert_eq!(groups.len(), 3);
    let kept: Vec<(String, Vec<String>)> = groups
        .iter()
        .flat_map(|g| {
            g.snapshots.iter().filter(|d| d.keep).map(|d| {
                (
                    format!(
                        "{}/{}",
                        g.key.host.clone().unwrap_or_default(),
                        d.time_ns / 1_000_000_000
                    ),
                    d.reasons.clone(),
                )
            })
        })
        .collect();
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert!(kept.contains(&("node-a/1793491200".into(), vec!["tag release".into()])));
    // One group when grouping by nothing: keep-last 1 keeps one snapshot
    // (plus the tagged one).
    let groups = apply(
        &snaps,
        &rules,
        "".parse().unwrap_or_default(),
        &TimeZone::UTC,
    );
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].snapshots.iter().filter(|d| d.keep).count(), 2);
}

#[test]
fn durations_parse_as_restic_writes_them() {
    for (text, shown) in [
        ("90d", "90d"),
        ("1y6m", "1y6m"),
        ("2w", "2w"),
        ("36h", "36h"),
    ] {
        let w: Within = text.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.to_string(), shown);
    }
    for bad in ["", "d", "10", "5x", "1.5d", "-3d"] {
        assert!(bad.parse::<Within>().is_err(), "{bad:?}");
    }
    assert!("host,tags".parse::<GroupBy>().is_ok());
    assert!("hostname".parse::<GroupBy>().is_err());
    assert!(Rules::default().is_empty());
}
