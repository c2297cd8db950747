//! Dates as the practice sees them: German local time (CET/CEST), whatever the server's zone.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc, Weekday};

fn last_sunday(year: i32, month: u32) -> Option<NaiveDate> {
    let first_of_next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }?;
    let last = first_of_next.pred_opt()?;
    let back = last.weekday().num_days_from_sunday();
    Some(last - Duration::days(i64::from(back)))
}

/// Today's date in Germany: UTC+1, or UTC+2 from the last Sunday of March 01:00 UTC until the
/// last Sunday of October 01:00 UTC (EU rule).
pub fn berlin_today(now: DateTime<Utc>) -> NaiveDate {
    berlin_time(now.naive_utc()).date()
}

/// A UTC instant as the wall-clock time in Germany (what staff read on screen and paper).
pub fn berlin_time(utc: NaiveDateTime) -> NaiveDateTime {
    let year = utc.year();
    let switch = |month| last_sunday(year, month).and_then(|d| d.and_hms_opt(1, 0, 0));
    let summer = match (switch(3), switch(10)) {
        (Some(start), Some(end)) => utc >= start && utc < end,
        _ => false,
    };
    utc + Duration::hours(if summer { 2 } else { 1 })
}

/// The UTC instant at which the German day `date` begins (00:00 CET/CEST; the clocks change
/// at night, never at midnight).
pub fn berlin_day_start(date: NaiveDate) -> NaiveDateTime {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    midnight - (berlin_time(midnight) - midnight)
}

/// Whether a date is a Saturday or Sunday.
pub fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_instants_are_shown_in_german_time() {
        let t = |s: &str| berlin_time(at(s).naive_utc()).to_string();
        assert_eq!(t("2026-12-03T12:00:00Z"), "2026-12-03 13:00:00", "CET");
        assert_eq!(t("2026-07-01T12:00:00Z"), "2026-07-01 14:00:00", "CEST");
        assert_eq!(
            t("2026-03-29T00:59:59Z"),
            "2026-03-29 01:59:59",
            "before the switch"
        );
        assert_eq!(t("2026-03-29T01:00:00Z"), "2026-03-29 03:00:00", "after it");
        assert_eq!(t("2026-10-25T00:59:59Z"), "2026-10-25 02:59:59");
        assert_eq!(t("2026-10-25T01:00:00Z"), "2026-10-25 02:00:00");
    }

    #[test]
    fn a_german_day_starts_at_local_midnight() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(
            berlin_day_start(d("2026-12-07")).to_string(),
            "2026-12-06 23:00:00"
        );
        assert_eq!(
            berlin_day_start(d("2026-07-01")).to_string(),
            "2026-06-30 22:00:00"
        );
        assert_eq!(
            berlin_time(berlin_day_start(d("2026-03-29"))).to_string(),
            "2026-03-29 00:00:00"
        );
        assert_eq!(
            berlin_time(berlin_day_start(d("2026-10-25"))).to_string(),
            "2026-10-25 00:00:00"
        );
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_german_date_turns_at_local_midnight() {
        assert_eq!(
            berlin_today(at("2026-11-24T22:59:59Z")).to_string(),
            "2026-11-24"
        );
        assert_eq!(
            berlin_today(at("2026-11-24T23:00:00Z")).to_string(),
            "2026-11-25"
        );
        // Summer time: UTC+2.
        assert_eq!(
            berlin_today(at("2026-07-01T21:59:59Z")).to_string(),
            "2026-07-01"
        );
        assert_eq!(
            berlin_today(at("2026-07-01T22:00:00Z")).to_string(),
            "2026-07-02"
        );
        // 2026: summer time from 29 March, until 25 October.
        assert_eq!(
            berlin_today(at("2026-03-29T22:30:00Z")).to_string(),
            "2026-03-30"
        );
        assert_eq!(
            berlin_today(at("2026-10-25T22:30:00Z")).to_string(),
            "2026-10-25"
        );
        assert!(is_weekend(NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()));
    }
}
