//! `nestbox quota`'s output: a table for people, JSON for programs. Pure: rows in, text out.
//!
//! Both show, per user, STORAGE (bytes, Maildir++'s `S`) and MESSAGE (messages), each as
//! use, limit and share of the limit, under the resource names of RFC 9208 that GETQUOTA
//! answers with. The share is the whole percentage, rounded down, of the exact figures (it
//! can pass 100 when a limit was lowered); GETQUOTA and Dovecot's `doveadm quota get`
//! report STORAGE in KiB, rounded up, and Dovecot the share of those, which is higher for
//! a small use (7 KiB of 10 is 70 % where 6691 bytes of 10240 are 65 %).
use serde::Serialize;

use super::Row;
use super::maildir::{Found, Usage};

/// One resource in the JSON output.
#[derive(Serialize)]
struct Resource {
    usage: u64,
    limit: Option<u64>,
    percent: Option<u64>,
}

/// One user in the JSON output.
#[derive(Serialize)]
struct JsonRow<'a> {
    user: &'a str,
    maildir: Option<String>,
    /// `quota`, `no-quota`, `no-maildir` or `error`.
    state: &'static str,
    /// The use was counted from the folders now, not read from `maildirsize`.
    counted: bool,
    /// `maildirsize` was rewritten.
    written: bool,
    storage: Option<Resource>,
    message: Option<Resource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// The whole percentage of `usage` in `limit`, rounded down; `None` without a limit.
pub fn percent(usage: u64, limit: Option<u64>) -> Option<u64> {
    let limit = limit.filter(|&l| l > 0)?;
    let p = u128::from(usage) * 100 / u128::from(limit);
    Some(u64::try_from(p).unwrap_or(u64::MAX))
}

/// The use and limits of a row, if it has any: (usage, bytes limit, messages limit).
fn figures(found: &Found) -> Option<(Usage, Option<u64>, Option<u64>)> {
    match found {
        Found::Quota { limits, usage, .. } => Some((*usage, limits.bytes, limits.messages)),
        Found::NoQuota { usage: Some(u) } => Some((*u, None, None)),
        _ => None,
    }
}

fn state(found: &Found) -> &'static str {
    match found {
        Found::Quota { .. } => "quota",
        Found::NoQuota { .. } => "no-quota",
        Found::NoMaildir => "no-maildir",
        Found::Failed(_) => "error",
    }
}

/// A JSON array with one object per row, in order.
pub fn json(rows: &[Row]) -> String {
    let out: Vec<JsonRow<'_>> = rows
        .iter()
        .map(|r| {
            let f = figures(&r.found);
            let resource = |usage: u64, limit: Option<u64>| Resource {
                usage,
                limit,
                percent: percent(usage, limit),
            };
            let (counted, written) = match &r.found {
                Found::Quota {
                    counted, written, ..
                } => (*counted, *written),
                Found::NoQuota { usage } => (usage.is_some(), false),
                _ => (false, false),
            };
            JsonRow {
                user: &r.user,
                maildir: r.maildir.as_ref().map(|p| p.display().to_string()),
                state: state(&r.found),
                counted,
                written,
                storage: f.map(|(u, b, _)| resource(u.bytes, b)),
                message: f.map(|(u, _, m)| resource(u.messages, m)),
                error: match &r.found {
                    Found::Failed(why) => Some(why),
                    _ => None,
                },
            }
        })
        .collect();
    // Cannot fail: strings, numbers, booleans and nulls only.
    let mut text = serde_json::to_string_pretty(&out).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    text
}

/// A size for people: bytes below 1 KiB, else one decimal in the largest binary unit that
/// keeps the number at 1 or more (`3.9 KiB`, `1 GiB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = 0;
    let mut scale = 1u64;
    while unit + 1 < UNITS.len() && bytes / scale >= 1024 {
        scale *= 1024;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    // Tenths, rounded to nearest; 1023.96 KiB shows as "1024 KiB", which is right.
    let tenths = (u128::from(bytes) * 10 + u128::from(scale) / 2) / u128::from(scale);
    if tenths % 10 == 0 {
        format!("{} {}", tenths / 10, UNITS[unit])
    } else {
        format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
    }
}

/// What the NOTE column says about a row.
fn note(found: &Found) -> String {
    match found {
        Found::Quota { written: true, .. } => "recalculated".into(),
        Found::Quota { counted: true, .. } => "counted".into(),
        Found::Quota { .. } => String::new(),
        Found::NoQuota { usage: None } => "no quota".into(),
        Found::NoQuota { usage: Some(_) } => "no quota, counted".into(),
        Found::NoMaildir => "no Maildir".into(),
        Found::Failed(why) => format!("error: {why}"),
    }
}

/// A table with a header line and one line per row; numbers right-aligned.
pub fn table(rows: &[Row]) -> String {
    const HEADER: [&str; 8] = [
        "USER", "STORAGE", "LIMIT", "USE%", "MESSAGES", "LIMIT", "USE%", "NOTE",
    ];
    // Left-aligned columns: the user and the note.
    const LEFT: [bool; 8] = [true, false, false, false, false, false, false, true];
    let dash = || "-".to_string();
    let pct = |p: Option<u64>| p.map_or_else(dash, |p| format!("{p}%"));
    let mut lines: Vec<[String; 8]> = vec![HEADER.map(String::from)];
    for r in rows {
        let cells = match figures(&r.found) {
            Some((u, bytes, messages)) => [
                human(u.bytes),
                bytes.map_or_else(dash, human),
                pct(percent(u.bytes, bytes)),
                u.messages.to_string(),
                messages.map_or_else(dash, |m| m.to_string()),
                pct(percent(u.messages, messages)),
            ],
            None => std::array::from_fn(|_| dash()),
        };
        let [a, b, c, d, e, f] = cells;
        lines.push([r.user.clone(), a, b, c, d, e, f, note(&r.found)]);
    }
    let mut widths = [0usize; 8];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = widths[i] - cell.chars().count();
            if LEFT[i] {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::QuotaLimits;

    fn rows() -> Vec<Row> {
        let row = |user: &str, found| Row {
            user: user.into(),
            maildir: Some(format!("/m/{user}").into()),
            found,
        };
        vec![
            row(
                "ann",
                Found::Quota {
                    limits: QuotaLimits {
                        bytes: Some(10240),
                        messages: Some(8),
                    },
                    usage: Usage {
                        bytes: 4000,
                        messages: 4,
                    },
                    counted: true,
                    written: true,
                },
            ),
            row("bob", Found::NoQuota { usage: None }),
            row("carl", Found::NoMaildir),
            row("dora", Found::Failed("no access".into())),
        ]
    }

    #[test]
    fn sizes_and_shares() {
        for (bytes, want) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1 KiB"),
            (4000, "3.9 KiB"),
            (1_048_575, "1024 KiB"),
            (1 << 30, "1 GiB"),
            (u64::MAX, "16384 PiB"),
        ] {
            assert_eq!(human(bytes), want, "{bytes}");
        }
        assert_eq!(percent(4000, Some(10240)), Some(39));
        assert_eq!(percent(5, Some(4)), Some(125));
        assert_eq!(percent(5, None), None);
        assert_eq!(percent(5, Some(0)), None);
        assert_eq!(percent(u64::MAX, Some(1)), Some(u64::MAX));
    }

    #[test]
    fn table_lines() {
        let t = table(&rows());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "USER  STORAGE   LIMIT  USE%  MESSAGES  LIMIT  USE%  NOTE",
                "ann   3.9 KiB  10 KiB   39%         4      8   50%  recalculated",
                "bob         -       -     -         -      -     -  no quota",
                "carl        -       -     -         -      -     -  no Maildir",
                "dora        -       -     -         -      -     -  error: no access",
            ]
        );
    }

    #[test]
    fn json_objects() {
        let v: serde_json::Value = serde_json::from_str(&json(&rows())).unwrap();
        let a = &v[0];
        assert_eq!(a["user"], "ann");
        assert_eq!(a["maildir"], "/m/ann");
        assert_eq!(a["state"], "quota");
        assert_eq!((&a["counted"], &a["written"]), (&true.into(), &true.into()));
        assert_eq!(a["storage"]["usage"], 4000);
        assert_eq!(a["storage"]["limit"], 10240);
        assert_eq!(a["storage"]["percent"], 39);
        assert_eq!(a["message"]["usage"], 4);
        assert_eq!(a["message"]["percent"], 50);
        assert!(a.get("error").is_none());
        assert_eq!(v[1]["state"], "no-quota");
        assert!(v[1]["storage"].is_null());
        assert_eq!(v[2]["state"], "no-maildir");
        assert_eq!(v[3]["state"], "error");
        assert_eq!(v[3]["error"], "no access");
        assert_eq!(json(&[]), "[]\n");
    }
}
