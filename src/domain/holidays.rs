//! Working days: Monday to Friday without the public holidays of the practice's Land
//! (Saturday is not a working day, TA P6-04). Holidays are computed from their legal rules
//! (Feiertagsgesetze of the Länder), Easter by the Gregorian computus.

use chrono::{Datelike, Duration, NaiveDate};

use super::calendar::is_weekend;

/// The 16 Länder, by their ISO 3166-2:DE codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Land {
    BW,
    BY,
    BE,
    BB,
    HB,
    HH,
    HE,
    MV,
    NI,
    NW,
    RP,
    SL,
    SN,
    ST,
    SH,
    TH,
}

impl Land {
    pub const ALL: [Self; 16] = [
        Self::BW,
        Self::BY,
        Self::BE,
        Self::BB,
        Self::HB,
        Self::HH,
        Self::HE,
        Self::MV,
        Self::NI,
        Self::NW,
        Self::RP,
        Self::SL,
        Self::SN,
        Self::ST,
        Self::SH,
        Self::TH,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::BW => "BW",
            Self::BY => "BY",
            Self::BE => "BE",
            Self::BB => "BB",
            Self::HB => "HB",
            Self::HH => "HH",
            Self::HE => "HE",
            Self::MV => "MV",
            Self::NI => "NI",
            Self::NW => "NW",
            Self::RP => "RP",
            Self::SL => "SL",
            Self::SN => "SN",
            Self::ST => "ST",
            Self::SH => "SH",
            Self::TH => "TH",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code.trim())
    }
}

/// Easter Sunday (Gregorian calendar, anonymous Gregorian algorithm).
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// The public holidays of a Land in a year, with their names, in date order.
pub fn public_holidays(land: Land, year: i32) -> Vec<(NaiveDate, &'static str)> {
    use Land::*;
    let Some(easter) = easter_sunday(year) else {
        return Vec::new();
    };
    let date = |m, d| NaiveDate::from_ymd_opt(year, m, d);
    let rel = |days: i64| Some(easter + Duration::days(days));
    let in_land = |lands: &[Land]| lands.contains(&land);
    // Buß- und Bettag: the Wednesday before 23 November.
    let repentance = date(11, 22).map(|d| {
        let back = (d.weekday().num_days_from_monday() + 7 - 2) % 7;
        d - Duration::days(i64::from(back))
    });
    let candidates: [(Option<NaiveDate>, &'static str, bool); 20] = [
        (date(1, 1), "Neujahr", true),
        (date(1, 6), "Heilige Drei Könige", in_land(&[BW, BY, ST])),
        (
            date(3, 8),
            "Internationaler Frauentag",
            (land == BE && year >= 2019) || (land == MV && year >= 2023),
        ),
        (rel(-2), "Karfreitag", true),
        (rel(0), "Ostersonntag", land == BB),
        (rel(1), "Ostermontag", true),
        (date(5, 1), "Tag der Arbeit", true),
        (date(5, 8), "Tag der Befreiung", land == BE && year == 2025),
        (rel(39), "Christi Himmelfahrt", true),
        (rel(49), "Pfingstsonntag", land == BB),
        (rel(50), "Pfingstmontag", true),
        (rel(60), "Fronleichnam", in_land(&[BW, BY, HE, NW, RP, SL])),
        (date(8, 15), "Mariä Himmelfahrt", land == SL),
        (date(9, 20), "Weltkindertag", land == TH && year >= 2019),
        (date(10, 3), "Tag der Deutschen Einheit", true),
        (
            date(10, 31),
            "Reformationstag",
            in_land(&[BB, MV, SN, ST, TH]) || (in_land(&[HB, HH, NI, SH]) && year >= 2018),
        ),
        (date(11, 1), "Allerheiligen", in_land(&[BW, BY, NW, RP, SL])),
        (repentance, "Buß- und Bettag", land == SN),
        (date(12, 25), "1. Weihnachtstag", true),
        (date(12, 26), "2. Weihnachtstag", true),
    ];
    let mut days: Vec<_> = candidates
        .into_iter()
        .filter_map(|(d, name, applies)| applies.then_some(d).flatten().map(|d| (d, name)))
        .collect();
    days.sort();
    days
}

/// Whether `d` is a working day in `land`: Monday–Friday and no public holiday.
pub fn is_working_day(land: Land, d: NaiveDate) -> bool {
    !is_weekend(d) && !public_holidays(land, d.year()).iter().any(|(h, _)| *h == d)
}

/// The `n`-th working day after `d` (`n = 1`: the next working day).
pub fn add_working_days(land: Land, d: NaiveDate, n: u32) -> NaiveDate {
    let mut day = d;
    let mut left = n;
    while left > 0 {
        day += Duration::days(1);
        if is_working_day(land, day) {
            left -= 1;
        }
    }
    day
}

/// The paper fallback of an eAU that has not reached the insurer (TA P5-04 AK5, P6-03): it
/// must be delivered by the end of the next working day after capture, else the KK copy goes
/// by post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostDeadline {
    /// Still time for the electronic route, until the end of `post_by`.
    InTime { post_by: NaiveDate },
    /// Last working day: post the KK copy today if it is still unsent tonight.
    PostToday,
    /// The deadline passed on `post_by`: post it now (and the reminder is due).
    Overdue { post_by: NaiveDate },
}

impl PostDeadline {
    /// The deadline column of the dispatch list: "per Post spätestens 03.12.2026",
    /// "heute per Post", "überfällig seit 03.12.2026".
    pub fn label(&self, today: NaiveDate) -> String {
        match self {
            Self::InTime { post_by } => {
                format!("per Post spätestens {}", post_by.format("%d.%m.%Y"))
            }
            Self::PostToday => format!("heute per Post (spätestens {})", today.format("%d.%m.%Y")),
            Self::Overdue { post_by } => {
                format!("überfällig seit {}", post_by.format("%d.%m.%Y"))
            }
        }
    }

    /// Today or past: the KK copy goes by post now.
    pub fn is_due(&self) -> bool {
        !matches!(self, Self::InTime { .. })
    }
}

pub fn post_deadline(land: Land, captured_on: NaiveDate, today: NaiveDate) -> PostDeadline {
    let post_by = add_working_days(land, captured_on, 1);
    match today.cmp(&post_by) {
        std::cmp::Ordering::Less => PostDeadline::InTime { post_by },
        std::cmp::Ordering::Equal => PostDeadline::PostToday,
        std::cmp::Ordering::Greater => PostDeadline::Overdue { post_by },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn holidays(land: Land, year: i32) -> Vec<String> {
        public_holidays(land, year)
            .into_iter()
            .map(|(d, _)| d.format("%m-%d").to_string())
            .collect()
    }

    #[test]
    fn easter_matches_the_published_dates_2025_to_2030() {
        for (year, date) in [
            (2025, "2025-04-20"),
            (2026, "2026-04-05"),
            (2027, "2027-03-28"),
            (2028, "2028-04-16"),
            (2029, "2029-04-01"),
            (2030, "2030-04-21"),
        ] {
            assert_eq!(easter_sunday(year).unwrap(), d(date));
        }
    }

    #[test]
    fn the_holidays_of_2026_match_the_published_lists_for_all_laender() {
        // 2026: Karfreitag 03-04, Ostermontag 04-06, Himmelfahrt 05-14, Pfingstmontag 05-25,
        // Fronleichnam 06-04, Buß- und Bettag 11-18.
        let common = [
            "01-01", "04-03", "04-06", "05-01", "05-14", "05-25", "10-03", "12-25", "12-26",
        ];
        let extra: [(Land, &[&str]); 16] = [
            (Land::BW, &["01-06", "06-04", "11-01"]),
            (Land::BY, &["01-06", "06-04", "11-01"]),
            (Land::BE, &["03-08"]),
            (Land::BB, &["04-05", "05-24", "10-31"]),
            (Land::HB, &["10-31"]),
            (Land::HH, &["10-31"]),
            (Land::HE, &["06-04"]),
            (Land::MV, &["03-08", "10-31"]),
            (Land::NI, &["10-31"]),
            (Land::NW, &["06-04", "11-01"]),
            (Land::RP, &["06-04", "11-01"]),
            (Land::SL, &["06-04", "08-15", "11-01"]),
            (Land::SN, &["10-31", "11-18"]),
            (Land::ST, &["01-06", "10-31"]),
            (Land::SH, &["10-31"]),
            (Land::TH, &["09-20", "10-31"]),
        ];
        for (land, more) in extra {
            let mut expected: Vec<String> =
                common.iter().chain(more).map(|s| (*s).to_owned()).collect();
            expected.sort();
            assert_eq!(holidays(land, 2026), expected, "{}", land.code());
        }
    }

    #[test]
    fn movable_holidays_2025_to_2030() {
        // (year, Karfreitag, Fronleichnam, Buß- und Bettag) as published.
        for (year, good_friday, corpus_christi, repentance) in [
            (2025, "04-18", "06-19", "11-19"),
            (2026, "04-03", "06-04", "11-18"),
            (2027, "03-26", "05-27", "11-17"),
            (2028, "04-14", "06-15", "11-22"),
            (2029, "03-30", "05-31", "11-21"),
            (2030, "04-19", "06-20", "11-20"),
        ] {
            let sn = holidays(Land::SN, year);
            let by = holidays(Land::BY, year);
            assert!(sn.contains(&good_friday.to_owned()), "{year}");
            assert!(by.contains(&corpus_christi.to_owned()), "{year}");
            assert!(sn.contains(&repentance.to_owned()), "{year}");
            assert!(
                !holidays(Land::NI, year).contains(&corpus_christi.to_owned()),
                "{year}"
            );
        }
        assert!(
            holidays(Land::BE, 2025).contains(&"05-08".to_owned()),
            "Berlin one-off 2025"
        );
        assert!(!holidays(Land::BE, 2026).contains(&"05-08".to_owned()));
    }

    #[test]
    fn an_unsent_eau_goes_by_post_at_the_end_of_the_next_working_day() {
        // Captured Thursday before Easter 2026 in Lower Saxony: next working day is Tuesday.
        let captured = d("2026-04-02");
        assert_eq!(
            post_deadline(Land::NI, captured, d("2026-04-06")),
            PostDeadline::InTime {
                post_by: d("2026-04-07")
            }
        );
        assert_eq!(
            post_deadline(Land::NI, captured, d("2026-04-07")),
            PostDeadline::PostToday
        );
        assert_eq!(
            post_deadline(Land::NI, captured, d("2026-04-08")),
            PostDeadline::Overdue {
                post_by: d("2026-04-07")
            }
        );
        // Fronleichnam: a holiday in Bavaria, not in Lower Saxony.
        assert_eq!(
            post_deadline(Land::NI, d("2026-06-03"), d("2026-06-04")),
            PostDeadline::PostToday
        );
        assert!(matches!(
            post_deadline(Land::BY, d("2026-06-03"), d("2026-06-04")),
            PostDeadline::InTime { .. }
        ));
    }

    #[test]
    fn the_deadline_column_follows_the_calendar_of_the_land() {
        let label =
            |land, captured, today| post_deadline(land, d(captured), d(today)).label(d(today));
        // Buß- und Bettag (Wednesday 18.11.2026) only in Saxony.
        assert_eq!(
            label(Land::SN, "2026-11-17", "2026-11-17"),
            "per Post spätestens 19.11.2026"
        );
        assert_eq!(
            label(Land::NI, "2026-11-17", "2026-11-17"),
            "per Post spätestens 18.11.2026"
        );
        // Heilige Drei Könige (Wednesday 06.01.2027) in BW, BY and ST only.
        for land in [Land::BW, Land::BY, Land::ST] {
            assert_eq!(
                label(land, "2027-01-05", "2027-01-05"),
                "per Post spätestens 07.01.2027",
                "{land:?}"
            );
        }
        for land in [Land::NI, Land::HE, Land::BE, Land::SN] {
            assert_eq!(
                label(land, "2027-01-05", "2027-01-05"),
                "per Post spätestens 06.01.2027",
                "{land:?}"
            );
        }
        // Frauentag (Monday 08.03.2027) in Berlin and Mecklenburg-Vorpommern: captured on
        // Friday, the next working day is Tuesday there, Monday elsewhere.
        for land in [Land::BE, Land::MV] {
            assert_eq!(
                label(land, "2027-03-05", "2027-03-05"),
                "per Post spätestens 09.03.2027"
            );
        }
        assert_eq!(
            label(Land::HH, "2027-03-05", "2027-03-05"),
            "per Post spätestens 08.03.2027"
        );
        // Weltkindertag (Monday 20.09.2027) in Thuringia only.
        assert_eq!(
            label(Land::TH, "2027-09-17", "2027-09-20"),
            "per Post spätestens 21.09.2027"
        );
        assert_eq!(
            label(Land::SN, "2027-09-17", "2027-09-20"),
            "heute per Post (spätestens 20.09.2027)"
        );
        assert_eq!(
            label(Land::NI, "2026-12-03", "2026-12-07"),
            "überfällig seit 04.12.2026"
        );
        assert!(post_deadline(Land::NI, d("2026-12-03"), d("2026-12-04")).is_due());
        assert!(!post_deadline(Land::NI, d("2026-12-03"), d("2026-12-03")).is_due());
    }

    #[test]
    fn working_days_skip_weekends_and_holidays() {
        // Friday 2026-04-03 is Karfreitag, Monday 04-06 Ostermontag.
        assert_eq!(
            add_working_days(Land::NI, d("2026-04-02"), 1),
            d("2026-04-07")
        );
        // Friday → Monday.
        assert_eq!(
            add_working_days(Land::NI, d("2026-11-27"), 1),
            d("2026-11-30")
        );
        // Reformationstag 2026 is a Saturday: no effect; Allerheiligen a Sunday.
        assert!(!is_working_day(Land::BW, d("2026-06-04")));
        assert!(is_working_day(Land::NI, d("2026-06-04")));
    }
}
