//! The rules of backups, pure: when a tenant's scheduled backup falls due
//! (its slot), which backups a retention policy keeps, and what an owner may
//! ask for when.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// How often every live tenant is backed up, and over how long a window the
/// tenants' backups are spread (each tenant at its own fixed offset in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub spread: Duration,
}

/// `off`, `hourly`, `daily`, `weekly`, or a duration such as `6h` or `30m`.
pub fn parse_schedule(text: &str) -> Result<Option<Duration>, String> {
    let every = match text.trim() {
        "off" | "none" => return Ok(None),
        "hourly" => Duration::from_secs(3600),
        "daily" => Duration::from_secs(86_400),
        "weekly" => Duration::from_secs(7 * 86_400),
        other => humantime::parse_duration(other).map_err(|_| {
            format!("BACKUP_SCHEDULE: \"{other}\" is not off, hourly, daily, weekly or a duration like 6h")
        })?,
    };
    if every < Duration::from_secs(60) {
        return Err("BACKUP_SCHEDULE: backups can be at most one a minute".into());
    }
    Ok(Some(every))
}

impl Schedule {
    /// The tenant's offset within the spread: fixed, and different tenants'
    /// offsets are spread evenly, so their backups do not all start at once.
    pub fn offset(&self, tenant: Uuid) -> i64 {
        let spread = self.spread.min(self.interval).as_secs() as i64;
        if spread == 0 {
            return 0;
        }
        let digest = Sha256::digest(tenant.as_bytes());
        let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        (n % spread as u64) as i64
    }

    /// The slot the tenant's backup is due for at `now`: the latest of
    /// `epoch + k × interval + offset` not after `now`. One backup per slot.
    pub fn slot(&self, tenant: Uuid, now: DateTime<Utc>) -> DateTime<Utc> {
        let interval = self.interval.as_secs().max(1) as i64;
        let offset = self.offset(tenant);
        let k = (now.timestamp() - offset).div_euclid(interval);
        Utc.timestamp_opt(k * interval + offset, 0)
            .single()
            .unwrap_or(now)
    }
}

/// How many scheduled backups to keep: the newest of each of the last `daily`
/// days that have one, of the last `weekly` ISO weeks and of the last
/// `monthly` months (grandfather-father-son).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub daily: usize,
    pub weekly: usize,
    pub monthly: usize,
}

impl std::str::FromStr for Retention {
    type Err = String;

    /// `7d,4w,6m` (any order; a part left out keeps none of that kind).
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("BACKUP_RETENTION: \"{text}\" is not like 7d,4w,6m");
        let mut r = Retention {
            daily: 0,
            weekly: 0,
            monthly: 0,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (n, unit) = part.split_at(part.len() - 1);
            let n: usize = n.parse().map_err(|_| bad())?;
            match unit {
                "d" => r.daily = n,
                "w" => r.weekly = n,
                "m" => r.monthly = n,
                _ => return Err(bad()),
            }
        }
        if r.daily + r.weekly + r.monthly == 0 {
            return Err(format!("{}: it would keep no backup at all", bad()));
        }
        Ok(r)
    }
}

impl Retention {
    /// The ids to keep of `backups` (id, when it was taken). The newest is
    /// always kept.
    pub fn keep(&self, backups: &[(i64, DateTime<Utc>)]) -> BTreeSet<i64> {
        let mut newest_first = backups.to_vec();
        newest_first.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        let mut keep = BTreeSet::new();
        if let Some((id, _)) = newest_first.first() {
            keep.insert(*id);
        }
        let mut by = |count: usize, bucket: &dyn Fn(&DateTime<Utc>) -> (i32, u32)| {
            let mut seen = Vec::new();
            for (id, at) in &newest_first {
                let b = bucket(at);
                if seen.contains(&b) {
                    continue;
                }
                if seen.len() == count {
                    break;
                }
                seen.push(b);
                keep.insert(*id);
            }
        };
        by(self.daily, &|at| (at.year(), at.ordinal()));
        by(self.weekly, &|at| {
            let w = at.iso_week();
            (w.year(), w.week())
        });
        by(self.monthly, &|at| (at.year(), at.month()));
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn schedules_parse_and_refuse_nonsense() {
        assert_eq!(parse_schedule("daily").unwrap(), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_schedule("6h").unwrap(), Some(Duration::from_secs(21_600)));
        assert_eq!(parse_schedule("off").unwrap(), None);
        assert!(parse_schedule("sometimes").unwrap_err().contains("sometimes"));
        assert!(parse_schedule("10s").is_err());
    }

    #[test]
    fn a_slot_is_fixed_per_tenant_and_period_and_tenants_are_spread() {
        let s = Schedule {
            interval: Duration::from_secs(86_400),
            spread: Duration::from_secs(6 * 3600),
        };
        let t = Uuid::from_u128(42);
        let now = at("2026-12-04T12:00:00Z");
        let slot = s.slot(t, now);
        assert!(slot <= now && now - slot < chrono::Duration::days(1));
        // Any time in the same period names the same slot; the next period another.
        assert_eq!(s.slot(t, slot), slot);
        assert_eq!(s.slot(t, slot + chrono::Duration::hours(23)), slot);
        assert_eq!(s.slot(t, slot + chrono::Duration::days(1)), slot + chrono::Duration::days(1));
        assert_eq!(s.slot(t, slot - chrono::Duration::seconds(1)), slot - chrono::Duration::days(1));
        // 1,000 tenants' offsets fall all over the 6-hour window.
        let offsets: Vec<i64> = (0..1000u128).map(|i| s.offset(Uuid::from_u128(i))).collect();
        assert!(offsets.iter().all(|o| (0..6 * 3600).contains(o)));
        let first_hour = offsets.iter().filter(|o| **o < 3600).count();
        assert!((100..240).contains(&first_hour), "{first_hour} of 1000 in the first hour");
        let none = Schedule { spread: Duration::ZERO, ..s };
        assert_eq!(none.slot(t, now), at("2026-12-04T00:00:00Z"));
    }

    #[test]
    fn retention_keeps_the_newest_of_each_day_week_and_month() {
        let r: Retention = "7d,4w,6m".parse().unwrap();
        assert_eq!(r, Retention { daily: 7, weekly: 4, monthly: 6 });
        assert!("".parse::<Retention>().is_err());
        assert!("7x".parse::<Retention>().is_err());
        // Two backups a day for 400 days.
        let start = at("2025-11-01T01:00:00Z");
        let backups: Vec<(i64, DateTime<Utc>)> = (0..800)
            .map(|i| (i, start + chrono::Duration::hours(12 * i)))
            .collect();
        let keep = r.keep(&backups);
        let newest = backups.last().unwrap();
        assert!(keep.contains(&newest.0));
        // 7 days + up to 4 weeks + up to 6 months, overlapping.
        assert!(keep.len() <= 17 && keep.len() >= 12, "{}", keep.len());
        // The 7 newest days: one each (the later backup of each day).
        for d in 0..7 {
            assert!(keep.contains(&(newest.0 - 2 * d)), "day {d}");
            assert!(!keep.contains(&(newest.0 - 2 * d - 1)), "day {d}: the earlier one");
        }
        // Nothing older than six months and a bit.
        let oldest_kept = keep.iter().map(|id| backups[*id as usize].1).min().unwrap();
        assert!(newest.1 - oldest_kept < chrono::Duration::days(190));
        assert_eq!(r.keep(&[]), BTreeSet::new());
        let only: Retention = "1d".parse().unwrap();
        assert_eq!(only.keep(&backups[..4]), BTreeSet::from([3]));
    }
}
