//! RFC 6186 SRV records (with RFC 8314's implicit-TLS services) as lines for a zone file:
//! `_imaps._tcp`, `_imap._tcp`, `_pop3s._tcp`, `_pop3._tcp` pointing at this server, and
//! `_submissions._tcp` / `_submission._tcp` at the MTA. A service the configuration turns
//! off is published as "not available" (`0 0 0 .`, RFC 6186 §3.4, after RFC 2782), so a
//! client does not try it.
//!
//! Priorities (lower is preferred; RFC 6186 §3.4 lets a client that speaks both compare
//! IMAP's and POP3's): implicit TLS before STARTTLS (RFC 8314 §5.1), IMAP before POP3.
use std::fmt::Write as _;

use super::Settings;

/// Time to live of the records, in seconds.
const TTL: u32 = 3600;

/// The zone-file lines, one record each, after a comment line.
pub fn render(s: &Settings) -> String {
    let mut out = format!(
        "; RFC 6186 / RFC 8314 SRV records for {} (nestbox client-config)\n",
        s.domain
    );
    let services = [
        ("_imaps", s.imaps, 0, &s.hostname),
        ("_imap", s.imap, 10, &s.hostname),
        ("_pop3s", s.pop3s, 20, &s.hostname),
        ("_pop3", s.pop3, 30, &s.hostname),
        ("_submissions", s.submissions, 0, &s.submission_host),
        ("_submission", s.submission, 10, &s.submission_host),
    ];
    for (service, port, priority, target) in services {
        let owner = format!("{service}._tcp.{}.", s.domain);
        let _ = match port {
            Some(port) => writeln!(
                out,
                "{owner:<40} {TTL} IN SRV {priority} 1 {port} {target}."
            ),
            None => writeln!(out, "{owner:<40} {TTL} IN SRV 0 0 0 ."),
        };
    }
    out
}
