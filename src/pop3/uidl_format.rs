//! `pop3.uidl_format`: how a message's POP3 UIDL is made from its UID,
//! the folder's UIDVALIDITY, its Maildir base file name and its GUID, in
//! Dovecot's `pop3_uidl_format` syntax, so that a maildrop moved from
//! Dovecot keeps the UIDLs its clients know (they would download
//! everything again otherwise). Owns the parsing (at config load: an
//! unknown variable or modifier is a config error naming the key) and
//! the expansion; knows nothing of the store or the session.
//!
//! Both of Dovecot's syntaxes are read:
//! - 2.3's `%[-][0][width][.[0][-]width][modifiers]var`, with the short
//!   variables `%u` (UID), `%v` (UIDVALIDITY), `%f` (file name), `%g`
//!   (GUID), their long forms `%{uid}`, `%{uidvalidity}`, `%{filename}`,
//!   `%{guid}`, and the modifiers `X` (decimal to lower-case hex, as
//!   2.3's `%llx`), `L`, `U` (case), `R` (reversed), `T` (trimmed); width,
//!   offset and zero padding work as in 2.3's `var_expand` (zero padding
//!   never truncates, a plain width does);
//! - 2.4's `%{uid | hex(8)}` filters: `hex`, `hex(N)` (N > 0 pads on the
//!   left and keeps the last N digits, N < 0 pads on the right and keeps
//!   the first), `lower`, `upper`.
//!
//! On Maildir, as Dovecot defines them (`maildir_mail_get_special`): the
//! file name is the message's file name up to its first `:` (the base
//! name without the info part), and the GUID is the `G` field of its
//! `dovecot-uidlist` record, else that same base name.
//!
//! Refused: `%m`/`%{md5}`. Dovecot computes it over the header while
//! parsing the message and keeps it in its cache (a hash of the header
//! lines after its own normalisation), which we would have to reproduce
//! exactly and compute for every message at each login; a format with it
//! is a config error saying so (`nestbox import-dovecot` lists it as not
//! translated). Also refused: the hashing, escaping and LDAP modifiers
//! (`H`, `N`, `M`, `E`, `D`), other long keys, and literal characters a
//! UIDL may not hold (RFC 1939 §7: 0x21-0x7E).
//!
//! Hand-written: no crate reads Dovecot's `var_expand` syntax, and the
//! part of it a UIDL format uses is small.
use std::fmt;

use serde::{Deserialize, Serialize};

/// Dovecot's default (2.3 spelling; 2.4's `%{uid | hex(8)}%{uidvalidity
/// | hex(8)}` gives the same UIDLs).
pub const DEFAULT: &str = "%08Xu%08Xv";

/// A parsed format; serialised as its source text. Shared (`Arc`): it travels in every
/// POP3 login's policy, and stays one pointer wide there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UidlFormat(std::sync::Arc<Parsed>);

#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    Uid,
    UidValidity,
    FileName,
    Guid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// 2.3's `X`: a decimal number to lower-case hex.
    Hex,
    /// 2.4's `hex(N)`.
    HexWidth(i32),
    Lower,
    Upper,
    Reverse,
    Trim,
}

/// One variable with 2.3's offset, width and padding.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Field {
    var: Var,
    steps: Vec<Step>,
    offset: i64,
    width: i64,
    zero_pad: bool,
}

/// What one message's UIDL is made of.
pub struct Values<'a> {
    pub uid: u32,
    pub uidvalidity: u32,
    /// The base file name (up to the first `:`).
    pub filename: &'a str,
    /// The uidlist's `G` field, else the base file name.
    pub guid: &'a str,
}

impl Default for UidlFormat {
    fn default() -> Self {
        // The literal default parses; the fallback keeps this total.
        UidlFormat::parse(DEFAULT).unwrap_or_else(|_| {
            UidlFormat(std::sync::Arc::new(Parsed {
                source: DEFAULT.into(),
                parts: vec![],
            }))
        })
    }
}

impl TryFrom<String> for UidlFormat {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        UidlFormat::parse(&s).map_err(|e| format!("pop3.uidl_format {s:?}: {e}"))
    }
}

impl From<UidlFormat> for String {
    fn from(f: UidlFormat) -> String {
        f.0.source.clone()
    }
}

impl fmt::Display for UidlFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.source)
    }
}

const SUPPORTED: &str = "supported: %u %v %f %g, %{uid} %{uidvalidity} %{filename} %{guid}";

fn var_named(name: &str) -> Result<Var, String> {
    match name {
        "u" | "uid" => Ok(Var::Uid),
        "v" | "uidvalidity" => Ok(Var::UidValidity),
        "f" | "filename" => Ok(Var::FileName),
        "g" | "guid" => Ok(Var::Guid),
        "m" | "md5" => Err(format!(
            "%{{md5}} (Dovecot's header MD5, from its own cache) is not supported; \
             {SUPPORTED}"
        )),
        _ => Err(format!("unknown variable {name:?} ({SUPPORTED})")),
    }
}

impl UidlFormat {
    /// Parses Dovecot 2.3 or 2.4 syntax (see the module doc).
    pub fn parse(s: &str) -> Result<UidlFormat, String> {
        let b = s.as_bytes();
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while i < b.len() {
            let c = s[i..].chars().next().unwrap_or('\0');
            if c != '%' {
                if !(c.is_ascii_graphic()) {
                    return Err(format!(
                        "{c:?} cannot be in a UIDL (RFC 1939: 0x21-0x7E only)"
                    ));
                }
                text.push(c);
                i += c.len_utf8();
                continue;
            }
            i += 1;
            let mut sign = 1i64;
            let (mut offset, mut width, mut zero_pad) = (0i64, 0i64, false);
            if b.get(i) == Some(&b'-') {
                sign = -1;
                i += 1;
            }
            if b.get(i) == Some(&b'0') {
                zero_pad = true;
                i += 1;
            }
            let digits = |i: &mut usize| {
                let mut n = 0i64;
                while let Some(d) = b.get(*i).filter(|d| d.is_ascii_digit()) {
                    n = (n * 10 + i64::from(d - b'0')).min(1_000);
                    *i += 1;
                }
                n
            };
            width = width.max(digits(&mut i));
            if b.get(i) == Some(&b'.') {
                offset = sign * width;
                sign = 1;
                i += 1;
                zero_pad = false;
                if b.get(i) == Some(&b'0') {
                    zero_pad = true;
                    i += 1;
                }
                if b.get(i) == Some(&b'-') {
                    sign = -1;
                    i += 1;
                }
                width = sign * digits(&mut i);
            }
            let mut steps = Vec::new();
            while let Some(&m) = b.get(i) {
                let step = match m {
                    b'X' => Step::Hex,
                    b'L' => Step::Lower,
                    b'U' => Step::Upper,
                    b'R' => Step::Reverse,
                    b'T' => Step::Trim,
                    b'E' | b'H' | b'N' | b'M' | b'D' => {
                        return Err(format!("modifier {:?} is not supported", m as char));
                    }
                    _ => break,
                };
                steps.push(step);
                i += 1;
            }
            let var = match b.get(i) {
                None => return Err("ends inside a %-variable".into()),
                Some(b'%') if steps.is_empty() && width == 0 && offset == 0 => {
                    text.push('%');
                    i += 1;
                    continue;
                }
                Some(b'{') => {
                    let end = s[i..]
                        .find('}')
                        .ok_or_else(|| "a %{ without its }".to_string())?;
                    let inner = &s[i + 1..i + end];
                    i += end + 1;
                    let mut filters = inner.split('|').map(str::trim);
                    let var = var_named(filters.next().unwrap_or(""))?;
                    for f in filters {
                        steps.push(parse_filter(f)?);
                    }
                    var
                }
                Some(_) => {
                    let c = s[i..].chars().next().unwrap_or('\0');
                    i += c.len_utf8();
                    var_named(c.encode_utf8(&mut [0; 4]))?
                }
            };
            let numeric = matches!(var, Var::Uid | Var::UidValidity);
            if !numeric
                && steps
                    .iter()
                    .any(|s| matches!(s, Step::Hex | Step::HexWidth(_)))
            {
                return Err("hex applies to %{uid} and %{uidvalidity} only".into());
            }
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Field(Field {
                var,
                steps,
                offset,
                width,
                zero_pad,
            }));
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if !parts.iter().any(|p| matches!(p, Part::Field(_))) {
            return Err(format!("holds no variable ({SUPPORTED})"));
        }
        Ok(UidlFormat(std::sync::Arc::new(Parsed {
            source: s.to_string(),
            parts,
        })))
    }

    /// Whether this is [`DEFAULT`] as written (callers may then format it without
    /// expanding, allocation-free).
    pub fn is_default(&self) -> bool {
        self.0.source == DEFAULT
    }

    /// Whether expansion needs the file name or GUID (else only numbers).
    pub fn needs_names(&self) -> bool {
        self.0
            .parts
            .iter()
            .any(|p| matches!(p, Part::Field(f) if matches!(f.var, Var::FileName | Var::Guid)))
    }

    /// Appends the UIDL for `v`.
    pub fn expand(&self, v: &Values<'_>, out: &mut Vec<u8>) {
        for p in &self.0.parts {
            match p {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Field(f) => f.expand(v, out),
            }
        }
    }
}

fn parse_filter(f: &str) -> Result<Step, String> {
    match f {
        "hex" => return Ok(Step::HexWidth(0)),
        "lower" => return Ok(Step::Lower),
        "upper" => return Ok(Step::Upper),
        _ => {}
    }
    let n = f
        .strip_prefix("hex(")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|n| n.trim().parse::<i32>().ok())
        .filter(|n| n.abs() <= 1000)
        .ok_or_else(|| format!("filter {f:?} is not supported (hex, hex(N), lower, upper)"))?;
    Ok(Step::HexWidth(n))
}

impl Field {
    fn expand(&self, v: &Values<'_>, out: &mut Vec<u8>) {
        let mut s = match self.var {
            Var::Uid => v.uid.to_string(),
            Var::UidValidity => v.uidvalidity.to_string(),
            Var::FileName => v.filename.to_string(),
            Var::Guid => v.guid.to_string(),
        };
        for step in &self.steps {
            s = match *step {
                // 2.3: a value that is not a number counts as 0.
                Step::Hex => format!("{:x}", s.parse::<u64>().unwrap_or(0)),
                Step::HexWidth(w) => {
                    let h = format!("{:x}", s.parse::<u64>().unwrap_or(0));
                    let n = w.unsigned_abs() as usize;
                    if w > 0 {
                        let padded = format!("{h:0>n$}");
                        padded[padded.len() - n..].to_string()
                    } else if w < 0 {
                        let padded = format!("{h:0<n$}");
                        padded[..n].to_string()
                    } else {
                        h
                    }
                }
                Step::Lower => s.to_lowercase(),
                Step::Upper => s.to_uppercase(),
                Step::Reverse => s.chars().rev().collect(),
                Step::Trim => s.trim_end().to_string(),
            };
        }
        // 2.3's offset (from the end when negative), then width.
        let bytes = s.as_bytes();
        let start = if self.offset < 0 {
            bytes
                .len()
                .saturating_sub(self.offset.unsigned_abs() as usize)
        } else {
            (self.offset as usize).min(bytes.len())
        };
        let var = &bytes[start..];
        if self.width == 0 {
            out.extend_from_slice(var);
        } else if !self.zero_pad {
            let w = if self.width < 0 {
                var.len().saturating_sub(self.width.unsigned_abs() as usize)
            } else {
                self.width as usize
            };
            out.extend_from_slice(&var[..w.min(var.len())]);
        } else {
            let w = self.width.max(0) as usize;
            out.extend(std::iter::repeat_n(b'0', w.saturating_sub(var.len())));
            out.extend_from_slice(var);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(fmt: &str, uid: u32, uidv: u32, name: &str, guid: &str) -> String {
        let f = UidlFormat::parse(fmt).unwrap();
        let mut out = Vec::new();
        f.expand(
            &Values {
                uid,
                uidvalidity: uidv,
                filename: name,
                guid,
            },
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn default_is_dovecots_in_both_spellings() {
        let name = "1700000000.M1P2.host";
        assert_eq!(
            run(DEFAULT, 0x3e9, 0x5f3f8b80, name, name),
            "000003e95f3f8b80"
        );
        assert_eq!(
            run(
                "%{uid | hex(8)}%{uidvalidity | hex(8)}",
                0x3e9,
                0x5f3f8b80,
                name,
                name
            ),
            "000003e95f3f8b80"
        );
        assert_eq!(run(DEFAULT, u32::MAX, 1, name, name), "ffffffff00000001");
        assert!(!UidlFormat::default().needs_names());
        assert!(UidlFormat::default().is_default());
        assert!(!UidlFormat::parse("%u%v").unwrap().is_default());
        assert_eq!(UidlFormat::default().to_string(), DEFAULT);
    }

    #[test]
    fn names_and_widths() {
        let (n, g) = ("1700000000.M1P2.host", "0123abcd");
        assert_eq!(run("%f", 5, 7, n, g), n);
        assert_eq!(run("%{filename}", 5, 7, n, g), n);
        assert_eq!(run("%g", 5, 7, n, g), g);
        assert_eq!(run("%v.%u", 5, 7, n, g), "7.5");
        assert_eq!(run("%{uidvalidity}-%{uid}", 5, 7, n, g), "7-5");
        assert_eq!(run("%05u", 42, 7, n, g), "00042");
        assert_eq!(
            run("%02u", 12345, 7, n, g),
            "12345",
            "zero padding never cuts"
        );
        assert_eq!(run("%4f", 1, 1, n, g), "1700", "a plain width cuts");
        assert_eq!(run("%3.4f", 1, 1, n, g), "0000");
        assert_eq!(run("%-4.f", 1, 1, n, g), "host");
        assert_eq!(run("%Uf", 1, 1, "a.b", g), "A.B");
        assert_eq!(run("%%%u", 9, 1, n, g), "%9");
        assert_eq!(run("%{uid | hex(-4)}", 0xab, 1, n, g), "ab00");
        assert_eq!(run("%{uid | hex(2)}", 0xabc, 1, n, g), "bc");
        assert_eq!(run("%{uid|hex}", 255, 1, n, g), "ff");
        assert!(UidlFormat::parse("%g").unwrap().needs_names());
    }

    #[test]
    fn refusals_name_the_problem() {
        for (f, why) in [
            ("%m", "md5"),
            ("%{md5}", "md5"),
            ("%08Xu%q", "unknown variable"),
            ("%{env:HOME}", "unknown variable"),
            ("%Hu", "modifier"),
            ("x y%u", "cannot be in a UIDL"),
            ("plain", "no variable"),
            ("%{uid", "without its }"),
            ("%08X", "ends inside"),
            ("%Xf", "hex applies"),
            ("%{uid | sha1}", "filter"),
        ] {
            let e = UidlFormat::parse(f).unwrap_err();
            assert!(e.contains(why), "{f}: {e}");
        }
        let e = UidlFormat::try_from("%q".to_string()).unwrap_err();
        assert!(e.contains("pop3.uidl_format"), "{e}");
    }
}
