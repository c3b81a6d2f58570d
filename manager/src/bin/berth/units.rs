//! Human-readable sizes, durations and ids, in the shapes docker's CLI prints them
//! (go-units: decimal sizes such as `4.26MB`, binary sizes such as `3.8GiB`,
//! durations such as `2 hours`).

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY_UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// Formats `x` like Go's `%.{prec}g`: `prec` significant digits, trailing zeros dropped,
/// exponent form for very large or small magnitudes.
pub fn format_g(x: f64, prec: usize) -> String {
    let prec = prec.max(1);
    if x == 0.0 {
        return "0".to_string();
    }
    if !x.is_finite() {
        return format!("{x}");
    }
    let sci = format!("{:.*e}", prec - 1, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let mantissa = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_fraction(&format!("{:.*}", decimals, x)).to_string()
    }
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn scaled(size: f64, base: f64, units: &[&'static str]) -> (f64, &'static str) {
    let mut size = size;
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// Decimal size with `prec` significant digits (docker images uses 3: `1.98MB`).
pub fn human_size_prec(size: i64, prec: usize) -> String {
    let (v, unit) = scaled(size as f64, 1000.0, &DECIMAL_UNITS);
    format!("{}{unit}", format_g(v, prec))
}

/// Decimal size with 4 significant digits (docker's `units.HumanSize`: `1.982MB`).
pub fn human_size(size: i64) -> String {
    human_size_prec(size, 4)
}

/// Binary size with 4 significant digits (docker's `units.BytesSize`: `3.84GiB`).
pub fn bytes_size(size: i64) -> String {
    let (v, unit) = scaled(size as f64, 1024.0, &BINARY_UNITS);
    format!("{}{unit}", format_g(v, 4))
}

/// A duration in words, like go-units' HumanDuration.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let minutes = secs / 60;
    // Hours are rounded to the nearest hour, as Go's d.Round(time.Hour) does.
    let hours = (secs + 1800) / 3600;
    if secs < 1 {
        "Less than a second".to_string()
    } else if secs == 1 {
        "1 second".to_string()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if minutes == 1 {
        "About a minute".to_string()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", secs / 3600 / 24 / 365)
    }
}

/// "2 hours ago" for a unix timestamp.
pub fn since(unix: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    format!("{} ago", human_duration(now - unix))
}

/// Go's `time.Unix(t, 0).String()` in local time: `2024-01-02 15:04:05 +0000 UTC`.
pub fn go_time_string(unix: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(unix, 0).single() {
        Some(t) => {
            let zone = if t.offset().local_minus_utc() == 0 {
                "UTC".to_string()
            } else {
                t.format("%z").to_string()
            };
            format!("{} {zone}", t.format("%Y-%m-%d %H:%M:%S %z"))
        }
        None => unix.to_string(),
    }
}

/// Go's `time.Time.String()` of an RFC 3339 timestamp as the API sends it (nanoseconds
/// kept, trailing zeros dropped): `2024-01-02 15:04:05.5 +0000 UTC`; Go's zero time when
/// absent or unparsable.
pub fn go_time_string_rfc3339(value: Option<&str>) -> String {
    let Some(t) = value.and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok()) else {
        return "0001-01-01 00:00:00 +0000 UTC".to_string();
    };
    let nanos = format!("{:09}", t.timestamp_subsec_nanos());
    let nanos = nanos.trim_end_matches('0');
    let frac = if nanos.is_empty() { String::new() } else { format!(".{nanos}") };
    // an offset Go has no zone name for prints as the offset again
    let zone = if t.offset().local_minus_utc() == 0 { "UTC".to_string() } else { t.format("%z").to_string() };
    format!("{}{frac} {} {zone}", t.format("%Y-%m-%d %H:%M:%S"), t.format("%z"))
}

/// RFC 3339 in local time, `Z` for UTC (Go's `time.RFC3339`).
pub fn rfc3339(unix: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(unix, 0).single() {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => unix.to_string(),
    }
}

/// docker's short id: the hex without `sha256:`, 12 characters.
pub fn short_id(id: &str) -> String {
    let hex = id.split_once(':').map(|(_, h)| h).unwrap_or(id);
    hex.chars().take(12).collect()
}

/// Cuts `s` to `max` characters, ending with `…` when it was longer.
pub fn ellipsis(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Parses a Go duration (`1h30m`, `10s`, `1.5h`, `300ms`) into nanoseconds, with Go's
/// error messages.
pub fn parse_go_duration(s: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration \"{s}\"");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration \"{s}\""));
        }
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => return Err(format!("time: unknown unit \"{other}\" in duration \"{s}\"")),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    let nanos = total.round() as i128;
    Ok(if neg { -nanos } else { nanos })
}

/// docker's `GetTimestamp` for `--since`/`--until`: a Go duration is relative to `now`
/// (whole seconds), an RFC 3339 date or date-time (local time when it has no zone) becomes
/// `SECONDS.NANOS`, and a unix timestamp passes through.
pub fn api_timestamp(value: &str, now: chrono::DateTime<chrono::Local>) -> Result<String, String> {
    use chrono::TimeZone;
    if value != "0" {
        if let Ok(d) = parse_go_duration(value) {
            let total = i128::from(now.timestamp()) * 1_000_000_000 + i128::from(now.timestamp_subsec_nanos()) - d;
            let secs = total.div_euclid(1_000_000_000);
            return Ok(secs.to_string());
        }
    }
    let has_zone = value.contains(['z', 'Z', '+']) || value.matches('-').count() == 3;
    let parsed: Option<chrono::DateTime<chrono::FixedOffset>> = if has_zone {
        let v = value.replace('z', "Z");
        chrono::DateTime::parse_from_rfc3339(&v)
            .ok()
            .or_else(|| {
                // `2006-01-02T15Z07:00`, `2006-01-02T15:04Z07:00`, `2006-01-02Z07:00`
                let (head, zone) = split_zone(&v)?;
                let naive = parse_naive(head)?;
                let offset = if zone == "Z" {
                    chrono::FixedOffset::east_opt(0)?
                } else {
                    let sign = if zone.starts_with('-') { -1 } else { 1 };
                    let (h, m) = zone[1..].split_once(':')?;
                    chrono::FixedOffset::east_opt(sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60))?
                };
                offset.from_local_datetime(&naive).single()
            })
    } else {
        parse_naive(value).and_then(|n| {
            let offset = *now.offset();
            offset.from_local_datetime(&n).single().map(|t| t.fixed_offset())
        })
    };
    match parsed {
        Some(t) => Ok(format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos())),
        None => {
            if value.contains('-') {
                return Err(format!("failed to parse value as time or duration: \"{value}\""));
            }
            let (secs, nanos) = value.split_once('.').unwrap_or((value, "0"));
            if secs.parse::<i64>().is_err() || nanos.parse::<u64>().is_err() {
                return Err(format!("failed to parse value as time or duration: \"{value}\""));
            }
            Ok(value.to_string())
        }
    }
}

fn split_zone(v: &str) -> Option<(&str, &str)> {
    if let Some(head) = v.strip_suffix('Z') {
        return Some((head, "Z"));
    }
    let i = v.rfind(['+', '-'])?;
    // the date's own dashes come before the `T`/time part
    if v.len() - i != 6 {
        return None;
    }
    Some((&v[..i], &v[i..]))
}

fn parse_naive(v: &str) -> Option<chrono::NaiveDateTime> {
    use chrono::{NaiveDate, NaiveDateTime};
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Some(t);
        }
    }
    if let Some((d, h)) = v.split_once('T') {
        if h.len() <= 2 {
            let date = NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()?;
            return date.and_hms_opt(h.parse().ok()?, 0, 0);
        }
        return None;
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_go_units() {
        assert_eq!(human_size_prec(1_982_291, 3), "1.98MB");
        assert_eq!(human_size(1_982_291), "1.982MB");
        assert_eq!(human_size_prec(0, 3), "0B");
        assert_eq!(human_size_prec(999, 3), "999B");
        assert_eq!(human_size_prec(125_000, 3), "125kB");
        assert_eq!(human_size_prec(1_200_000, 3), "1.2MB");
        assert_eq!(human_size_prec(999_999, 3), "1e+03kB");
        assert_eq!(bytes_size(4_123_000_000), "3.84GiB");
        assert_eq!(bytes_size(512), "512B");
    }

    #[test]
    fn durations_match_go_units() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(3599), "59 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(7200), "2 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(20 * 86400), "2 weeks");
        assert_eq!(human_duration(90 * 86400), "3 months");
        assert_eq!(human_duration(800 * 86400), "2 years");
    }

    #[test]
    fn ids_and_ellipsis() {
        assert_eq!(short_id("sha256:aae0211e373d70102c09f8d2"), "aae0211e373d");
        assert_eq!(short_id("<missing>"), "<missing>");
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abc", 4), "abc");
    }
    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s"), Ok(10_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("x"), Err("time: invalid duration \"x\"".to_string()));
        assert_eq!(parse_go_duration("10"), Err("time: missing unit in duration \"10\"".to_string()));
        assert_eq!(parse_go_duration("1y"), Err("time: unknown unit \"y\" in duration \"1y\"".to_string()));
    }

    #[test]
    fn api_timestamps() {
        use chrono::TimeZone;
        let now = chrono::Local.timestamp_opt(1_700_000_000, 0).single().unwrap();
        assert_eq!(api_timestamp("10m", now).unwrap(), "1699999400");
        assert_eq!(api_timestamp("1700000000", now).unwrap(), "1700000000");
        assert_eq!(api_timestamp("1700000000.5", now).unwrap(), "1700000000.5");
        assert_eq!(api_timestamp("2023-11-14T22:13:20Z", now).unwrap(), "1700000000.000000000");
        assert_eq!(api_timestamp("2023-11-14T23:13:20+01:00", now).unwrap(), "1700000000.000000000");
        assert_eq!(api_timestamp("2023-11-14T22:13:20.25Z", now).unwrap(), "1700000000.250000000");
        assert!(api_timestamp("2023-13-01", now).is_err());
        assert!(api_timestamp("yesterday", now).is_err());
        // a date without zone is local time
        let local = chrono::Local.with_ymd_and_hms(2023, 11, 14, 0, 0, 0).single().unwrap();
        assert_eq!(api_timestamp("2023-11-14", now).unwrap(), format!("{}.000000000", local.timestamp()));
    }
}
