//! Thunderbird's autoconfig file (`config-v1.1.xml`, the format of Thunderbird's ISPDB:
//! `clientConfig` version 1.1 with one `emailProvider`), which Thunderbird, K-9 Mail /
//! Thunderbird for Android, Evolution and KMail fetch from
//! `https://autoconfig.DOMAIN/mail/config-v1.1.xml` and
//! `https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml`.
//!
//! Written with `quick-xml`'s writer rather than by `format!`: it escapes every text and
//! attribute value (the display name is the operator's free text) and always closes what
//! it opens, so the file is well-formed whatever the names are. It is already in the build
//! through `plist`, at the same version.
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

use super::{Settings, Username};

/// One `incomingServer` or `outgoingServer`.
struct Server<'a> {
    kind: &'a str,
    host: &'a str,
    port: u16,
    /// `SSL` (implicit TLS) or `STARTTLS`.
    socket: &'a str,
}

/// The file's text.
pub fn render(s: &Settings) -> Result<String, String> {
    let username = match s.username {
        Username::Address => "%EMAILADDRESS%",
        Username::LocalPart => "%EMAILLOCALPART%",
    };
    // In order of preference: Thunderbird offers the first it can reach.
    let mut incoming = Vec::new();
    let mut add = |kind, port: Option<u16>, socket| {
        if let Some(port) = port {
            incoming.push(Server {
                kind,
                host: &s.hostname,
                port,
                socket,
            });
        }
    };
    add("imap", s.imaps, "SSL");
    add("imap", s.imap, "STARTTLS");
    add("pop3", s.pop3s, "SSL");
    add("pop3", s.pop3, "STARTTLS");
    let outgoing: Vec<Server> = [(s.submissions, "SSL"), (s.submission, "STARTTLS")]
        .into_iter()
        .filter_map(|(port, socket)| {
            Some(Server {
                kind: "smtp",
                host: &s.submission_host,
                port: port?,
                socket,
            })
        })
        .collect();

    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let io = |e: std::io::Error| format!("autoconfig XML: {e}");
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(io)?;
    w.create_element("clientConfig")
        .with_attribute(("version", "1.1"))
        .write_inner_content(|w| {
            w.create_element("emailProvider")
                .with_attribute(("id", s.domain.as_str()))
                .write_inner_content(|w| {
                    text(w, "domain", &s.domain)?;
                    text(w, "displayName", &s.display_name)?;
                    text(w, "displayShortName", &s.domain)?;
                    for (element, servers) in
                        [("incomingServer", &incoming), ("outgoingServer", &outgoing)]
                    {
                        for srv in servers {
                            w.create_element(element)
                                .with_attribute(("type", srv.kind))
                                .write_inner_content(|w| {
                                    text(w, "hostname", srv.host)?;
                                    text(w, "port", &srv.port.to_string())?;
                                    text(w, "socketType", srv.socket)?;
                                    text(w, "username", username)?;
                                    text(w, "authentication", "password-cleartext")
                                })?;
                        }
                    }
                    Ok(())
                })?;
            Ok(())
        })
        .map_err(io)?;
    let mut out = String::from_utf8(w.into_inner()).map_err(|e| e.to_string())?;
    out.push('\n');
    Ok(out)
}

fn text(w: &mut Writer<Vec<u8>>, name: &str, value: &str) -> std::io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(value))
        .map(|_| ())
}
