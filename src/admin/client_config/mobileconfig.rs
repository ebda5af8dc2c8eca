//! An Apple configuration profile (`.mobileconfig`, an XML property list made with the
//! `plist` crate) with one `com.apple.mail.managed` payload: the mail account for iOS,
//! iPadOS and macOS Mail.
//!
//! Decisions:
//! - One profile for every user: it names no address, login or password, and the device
//!   asks for them when the profile is installed (Apple's documented behaviour when
//!   `EmailAddress` and `IncomingMailServerUsername` are absent). The outgoing server takes
//!   the incoming password (`OutgoingPasswordSameAsIncomingPassword`).
//! - Unsigned: signing needs the operator's key and a certificate a device trusts; the
//!   device shows the profile as "Unverified", which is the usual state of a self-hosted
//!   one. `openssl smime -sign` can sign the file afterwards (docs/client-setup.md).
//! - `PayloadUUID`s are derived (UUID version 5) from the profile's identifier, which is
//!   made of the email domain: the same server gives the same file on every run, so
//!   installing a newer one replaces the old profile (iOS matches the identifier) and the
//!   file can be kept under version control without churn.
//! - IMAP when the server has it (implicit TLS first), else POP3. `UseSSL` means TLS is
//!   required: on 993/995/465 that is implicit TLS, on 143/110/587 Mail uses STARTTLS.
use plist::{Dictionary, Value};
use uuid::Uuid;

use super::Settings;

/// The profile's bytes.
pub fn render(s: &Settings) -> Result<Vec<u8>, String> {
    let reversed: Vec<&str> = s.domain.rsplit('.').collect();
    let identifier = format!("{}.nestbox.mail", reversed.join("."));
    let uuid = |what: &str| {
        Uuid::new_v5(
            &Uuid::NAMESPACE_DNS,
            format!("{what}.{identifier}").as_bytes(),
        )
        .to_string()
        .to_uppercase()
    };
    let (account_type, incoming_port) = match (s.imaps.or(s.imap), s.pop3s.or(s.pop3)) {
        (Some(port), _) => ("EmailTypeIMAP", port),
        (None, Some(port)) => ("EmailTypePOP", port),
        (None, None) => return Err("no IMAP or POP3 listener".into()),
    };
    let (out_port, out_tls) = match (s.submissions, s.submission) {
        (Some(p), _) | (None, Some(p)) => (p, true),
        (None, None) => (587, true),
    };
    let mut mail = Dictionary::new();
    let mut put = |k: &str, v: Value| {
        mail.insert(k.to_string(), v);
    };
    put("PayloadType", "com.apple.mail.managed".into());
    put("PayloadVersion", 1.into());
    put("PayloadIdentifier", format!("{identifier}.account").into());
    put("PayloadUUID", uuid("account").into());
    put("PayloadDisplayName", s.display_name.clone().into());
    put("EmailAccountDescription", s.display_name.clone().into());
    put("EmailAccountType", account_type.into());
    put("IncomingMailServerHostName", s.hostname.clone().into());
    put(
        "IncomingMailServerPortNumber",
        u64::from(incoming_port).into(),
    );
    put("IncomingMailServerUseSSL", true.into());
    put(
        "IncomingMailServerAuthentication",
        "EmailAuthPassword".into(),
    );
    put(
        "OutgoingMailServerHostName",
        s.submission_host.clone().into(),
    );
    put("OutgoingMailServerPortNumber", u64::from(out_port).into());
    put("OutgoingMailServerUseSSL", out_tls.into());
    put(
        "OutgoingMailServerAuthentication",
        "EmailAuthPassword".into(),
    );
    put("OutgoingPasswordSameAsIncomingPassword", true.into());

    let mut profile = Dictionary::new();
    let mut put = |k: &str, v: Value| {
        profile.insert(k.to_string(), v);
    };
    put("PayloadType", "Configuration".into());
    put("PayloadVersion", 1.into());
    put("PayloadIdentifier", identifier.clone().into());
    put("PayloadUUID", uuid("profile").into());
    put("PayloadDisplayName", s.display_name.clone().into());
    put(
        "PayloadDescription",
        format!(
            "Sets up the mail account of {} on {}. You are asked for your address, user \
             name and password.",
            s.domain, s.hostname
        )
        .into(),
    );
    put("PayloadOrganization", s.domain.clone().into());
    put("PayloadRemovalDisallowed", false.into());
    put(
        "PayloadContent",
        Value::Array(vec![Value::Dictionary(mail)]),
    );
    let mut out = Vec::new();
    Value::Dictionary(profile)
        .to_writer_xml(&mut out)
        .map_err(|e| format!("profile: {e}"))?;
    out.push(b'\n');
    Ok(out)
}
