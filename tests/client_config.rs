//! `nestbox client-config` (issue 20, item 3): the built binary run on configurations, its
//! files checked by independent readers. Python's `xml.etree` parses the autoconfig XML and
//! the test checks the elements Thunderbird's format needs (`clientConfig version="1.1"`,
//! `emailProvider id`, `domain`, `displayName`, `incomingServer`/`outgoingServer` with
//! `hostname`, `port`, `socketType`, `username`, `authentication`); Python's `plistlib`
//! parses the Apple profile and the test checks its payload keys; the SRV lines are parsed
//! field by field. A listener turned off, a PAM or passwd-file backend, and the submission
//! ports must each change the output as documented.
mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_nestbox");

/// Reads the files with Python and prints one JSON object: what the test checks.
const READER: &str = r#"
import json, plistlib, sys, xml.etree.ElementTree as ET
out = sys.argv[1]
domain = sys.argv[2]
def servers(root, tag):
    return [{"type": s.get("type"), **{c.tag: c.text for c in s}} for s in root.iter(tag)]
docs = {}
for rel in [".well-known/autoconfig/mail/config-v1.1.xml", "mail/config-v1.1.xml"]:
    root = ET.parse(f"{out}/{rel}").getroot()
    p = root.find("emailProvider")
    docs[rel] = {
        "root": root.tag, "version": root.get("version"), "id": p.get("id"),
        "domain": p.findtext("domain"), "displayName": p.findtext("displayName"),
        "incoming": servers(p, "incomingServer"), "outgoing": servers(p, "outgoingServer"),
    }
with open(f"{out}/{domain}.mobileconfig", "rb") as f:
    profile = plistlib.load(f)
print(json.dumps({"xml": docs, "profile": profile}))
"#;

struct Run {
    dir: tempfile::TempDir,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn out(&self) -> std::path::PathBuf {
        self.dir.path().join("out")
    }
}

/// Writes `config` (with `[tls]` filled in) and runs `client-config` on it with `args`.
fn run(config: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    fs::write(d.join("users"), "ann@example.org:{PLAIN}x::::::\n").expect("users");
    let config = config.replace("{dir}", &d.display().to_string());
    fs::write(
        d.join("nestbox.toml"),
        format!(
            "{config}\n[tls]\ncert = \"{0}/cert.pem\"\nkey = \"{0}/key.pem\"\n",
            d.display()
        ),
    )
    .expect("config");
    let f = common::run_to_end(
        Command::new(BIN)
            .arg("client-config")
            .arg("-c")
            .arg(d.join("nestbox.toml"))
            .arg("--out")
            .arg(d.join("out"))
            .args(args),
        Duration::from_secs(30),
    );
    Run {
        dir,
        code: f.code,
        stdout: f.stdout,
        stderr: f.stderr,
    }
}

/// The files as Python reads them.
fn read(out: &Path, domain: &str) -> serde_json::Value {
    let o = Command::new("python3")
        .arg("-c")
        .arg(READER)
        .arg(out)
        .arg(domain)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "python could not read the files: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("json")
}

/// `(service, priority, weight, port, target)` of each SRV line of the zone file, checked
/// for the zone-file form: owner under `domain.`, TTL, `IN SRV`.
fn srv(out: &Path, domain: &str) -> Vec<(String, u16, u16, u16, String)> {
    let text = fs::read_to_string(out.join("srv-records.zone")).expect("zone");
    text.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 8, "{l}");
            assert_eq!(&f[2..4], ["IN", "SRV"], "{l}");
            f[1].parse::<u32>().expect("ttl");
            let service = f[0]
                .strip_suffix(&format!("._tcp.{domain}."))
                .unwrap_or_else(|| panic!("owner of {l}"));
            let n = |i: usize| f[i].parse::<u16>().expect("number");
            (service.to_string(), n(4), n(5), n(6), f[7].to_string())
        })
        .collect()
}

fn servers(v: &serde_json::Value, kind: &str) -> Vec<(String, String, String, String)> {
    v[kind]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| {
            for field in [
                "hostname",
                "port",
                "socketType",
                "username",
                "authentication",
            ] {
                assert!(s[field].is_string(), "{field} missing in {s}");
            }
            assert_eq!(s["authentication"], "password-cleartext");
            let f = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (f("type"), f("hostname"), f("port"), f("socketType"))
        })
        .collect()
}

fn need_python() -> bool {
    common::require_tool("python3", "Python's xml.etree and plistlib read the files")
}

#[test]
fn every_file_from_a_pam_config() {
    if !need_python() {
        return;
    }
    let r = run(
        "hostname = \"mail.example.org\"\n[auth]\nbackend = \"pam\"\n",
        &["--display-name", "Ann & Bob's <mail>"],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let v = read(&r.out(), "example.org");
    let well_known = &v["xml"][".well-known/autoconfig/mail/config-v1.1.xml"];
    assert_eq!(well_known, &v["xml"]["mail/config-v1.1.xml"]);
    assert_eq!(well_known["root"], "clientConfig");
    assert_eq!(well_known["version"], "1.1");
    assert_eq!(well_known["id"], "example.org");
    assert_eq!(well_known["domain"], "example.org");
    // Escaped on the way in, read back as written.
    assert_eq!(well_known["displayName"], "Ann & Bob's <mail>");
    let host = "mail.example.org".to_string();
    let s = |t: &str, p: &str, k: &str| (t.to_string(), host.clone(), p.to_string(), k.to_string());
    assert_eq!(
        servers(well_known, "incoming"),
        [
            s("imap", "993", "SSL"),
            s("imap", "143", "STARTTLS"),
            s("pop3", "995", "SSL"),
            s("pop3", "110", "STARTTLS"),
        ]
    );
    assert_eq!(
        servers(well_known, "outgoing"),
        [s("smtp", "587", "STARTTLS")]
    );
    // PAM users log in with their system name: the local part.
    for server in well_known["incoming"].as_array().expect("incoming") {
        assert_eq!(server["username"], "%EMAILLOCALPART%");
    }

    let p = &v["profile"];
    assert_eq!(p["PayloadType"], "Configuration");
    assert_eq!(p["PayloadVersion"], 1);
    assert_eq!(p["PayloadIdentifier"], "org.example.nestbox.mail");
    let mail = &p["PayloadContent"][0];
    assert_eq!(mail["PayloadType"], "com.apple.mail.managed");
    assert_eq!(mail["EmailAccountType"], "EmailTypeIMAP");
    assert_eq!(mail["IncomingMailServerHostName"], "mail.example.org");
    assert_eq!(mail["IncomingMailServerPortNumber"], 993);
    assert_eq!(mail["IncomingMailServerUseSSL"], true);
    assert_eq!(
        mail["IncomingMailServerAuthentication"],
        "EmailAuthPassword"
    );
    assert_eq!(mail["OutgoingMailServerHostName"], "mail.example.org");
    assert_eq!(mail["OutgoingMailServerPortNumber"], 587);
    assert_eq!(
        mail["OutgoingMailServerAuthentication"],
        "EmailAuthPassword"
    );
    assert_eq!(mail["OutgoingPasswordSameAsIncomingPassword"], true);
    // A generic profile: the device asks each user for their own.
    assert!(mail.get("EmailAddress").is_none() && mail.get("IncomingMailServerUsername").is_none());
    let uuid =
        regex::Regex::new("^[0-9A-F]{8}-[0-9A-F]{4}-5[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$")
            .expect("re");
    for u in [&p["PayloadUUID"], &mail["PayloadUUID"]] {
        assert!(uuid.is_match(u.as_str().unwrap_or_default()), "{u}");
    }
    assert_ne!(p["PayloadUUID"], mail["PayloadUUID"]);

    let records = srv(&r.out(), "example.org");
    let rec =
        |s: &str, pr: u16, port: u16| (s.to_string(), pr, 1, port, "mail.example.org.".to_string());
    let off = |s: &str| (s.to_string(), 0, 0, 0, ".".to_string());
    assert_eq!(
        records,
        [
            rec("_imaps", 0, 993),
            rec("_imap", 10, 143),
            rec("_pop3s", 20, 995),
            rec("_pop3", 30, 110),
            off("_submissions"),
            rec("_submission", 10, 587),
        ]
    );
    assert!(
        r.stdout.contains("_imaps._tcp.example.org."),
        "{}",
        r.stdout
    );

    // Deterministic: the same config gives the same files (the same profile UUIDs).
    let again = run(
        "hostname = \"mail.example.org\"\n[auth]\nbackend = \"pam\"\n",
        &["--display-name", "Ann & Bob's <mail>"],
    );
    for f in [
        "example.org.mobileconfig",
        "mail/config-v1.1.xml",
        "srv-records.zone",
    ] {
        assert_eq!(
            fs::read(r.out().join(f)).expect("first"),
            fs::read(again.out().join(f)).expect("second"),
            "{f}"
        );
    }
}

#[test]
fn listeners_turned_off_and_ports_change_the_output() {
    if !need_python() {
        return;
    }
    // No implicit-TLS IMAP, no POP3 at all, IMAP on another port; submission on 465 and 587
    // at the MTA's own host; a passwd-file whose users log in with whole addresses.
    let r = run(
        "hostname = \"imap.mail.example.net\"\n[imap]\nlisten = [\"0.0.0.0:1143\"]\n\
         listen_tls = []\n[pop3]\nlisten = []\nlisten_tls = []\n[auth]\n\
         backend = \"passwd-file\"\npasswd_file = \"{dir}/users\"\n",
        &[
            "--email-domain",
            "example.net",
            "--submission-host",
            "smtp.example.net",
            "--submission-port",
            "465",
            "--submission-port",
            "587",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    let v = read(&r.out(), "example.net");
    let x = &v["xml"]["mail/config-v1.1.xml"];
    assert_eq!(x["id"], "example.net");
    let h = |s: &str| s.to_string();
    assert_eq!(
        servers(x, "incoming"),
        [(
            h("imap"),
            h("imap.mail.example.net"),
            h("1143"),
            h("STARTTLS")
        )]
    );
    assert_eq!(
        servers(x, "outgoing"),
        [
            (h("smtp"), h("smtp.example.net"), h("465"), h("SSL")),
            (h("smtp"), h("smtp.example.net"), h("587"), h("STARTTLS")),
        ]
    );
    assert_eq!(x["incoming"][0]["username"], "%EMAILADDRESS%");
    let mail = &v["profile"]["PayloadContent"][0];
    assert_eq!(mail["IncomingMailServerPortNumber"], 1143);
    assert_eq!(mail["OutgoingMailServerHostName"], "smtp.example.net");
    assert_eq!(mail["OutgoingMailServerPortNumber"], 465);
    let records = srv(&r.out(), "example.net");
    let names: Vec<(&str, u16)> = records.iter().map(|r| (r.0.as_str(), r.3)).collect();
    assert_eq!(
        names,
        [
            ("_imaps", 0),
            ("_imap", 1143),
            ("_pop3s", 0),
            ("_pop3", 0),
            ("_submissions", 465),
            ("_submission", 587),
        ]
    );
    for r in &records {
        if r.3 == 0 {
            assert_eq!((r.1, r.2, r.4.as_str()), (0, 0, "."), "{r:?}");
        }
    }
    assert_eq!(records[4].4, "smtp.example.net.");

    // POP3 only: the profile is a POP account; `--username` overrides the file's form.
    // POP3 on the loopback address only: written, with a warning.
    let r = run(
        "hostname = \"mail.example.org\"\n[imap]\nlisten = []\nlisten_tls = []\n[pop3]\n\
         listen = [\"127.0.0.1:110\"]\n[auth]\n\
         backend = \"passwd-file\"\npasswd_file = \"{dir}/users\"\n",
        &["--username", "local-part"],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("warning: pop3.listen listens only on the loopback address"),
        "{}",
        r.stderr
    );
    let v = read(&r.out(), "example.org");
    let mail = &v["profile"]["PayloadContent"][0];
    assert_eq!(mail["EmailAccountType"], "EmailTypePOP");
    assert_eq!(mail["IncomingMailServerPortNumber"], 995);
    let x = &v["xml"]["mail/config-v1.1.xml"];
    assert_eq!(servers(x, "incoming").len(), 2);
    assert_eq!(x["incoming"][0]["username"], "%EMAILLOCALPART%");
}

#[test]
fn bad_names_and_no_listener_are_usage_errors() {
    for (config, args) in [
        (
            "hostname = \"mail.example.org\"\n",
            &["--email-domain", "exa mple.org"][..],
        ),
        ("hostname = \"bad_host.example.org\"\n", &[]),
        (
            "hostname = \"mail.example.org\"\n[imap]\nlisten = []\nlisten_tls = []\n\
             [pop3]\nlisten = []\nlisten_tls = []\n",
            &[],
        ),
    ] {
        let r = run(config, args);
        assert_eq!(r.code, Some(2), "{config} {args:?}: {}", r.stderr);
        assert!(!r.out().exists(), "nothing is written on an error");
    }
}
