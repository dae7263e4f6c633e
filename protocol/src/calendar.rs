//! The China-time calendar: days and times in UTC+8 (all year), working days, and the dates a
//! person types (`2026-12-05`, `2026-12-05 17:00`). The one calendar of the code base: cases,
//! spot checks, the CLI and the simulator all use it.
//!
//! Working days are Monday to Friday, except China's public holidays (法定节假日), plus the
//! weekend days made working days (调休), as the State Council's General Office (国务院办公厅)
//! publishes them each year: a [`WorkCalendar`], built from one [`YearSchedule`] per year. The
//! built-in one ([`WorkCalendar::builtin`]) holds the published arrangements of 2025 and 2026 and
//! projected ones for 2027–2030 (holidays only, no 调休, marked `projected`); outside the years it
//! knows, a calendar falls back to Monday–Friday. The free functions [`add_working_days`] and
//! [`working_days_between`] use the built-in calendar.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

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

/// The weekday of a day number, Monday = 0 … Sunday = 6.
fn weekday(day: u64) -> u64 {
    (day + MONDAY_SHIFT) % 7
}

/// Weekdays (Monday–Friday) among the shifted days `[0, shifted)`.
fn weekdays_before(shifted: u64) -> u64 {
    shifted / 7 * 5 + (shifted % 7).min(5)
}

/// The shifted day of the weekday with 0-based index `k`.
fn nth_weekday(k: u64) -> u64 {
    k / 5 * 7 + k % 5
}

/// The same China time of day on the `days`-th working day after `from_ms`, under the built-in
/// calendar ([`WorkCalendar::add_working_days`]).
pub fn add_working_days(from_ms: u64, days: u32) -> u64 {
    WorkCalendar::builtin().add_working_days(from_ms, days)
}

/// Whole working days from `a_ms` to `b_ms` under the built-in calendar
/// ([`WorkCalendar::working_days_between`]).
pub fn working_days_between(a_ms: u64, b_ms: u64) -> u32 {
    WorkCalendar::builtin().working_days_between(a_ms, b_ms)
}

// ---------------------------------------------------------------------------------------------
// One year's arrangement.

/// The years a [`YearSchedule`] may be for.
pub const SCHEDULE_YEARS: std::ops::RangeInclusive<u16> = 2000..=2100;
/// At most this many holidays, and this many 调休 working days, in one year's schedule.
pub const MAX_HOLIDAYS: usize = 32;
pub const MAX_WORKDAYS: usize = 32;
/// A holiday's name is at most this many bytes (UTF-8: 21 Chinese characters).
pub const MAX_HOLIDAY_NAME_BYTES: usize = 64;
/// A holiday lasts at most this many days (a typo guard: the longest, 春节, is 8 or 9).
pub const MAX_HOLIDAY_DAYS: u64 = 31;
/// A year's schedule may name days from this many last days of the year before: the notice for
/// a year sometimes starts 元旦 on the weekend before 1 January (2023: 2022-12-31 至 2023-01-02),
/// or makes that weekend a working day (2012: 2011-12-31 上班). From 12-25 of the year before.
pub const DAYS_BEFORE_THE_YEAR: u64 = 7;

/// One public holiday (法定节假日) of a year's arrangement, its days off in a row:
/// `春节` from `2026-02-15` to `2026-02-23`, both included.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Holiday {
    /// `春节`, `国庆节、中秋节`: at most [`MAX_HOLIDAY_NAME_BYTES`] bytes, not blank.
    pub name: String,
    /// The first day off, China-time `YYYY-MM-DD`.
    pub first: String,
    /// The last day off, `YYYY-MM-DD`; the same as `first` for a one-day holiday.
    pub last: String,
}

impl Holiday {
    pub fn new(name: &str, first: &str, last: &str) -> Holiday {
        Holiday { name: name.to_string(), first: first.to_string(), last: last.to_string() }
    }
}

/// One year's official arrangement of public holidays and adjusted working days (节假日安排), as a
/// person types it from the State Council's notice. Self-contained, so it can be stored and
/// replicated on its own. The JSON form reads:
///
/// ```json
/// {"year": 2026,
///  "holidays": [{"name": "春节", "first": "2026-02-15", "last": "2026-02-23"}],
///  "workdays": ["2026-02-14", "2026-02-28"],
///  "projected": false}
/// ```
///
/// Wire rule (bincode via serde, positional): the fields keep this order and only ever get
/// appended. Dates are kept as the text typed and checked by [`YearSchedule::validate`], so a
/// stored schedule always decodes; a [`WorkCalendar`] ignores one that does not validate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct YearSchedule {
    /// The year of the notice, within [`SCHEDULE_YEARS`].
    pub year: u16,
    /// The holidays, each a run of days off; they do not overlap.
    pub holidays: Vec<Holiday>,
    /// The weekend days (Saturday or Sunday) that are working days (调休上班), `YYYY-MM-DD`.
    #[serde(default)]
    pub workdays: Vec<String>,
    /// True for a year whose official schedule was not published yet: estimated from the rules
    /// (the built-in 2027–2030), to be replaced by the published one.
    #[serde(default)]
    pub projected: bool,
}

/// A schedule's days, checked: holidays as `(index, first day, last day)`, sorted by first day;
/// workdays as day numbers.
struct CheckedDays {
    holidays: Vec<(usize, u64, u64)>,
    workdays: Vec<u64>,
}

const WEEKDAYS_ZH: [&str; 7] = ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"];

/// A name as shown in a message: at most 16 characters.
fn shown(name: &str) -> String {
    let mut chars = name.chars();
    let head: String = chars.by_ref().take(16).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

/// The `YYYY-MM-DD` of a day number.
fn date_of(day: u64) -> String {
    ChinaTime(day_start_ms(day)).date()
}

impl YearSchedule {
    /// Checks the schedule; the error says what is wrong in Chinese, naming the year, the holiday
    /// and the date: the year within [`SCHEDULE_YEARS`]; at most [`MAX_HOLIDAYS`] holidays and
    /// [`MAX_WORKDAYS`] workdays; each holiday named (not blank, at most
    /// [`MAX_HOLIDAY_NAME_BYTES`] bytes), its dates valid `YYYY-MM-DD` within the year (or its last
    /// [`DAYS_BEFORE_THE_YEAR`] days before), its last day not before its first, at most
    /// [`MAX_HOLIDAY_DAYS`] days; no two holidays sharing a day; each workday a valid date within
    /// the year, a Saturday or a Sunday, not within a holiday, not listed twice.
    pub fn validate(&self) -> Result<(), String> {
        self.checked().map(|_| ())
    }

    fn checked(&self) -> Result<CheckedDays, String> {
        let y = self.year;
        if !SCHEDULE_YEARS.contains(&y) {
            return Err(format!("年份 {y} 不在 {} 至 {} 之间", SCHEDULE_YEARS.start(), SCHEDULE_YEARS.end()));
        }
        if self.holidays.len() > MAX_HOLIDAYS {
            return Err(format!("{y} 年的节假日有 {} 个，最多 {MAX_HOLIDAYS} 个", self.holidays.len()));
        }
        if self.workdays.len() > MAX_WORKDAYS {
            return Err(format!("{y} 年的调休上班日有 {} 个，最多 {MAX_WORKDAYS} 个", self.workdays.len()));
        }
        let y64 = i64::from(y);
        let (from, to) = (civil_day(y64 - 1, 12, 31) + 1 - DAYS_BEFORE_THE_YEAR, civil_day(y64, 12, 31));
        let window = format!("{} 至 {}", date_of(from), date_of(to));
        let day_in_year = |text: &str, what: &dyn Fn() -> String| -> Result<u64, String> {
            let day = parse_day(text)
                .map_err(|_| format!("{}“{}”不是有效日期，请写成 {y}-10-01 这样的形式", what(), shown(text.trim())))?;
            if day < from || day > to {
                return Err(format!("{} {} 不在 {y} 年内（可用 {window}）", what(), date_of(day)));
            }
            Ok(day)
        };

        let mut holidays = Vec::with_capacity(self.holidays.len());
        for (i, h) in self.holidays.iter().enumerate() {
            let name = h.name.trim();
            if name.is_empty() {
                return Err(format!("{y} 年的第 {} 个节假日没有名称", i + 1));
            }
            if h.name.len() > MAX_HOLIDAY_NAME_BYTES {
                return Err(format!(
                    "{y} 年的节假日名称“{}”太长：{} 字节，最多 {MAX_HOLIDAY_NAME_BYTES} 字节",
                    shown(name),
                    h.name.len()
                ));
            }
            let first = day_in_year(&h.first, &|| format!("{y} 年的节假日“{name}”的开始日期"))?;
            let last = day_in_year(&h.last, &|| format!("{y} 年的节假日“{name}”的结束日期"))?;
            if last < first {
                return Err(format!(
                    "{y} 年的节假日“{name}”的结束日期 {} 早于开始日期 {}",
                    date_of(last),
                    date_of(first)
                ));
            }
            if last - first + 1 > MAX_HOLIDAY_DAYS {
                return Err(format!(
                    "{y} 年的节假日“{name}”从 {} 到 {} 共 {} 天，最多 {MAX_HOLIDAY_DAYS} 天",
                    date_of(first),
                    date_of(last),
                    last - first + 1
                ));
            }
            holidays.push((i, first, last));
        }
        holidays.sort_by_key(|&(i, first, _)| (first, i));
        for pair in holidays.windows(2) {
            let ((i, a_first, a_last), (j, b_first, b_last)) = (pair[0], pair[1]);
            if b_first <= a_last {
                return Err(format!(
                    "{y} 年的节假日“{}”（{} 至 {}）与“{}”（{} 至 {}）有重叠的日期",
                    self.holidays[i].name.trim(),
                    date_of(a_first),
                    date_of(a_last),
                    self.holidays[j].name.trim(),
                    date_of(b_first),
                    date_of(b_last)
                ));
            }
        }

        let mut workdays: Vec<u64> = Vec::with_capacity(self.workdays.len());
        for w in &self.workdays {
            let day = day_in_year(w, &|| format!("{y} 年的调休上班日"))?;
            if weekday(day) < 5 {
                return Err(format!(
                    "{y} 年的调休上班日 {} 是{}，不是周六或周日（调休上班日是改为上班的周末）",
                    date_of(day),
                    WEEKDAYS_ZH[weekday(day) as usize]
                ));
            }
            if let Some(&(i, _, _)) = holidays.iter().find(|&&(_, first, last)| (first..=last).contains(&day)) {
                return Err(format!(
                    "{y} 年的调休上班日 {} 在节假日“{}”之内",
                    date_of(day),
                    self.holidays[i].name.trim()
                ));
            }
            if workdays.contains(&day) {
                return Err(format!("{y} 年的调休上班日 {} 重复了", date_of(day)));
            }
            workdays.push(day);
        }
        Ok(CheckedDays { holidays, workdays })
    }
}

/// The day number of a civil date known to be valid and after 1970.
fn civil_day(y: i64, m: i64, d: i64) -> u64 {
    u64::try_from(days_from_civil(y, m, d)).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The working-day calendar.

/// What a day is, for display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DayKind<'a> {
    /// Monday to Friday, a working day.
    Weekday,
    /// Saturday or Sunday, a day off.
    Weekend,
    /// A day off of the named public holiday (on a weekday or a weekend).
    Holiday(&'a str),
    /// A Saturday or Sunday that is a working day (调休上班).
    AdjustedWorkday,
}

/// A day named by a schedule: a holiday's (`year`, index into its `holidays`) or a workday.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    Holiday(u16, usize),
    Workday,
}

/// The working days: Monday to Friday, less public holidays, plus adjusted working weekends
/// (调休), from one [`YearSchedule`] per year; outside those years, Monday to Friday.
///
/// Cheap to clone and share (one `Arc`); immutable. Lookups are binary searches over the days
/// that differ from Monday–Friday, and [`WorkCalendar::add_working_days`] /
/// [`WorkCalendar::working_days_between`] are arithmetic on weeks corrected by those days, so
/// their cost does not grow with the number of days (no walk, no cap).
///
/// Equal calendars hold equal schedules. `Default` is the built-in calendar.
#[derive(Clone)]
pub struct WorkCalendar(Arc<Inner>);

struct Inner {
    schedules: BTreeMap<u16, YearSchedule>,
    marks: BTreeMap<u64, Mark>,
    /// Shifted day numbers, sorted: the holidays that fall on a weekday (days off) …
    off: Vec<u64>,
    /// … and the weekends that are working days.
    on: Vec<u64>,
}

static BUILTIN: LazyLock<WorkCalendar> = LazyLock::new(|| WorkCalendar::weekdays().overlay(&builtin_years()));

impl WorkCalendar {
    /// Monday to Friday, no holidays: the behaviour before holidays were modelled.
    pub fn weekdays() -> WorkCalendar {
        WorkCalendar::from_schedules(BTreeMap::new())
    }

    /// The built-in calendar: the published arrangements of 2025 and 2026 and the projected ones
    /// of 2027–2030 (see [`builtin_years`]).
    pub fn builtin() -> &'static WorkCalendar {
        &BUILTIN
    }

    /// The built-in calendar with `years` in place of its own: a year given replaces that year's
    /// built-in schedule entirely (holidays, workdays, `projected`), the other built-in years
    /// stay. See [`WorkCalendar::overlay`].
    pub fn with_years(years: &[YearSchedule]) -> WorkCalendar {
        WorkCalendar::builtin().overlay(years)
    }

    /// This calendar with `years` in place of its own schedules for those years. A schedule that
    /// does not [`validate`](YearSchedule::validate) is ignored (the year keeps the schedule it
    /// had); of two for the same year, the later in `years` wins.
    pub fn overlay(&self, years: &[YearSchedule]) -> WorkCalendar {
        let mut schedules = self.0.schedules.clone();
        for y in years.iter().filter(|y| y.validate().is_ok()) {
            schedules.insert(y.year, y.clone());
        }
        WorkCalendar::from_schedules(schedules)
    }

    /// `schedules` must all validate (others are skipped). A day named by two years' schedules
    /// (the last days of December, see [`DAYS_BEFORE_THE_YEAR`]) is what the later year says.
    fn from_schedules(mut schedules: BTreeMap<u16, YearSchedule>) -> WorkCalendar {
        let mut marks = BTreeMap::new();
        schedules.retain(|&year, schedule| {
            let Ok(days) = schedule.checked() else { return false };
            for (i, first, last) in days.holidays {
                marks.extend((first..=last).map(|d| (d, Mark::Holiday(year, i))));
            }
            marks.extend(days.workdays.into_iter().map(|d| (d, Mark::Workday)));
            true
        });
        let shifted = |keep: fn(u64, Mark) -> bool| -> Vec<u64> {
            marks.iter().filter(|&(&d, &m)| keep(d, m)).map(|(&d, _)| d + MONDAY_SHIFT).collect()
        };
        let off = shifted(|d, m| matches!(m, Mark::Holiday(..)) && weekday(d) < 5);
        let on = shifted(|d, m| m == Mark::Workday && weekday(d) >= 5);
        WorkCalendar(Arc::new(Inner { schedules, marks, off, on }))
    }

    /// The schedule of `year`, if this calendar has one.
    pub fn schedule(&self, year: u16) -> Option<&YearSchedule> {
        self.0.schedules.get(&year)
    }

    /// The schedules this calendar has, by year.
    pub fn schedules(&self) -> impl Iterator<Item = &YearSchedule> {
        self.0.schedules.values()
    }

    /// Is the China-time day of `ms` a working day?
    pub fn is_working_day(&self, ms: u64) -> bool {
        self.is_working_date(china_day(ms).0)
    }

    /// Is day number `day` (days since 1970-01-01, as [`parse_day`] gives) a working day?
    pub fn is_working_date(&self, day: u64) -> bool {
        self.is_working_shifted(day + MONDAY_SHIFT)
    }

    /// What day number `day` is: a weekday, a weekend, a holiday (with its name) or a 调休
    /// working weekend.
    pub fn day_kind(&self, day: u64) -> DayKind<'_> {
        match self.0.marks.get(&day) {
            Some(&Mark::Holiday(year, i)) => DayKind::Holiday(&self.0.schedules[&year].holidays[i].name),
            Some(Mark::Workday) if weekday(day) >= 5 => DayKind::AdjustedWorkday,
            _ if weekday(day) < 5 => DayKind::Weekday,
            _ => DayKind::Weekend,
        }
    }

    fn is_working_shifted(&self, shifted: u64) -> bool {
        if shifted % 7 < 5 {
            self.0.off.binary_search(&shifted).is_err()
        } else {
            self.0.on.binary_search(&shifted).is_ok()
        }
    }

    /// Working days among the shifted days `[0, shifted)`.
    fn working_before(&self, shifted: u64) -> u64 {
        let before = |days: &[u64]| days.partition_point(|&d| d < shifted) as u64;
        // Each day off counted is a weekday before `shifted`: no underflow.
        weekdays_before(shifted) - before(&self.0.off) + before(&self.0.on)
    }

    /// The same China time of day on the `days`-th working day after `from_ms`: a notice on
    /// Friday with 1 working day is due on Monday, one on Saturday too; one on the Friday before
    /// a holiday is due on the first working day after it (or on a 调休 Saturday before it).
    /// `days == 0` returns `from_ms`.
    pub fn add_working_days(&self, from_ms: u64, days: u32) -> u64 {
        if days == 0 {
            return from_ms;
        }
        let (day, time_of_day) = china_day(from_ms);
        let start = day + MONDAY_SHIFT + 1;
        // The first shifted day `s >= start` with `target` working days in `[0, s]`: a working
        // day. At most `off.len()` weekdays are days off, so the weekday of index
        // `target - 1 + off.len()` has at least `target` working days up to it.
        let target = self.working_before(start) + u64::from(days);
        let (mut lo, mut hi) = (start, nth_weekday(target - 1 + self.0.off.len() as u64));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.working_before(mid + 1) >= target { hi = mid } else { lo = mid + 1 }
        }
        from_china_day(lo - MONDAY_SHIFT, time_of_day)
    }

    /// Whole working days from `a_ms` to `b_ms`: the largest `n` with
    /// `self.add_working_days(a_ms, n) <= b_ms` (0 when `b_ms <= a_ms`).
    pub fn working_days_between(&self, a_ms: u64, b_ms: u64) -> u32 {
        if b_ms <= a_ms {
            return 0;
        }
        let ((da, ta), (db, tb)) = (china_day(a_ms), china_day(b_ms));
        // Working days in (da, db]; the last one only counts once its time of day is reached.
        let days = self.working_before(db + MONDAY_SHIFT + 1) - self.working_before(da + MONDAY_SHIFT + 1);
        let days = if self.is_working_date(db) && tb < ta { days.saturating_sub(1) } else { days };
        u32::try_from(days).unwrap_or(u32::MAX)
    }
}

impl Default for WorkCalendar {
    /// The built-in calendar.
    fn default() -> WorkCalendar {
        WorkCalendar::builtin().clone()
    }
}

impl PartialEq for WorkCalendar {
    fn eq(&self, other: &WorkCalendar) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.schedules == other.0.schedules
    }
}

impl Eq for WorkCalendar {}

impl fmt::Debug for WorkCalendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let years: Vec<String> = self
            .schedules()
            .map(|s| if s.projected { format!("{} (projected)", s.year) } else { s.year.to_string() })
            .collect();
        f.debug_struct("WorkCalendar").field("years", &years).finish()
    }
}

// ---------------------------------------------------------------------------------------------
// The built-in years.

/// One row of the built-in table: the year, projected or published, its holidays
/// `(name, first, last)`, its 调休 working days.
type YearRow = (u16, bool, &'static [(&'static str, &'static str, &'static str)], &'static [&'static str]);

/// The table of [`builtin_years`]: one row per year, as the notices list them.
#[rustfmt::skip]
const BUILTIN_YEARS: &[YearRow] = &[
    (2025, false, &[
        ("元旦",           "2025-01-01", "2025-01-01"),
        ("春节",           "2025-01-28", "2025-02-04"),
        ("清明节",         "2025-04-04", "2025-04-06"),
        ("劳动节",         "2025-05-01", "2025-05-05"),
        ("端午节",         "2025-05-31", "2025-06-02"),
        ("国庆节、中秋节", "2025-10-01", "2025-10-08"),
    ], &["2025-01-26", "2025-02-08", "2025-04-27", "2025-09-28", "2025-10-11"]),
    (2026, false, &[
        ("元旦",   "2026-01-01", "2026-01-03"),
        ("春节",   "2026-02-15", "2026-02-23"),
        ("清明节", "2026-04-04", "2026-04-06"),
        ("劳动节", "2026-05-01", "2026-05-05"),
        ("端午节", "2026-06-19", "2026-06-21"),
        ("中秋节", "2026-09-25", "2026-09-27"),
        ("国庆节", "2026-10-01", "2026-10-07"),
    ], &["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"]),
    // Lunar new year 2027-02-06, 清明 04-05, 端午 06-09, 中秋 09-15.
    (2027, true, &[
        ("元旦",   "2027-01-01", "2027-01-03"),
        ("春节",   "2027-02-05", "2027-02-13"),
        ("清明节", "2027-04-03", "2027-04-05"),
        ("劳动节", "2027-05-01", "2027-05-05"),
        ("端午节", "2027-06-09", "2027-06-09"),
        ("中秋节", "2027-09-15", "2027-09-15"),
        ("国庆节", "2027-10-01", "2027-10-07"),
    ], &[]),
    // Lunar new year 2028-01-26, 清明 04-04, 端午 05-28, 中秋 10-03 (within 国庆).
    (2028, true, &[
        ("元旦",           "2028-01-01", "2028-01-03"),
        ("春节",           "2028-01-25", "2028-02-02"),
        ("清明节",         "2028-04-04", "2028-04-04"),
        ("劳动节",         "2028-05-01", "2028-05-05"),
        ("端午节",         "2028-05-27", "2028-05-29"),
        ("国庆节、中秋节", "2028-10-01", "2028-10-08"),
    ], &[]),
    // Lunar new year 2029-02-13, 清明 04-04, 端午 06-16, 中秋 09-22.
    (2029, true, &[
        ("元旦",   "2029-01-01", "2029-01-01"),
        ("春节",   "2029-02-12", "2029-02-20"),
        ("清明节", "2029-04-04", "2029-04-04"),
        ("劳动节", "2029-05-01", "2029-05-05"),
        ("端午节", "2029-06-16", "2029-06-18"),
        ("中秋节", "2029-09-22", "2029-09-24"),
        ("国庆节", "2029-10-01", "2029-10-07"),
    ], &[]),
    // Lunar new year 2030-02-03, 清明 04-05, 端午 06-05, 中秋 09-12.
    (2030, true, &[
        ("元旦",   "2030-01-01", "2030-01-01"),
        ("春节",   "2030-02-02", "2030-02-10"),
        ("清明节", "2030-04-05", "2030-04-07"),
        ("劳动节", "2030-05-01", "2030-05-05"),
        ("端午节", "2030-06-05", "2030-06-05"),
        ("中秋节", "2030-09-12", "2030-09-12"),
        ("国庆节", "2030-10-01", "2030-10-07"),
    ], &[]),
];

/// The built-in schedules, by year. 2025 and 2026: the State Council General Office's notices
/// (国务院办公厅关于2025年/2026年部分节假日安排的通知), as published. 2027–2030: projected from the
/// rules (13 statutory days since 2025: 元旦 1, 春节 4, 清明 1, 劳动节 2, 端午 1, 中秋 1, 国庆 3),
/// holidays only and no 调休 working days, so that a projected year errs towards later
/// deadlines (at least the statutory weekdays off, never a deadline on a weekend that may turn
/// out a day off), though the published blocks may still fall a day earlier or later:
///
/// - 元旦: 1 January, joined to the weekend when it is a Friday, Saturday or Sunday (a Monday
///   off in lieu when it falls on a weekend);
/// - 春节: 9 days from the lunar new year's eve (除夕) to the 8th day (初八);
/// - 清明节, 端午节, 中秋节: the day, joined to the weekend like 元旦, a weekday on its own
///   otherwise (the published notice usually bridges it with a 调休 Saturday);
/// - 劳动节: 1–5 May; 国庆节: 1–7 October, 1–8 October when 中秋 falls within it (2028).
pub fn builtin_years() -> Vec<YearSchedule> {
    BUILTIN_YEARS
        .iter()
        .map(|&(year, projected, holidays, workdays)| YearSchedule {
            year,
            holidays: holidays.iter().map(|&(name, first, last)| Holiday::new(name, first, last)).collect(),
            workdays: workdays.iter().map(|d| d.to_string()).collect(),
            projected,
        })
        .collect()
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
    #[error("“{0}” 不是日期：请写成 2026-12-05 或 2026-12-05 17:00（北京时间）")]
    Shape(String),
    #[error("“{0}” 不是有效日期（1970 年至 9999 年）")]
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

    /// A China-time instant: `2026-02-13 10:00`.
    fn at(s: &str) -> u64 {
        parse_instant(s).unwrap()
    }

    fn day(s: &str) -> u64 {
        parse_day(s).unwrap()
    }

    fn minute(ms: u64) -> String {
        ChinaTime(ms).minute()
    }

    #[test]
    fn the_built_in_years_parse_and_the_later_ones_are_projected() {
        let years = builtin_years();
        for y in &years {
            assert_eq!(y.validate(), Ok(()), "{}", y.year);
        }
        let cal = WorkCalendar::builtin();
        let known: Vec<(u16, bool)> = cal.schedules().map(|s| (s.year, s.projected)).collect();
        assert_eq!(
            known,
            vec![(2025, false), (2026, false), (2027, true), (2028, true), (2029, true), (2030, true)],
            "every built-in year made it into the calendar"
        );
        assert_eq!(cal.schedule(2026), years.iter().find(|y| y.year == 2026));
        assert!(cal.schedule(2024).is_none() && cal.schedule(2031).is_none());
        for y in years.iter().filter(|y| y.projected) {
            assert!(y.workdays.is_empty(), "{}: projected years have no 调休", y.year);
            assert!(y.holidays.iter().any(|h| h.name == "春节"));
        }
        assert_eq!(format!("{cal:?}").matches("(projected)").count(), 4);
    }

    /// Since 2025 a year has 13 statutory days off (元旦 1, 春节 4, 清明 1, 劳动节 2, 端午 1,
    /// 中秋 1, 国庆 3); a day falling on a weekend is made up by a weekday, every other weekday
    /// off is worked on a 调休 weekend. So the weekdays off less the 调休 workdays are 13.
    #[test]
    fn the_published_years_give_the_13_statutory_days() {
        for y in builtin_years().iter().filter(|y| !y.projected) {
            let days = y.checked().unwrap();
            let weekdays_off: u64 = days
                .holidays
                .iter()
                .map(|&(_, first, last)| (first..=last).filter(|&d| weekday(d) < 5).count() as u64)
                .sum();
            assert_eq!(weekdays_off - days.workdays.len() as u64, 13, "{}", y.year);
        }
        // Projected years never give fewer weekdays off than the statutory days.
        for y in builtin_years().iter().filter(|y| y.projected) {
            let days = y.checked().unwrap();
            let weekdays_off: usize =
                days.holidays.iter().map(|&(_, first, last)| (first..=last).filter(|&d| weekday(d) < 5).count()).sum();
            assert!(weekdays_off >= 13, "{}: {weekdays_off}", y.year);
        }
    }

    #[test]
    fn the_spring_festival_2026_and_its_adjusted_saturdays() {
        let cal = WorkCalendar::builtin();
        // Friday 02-13: the next working day is Saturday 02-14 (调休), then the holiday
        // (02-15 … 02-23), then Tuesday 02-24.
        let fri = at("2026-02-13 10:00");
        assert_eq!(minute(cal.add_working_days(fri, 1)), "2026-02-14 10:00");
        assert_eq!(minute(cal.add_working_days(fri, 2)), "2026-02-24 10:00");
        assert_eq!(minute(cal.add_working_days(at("2026-02-14 10:00"), 1)), "2026-02-24 10:00");
        assert_eq!(minute(cal.add_working_days(at("2026-02-16 09:00"), 1)), "2026-02-24 09:00", "within the holiday");
        // Thursday 02-26 + 2: Friday 02-27, Saturday 02-28 (调休).
        assert_eq!(minute(cal.add_working_days(at("2026-02-26 10:00"), 2)), "2026-02-28 10:00");
        assert_eq!(cal.working_days_between(fri, at("2026-02-23 23:59")), 1);
        assert_eq!(cal.working_days_between(fri, at("2026-02-24 09:59")), 1);
        assert_eq!(cal.working_days_between(fri, at("2026-02-24 10:00")), 2);
        assert_eq!(cal.working_days_between(at("2026-02-14 12:00"), at("2026-02-23 12:00")), 0, "all holiday");
        // Monday–Friday only, the old behaviour, would have had 02-16 due.
        assert_eq!(minute(WorkCalendar::weekdays().add_working_days(fri, 1)), "2026-02-16 10:00");
        assert!(!cal.is_working_day(at("2026-02-16 10:00")) && cal.is_working_day(at("2026-02-14 10:00")));
        assert_eq!(cal.day_kind(day("2026-02-17")), DayKind::Holiday("春节"));
        assert_eq!(cal.day_kind(day("2026-02-14")), DayKind::AdjustedWorkday);
        assert_eq!(cal.day_kind(day("2026-03-07")), DayKind::Weekend);
        assert_eq!(cal.day_kind(day("2026-03-06")), DayKind::Weekday);
    }

    #[test]
    fn national_day_2026_with_its_adjusted_sunday_and_saturday() {
        let cal = WorkCalendar::builtin();
        // Sunday 09-20 is a working day: from Saturday 09-19, 1 working day is due on it.
        assert_eq!(minute(cal.add_working_days(at("2026-09-19 10:00"), 1)), "2026-09-20 10:00");
        // 中秋 09-25 … 09-27, 国庆 10-01 … 10-07, Saturday 10-10 worked.
        let wed = at("2026-09-30 10:00");
        assert_eq!(minute(cal.add_working_days(wed, 1)), "2026-10-08 10:00");
        assert_eq!(minute(cal.add_working_days(wed, 2)), "2026-10-09 10:00");
        assert_eq!(minute(cal.add_working_days(wed, 3)), "2026-10-10 10:00");
        assert_eq!(minute(cal.add_working_days(wed, 4)), "2026-10-12 10:00");
        assert_eq!(minute(cal.add_working_days(at("2026-09-24 10:00"), 1)), "2026-09-28 10:00");
        assert_eq!(cal.working_days_between(wed, at("2026-10-12 10:00")), 4);
        assert_eq!(cal.working_days_between(wed, at("2026-10-12 09:00")), 3);
        assert_eq!(cal.working_days_between(at("2026-09-24 10:00"), at("2026-10-12 10:00")), 7);
    }

    #[test]
    fn a_deadline_across_the_new_year() {
        let cal = WorkCalendar::builtin();
        // 2025-12-31 (Wednesday) → 元旦 2026-01-01 … 01-03 → Sunday 01-04 worked → Monday 01-05.
        let wed = at("2025-12-31 16:00");
        assert_eq!(minute(cal.add_working_days(wed, 1)), "2026-01-04 16:00");
        assert_eq!(minute(cal.add_working_days(wed, 2)), "2026-01-05 16:00");
        assert_eq!(cal.working_days_between(wed, at("2026-01-05 16:00")), 2);
        // Into a projected year: 2026-12-31 (Thursday) → 元旦 2027-01-01 … 01-03 → Monday.
        assert_eq!(minute(cal.add_working_days(at("2026-12-31 10:00"), 1)), "2027-01-04 10:00");
        // Past the known years: Monday to Friday (2031-01-01 is a Wednesday).
        assert_eq!(minute(cal.add_working_days(at("2030-12-31 10:00"), 1)), "2031-01-01 10:00");
        // A long span: 250 working days from 2025-01-02 cross both published years' holidays.
        let from = at("2025-01-02 10:00");
        let to = cal.add_working_days(from, 250);
        assert_eq!(cal.working_days_between(from, to), 250);
        assert!(to > WorkCalendar::weekdays().add_working_days(from, 250));
    }

    #[test]
    fn a_year_given_replaces_the_built_in_one() {
        let mine = YearSchedule {
            year: 2026,
            holidays: vec![Holiday::new("春节", "2026-02-16", "2026-02-20")],
            workdays: vec!["2026-02-21".into()],
            projected: false,
        };
        let cal = WorkCalendar::with_years(std::slice::from_ref(&mine));
        assert_eq!(cal.schedule(2026), Some(&mine));
        assert_eq!(cal.schedule(2025), WorkCalendar::builtin().schedule(2025), "other years stay");
        assert!(cal.is_working_date(day("2026-10-01")), "2026's built-in 国庆 is gone");
        assert!(!cal.is_working_date(day("2026-02-14")), "nor its 调休 Saturday");
        assert!(cal.is_working_date(day("2026-02-23")) && !cal.is_working_date(day("2026-02-20")));
        assert!(cal.is_working_date(day("2026-02-21")) && !cal.is_working_date(day("2026-02-28")));
        assert!(!cal.is_working_date(day("2025-10-01")));
        assert_ne!(&cal, WorkCalendar::builtin());
        let rebuilt = WorkCalendar::weekdays().overlay(&builtin_years()).overlay(std::slice::from_ref(&mine));
        assert_eq!(cal, rebuilt, "equal schedules, equal calendars");
        assert_eq!(minute(cal.add_working_days(at("2026-02-13 10:00"), 1)), "2026-02-21 10:00");
        // An invalid schedule is ignored: the year keeps what it had.
        let bad = YearSchedule { holidays: vec![Holiday::new("春节", "2026-02-20", "2026-02-16")], ..mine.clone() };
        assert_eq!(&WorkCalendar::with_years(&[bad]), WorkCalendar::builtin());
        // A year the built-in calendar does not know, over the weekdays-only calendar.
        let y2031 = YearSchedule {
            year: 2031,
            holidays: vec![Holiday::new("元旦", "2030-12-29", "2031-01-01")],
            workdays: vec![],
            projected: true,
        };
        let cal = WorkCalendar::weekdays().overlay(&[y2031]);
        assert_eq!(cal.schedules().count(), 1);
        assert!(!cal.is_working_date(day("2030-12-30")) && !cal.is_working_date(day("2031-01-01")));
        assert!(cal.is_working_date(day("2031-01-02")) && cal.is_working_date(day("2026-10-01")));
        assert_eq!(cal.day_kind(day("2030-12-31")), DayKind::Holiday("元旦"));
    }

    #[test]
    fn a_schedule_is_checked_with_a_message_naming_what_is_wrong() {
        let ok = || YearSchedule {
            year: 2027,
            holidays: vec![
                Holiday::new("春节", "2027-02-05", "2027-02-13"),
                Holiday::new("元旦", "2027-01-01", "2027-01-03"),
            ],
            workdays: vec!["2027-01-30".into()],
            projected: false,
        };
        assert_eq!(ok().validate(), Ok(()));
        let err = |f: &dyn Fn(&mut YearSchedule)| {
            let mut s = ok();
            f(&mut s);
            s.validate().unwrap_err()
        };
        let long = "长".repeat(22);
        let cases: Vec<(String, &str)> = vec![
            (err(&|s| s.year = 1999), "年份 1999 不在 2000 至 2100 之间"),
            (err(&|s| s.year = 2101), "年份 2101 不在 2000 至 2100 之间"),
            (
                err(&|s| s.holidays = vec![Holiday::new("x", "2027-03-01", "2027-03-01"); 33]),
                "2027 年的节假日有 33 个，最多 32 个",
            ),
            (err(&|s| s.workdays = vec!["2027-01-30".into(); 33]), "2027 年的调休上班日有 33 个，最多 32 个"),
            (err(&|s| s.holidays[1].name = " ".into()), "2027 年的第 2 个节假日没有名称"),
            (
                err(&|s| s.holidays[0].name = long.clone()),
                "2027 年的节假日名称“长长长长长长长长长长长长长长长长…”太长：66 字节，最多 64 字节",
            ),
            (
                err(&|s| s.holidays[0].first = "2027-2-5".into()),
                "2027 年的节假日“春节”的开始日期“2027-2-5”不是有效日期，请写成 2027-10-01 这样的形式",
            ),
            (
                err(&|s| s.holidays[0].last = "2027-02-30".into()),
                "2027 年的节假日“春节”的结束日期“2027-02-30”不是有效日期，请写成 2027-10-01 这样的形式",
            ),
            (
                err(&|s| s.holidays[0] = Holiday::new("春节", "2027-02-06", "2027-02-03")),
                "2027 年的节假日“春节”的结束日期 2027-02-03 早于开始日期 2027-02-06",
            ),
            (
                err(&|s| s.holidays[0] = Holiday::new("春节", "2027-12-30", "2028-01-02")),
                "2027 年的节假日“春节”的结束日期 2028-01-02 不在 2027 年内（可用 2026-12-25 至 2027-12-31）",
            ),
            (
                err(&|s| s.holidays[1] = Holiday::new("元旦", "2026-12-24", "2027-01-01")),
                "2027 年的节假日“元旦”的开始日期 2026-12-24 不在 2027 年内（可用 2026-12-25 至 2027-12-31）",
            ),
            (
                err(&|s| s.holidays[0] = Holiday::new("春节", "2027-01-01", "2027-02-13")),
                "2027 年的节假日“春节”从 2027-01-01 到 2027-02-13 共 44 天，最多 31 天",
            ),
            (
                err(&|s| s.holidays.push(Holiday::new("元宵", "2027-02-13", "2027-02-14"))),
                "2027 年的节假日“春节”（2027-02-05 至 2027-02-13）与“元宵”（2027-02-13 至 2027-02-14）有重叠的日期",
            ),
            (
                err(&|s| s.workdays.push("2027-1-31".into())),
                "2027 年的调休上班日“2027-1-31”不是有效日期，请写成 2027-10-01 这样的形式",
            ),
            (
                err(&|s| s.workdays.push("2028-01-01".into())),
                "2027 年的调休上班日 2028-01-01 不在 2027 年内（可用 2026-12-25 至 2027-12-31）",
            ),
            (
                err(&|s| s.workdays.push("2027-02-03".into())),
                "2027 年的调休上班日 2027-02-03 是星期三，不是周六或周日（调休上班日是改为上班的周末）",
            ),
            (err(&|s| s.workdays.push("2027-02-06".into())), "2027 年的调休上班日 2027-02-06 在节假日“春节”之内"),
            (err(&|s| s.workdays.push("2027-01-30".into())), "2027 年的调休上班日 2027-01-30 重复了"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        // At the limits: 32 holidays, a 64-byte name, 31 days from 12-25 of the year before, 32
        // workdays.
        let mut s = ok();
        s.holidays = (0..32)
            .map(|i| Holiday::new("节", &date_of(day("2027-03-01") + i), &date_of(day("2027-03-01") + i)))
            .collect();
        s.holidays[0] = Holiday::new(&"节".repeat(21), "2026-12-25", "2027-01-24");
        assert_eq!(s.holidays[0].name.len(), 63);
        s.holidays[0].name.push('x');
        s.workdays = (0..32).map(|w| date_of(day("2027-05-01") + 7 * w)).collect();
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn a_schedule_reads_naturally_in_json_and_round_trips_through_bincode() {
        let y2026 = WorkCalendar::builtin().schedule(2026).unwrap().clone();
        let json = serde_json::to_string(&y2026).unwrap();
        assert!(
            json.starts_with(r#"{"year":2026,"holidays":[{"name":"元旦","first":"2026-01-01","last":"2026-01-03"}"#),
            "{json}"
        );
        assert!(json.ends_with(r#""workdays":["2026-01-04","2026-02-14","2026-02-28","2026-05-09","2026-09-20","2026-10-10"],"projected":false}"#), "{json}");
        assert_eq!(serde_json::from_str::<YearSchedule>(&json).unwrap(), y2026);
        // Typed by a person: workdays and projected may be left out.
        let typed: YearSchedule = serde_json::from_str(
            r#"{"year":2031,"holidays":[{"name":"元旦","first":"2031-01-01","last":"2031-01-01"}]}"#,
        )
        .unwrap();
        assert!(typed.workdays.is_empty() && !typed.projected);
        let config = bincode::config::standard();
        for y in builtin_years() {
            let bytes = bincode::serde::encode_to_vec(&y, config).unwrap();
            let (back, n): (YearSchedule, usize) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
            assert_eq!((back, n), (y, bytes.len()));
        }
    }

    #[test]
    fn weekdays_only_is_the_old_behaviour() {
        let cal = WorkCalendar::weekdays();
        assert_eq!(cal.schedules().count(), 0);
        assert!(cal.is_working_date(day("2026-10-01")) && !cal.is_working_date(day("2026-10-10")));
        // Friday + 1 is Monday, Saturday + 1 too, Friday + 10 two weeks on.
        assert_eq!(minute(cal.add_working_days(at("2026-10-02 10:00"), 1)), "2026-10-05 10:00");
        assert_eq!(minute(cal.add_working_days(at("2026-10-03 10:00"), 1)), "2026-10-05 10:00");
        assert_eq!(minute(cal.add_working_days(at("2026-10-02 10:00"), 10)), "2026-10-16 10:00");
        assert_eq!(cal.working_days_between(at("2026-10-02 10:00"), at("2026-10-16 10:00")), 10);
        assert_eq!(&WorkCalendar::default(), WorkCalendar::builtin());
        assert_ne!(&cal, WorkCalendar::builtin());
    }

    #[test]
    fn far_and_edge_instants_do_not_panic() {
        let cal = WorkCalendar::builtin();
        for ms in [0, 1, DAY_MS, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
            let _ = cal.add_working_days(ms, u32::MAX);
            let _ = cal.add_working_days(ms, 1);
            let _ = cal.working_days_between(0, ms);
            let _ = cal.is_working_day(ms);
        }
        let from = at("2025-01-01 00:00");
        let far = cal.add_working_days(from, 1_000_000);
        assert_eq!(cal.working_days_between(from, far), 1_000_000);
    }

    use proptest::prelude::*;

    proptest! {
        /// Under the built-in calendar, `working_days_between` undoes `add_working_days`, which
        /// lands on a working day at the same China time of day.
        #[test]
        fn add_and_between_agree_under_the_builtin_calendar(
            a in 1_735_660_800_000u64..1_924_963_200_000, // 2025-01-01 … 2030-12-31, China time
            n in 0u32..=30,
        ) {
            let cal = WorkCalendar::builtin();
            let b = cal.add_working_days(a, n);
            prop_assert_eq!(cal.working_days_between(a, b), n);
            if n >= 1 {
                prop_assert!(cal.is_working_day(b), "{} is not a working day", ChinaTime(b));
                prop_assert_eq!((b - a) % DAY_MS, 0);
                prop_assert_eq!(cal.working_days_between(a, b - 1), n - 1);
            }
        }

        /// The arithmetic agrees with walking the days one by one.
        #[test]
        fn add_working_days_is_the_day_by_day_walk(a in 1_735_660_800_000u64..1_924_963_200_000, n in 1u32..=60) {
            let cal = WorkCalendar::builtin();
            let (mut d, mut left) = (china_day(a).0, n);
            while left > 0 {
                d += 1;
                if cal.is_working_date(d) { left -= 1; }
            }
            prop_assert_eq!(china_day(cal.add_working_days(a, n)).0, d);
        }
    }
}
