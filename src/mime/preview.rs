//! PREVIEW (RFC 8970): a short plain-text snippet of the message.
//!
//! Taken from the first text/plain part in document order that is not an
//! attachment, else from the first text/html part with its markup removed.
//! Transfer encoding and charset are undone; runs of white space become
//! one space, with none at either end. The result is at most
//! [`MAX_CHARS`] characters (code points, so never more user-visible
//! characters than that): RFC 8970 §3.1 counts the limits, 200 suggested
//! and 256 at most, in characters, not octets, so Greek or Cyrillic text
//! is not cut shorter than Latin (as Dovecot also does).
//!
//! Pure: FETCH PREVIEW renders it and keeps the result in the folder's
//! cache, so a message is previewed once.
use super::decode;
use super::search_text::part_charset;
use crate::message::tree::{Cte, Kind, Part, fields};

/// Length the preview is cut to (RFC 8970 §3 suggests 200 characters).
pub(crate) const MAX_CHARS: usize = 200;

/// Enough encoded input for the preview, so a huge part is not decoded.
const INPUT_LIMIT: usize = 16 * 1024;

pub(crate) fn preview(data: &[u8], root: &Part) -> String {
    let pick = find(data, root, "plain").or_else(|| find(data, root, "html"));
    let Some(p) = pick else {
        return String::new();
    };
    let raw = data.get(p.body.clone()).unwrap_or_default();
    let raw = &raw[..raw.len().min(INPUT_LIMIT)];
    let mut bytes = Vec::new();
    match p.cte {
        Cte::Base64 => decode::base64(raw, &mut bytes),
        Cte::QuotedPrintable => decode::quoted_printable(raw, &mut bytes),
        _ => bytes.extend_from_slice(raw),
    }
    let enc = part_charset(data, p).unwrap_or(encoding_rs::UTF_8);
    let (text, _) = enc.decode_without_bom_handling(&bytes);
    let text = if p.subtype == "html" {
        strip_html(&text)
    } else {
        text.into_owned()
    };
    collapse(&text)
}

fn is_attachment(data: &[u8], p: &Part) -> bool {
    fields(data, p.header.clone())
        .find(|f| f.is(b"content-disposition"))
        .is_some_and(|f| {
            let v = crate::message::tree::trim(f.value);
            v.len() >= 10 && v[..10].eq_ignore_ascii_case(b"attachment")
        })
}

/// The first non-attachment text/`subtype` leaf, not looking inside
/// encapsulated messages (their text is not this message's).
fn find<'a>(data: &[u8], p: &'a Part, subtype: &str) -> Option<&'a Part> {
    match &p.kind {
        Kind::Multipart(children) => children.iter().find_map(|c| find(data, c, subtype)),
        Kind::Message(_) => None,
        Kind::Leaf => (p.is_text() && p.subtype == subtype && !is_attachment(data, p)).then_some(p),
    }
}

/// Markup removed: tags dropped, `<style>`/`<script>` contents and
/// comments skipped, the common entities decoded.
fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len().min(4096));
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let tag = &rest[lt..];
        let lower: String = tag.chars().take(8).collect::<String>().to_ascii_lowercase();
        let skip_to = if lower.starts_with("<!--") {
            tag.find("-->").map(|e| e + 3)
        } else if lower.starts_with("<style") || lower.starts_with("<script") {
            let close = if lower.starts_with("<style") {
                "</style"
            } else {
                "</script"
            };
            tag.to_ascii_lowercase()
                .find(close)
                .and_then(|c| tag[c..].find('>').map(|e| c + e + 1))
        } else {
            tag.find('>').map(|e| e + 1)
        };
        out.push(' ');
        match skip_to {
            Some(n) => rest = &tag[n..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    for (entity, c) in [
        ("&nbsp;", " "),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&#39;", "'"),
        ("&amp;", "&"),
    ] {
        if out.contains(entity) {
            out = out.replace(entity, c);
        }
    }
    out
}

/// White space collapsed and trimmed, cut to the length limits on a
/// character boundary.
fn collapse(text: &str) -> String {
    let mut out = String::new();
    let mut chars = 0;
    for word in text.split_whitespace() {
        for (i, piece) in [" ", word].into_iter().enumerate() {
            if i == 0 && out.is_empty() {
                continue;
            }
            for c in piece.chars() {
                if chars == MAX_CHARS {
                    // A cut just after the space between two words
                    // would leave it at the end.
                    out.truncate(out.trim_end().len());
                    return out;
                }
                out.push(c);
                chars += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tree::parse_message;

    fn pv(raw: &str) -> String {
        preview(raw.as_bytes(), &parse_message(raw.as_bytes()))
    }

    #[test]
    fn table() {
        let long = "word ".repeat(100);
        let cases: Vec<(String, String)> = vec![
            ("Subject: x\r\n\r\nHello\r\n  world\r\n".into(), "Hello world".into()),
            ("\r\n".into(), "".into()),
            (
                concat!(
                    "Content-Type: multipart/alternative; boundary=b\r\n\r\n",
                    "--b\r\nContent-Type: text/html\r\n\r\n<p>Ignored</p>\r\n",
                    "--b\r\nContent-Type: text/plain; charset=utf-8\r\n",
                    "Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9 =\r\nnow\r\n--b--\r\n"
                )
                .into(),
                "Café now".into(),
            ),
            (
                concat!(
                    "Content-Type: text/html\r\n\r\n",
                    "<html><head><style>p {color: red}</style></head>",
                    "<body><!-- c --><p>Fish &amp; chips</p><script>x()</script>&lt;3</body></html>"
                )
                .into(),
                "Fish & chips <3".into(),
            ),
            (
                concat!(
                    "Content-Type: multipart/mixed; boundary=b\r\n\r\n",
                    "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nfile\r\n",
                    "--b\r\nContent-Type: image/png\r\n\r\nxx\r\n--b--\r\n"
                )
                .into(),
                "".into(),
            ),
            (
                format!("\r\n{long}"),
                // 200 characters end in a space here: not kept.
                long.trim().chars().take(MAX_CHARS - 1).collect(),
            ),
            ("\r\n<unclosed".into(), "<unclosed".into()),
            ("Content-Type: text/html\r\n\r\n<p>ok</p><unclosed".into(), "ok".into()),
        ];
        for (raw, want) in cases {
            assert_eq!(pv(&raw), want, "{raw:?}");
        }
        // The limit is in characters (RFC 8970 §3.1), not octets: Greek
        // text keeps its 200 characters.
        let wide = format!("\r\n{}", "é".repeat(300));
        let p = pv(&wide);
        assert_eq!(p.chars().count(), MAX_CHARS);
        assert_eq!(p.len(), 2 * MAX_CHARS);
        let greek = format!("\r\n{}", "Καλημέρα σας ".repeat(30));
        assert_eq!(pv(&greek).chars().count(), MAX_CHARS);
        // A cut falling right after a space does not keep it.
        let spaced = format!("\r\n{} next", "x".repeat(MAX_CHARS - 1));
        assert_eq!(pv(&spaced), "x".repeat(MAX_CHARS - 1));
    }
}
