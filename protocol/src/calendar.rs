//! The China-time calendar: days and times in UTC+8 (all year), working days, and the dates a
//! person types (`2026-12-05`, `2026-12-05 17:00`). The one calendar of the code base: cases,
//! spot checks, the CLI and the simulator all use it.
//!
//! Working days are Monday to Friday; public holidays and adjusted working weekends (调休) are not
//! modelled yet.

use std::fmt;

pub const HOUR_MS: u64 = 3_600_000;
pub const DAY_MS: u64 = 24 * HOUR_MS;
/// China time is UTC+8 all year.
pub const CHINA_OFFSET_MS: u64 = 8 * HOUR_MS;

/// China-time `(day number since 1970-01-01, ms into that day)`.
fn china_day(ms: u64) -> (u64, u64) {
    let local = ms.saturating_add(CHINA_OFFSET_MS);
    (local / DAY_MS, local % DAY_MS)
}

fn from_china_day(day: u64, time_of_day: u64) -> u64 {
    day.saturating_mul(DAY_MS).saturating_add(time_of_day).saturating_sub(CHINA_OFFSET_MS)
}

// Day numbers shifted by 3 count from Monday 1969-12-29 (1970-01-01 was a Thursday), so that
// `shifted % 7` is the weekday with Monday = 0.
const MONDAY_SHIFT: u64 = 3;

fn is_working_day(day: u64) -> bool {
    (day + MONDAY_SHIFT) % 7 < 5
}

/// Working days among the shifted days `[0, shifted)`.
fn working_days_before(shifted: u64) -> u64 {
    shifted / 7 * 5 + (shifted % 7).min(5)
}

/// The shifted day of the working day with 0-based index `k`.
fn nth_working_day(k: u64) -> u64 {
    k / 5 * 7 + k % 5
}

/// The same China time of day on the `days`-th working day after `from_ms` (a notice on Friday
/// with 1 working day is due on Monday; one on Saturday too). `days == 0` returns `from_ms`.
pub fn add_working_days(from_ms: u64, days: u32) -> u64 {
    if days == 0 {
        return from_ms;
    }
    let (day, time_of_day) = china_day(from_ms);
    let k = working_days_before(day + MONDAY_SHIFT + 1) + u64::from(days) - 1;
    from_china_day(nth_working_day(k).saturating_sub(MONDAY_SHIFT), time_of_day)
}

/// Whole working days from `a_ms` to `b_ms`: the largest `n` with `add_working_days(a_ms, n) <= b_ms`
/// (0 when `b_ms <= a_ms`).
pub fn working_days_between(a_ms: u64, b_ms: u64) -> u32 {
    if b_ms <= a_ms {
        return 0;
    }
    let ((da, ta), (db, tb)) = (china_day(a_ms), china_day(b_ms));
    // Working days in (da, db]; the last one only counts once its time of day is reached.
    let days = working_days_before(db + MONDAY_SHIFT + 1) - working_days_before(da + MONDAY_SHIFT + 1);
    let days = if is_working_day(db) && tb < ta { days.saturating_sub(1) } else { days };
    u32::try_from(days).unwrap_or(u32::MAX)
}

/// A unix-ms instant shown in China time: `2024-03-01 10:00 (UTC+8)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChinaTime(pub u64);

impl ChinaTime {
    /// The China-time calendar date: `2024-03-01`.
    pub fn date(&self) -> String {
        let (day, _) = china_day(self.0);
        // Civil date from a day number (H. Hinnant's algorithm); `day` < 2^38, so no overflow.
        let z = day + 719_468;
        let (era, doe) = (z / 146_097, z % 146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + u64::from(m <= 2);
        format!("{y:04}-{m:02}-{d:02}")
    }
}

impl fmt::Display for ChinaTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (_, time_of_day) = china_day(self.0);
        let minutes = time_of_day / 60_000;
        write!(f, "{} {:02}:{:02} (UTC+8)", self.date(), minutes / 60, minutes % 60)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Why a text is not a date or time a person meant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error(
        "“{0}” 不是日期：请写成 2026-12-05 或 2026-12-05 17:00（北京时间） / `{0}` is not a date: write 2026-12-05 or 2026-12-05 17:00 (China time)"
    )]
    Shape(String),
    #[error("“{0}” 不是有效日期（1970 年至 9999 年） / `{0}` is not a valid date from 1970 to 9999")]
    Invalid(String),
}

/// A China-time calendar day `YYYY-MM-DD` (zero-padded) as its day number since 1970-01-01.
pub fn parse_day(s: &str) -> Result<u64, DateError> {
    let s = s.trim();
    let shape = || DateError::Shape(s.to_string());
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(shape());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, DateError> {
        let part = &s[r];
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(shape());
        }
        part.parse().map_err(|_| shape())
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > days_in[(m - 1) as usize] {
        return Err(DateError::Invalid(s.to_string()));
    }
    u64::try_from(days_from_civil(y, m, d)).map_err(|_| DateError::Invalid(s.to_string()))
}

/// A China-time month `YYYY-MM` as the day number of its first day.
pub fn parse_month(s: &str) -> Result<u64, DateError> {
    let t = s.trim();
    if t.len() != 7 {
        return Err(DateError::Shape(s.trim().to_string()));
    }
    parse_day(&format!("{t}-01")).map_err(|_| DateError::Shape(t.to_string()))
}

/// The first millisecond of a China-time day (its midnight).
pub fn day_start_ms(day: u64) -> u64 {
    from_china_day(day, 0)
}

/// A date or date-time a person typed, in China time: `2026-12-05` means the **end** of that day
/// (its last millisecond: "valid until the 5th" includes the 5th), `2026-12-05 17:00` that minute.
pub fn parse_deadline(s: &str) -> Result<u64, DateError> {
    let t = s.trim();
    match t.split_once([' ', 'T']) {
        None => Ok(day_start_ms(parse_day(t)? + 1) - 1),
        Some((day, time)) => {
            let day = parse_day(day).map_err(|_| DateError::Shape(t.to_string()))?;
            Ok(day_start_ms(day) + parse_time_of_day(time).ok_or_else(|| DateError::Shape(t.to_string()))?)
        }
    }
}

/// A date or date-time a person typed, in China time: `2026-12-05` means the **start** of that day.
pub fn parse_instant(s: &str) -> Result<u64, DateError> {
    let t = s.trim();
    match t.split_once([' ', 'T']) {
        None => Ok(day_start_ms(parse_day(t)?)),
        Some(_) => parse_deadline(t),
    }
}

/// `HH:MM` → ms into the day.
fn parse_time_of_day(s: &str) -> Option<u64> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some((h * 60 + m) * 60_000)
}

/// RFC 3339 in China time with its offset: `2026-12-05T17:00:00.000+08:00`.
pub fn rfc3339(ms: u64) -> String {
    let (_, tod) = china_day(ms);
    let (h, m, sec, milli) = (tod / HOUR_MS, tod / 60_000 % 60, tod / 1_000 % 60, tod % 1_000);
    format!("{}T{h:02}:{m:02}:{sec:02}.{milli:03}+08:00", ChinaTime(ms).date())
}

impl ChinaTime {
    /// `2026-12-05 17:00`: what a person reads in a table (China time, no seconds).
    pub fn minute(&self) -> String {
        let (_, tod) = china_day(self.0);
        format!("{} {:02}:{:02}", self.date(), tod / HOUR_MS, tod / 60_000 % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_through_the_civil_date() {
        for s in ["1970-01-01", "2024-02-29", "2026-12-05", "2099-12-31"] {
            let day = parse_day(s).unwrap();
            assert_eq!(ChinaTime(day_start_ms(day)).date(), s);
            assert_eq!(ChinaTime(parse_deadline(s).unwrap()).date(), s);
        }
    }

    #[test]
    fn a_person_s_dates_parse_in_china_time() {
        // 2026-12-05 00:00 +08:00 = 2026-12-04T16:00Z.
        assert_eq!(parse_instant("2026-12-05").unwrap(), 1_796_400_000_000);
        assert_eq!(parse_deadline("2026-12-05 17:00").unwrap(), 1_796_400_000_000 + 17 * HOUR_MS);
        assert_eq!(parse_deadline("2026-12-05").unwrap(), 1_796_400_000_000 + DAY_MS - 1);
        assert_eq!(rfc3339(1_796_400_000_000 + 17 * HOUR_MS + 1), "2026-12-05T17:00:00.001+08:00");
        assert_eq!(ChinaTime(1_796_400_000_000 + 17 * HOUR_MS).minute(), "2026-12-05 17:00");
        assert_eq!(parse_month("2026-12").unwrap(), parse_day("2026-12-01").unwrap());
    }

    #[test]
    fn what_is_not_a_date_is_refused_not_stored_as_1970() {
        for bad in ["20261210", "2026-2-1", "2026-02-30", "1969-12-31", "2026-12-05 25:00", "2026-12-05 7", "", "x"] {
            assert!(parse_deadline(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_month("2026-13").is_err());
        assert!(parse_deadline("20261210").unwrap_err().to_string().contains("2026-12-05"));
    }
}
