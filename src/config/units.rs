//! Sizes (`"64K"`, `"50M"`) and durations (`"90s"`, `"1h30m"`) in the config: parsing,
//! printing so that the printed form reads back the same, and the serde glue that lets a
//! key take either such a string or a bare integer (bytes, seconds).
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses `"0"`, `"4096"`, `"64K"`, `"50M"`, `"2G"`, `"1T"` (binary multiples; a trailing
/// `B` or `iB` is accepted: `"64KB"`, `"64KiB"`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(format!(
            "invalid size {s:?}: expected a number like \"64K\" or \"50M\""
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: number too large"))?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("iB")
        .or_else(|| unit.strip_suffix('B').filter(|u| !u.is_empty()))
        .unwrap_or(unit);
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("invalid size {s:?}: unit must be K, M, G or T")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// Formats a size with the largest exact binary unit, so `parse_size(fmt_size(x)) == x`.
pub fn fmt_size(n: u64) -> String {
    if n == 0 {
        return "0".into();
    }
    for (shift, unit) in [(40, 'T'), (30, 'G'), (20, 'M'), (10, 'K')] {
        if n % (1u64 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// Parses `"90s"`, `"30m"`, `"1h"`, `"2d"`, combinations like `"1h30m"`, and plain seconds `"45"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("invalid duration \"\": expected e.g. \"30m\" or \"90s\"".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if end == 0 {
            return Err(format!(
                "invalid duration {s:?}: expected e.g. \"30m\" or \"90s\""
            ));
        }
        let n: u64 = rest[..end]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: number too large"))?;
        rest = &rest[end..];
        let uend = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let mult = match rest[..uend].trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            u => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {u:?} (use s, m, h or d)"
                ));
            }
        };
        rest = &rest[uend..];
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("invalid duration {s:?}: too large"))?;
    }
    Ok(Duration::from_secs(total))
}

/// Formats whole seconds with the largest exact unit, so `parse_duration` reads it back.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    for (unit_secs, unit) in [(86_400, 'd'), (3600, 'h'), (60, 'm')] {
        if s % unit_secs == 0 {
            return format!("{}{unit}", s / unit_secs);
        }
    }
    format!("{s}s")
}

/// A size or duration may be written as a string (`"64K"`) or a bare integer.
#[derive(Deserialize)]
#[serde(untagged)]
enum StrOrInt {
    Int(i64),
    Str(String),
}

pub(super) fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match StrOrInt::deserialize(d)? {
        StrOrInt::Int(i) => {
            u64::try_from(i).map_err(|_| serde::de::Error::custom("size must not be negative"))
        }
        StrOrInt::Str(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

pub(super) fn de_size_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let v = de_size(d)?;
    usize::try_from(v).map_err(|_| serde::de::Error::custom("size too large"))
}

pub(super) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match StrOrInt::deserialize(d)? {
        StrOrInt::Int(i) => u64::try_from(i)
            .map(Duration::from_secs)
            .map_err(|_| serde::de::Error::custom("duration must not be negative")),
        StrOrInt::Str(s) => parse_duration(&s).map_err(serde::de::Error::custom),
    }
}

/// A table of sizes (`[mail.user_quota]`: user = "100M").
pub(super) fn de_size_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, u64>, D::Error> {
    let raw = std::collections::BTreeMap::<String, StrOrInt>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            let n = match v {
                StrOrInt::Int(i) => u64::try_from(i)
                    .map_err(|_| serde::de::Error::custom("size must not be negative"))?,
                StrOrInt::Str(s) => parse_size(&s).map_err(serde::de::Error::custom)?,
            };
            Ok((k, n))
        })
        .collect()
}

pub(super) fn ser_size_map<S: Serializer>(
    v: &std::collections::BTreeMap<String, u64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(v.len()))?;
    for (k, n) in v {
        m.serialize_entry(k, &fmt_size(*n))?;
    }
    m.end()
}

pub(super) fn ser_size<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&fmt_size(*v))
}

pub(super) fn ser_size_usize<S: Serializer>(v: &usize, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&fmt_size(*v as u64))
}

pub(super) fn ser_duration<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&fmt_duration(*v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("4096", 4096),
            ("64K", 65_536),
            ("64k", 65_536),
            ("64KB", 65_536),
            ("64KiB", 65_536),
            ("50M", 50 << 20),
            ("2G", 2 << 30),
            ("1T", 1 << 40),
            (" 7 M ", 7 << 20),
        ];
        for (s, v) in ok {
            assert_eq!(parse_size(s), Ok(*v), "{s}");
            assert_eq!(parse_size(&fmt_size(*v)), Ok(*v));
        }
        for bad in [
            "",
            "K",
            "-1",
            "1.5M",
            "12Q",
            "99999999999999999999",
            "16777216T",
            "1 M B",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(fmt_size(1025), "1025");
    }

    #[test]
    fn durations() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("45", 45),
            ("90s", 90),
            ("30m", 1800),
            ("1h", 3600),
            ("1h30m", 5400),
            ("2d", 172_800),
        ];
        for (s, v) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs(*v)), "{s}");
            assert_eq!(
                parse_duration(&fmt_duration(Duration::from_secs(*v))),
                Ok(Duration::from_secs(*v))
            );
        }
        for bad in [
            "",
            "m",
            "30x",
            "1.5h",
            "-3s",
            "30 minutes",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
