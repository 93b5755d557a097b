//! The IMF-fixdate form of the Date header (RFC 9110 §5.6.7), formatted by hand.
//!
//! Formatting a date costs far more than copying 29 bytes, so the server
//! formats it once a second per core and every response copies the result.
//! This module only knows how to turn a Unix time into those 29 bytes, into
//! the RFC 3339 timestamps the product API sends (`Rfc3339Millis`) and the log
//! API sends (`Rfc3339Micros`), and how to read the RFC 3339 timestamps clients
//! send ([`parse_rfc3339`]).

/// `Sun, 06 Nov 1994 08:49:37 GMT`: always exactly 29 ASCII bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpDate([u8; 29]);

const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
const MONTHS: [&[u8; 3]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

impl HttpDate {
    /// Formats a time given as seconds since 1970-01-01T00:00:00Z.
    pub fn from_unix_secs(secs: u64) -> HttpDate {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days as i64);
        let mut b = *b"Thu, 01 Jan 1970 00:00:00 GMT";
        b[..3].copy_from_slice(DAYS[(days % 7) as usize]);
        two_digits(&mut b[5..7], day);
        b[8..11].copy_from_slice(MONTHS[month as usize - 1]);
        let y = year as u32;
        b[12] = b'0' + (y / 1000 % 10) as u8;
        b[13] = b'0' + (y / 100 % 10) as u8;
        b[14] = b'0' + (y / 10 % 10) as u8;
        b[15] = b'0' + (y % 10) as u8;
        two_digits(&mut b[17..19], (rem / 3600) as u32);
        two_digits(&mut b[20..22], (rem / 60 % 60) as u32);
        two_digits(&mut b[23..25], (rem % 60) as u32);
        HttpDate(b)
    }

    /// Formats the current system time.
    pub fn now() -> HttpDate {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        HttpDate::from_unix_secs(secs)
    }

    pub fn as_bytes(&self) -> &[u8; 29] {
        &self.0
    }
}

/// `2016-02-18T03:22:56.637Z`: UTC, always with three fractional digits and a
/// `Z`, the one form every Conduit client's timestamp pattern accepts
/// (shared/conduit-api.md §6.5). 24 ASCII bytes for years 0000..=9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339Millis([u8; 24]);

impl Rfc3339Millis {
    /// Formats microseconds since 1970-01-01T00:00:00Z, truncated to the
    /// millisecond. Years outside 0000..=9999 are clamped to its ends, which
    /// no stored timestamp reaches.
    pub fn from_unix_micros(micros: i64) -> Rfc3339Millis {
        let micros = clamp_micros(micros);
        let secs = micros.div_euclid(1_000_000);
        let millis = (micros.rem_euclid(1_000_000) / 1000) as u32;
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let rem = secs.rem_euclid(86_400) as u32;
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let y = year as u32;
        two_digits(&mut b[0..2], y / 100);
        two_digits(&mut b[2..4], y % 100);
        two_digits(&mut b[5..7], month);
        two_digits(&mut b[8..10], day);
        two_digits(&mut b[11..13], rem / 3600);
        two_digits(&mut b[14..16], rem / 60 % 60);
        two_digits(&mut b[17..19], rem % 60);
        b[20] = b'0' + (millis / 100) as u8;
        two_digits(&mut b[21..23], millis % 100);
        Rfc3339Millis(b)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are ever written.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// `2016-02-18T03:22:56.637123Z`: like [`Rfc3339Millis`] with six fractional
/// digits, so a stored microsecond timestamp reads back exactly. 27 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339Micros([u8; 27]);

impl Rfc3339Micros {
    /// Formats microseconds since the Unix epoch; years outside 0000..=9999
    /// are clamped to its ends.
    pub fn from_unix_micros(micros: i64) -> Rfc3339Micros {
        let millis = Rfc3339Millis::from_unix_micros(micros);
        let sub_milli = (clamp_micros(micros).rem_euclid(1000)) as u32;
        let mut b = [0u8; 27];
        b[..23].copy_from_slice(&millis.0[..23]);
        b[23] = b'0' + (sub_milli / 100) as u8;
        two_digits(&mut b[24..26], sub_milli % 100);
        b[26] = b'Z';
        Rfc3339Micros(b)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

const MIN_MICROS: i64 = -62_167_219_200_000_000; // 0000-01-01T00:00:00Z
const MAX_MICROS: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z

fn clamp_micros(micros: i64) -> i64 {
    micros.clamp(MIN_MICROS, MAX_MICROS)
}

/// Reads an RFC 3339 date-time (§5.6): `YYYY-MM-DDTHH:MM:SS`, an optional
/// fraction (digits past the sixth are dropped), then `Z` or `±HH:MM`. `t`,
/// `z` and a space for the `T` are accepted, as the RFC allows. A leap
/// second (`:60`) is read as the first instant of the next minute, as
/// PostgreSQL does. Returns microseconds since the Unix epoch, or `None` for
/// anything else, including impossible dates such as February 30th.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        b[range].iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    };
    let punctuation_ok =
        b[4] == b'-' && b[7] == b'-' && matches!(b[10], b'T' | b't' | b' ') && b[13] == b':' && b[16] == b':';
    if !punctuation_ok {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut at = 19;
    let mut fraction_micros = 0i64;
    if b[at] == b'.' {
        at += 1;
        let digits = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (i, &c) in b[at..at + digits].iter().take(6).enumerate() {
            fraction_micros += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
        }
        at += digits;
    }
    let offset_secs = match &b[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |x: u8, y: u8| {
                (x.is_ascii_digit() && y.is_ascii_digit()).then(|| i64::from((x - b'0') * 10 + (y - b'0')))
            };
            let (h, m) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * 1_000_000 + fraction_micros)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The inverse of [`civil_from_days`]: a proleptic Gregorian date to days
/// since the Unix epoch, with the same 400-year era arithmetic.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // 0..=399
    let mp = i64::from(if month > 2 { month - 3 } else { month + 9 }); // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `s` has exactly the shape [`Rfc3339Millis`] writes,
/// `YYYY-MM-DDTHH:MM:SS.fffZ`: a check for tests of what clients receive.
pub fn is_rfc3339_millis(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn two_digits(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10 % 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// Days since the Unix epoch to a proleptic Gregorian (year, month, day), using
/// the era arithmetic of 400-year cycles (each exactly 146 097 days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468; // shift the epoch to 0000-03-01, so leap days end a year
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year, March-based
    let mp = (5 * doy + 2) / 153; // month, March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc3339(micros: i64) -> String {
        Rfc3339Millis::from_unix_micros(micros).as_str().to_owned()
    }

    #[test]
    fn rfc3339_has_millis_and_z() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_455_765_776_637_123), "2016-02-18T03:22:56.637Z");
        // Before the epoch the fraction still counts forward within the second.
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(i64::MIN), "0000-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_shape_check_refuses_what_clients_refuse() {
        for bad in ["2016-02-18T03:22:56Z", "2016-02-18T03:22:56+00:00", "2016-02-18T03:22:56.637+0000", ""] {
            assert!(!is_rfc3339_millis(bad), "{bad}");
        }
    }

    /// The pattern Conduit clients check (shared/conduit-api.md §6.5), by hand.
    #[test]
    fn rfc3339_matches_the_client_pattern() {
        for micros in [0, 1, 999, 1_000_000, 1_700_000_000_123_456, 4_102_444_800_000_000] {
            let s = rfc3339(micros);
            assert!(is_rfc3339_millis(&s), "{s}");
        }
    }

    fn fmt(secs: u64) -> String {
        String::from_utf8(HttpDate::from_unix_secs(secs).as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn rfc_9110_example() {
        assert_eq!(fmt(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn epoch_and_leap_days() {
        assert_eq!(fmt(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(fmt(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(fmt(1_709_164_799), "Wed, 28 Feb 2024 23:59:59 GMT");
        assert_eq!(fmt(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
        assert_eq!(fmt(4_102_444_800), "Fri, 01 Jan 2100 00:00:00 GMT");
    }

    #[test]
    fn rfc3339_micros_keeps_every_digit() {
        let s = |m| Rfc3339Micros::from_unix_micros(m).as_str().to_owned();
        assert_eq!(s(1_455_765_776_637_123), "2016-02-18T03:22:56.637123Z");
        assert_eq!(s(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(s(0), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2016-02-18T03:22:56.637123Z"), Some(1_455_765_776_637_123));
        assert_eq!(parse_rfc3339("2016-02-18t03:22:56.6z"), Some(1_455_765_776_600_000));
        assert_eq!(parse_rfc3339("2016-02-18 03:22:56.123456789Z"), Some(1_455_765_776_123_456));
        assert_eq!(parse_rfc3339("2016-02-18T04:22:56+01:00"), Some(1_455_765_776_000_000));
        assert_eq!(parse_rfc3339("2016-02-17T22:52:56-04:30"), Some(1_455_765_776_000_000));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400_000_000));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999999Z"), Some(-1));
        assert_eq!(parse_rfc3339("2016-12-31T23:59:60Z"), parse_rfc3339("2017-01-01T00:00:00Z"));
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00Z"), Some(MIN_MICROS));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59.999999Z"), Some(MAX_MICROS));
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for bad in [
            "",
            "2016-02-18",
            "2016-02-18T03:22:56",
            "2016-02-18T03:22:56.Z",
            "2016-02-18T03:22:56+0100",
            "2016-02-18T03:22:56+01",
            "2016-02-30T00:00:00Z",
            "2017-02-29T00:00:00Z",
            "2016-13-01T00:00:00Z",
            "2016-00-01T00:00:00Z",
            "2016-02-18T24:00:00Z",
            "2016-02-18T03:60:00Z",
            "2016-02-18T03:22:61Z",
            "2016-02-18T03:22:56+24:00",
            "2016-02-18T03:22:56ZZ",
            "2016-02-18X03:22:56Z",
            "+016-02-18T03:22:56Z",
            "2016-02-18T03:22:56.1234567890123456789012345Zx",
            "２016-02-18T03:22:56Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn parse_and_format_agree() {
        for micros in [0, 1, -1, 951_782_400_000_000, 1_700_000_000_123_456, MIN_MICROS, MAX_MICROS] {
            let text = Rfc3339Micros::from_unix_micros(micros);
            assert_eq!(parse_rfc3339(text.as_str()), Some(micros), "{}", text.as_str());
        }
    }
}
