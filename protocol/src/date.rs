//! The IMF-fixdate form of the Date header (RFC 9110 §5.6.7), formatted by hand.
//!
//! Formatting a date costs far more than copying 29 bytes, so the server
//! formats it once a second per core and every response copies the result.
//! This module only knows how to turn a Unix time into those 29 bytes, and
//! into the RFC 3339 timestamps the product API sends (`Rfc3339Millis`).

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
        const MIN: i64 = -62_167_219_200_000_000; // 0000-01-01T00:00:00Z
        const MAX: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z
        let micros = micros.clamp(MIN, MAX);
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
}
