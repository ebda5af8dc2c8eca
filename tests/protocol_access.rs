//! Per-user protocol choice over a real socket (issue 17): a passwd-file user whose line
//! says `nestbox_protocols=pop3` gets, for IMAP LOGIN with the right password, the very
//! answer of a wrong password, and the log tells the operator which it was.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use common::{Kind, Options, PASSWORD, PASSWORD2, TestServer, USER, USER2};

/// Sends `a LOGIN user password` on a new connection and returns the tagged answer.
fn login(server: &TestServer, user: &str, password: &str) -> String {
    let s = server.connect();
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    r.read_line(&mut line).expect("greeting");
    assert!(line.starts_with("* OK"), "greeting: {line}");
    (&s).write_all(format!("a LOGIN {user} {password}\r\n").as_bytes())
        .expect("send LOGIN");
    loop {
        line.clear();
        let n = r.read_line(&mut line).expect("answer to LOGIN");
        assert!(n > 0, "closed before answering LOGIN");
        if let Some(rest) = line.strip_prefix("a ") {
            let _ = (&s).write_all(b"b LOGOUT\r\n");
            return rest.trim_end().to_string();
        }
    }
}

/// Waits (bounded) until the server's log has a line containing `what`.
fn wait_for_log(server: &TestServer, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        if log.contains(what) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Replaces the passwd-file; the server reads it again at the next login.
fn write_users(server: &TestServer, alice_extra: &str) {
    std::fs::write(
        server.dir.join("users"),
        format!(
            "{USER}:{{PLAIN}}{PASSWORD}::::::{alice_extra}\n{USER2}:{{PLAIN}}{PASSWORD2}::::::\n"
        ),
    )
    .expect("write users");
}

#[test]
fn refused_protocol_answers_like_a_wrong_password() {
    if Kind::from_env() != Kind::Nestbox {
        return; // nestbox's own passwd-file field
    }
    let server = TestServer::start_with(Options::default());
    write_users(&server, "nestbox_protocols=pop3");

    let refused = login(&server, USER, PASSWORD);
    let wrong = login(&server, USER, "not-the-password");
    assert_eq!(refused, "NO [AUTHENTICATIONFAILED] Authentication failed.");
    assert_eq!(wrong, refused, "the same answer, byte for byte");

    let log = wait_for_log(&server, "mech=LOGIN");
    let refused_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("protocol refused:"))
        .collect();
    assert_eq!(refused_lines.len(), 1, "{log}");
    assert!(
        refused_lines[0].contains(&format!(
            "protocol refused: user={USER} rip=127.0.0.1 proto=imap reason=nestbox_protocols=pop3"
        )),
        "{log}"
    );
    assert!(refused_lines[0].contains("WARN"), "{log}");
    // The wrong password, and only it, is an `auth failed` line (what fail2ban bans).
    let failed: Vec<&str> = log.lines().filter(|l| l.contains("auth failed:")).collect();
    assert_eq!(failed.len(), 1, "{log}");
    assert!(
        failed[0].contains(&format!(
            "auth failed: user={USER} rip=127.0.0.1 mech=LOGIN"
        )),
        "{log}"
    );

    // Other users are untouched, and the same line with IMAP in its list logs in.
    assert!(login(&server, USER2, PASSWORD2).starts_with("OK"));
    write_users(&server, "nestbox_protocols=imap,pop3");
    assert!(login(&server, USER, PASSWORD).starts_with("OK"));
    // An empty list allows nothing.
    write_users(&server, "nestbox_protocols=");
    assert_eq!(
        login(&server, USER, PASSWORD),
        "NO [AUTHENTICATIONFAILED] Authentication failed."
    );
}

/// One POP3 exchange on a new connection: the greeting, then each command's first reply
/// line. A multi-line reply is not read whole: only single-line commands are sent.
fn pop3(server: &TestServer, commands: &[String]) -> (String, Vec<String>) {
    let s = server.connect_pop3();
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut greeting = String::new();
    r.read_line(&mut greeting).expect("greeting");
    let mut replies = Vec::new();
    for c in commands {
        (&s).write_all(format!("{c}\r\n").as_bytes()).expect("send");
        let mut line = String::new();
        r.read_line(&mut line).expect("reply");
        replies.push(line.trim_end().to_string());
    }
    let _ = (&s).write_all(b"QUIT\r\n");
    (greeting.trim_end().to_string(), replies)
}

/// The same for POP3: a user whose line says `nestbox_protocols=imap` gets, for the right
/// password, the reply to a wrong one; APOP, offered because the file has `{PLAIN}`
/// secrets, works for a user POP3 is open to.
#[test]
fn pop3_refused_like_a_wrong_password_and_apop() {
    if Kind::from_env() != Kind::Nestbox {
        return;
    }
    let server = TestServer::start_with(Options::default());
    write_users(&server, "nestbox_protocols=imap");
    let login = |user: &str, pass: &str| {
        let (_, r) = pop3(&server, &[format!("USER {user}"), format!("PASS {pass}")]);
        r[1].clone()
    };
    let refused = login(USER, PASSWORD);
    let wrong = login(USER, "not-the-password");
    assert_eq!(refused, "-ERR [AUTH] Authentication failed.");
    assert_eq!(wrong, refused, "the same reply, byte for byte");
    let log = wait_for_log(&server, "mech=USER");
    assert!(
        log.contains(&format!(
            "protocol refused: user={USER} rip=127.0.0.1 proto=pop3 reason=nestbox_protocols=imap"
        )),
        "{log}"
    );
    assert_eq!(log.matches("auth failed:").count(), 1, "{log}");

    // APOP (RFC 1939 §7): the greeting's timestamp, MD5 of it and the secret.
    let (greeting, _) = pop3(&server, &[]);
    let ts =
        &greeting[greeting.find('<').expect("APOP timestamp")..=greeting.find('>').expect(">")];
    let s = server.connect_pop3();
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut greeting = String::new();
    r.read_line(&mut greeting).expect("greeting");
    let ts2 = &greeting[greeting.find('<').expect("<")..=greeting.find('>').expect(">")];
    assert_ne!(ts, ts2, "a new timestamp for every connection");
    let digest = nestbox::auth::hash::apop_digest(ts2, PASSWORD2);
    (&s).write_all(format!("APOP {USER2} {digest}\r\n").as_bytes())
        .expect("send");
    let mut line = String::new();
    r.read_line(&mut line).expect("APOP reply");
    assert!(line.starts_with("+OK"), "{line}");
    let _ = (&s).write_all(b"QUIT\r\n");
}
