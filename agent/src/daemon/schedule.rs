//! When a job (or the prune) runs: a cron expression in a time zone, or an
//! interval, and what a restart makes of a run it missed.
//!
//! - A cron job runs at each time its expression matches, in its zone
//!   (local times that a daylight saving change skips or repeats are
//!   resolved as croner does: a skipped time runs at the change, a repeated
//!   one once).
//! - An interval job runs `every` after its last success; one that never
//!   succeeded runs at start.
//! - A run missed while the agent was down (the latest scheduled time is
//!   later than the last success) runs once at start if it is no older
//!   than the starting deadline (no deadline: however old). A job that
//!   never succeeded missed nothing. This is Kubernetes CronJob's
//!   `startingDeadlineSeconds`.
//!
//! Times are jiff timestamps; croner computes in chrono's types, through a
//! chrono time zone ([`Zone`]) backed by the jiff zone the configuration
//! check resolved, so both read the same zone database.

use super::config::{self, When};
use jiff::Timestamp;
use std::time::Duration;

/// A job's schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A cron expression in a time zone.
    Cron {
        /// The expression, parsed.
        cron: Box<croner::Cron>,
        /// Its zone.
        zone: Zone,
    },
    /// An interval after the last success.
    Every(Duration),
    /// Only when asked (`--run`).
    Manual,
}

/// What a scheduler does first after it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    /// Run at once: a run was missed within the deadline (or an interval
    /// job that never succeeded).
    Now,
    /// Wait for this time.
    At(Timestamp),
    /// Never (a manual job).
    Never,
}

impl Schedule {
    /// The schedule `when` describes (checked already by the
    /// configuration).
    ///
    /// # Errors
    /// An expression or zone that does not parse.
    pub fn of(when: When<'_>) -> Result<Self, String> {
        if let Some(every) = when.every {
            return Ok(Self::Every(every.get_ref().0));
        }
        let Some(expr) = when.schedule else {
            return Ok(Self::Manual);
        };
        let zone = match when.time_zone {
            Some(name) => jiff::tz::TimeZone::get(name.get_ref())
                .map_err(|e| format!("{:?} is not a known time zone ({e})", name.get_ref()))?,
            None => jiff::tz::TimeZone::system(),
        };
        Ok(Self::Cron {
            cron: Box::new(config::cron(expr.get_ref())?),
            zone: Zone(zone),
        })
    }

    /// The first scheduled time strictly after `t` (`None` for a manual
    /// job, or a cron expression that never matches again).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        match self {
            Self::Cron { cron, zone } => {
                let from = to_chrono(t, zone)?;
                let next = cron.find_next_occurrence(&from, false).ok()?;
                from_chrono(&next)
            }
            Self::Every(d) => t.checked_add(*d).ok(),
            Self::Manual => None,
        }
    }

    /// The latest scheduled time at or before `t` (cron only).
    fn latest_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let Self::Cron { cron, zone } = self else {
            return None;
        };
        let from = to_chrono(t, zone)?;
        let prev = cron.find_previous_occurrence(&from, true).ok()?;
        from_chrono(&prev)
    }

    /// The time between two runs around `t`: the interval, or the gap
    /// between a cron expression's next two times (for the alert on a job
    /// with no success for longer than twice it).
    pub fn period(&self, t: Timestamp) -> Option<Duration> {
        match self {
            Self::Every(d) => Some(*d),
            Self::Cron { .. } => {
                let a = self.next_after(t)?;
                let b = self.next_after(a)?;
                Duration::try_from(b.duration_since(a)).ok()
            }
            Self::Manual => None,
        }
    }

    /// What to do first after a start at `now`, given the job's last
    /// success.
    pub fn first(
        &self,
        now: Timestamp,
        last_success: Option<Timestamp>,
        deadline: Option<Duration>,
    ) -> First {
        let missed = match (self, last_success) {
            (Self::Manual, _) => return First::Never,
            (Self::Every(_), None) => return First::Now,
            (Self::Cron { .. }, None) => None,
            (Self::Every(d), Some(last)) => last.checked_add(*d).ok().filter(|due| *due <= now),
            (Self::Cron { .. }, Some(last)) => {
                self.latest_at_or_before(now).filter(|due| *due > last)
            }
        };
        if let Some(due) = missed {
            let late = Duration::try_from(now.duration_since(due)).unwrap_or_default();
            if deadline.is_none_or(|d| late <= d) {
                return First::Now;
            }
        }
        match (self, last_success) {
            // Not missed: an interval's next run is `every` after the last.
            (Self::Every(d), Some(last)) if missed.is_none() => {
                last.checked_add(*d).map_or(First::Never, First::At)
            }
            _ => self.next_after(now).map_or(First::Never, First::At),
        }
    }

    /// The next run after one that was due at `due` and ended at `now`:
    /// the next scheduled time after `now` (runs that a long run overlapped
    /// are skipped, not queued).
    pub fn after_run(&self, due: Timestamp, now: Timestamp) -> Option<Timestamp> {
        match self {
            Self::Every(d) => {
                let mut next = due.checked_add(*d).ok()?;
                if next <= now {
                    // Keep the phase: the first multiple of `every` ahead.
                    let behind = now.duration_since(next).as_secs_f64();
                    let steps = (behind / d.as_secs_f64()).floor() + 1.0;
                    next = next.checked_add(d.mul_f64(steps)).ok()?;
                }
                Some(next)
            }
            _ => self.next_after(now),
        }
    }
}

/// A chrono time zone backed by a jiff one.
#[derive(Debug, Clone)]
pub struct Zone(pub jiff::tz::TimeZone);

/// A [`Zone`]'s offset at some time (it carries the zone: chrono asks for
/// the zone back from an offset).
#[derive(Debug, Clone)]
pub struct ZoneOffset {
    zone: jiff::tz::TimeZone,
    fixed: chrono::FixedOffset,
}

impl chrono::Offset for ZoneOffset {
    fn fix(&self) -> chrono::FixedOffset {
        self.fixed
    }
}

impl std::fmt::Display for ZoneOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.fixed.fmt(f)
    }
}

impl Zone {
    fn offset(&self, o: jiff::tz::Offset) -> Option<ZoneOffset> {
        Some(ZoneOffset {
            zone: self.0.clone(),
            fixed: chrono::FixedOffset::east_opt(o.seconds())?,
        })
    }

    fn at_utc(&self, utc: &chrono::NaiveDateTime) -> ZoneOffset {
        let ts = Timestamp::from_second(utc.and_utc().timestamp()).unwrap_or(Timestamp::UNIX_EPOCH);
        self.offset(self.0.to_offset(ts))
            .unwrap_or_else(|| ZoneOffset {
                zone: self.0.clone(),
                fixed: chrono::FixedOffset::east_opt(0).expect("zero offset"),
            })
    }
}

impl chrono::TimeZone for Zone {
    type Offset = ZoneOffset;

    fn from_offset(offset: &ZoneOffset) -> Self {
        Self(offset.zone.clone())
    }

    fn offset_from_local_date(
        &self,
        local: &chrono::NaiveDate,
    ) -> chrono::MappedLocalTime<ZoneOffset> {
        self.offset_from_local_datetime(&local.and_time(chrono::NaiveTime::MIN))
    }

    fn offset_from_local_datetime(
        &self,
        local: &chrono::NaiveDateTime,
    ) -> chrono::MappedLocalTime<ZoneOffset> {
        use chrono::{Datelike, Timelike};
        use jiff::tz::AmbiguousOffset;
        let civil = (|| {
            let month = i8::try_from(local.month()).ok()?;
            let day = i8::try_from(local.day()).ok()?;
            let hour = i8::try_from(local.hour()).ok()?;
            let minute = i8::try_from(local.minute()).ok()?;
            let second = i8::try_from(local.second()).ok()?;
            jiff::civil::DateTime::new(
                i16::try_from(local.year()).ok()?,
                month,
                day,
                hour,
                minute,
                second,
                0,
            )
            .ok()
        })();
        let Some(civil) = civil else {
            return chrono::MappedLocalTime::None;
        };
        match self.0.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => self.offset(offset).map_or(
                chrono::MappedLocalTime::None,
                chrono::MappedLocalTime::Single,
            ),
            AmbiguousOffset::Gap { .. } => chrono::MappedLocalTime::None,
            AmbiguousOffset::Fold { before, after } => {
                match (self.offset(before), self.offset(after)) {
                    (Some(a), Some(b)) => chrono::MappedLocalTime::Ambiguous(a, b),
                    _ => chrono::MappedLocalTime::None,
                }
            }
        }
    }

    fn offset_from_utc_date(&self, utc: &chrono::NaiveDate) -> ZoneOffset {
        self.at_utc(&utc.and_time(chrono::NaiveTime::MIN))
    }

    fn offset_from_utc_datetime(&self, utc: &chrono::NaiveDateTime) -> ZoneOffset {
        self.at_utc(utc)
    }
}

fn to_chrono(t: Timestamp, zone: &Zone) -> Option<chrono::DateTime<Zone>> {
    use chrono::TimeZone;
    let utc =
        chrono::DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().try_into().ok()?)?;
    Some(zone.from_utc_datetime(&utc.naive_utc()))
}

fn from_chrono(t: &chrono::DateTime<Zone>) -> Option<Timestamp> {
    Timestamp::new(
        t.timestamp(),
        i32::try_from(t.timestamp_subsec_nanos()).ok()?,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn cron(expr: &str, zone: &str) -> Schedule {
        Schedule::Cron {
            cron: Box::new(config::cron(expr).expect("cron")),
            zone: Zone(jiff::tz::TimeZone::get(zone).expect("zone")),
        }
    }

    fn ts(s: &str) -> Timestamp {
        Timestamp::from_str(s).expect(s)
    }

    #[test]
    fn cron_times_are_in_the_job_zone() {
        let s = cron("30 2 * * *", "Europe/Berlin");
        // 02:30 in Berlin in winter is 01:30 UTC.
        assert_eq!(
            s.next_after(ts("2026-01-10T12:00:00Z")),
            Some(ts("2026-01-11T01:30:00Z"))
        );
        // and 00:30 UTC in summer.
        assert_eq!(
            s.next_after(ts("2026-07-10T12:00:00Z")),
            Some(ts("2026-07-11T00:30:00Z"))
        );
        assert_eq!(
            s.period(ts("2026-07-10T12:00:00Z")),
            Some(Duration::from_secs(86_400))
        );
        // On 2026-03-29 Berlin skips 02:00–03:00: the 02:30 run is not
        // lost (croner runs it at the change).
        let next = s.next_after(ts("2026-03-28T12:00:00Z")).expect("next");
        assert!(next < ts("2026-03-29T02:00:00Z"), "{next}");
        // On 2026-10-25 02:30 comes twice: one run.
        let a = s.next_after(ts("2026-10-24T12:00:00Z")).expect("a");
        let b = s.next_after(a).expect("b");
        assert!(b.duration_since(a).as_secs() >= 23 * 3600, "{a} {b}");
    }

    #[test]
    fn seconds_fields_and_intervals() {
        let s = cron("*/5 * * * * *", "UTC");
        assert_eq!(
            s.next_after(ts("2026-01-01T00:00:03Z")),
            Some(ts("2026-01-01T00:00:05Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-01-01T00:00:05Z")),
            Some(ts("2026-01-01T00:00:10Z"))
        );
        let e = Schedule::Every(Duration::from_secs(3600));
        assert_eq!(
            e.after_run(ts("2026-01-01T00:00:00Z"), ts("2026-01-01T00:10:00Z")),
            Some(ts("2026-01-01T01:00:00Z"))
        );
        // A run that took 2.5 periods: the phase is kept, the overlapped
        // runs are skipped.
        assert_eq!(
            e.after_run(ts("2026-01-01T00:00:00Z"), ts("2026-01-01T02:30:00Z")),
            Some(ts("2026-01-01T03:00:00Z"))
        );
    }

    #[test]
    fn a_missed_run_runs_at_start_within_its_deadline() {
        let s = cron("0 2 * * *", "UTC");
        let now = ts("2026-01-10T09:00:00Z");
        let yesterday = Some(ts("2026-01-09T02:00:30Z"));
        let today = Some(ts("2026-01-10T02:00:40Z"));
        let next = First::At(ts("2026-01-11T02:00:00Z"));
        // Today's 02:00 ran: wait for tomorrow's.
        assert_eq!(s.first(now, today, None), next);
        // It was missed 7 h ago: no deadline runs it, 8 h too, 6 h not.
        assert_eq!(s.first(now, yesterday, None), First::Now);
        let h = |n: u64| Some(Duration::from_secs(n * 3600));
        assert_eq!(s.first(now, yesterday, h(8)), First::Now);
        assert_eq!(s.first(now, yesterday, h(6)), next);
        // Never succeeded: nothing was missed.
        assert_eq!(s.first(now, None, None), next);
        let e = Schedule::Every(Duration::from_secs(6 * 3600));
        assert_eq!(e.first(now, None, None), First::Now);
        // Due at 08:00:40, an hour ago.
        assert_eq!(e.first(now, today, None), First::Now);
        assert_eq!(
            e.first(now, Some(ts("2026-01-10T05:00:00Z")), None),
            First::At(ts("2026-01-10T11:00:00Z"))
        );
        assert_eq!(
            e.first(now, yesterday, h(1)),
            First::At(ts("2026-01-10T15:00:00Z"))
        );
        assert_eq!(Schedule::Manual.first(now, None, None), First::Never);
    }
}
