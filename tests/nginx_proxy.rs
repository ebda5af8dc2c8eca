//! nestbox behind a real nginx mail proxy (issue 20): Debian's nginx with `libnginx-mod-mail`,
//! `proxy_protocol on` towards two nestbox instances on different 127.0.0.1 ports, and the
//! shipped `contrib/nginx/nestbox-auth-http.py` routing alice to the first and bob to the
//! second. Each instance has a marker message the other lacks, so a login that lands on the
//! wrong server is seen. The client connects from 127.0.0.2 (Linux routes all of 127/8 to
//! loopback) while nginx reaches the backends from 127.0.0.1: each backend must log the
//! client's 127.0.0.2 (through the PROXY header), also in the `auth failed:` line fail2ban
//! bans on after a wrong password sent through the proxy.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Options, PASSWORD, PASSWORD2, TestServer, USER, USER2};

const TIMEOUT: Duration = Duration::from_secs(10);
const MAIL_MODULE: &str = "/usr/lib/nginx/modules/ngx_mail_module.so";

const PROXY: &str = r#"trusted_networks = ["127.0.0.1/32"]
proxy_protocol = ["{imap}", "{pop3}"]
"#;

/// A child process killed (by its PID) and reaped on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tools_present() -> bool {
    if !common::require_tool("nginx", "the nginx mail proxy test") {
        return false;
    }
    if !Path::new(MAIL_MODULE).is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{MAIL_MODULE} is required under CI (libnginx-mod-mail)"
        );
        eprintln!("SKIPPED: {MAIL_MODULE} missing (apt install libnginx-mod-mail)");
        return false;
    }
    common::require_tool("python3", "the auth_http responder")
}

/// Puts a message with `subject` into `maildir`'s `new/`.
fn marker(maildir: &Path, subject: &str) {
    let path = maildir
        .join("new")
        .join(format!("1700000000.{subject}.test"));
    std::fs::write(
        &path,
        format!("From: test@example.org\r\nSubject: {subject}\r\n\r\nmarker\r\n"),
    )
    .expect("write marker");
    common::give_to_mail_user(&path);
}

fn wait_connectable(addr: SocketAddr, what: &str, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} not listening on {addr}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_responder(dir: &Path, routes: &str) -> (Guard, u16) {
    let map = dir.join("routes");
    std::fs::write(&map, routes).expect("write routes");
    let port = common::free_port();
    let log = std::fs::File::create(dir.join("auth-http.log")).expect("log");
    let child = Command::new("python3")
        .arg(common::repo_root().join("contrib/nginx/nestbox-auth-http.py"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--map")
        .arg(&map)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start the responder");
    let guard = Guard(child);
    let log_path = dir.join("auth-http.log");
    wait_connectable(
        SocketAddr::from(([127, 0, 0, 1], port)),
        "the auth_http responder",
        &|| std::fs::read_to_string(&log_path).unwrap_or_default(),
    );
    (guard, port)
}

fn start_nginx(dir: &Path, auth_port: u16, imap: u16, pop3: u16) -> Guard {
    let conf = format!(
        r#"load_module {MAIL_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
mail {{
    auth_http 127.0.0.1:{auth_port}/auth;
    proxy_protocol on;
    proxy_pass_error_message on;
    server {{ listen 127.0.0.1:{imap}; protocol imap; }}
    server {{ listen 127.0.0.1:{pop3}; protocol pop3; }}
}}
"#,
        dir = dir.display()
    );
    let conf_file = dir.join("nginx.conf");
    std::fs::write(&conf_file, conf).expect("write nginx.conf");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_file)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let guard = Guard(child);
    let error_log: PathBuf = dir.join("error.log");
    for port in [imap, pop3] {
        wait_connectable(SocketAddr::from(([127, 0, 0, 1], port)), "nginx", &|| {
            std::fs::read_to_string(&error_log).unwrap_or_default()
        });
    }
    guard
}

/// A conversation from 127.0.0.2: the greeting, then each line and its final answer
/// (with the untagged lines before it).
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn connect(port: u16) -> (Client, String) {
        let from: IpAddr = "127.0.0.2".parse().expect("address");
        let s = common::connect_from(from, SocketAddr::from(([127, 0, 0, 1], port)));
        let mut c = Client {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
        };
        let greeting = c.line();
        (c, greeting)
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).expect("read");
        l
    }

    /// Sends `cmd` (IMAP, tag `t`) and reads up to the tagged answer.
    fn imap(&mut self, cmd: &str) -> (String, String) {
        self.w
            .write_all(format!("t {cmd}\r\n").as_bytes())
            .expect("send");
        let mut all = String::new();
        loop {
            let l = self.line();
            assert!(!l.is_empty(), "connection closed after {cmd}: {all}");
            if l.starts_with("t ") {
                return (all, l);
            }
            all.push_str(&l);
        }
    }

    fn pop3(&mut self, cmd: &str) -> String {
        self.w
            .write_all(format!("{cmd}\r\n").as_bytes())
            .expect("send");
        self.line()
    }
}

fn wait_log(server: &TestServer, needle: &str) -> String {
    server.wait_log(needle, TIMEOUT)
}

#[test]
#[cfg_attr(
    nestbox_missing_nginx_mail,
    ignore = "nginx's mail module is not installed (libnginx-mod-mail)"
)]
fn nginx_routes_each_user_to_their_server_and_the_servers_see_the_client() {
    if common::Kind::from_env() == common::Kind::Dovecot {
        eprintln!("SKIPPED on Dovecot: nestbox's [proxy] section");
        return;
    }
    if !tools_present() {
        return;
    }
    let options = || Options {
        proxy: Some(PROXY),
        ..Options::default()
    };
    let one = TestServer::start_with(options());
    let two = TestServer::start_with(options());
    marker(&one.maildir(), "on-server-one");
    marker(
        &two.dir.join("mail").join(USER2).join("Maildir"),
        "on-server-two",
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let routes = format!(
        "# user  imap  pop3\n{USER} 127.0.0.1:{} pop3=127.0.0.1:{}\n{USER2} 127.0.0.1:{} pop3=127.0.0.1:{}\n",
        one.imap_port, one.pop3_port, two.imap_port, two.pop3_port
    );
    let (_responder, auth_port) = start_responder(tmp.path(), &routes);
    let [imap, pop3] = common::free_ports::<2>();
    let _nginx = start_nginx(tmp.path(), auth_port, imap, pop3);

    // alice over IMAP: server one, her marker.
    let (mut c, greeting) = Client::connect(imap);
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let (_, ok) = c.imap(&format!("LOGIN {USER} {PASSWORD}"));
    assert!(ok.starts_with("t OK"), "{ok}");
    let (_, ok) = c.imap("SELECT INBOX");
    assert!(ok.starts_with("t OK"), "{ok}");
    let (data, ok) = c.imap("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(ok.starts_with("t OK"), "{ok}");
    assert!(data.contains("on-server-one"), "{data}");
    assert!(!data.contains("on-server-two"), "{data}");
    c.imap("LOGOUT");

    // bob over IMAP and POP3: server two, his marker.
    let (mut c, _) = Client::connect(imap);
    let (_, ok) = c.imap(&format!("LOGIN {USER2} {PASSWORD2}"));
    assert!(ok.starts_with("t OK"), "{ok}");
    c.imap("SELECT INBOX");
    let (data, _) = c.imap("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(data.contains("on-server-two"), "{data}");
    c.imap("LOGOUT");
    let (mut c, greeting) = Client::connect(pop3);
    assert!(greeting.starts_with("+OK"), "{greeting}");
    assert!(c.pop3(&format!("USER {USER2}")).starts_with("+OK"));
    let pass = c.pop3(&format!("PASS {PASSWORD2}"));
    assert!(pass.starts_with("+OK"), "{pass}");
    let mut retr = c.pop3("RETR 1");
    assert!(retr.starts_with("+OK"), "{retr}");
    loop {
        let l = c.line();
        if l == ".\r\n" || l.is_empty() {
            break;
        }
        retr.push_str(&l);
    }
    assert!(retr.contains("on-server-two"), "{retr}");
    c.pop3("QUIT");

    // Each server saw the client's address, not nginx's, and the peer it came through.
    let log = wait_log(
        &one,
        &format!("auth ok: user={USER} rip=127.0.0.2 mech=LOGIN"),
    );
    assert!(log.contains("proxy=127.0.0.1:"), "{log}");
    assert!(!log.contains(&format!("user={USER2}")), "{log}");
    wait_log(
        &two,
        &format!("auth ok: user={USER2} rip=127.0.0.2 mech=LOGIN"),
    );
    wait_log(
        &two,
        &format!("auth ok: user={USER2} rip=127.0.0.2 mech=USER"),
    );

    // A wrong password through the proxy fails, and the backend logs the client for fail2ban.
    let (mut c, _) = Client::connect(imap);
    c.w.write_all(format!("t LOGIN {USER} wrong\r\n").as_bytes())
        .expect("send");
    let answer = c.line();
    assert!(!answer.starts_with("t OK"), "{answer}");
    wait_log(
        &one,
        &format!("auth failed: user={USER} rip=127.0.0.2 mech=LOGIN"),
    );
}
