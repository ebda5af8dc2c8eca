//! `nestbox who`: the sessions logged in to the running server, asked over its control
//! socket (`server::control`, root only), printed as a table or as JSON.
//!
//! Owns the output only; the socket, the request and what the server knows are
//! `server::control`'s. Reads no mail and no users file.
use crate::server::control::{self, SessionRow};

/// The rows as `nestbox who` prints them: a table with a header line, or with `json` a
/// JSON array of objects (fields as in [`SessionRow`]).
pub fn render(rows: &[SessionRow], json: bool) -> Result<String, String> {
    if json {
        let mut s = serde_json::to_string_pretty(rows).map_err(|e| e.to_string())?;
        s.push('\n');
        return Ok(s);
    }
    let header = ["USER", "ADDRESS", "PROTO", "TLS", "SINCE", "PID", "FOLDER"].map(String::from);
    let mut lines = vec![header.to_vec()];
    for r in rows {
        lines.push(vec![
            r.user.clone(),
            r.address.to_string(),
            r.protocol.to_ascii_uppercase(),
            if r.tls { "yes" } else { "no" }.to_string(),
            r.since.clone(),
            r.pid.to_string(),
            r.folder.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        let mut line = String::new();
        for (i, cell) in l.iter().enumerate() {
            if i + 1 == l.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// Asks the server whose config is `cfg` and renders its answer.
pub fn run(cfg: &crate::config::Config, json: bool) -> Result<String, String> {
    let path = &cfg.server.control_socket;
    if path.as_os_str().is_empty() {
        return Err("server.control_socket is off in this configuration".into());
    }
    render(&control::ask(path)?, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_with_a_line_per_session() {
        let rows = vec![
            SessionRow {
                user: "alice".into(),
                address: "[2001:db8::1]:50000".parse().unwrap(),
                protocol: "imap".into(),
                folder: Some("Archive 2024".into()),
                since: "2026-12-04T12:00:00Z".into(),
                tls: true,
                pid: 1234,
            },
            SessionRow {
                user: "bob".into(),
                address: "192.0.2.7:40000".parse().unwrap(),
                protocol: "pop3".into(),
                folder: None,
                since: "2026-12-04T12:01:00Z".into(),
                tls: false,
                pid: 99,
            },
        ];
        let t = render(&rows, false).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("USER "), "{t}");
        assert!(
            lines[1].starts_with("alice  [2001:db8::1]:50000  IMAP   yes"),
            "{t}"
        );
        assert!(lines[1].ends_with("1234  Archive 2024"), "{t}");
        assert!(lines[2].ends_with("  -"), "{t}");
        let j: Vec<SessionRow> = serde_json::from_str(&render(&rows, true).unwrap()).unwrap();
        assert_eq!(j, rows);
        assert_eq!(render(&[], false).unwrap().lines().count(), 1);
    }
}
