//! The `nestbox` command (SPEC §2): `serve`, `demo`, `check-config`, `passwd`, `quota`,
//! `import-dovecot`; the
//! command line itself is described in `cli.rs`.
//!
//! This file parses the command line, sets up logging, loads the config and hands off to
//! `nestbox::server::run`; it holds no server logic. Exit codes: 0 success, 1 runtime
//! error, 2 usage or configuration error (clap's own usage errors also exit with 2).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use nestbox::auth::hash::{self, Scheme};
use nestbox::config::{self, Config};

mod cli;
use cli::{Cli, Command, IndexCommand, PasswdScheme, QuotaCommand, UsernameForm};

/// How a command failed, which decides the exit code.
enum Failure {
    /// Exit 2: the user must fix the invocation or the config.
    Usage(String),
    /// Exit 1: something went wrong while running.
    Runtime(String),
}

/// Threads of tokio's blocking pool (file I/O of sessions). Far fewer than
/// tokio's default of 512: the disk, not the thread count, bounds how much
/// I/O gets done, and a burst of a thousand logins must not leave hundreds
/// of idle threads (each with its stack and allocator caches) behind.
const BLOCKING_THREADS: usize = 64;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nestbox: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Help { command } = &cli.command {
        help(command.as_deref());
    }
    // An operator command's output is its answer: only warnings and errors are logged
    // beside it (the server's `info` lines, such as "loaded N user(s)", are noise there).
    let quiet = matches!(
        cli.command,
        Command::Quota(_)
            | Command::QuotaHelper
            | Command::Index(_)
            | Command::IndexHelper
            | Command::ClientConfig { .. }
            | Command::Who { .. }
            | Command::ImportDovecot { .. }
    );
    init_logging(if quiet { "warn" } else { "info" });
    let result = match cli.command {
        Command::Serve { config } => serve(&config).await,
        Command::Demo { dir } => demo(&dir).await,
        Command::CheckConfig { config } => check_config(&config),
        Command::Passwd { scheme } => passwd(scheme),
        Command::Quota(q) => quota(q),
        Command::Who { json, config } => who(&config, json),
        Command::ImportDovecot { path, out, force } => import_dovecot(&path, out.as_deref(), force),
        Command::Worker => nestbox::server::worker::run()
            .await
            .map_err(|e| Failure::Runtime(format!("worker: {e}"))),
        Command::QuotaHelper => nestbox::admin::quota::helper()
            .map_err(|e| Failure::Runtime(format!("quota helper: {e}"))),
        Command::Index(i) => index(i),
        Command::ClientConfig {
            config,
            email_domain,
            submission_host,
            submission_port,
            display_name,
            username,
            out,
        } => {
            use nestbox::admin::client_config::{Options, Username};
            let opts = Options {
                email_domain,
                submission_host,
                submission_ports: submission_port,
                display_name,
                username: username.map(|u| match u {
                    UsernameForm::Address => Username::Address,
                    UsernameForm::LocalPart => Username::LocalPart,
                }),
            };
            client_config(&config, &opts, &out)
        }
        Command::IndexHelper => nestbox::admin::index::helper()
            .map_err(|e| Failure::Runtime(format!("index helper: {e}"))),
        Command::Help { .. } => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("nestbox: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(m)) => {
            eprintln!("nestbox: {m}");
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr; the filter comes from `NESTBOX_LOG`, else `RUST_LOG`, else `default`
/// (`info`; `warn` for operator commands). When stderr is systemd's journal stream, each line
/// carries its syslog priority instead of a timestamp and level word (`nestbox::logging`
/// says why this way).
fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let spec = ["NESTBOX_LOG", "RUST_LOG"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()));
    let mut filter = spec
        .as_deref()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    if let Some(directive) = quiet_rustls(spec.as_deref()) {
        filter = filter.add_directive(directive);
    }
    let base = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if nestbox::logging::stderr_is_journal() {
        base.with_ansi(false)
            .event_format(nestbox::logging::PriorityPrefix(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_level(false),
            ))
            .init();
    } else {
        base.with_ansi(log_colours(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .init();
    }
}

/// Colour only for a person at a terminal: on a pipe or in a file (the journal, fail2ban,
/// logrotate'd files) escape codes are noise that breaks matching. `NO_COLOR` (no-color.org)
/// turns them off at a terminal too. tracing-subscriber alone would colour everything
/// unless `NO_COLOR` is set.
fn log_colours(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// rustls logs (through the `log` bridge) a WARN for things a client did: the commonest is
/// "Illegal SNI extension: ignoring IP address presented as hostname", which every client
/// that connects by IP address and sends it as SNI triggers, on every connection. Its other
/// server-side warnings are also about the peer (alerts it sent, messages out of order),
/// and a handshake that fails is logged by nestbox itself (`TLS handshake failed`). So
/// rustls is held to errors by default. Its logging stays compiled in (its `logging`
/// feature) so that a filter naming it, e.g. `NESTBOX_LOG=info,rustls=debug`, can still
/// show everything when a TLS problem needs looking into: the default is not added then.
fn quiet_rustls(spec: Option<&str>) -> Option<tracing_subscriber::filter::Directive> {
    if spec.is_some_and(|s| s.contains("rustls")) {
        return None;
    }
    "rustls=error".parse().ok()
}

/// `nestbox help [COMMAND]`: the same text and exit code as `nestbox [COMMAND] --help`
/// (clap's long help; an unknown command is a usage error). Never returns.
fn help(command: Option<&str>) -> ! {
    use clap::CommandFactory;
    let args = std::iter::once("nestbox")
        .chain(command)
        .chain(std::iter::once("--help"));
    match Cli::command().try_get_matches_from(args) {
        Err(e) => e.exit(),
        // `--help` always ends parsing with an error of kind DisplayHelp; this is not reached.
        Ok(_) => std::process::exit(0),
    }
}

fn load_config(path: &Path) -> Result<Config, Failure> {
    let cfg = config::load(path).map_err(|e| Failure::Usage(e.to_string()))?;
    for w in cfg.warnings() {
        tracing::warn!("{}: {w}", path.display());
    }
    Ok(cfg)
}

async fn serve(path: &Path) -> Result<(), Failure> {
    let cfg = load_config(path)?;
    nestbox::server::run(cfg, Some(path.to_path_buf()), || {})
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))
}

async fn demo(dir: &Path) -> Result<(), Failure> {
    let dir = dir.to_path_buf();
    // Hashing the demo password and generating a key are CPU work: keep them off the runtime.
    let prepared = tokio::task::spawn_blocking(move || nestbox::demo::prepare(&dir))
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    let path = prepared.map_err(|e| Failure::Runtime(e.to_string()))?;
    let cfg = load_config(&path)?;
    let settings = nestbox::demo::client_settings(&cfg);
    let source = path.clone();
    // Printed only once every listener is bound: a busy port fails before "ready" is said.
    let on_ready = move || {
        println!("{settings}");
        println!("Config: {}  (Ctrl-C stops the server)", path.display());
        let _ = std::io::stdout().flush();
    };
    nestbox::server::run(cfg, Some(source), on_ready)
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))
}

fn check_config(path: &Path) -> Result<(), Failure> {
    let cfg = config::load(path).map_err(|e| Failure::Usage(e.to_string()))?;
    let mut problems = Vec::new();
    // The file is well-formed; also check what it points at, as the server would at start.
    if let (Some(cert), Some(key)) = (&cfg.tls.cert, &cfg.tls.key) {
        if let Err(e) = nestbox::server::tls::load_server_config(cert, key) {
            problems.push(format!("tls: {e}"));
        }
    }
    if let Err(e) = nestbox::auth::Authenticator::from_config(&cfg) {
        problems.push(format!("auth: {e}"));
    }
    print!("{}", cfg.to_toml());
    for w in cfg.warnings() {
        eprintln!("{}: warning: {w}", path.display());
    }
    if problems.is_empty() {
        eprintln!("{}: OK", path.display());
        Ok(())
    } else {
        Err(Failure::Usage(
            problems
                .iter()
                .map(|p| format!("{}: {p}", path.display()))
                .collect::<Vec<_>>()
                .join("\nnestbox: "),
        ))
    }
}

fn import_dovecot(path: &Path, out: Option<&Path>, force: bool) -> Result<(), Failure> {
    use nestbox::admin::import_dovecot::{self, ImportError};
    let t = import_dovecot::import(path).map_err(|e| Failure::Usage(e.to_string()))?;
    for (title, list) in [("not translated", &t.untranslated), ("ignored", &t.ignored)] {
        for l in list.iter() {
            eprintln!("nestbox: import-dovecot: {title}: {l}");
        }
    }
    import_dovecot::write_output(&t.toml, out, force).map_err(|e| match e {
        ImportError::Exists(_) => Failure::Usage(e.to_string()),
        e => Failure::Runtime(e.to_string()),
    })?;
    if let Some(out) = out {
        eprintln!(
            "nestbox: import-dovecot: wrote {} ({} setting(s) not translated)",
            out.display(),
            t.untranslated.len()
        );
    }
    Ok(())
}

fn quota(command: QuotaCommand) -> Result<(), Failure> {
    use nestbox::admin::quota::{self, Format, Mode, Which};
    let (target, mode) = match command {
        QuotaCommand::Show { target, recalc } => (target, Mode::Show { count: recalc }),
        QuotaCommand::Recalc { target } => (target, Mode::Recalc),
    };
    let cfg = load_config(&target.config)?;
    let which = match target.user {
        Some(user) => Which::User(user),
        None => Which::All,
    };
    let format = if target.json {
        Format::Json
    } else {
        Format::Table
    };
    let outcome = quota::run(&cfg, &which, mode, format).map_err(|e| match e {
        quota::Error::Usage(m) => Failure::Usage(m),
    })?;
    print!("{}", outcome.output);
    let _ = std::io::stdout().flush();
    match outcome.errors.split_last() {
        None => Ok(()),
        Some((last, rest)) => {
            for e in rest {
                eprintln!("nestbox: {e}");
            }
            Err(Failure::Runtime(last.clone()))
        }
    }
}

fn client_config(
    path: &Path,
    opts: &nestbox::admin::client_config::Options,
    out: &Path,
) -> Result<(), Failure> {
    use nestbox::admin::client_config::{Settings, write};
    let cfg = load_config(path)?;
    let mut warnings = Vec::new();
    let settings = Settings::new(&cfg, opts, &mut warnings).map_err(Failure::Usage)?;
    for w in warnings {
        eprintln!("nestbox: warning: {w}");
    }
    let said = write(&settings, out).map_err(Failure::Runtime)?;
    print!("{said}");
    let _ = std::io::stdout().flush();
    Ok(())
}

fn who(config: &Path, json: bool) -> Result<(), Failure> {
    let cfg = load_config(config)?;
    let out = nestbox::admin::who::run(&cfg, json).map_err(Failure::Runtime)?;
    print!("{out}");
    let _ = std::io::stdout().flush();
    Ok(())
}

fn index(command: IndexCommand) -> Result<(), Failure> {
    let (target, rebuild) = match command {
        IndexCommand::Check { target } => (target, false),
        IndexCommand::Rebuild { target } => (target, true),
    };
    let cfg = load_config(&target.config)?;
    let outcome = nestbox::admin::index::run(&cfg, &target.user, target.folder.as_deref(), rebuild)
        .map_err(|e| Failure::Usage(e.0))?;
    print!("{}", outcome.output);
    let _ = std::io::stdout().flush();
    if outcome.failed {
        let what = if rebuild { "rebuilt" } else { "checked" };
        return Err(Failure::Runtime(format!(
            "{}: not every folder {what} is consistent",
            target.user
        )));
    }
    Ok(())
}

fn passwd(scheme: PasswdScheme) -> Result<(), Failure> {
    let password = if std::io::stdin().is_terminal() {
        let first =
            tty::read_password("Password: ").map_err(|e| Failure::Runtime(e.to_string()))?;
        let second =
            tty::read_password("Retype password: ").map_err(|e| Failure::Runtime(e.to_string()))?;
        if first != second {
            return Err(Failure::Usage("passwords do not match".into()));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::Runtime(format!("reading stdin: {e}")))?;
        strip_newline(line)
    };
    if password.is_empty() {
        return Err(Failure::Usage("empty password refused".into()));
    }
    let scheme = match scheme {
        PasswdScheme::Argon2id => Scheme::Argon2id,
        PasswdScheme::Sha512Crypt => Scheme::Sha512Crypt,
    };
    let field =
        hash::hash_password(&password, scheme).map_err(|e| Failure::Runtime(e.to_string()))?;
    println!("{field}");
    Ok(())
}

fn strip_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

/// Reading a password from the terminal with echo off (termios), restoring the terminal
/// on every exit path, including Ctrl-C.
mod tty {
    use std::io::{BufRead, Write};
    use std::sync::OnceLock;

    /// The terminal settings to restore from the SIGINT handler.
    static SAVED: OnceLock<libc::termios> = OnceLock::new();

    extern "C" fn restore_and_die(sig: libc::c_int) {
        // Only async-signal-safe calls here: tcsetattr, signal, raise.
        if let Some(t) = SAVED.get() {
            // SAFETY: `t` is a valid termios obtained from tcgetattr on fd 0.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
        // SAFETY: resetting to the default action and re-raising ends the process as the
        // signal normally would.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }

    /// Restores the saved settings when dropped.
    struct EchoOff(libc::termios);

    impl Drop for EchoOff {
        fn drop(&mut self) {
            // SAFETY: restoring settings previously read from the same fd.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.0) };
        }
    }

    pub fn read_password(prompt: &str) -> std::io::Result<String> {
        // SAFETY: termios is plain data; tcgetattr fills it or fails.
        let mut orig: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is a terminal (checked by the caller); `orig` is a valid out pointer.
        if unsafe { libc::tcgetattr(0, &mut orig) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let _ = SAVED.set(orig);
        let handler: extern "C" fn(libc::c_int) = restore_and_die;
        // SAFETY: installing a handler that only makes async-signal-safe calls.
        unsafe {
            libc::signal(libc::SIGINT, handler as libc::sighandler_t);
            libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
        }
        let mut quiet = orig;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        // SAFETY: `quiet` is a modified copy of valid settings.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let guard = EchoOff(orig);
        let mut line = String::new();
        let read = std::io::stdin().lock().read_line(&mut line);
        drop(guard);
        read?;
        Ok(super::strip_newline(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use cli::DEFAULT_CONFIG;

    /// `cli.rs` cannot name the library (build.rs compiles it alone): its copies of the
    /// library's names must be the same.
    #[test]
    fn cli_constants_match_the_library() {
        assert_eq!(cli::DEMO_DIR, nestbox::demo::DEFAULT_DIR);
        assert_eq!(cli::QUOTA_HELPER, nestbox::admin::quota::HELPER_COMMAND);
        assert_eq!(cli::INDEX_HELPER, nestbox::admin::index::HELPER_COMMAND);
    }

    /// The pages build.rs wrote from this same `Cli` (into `$OUT_DIR/man`): exactly one per
    /// visible command, none for hidden ones or stale, each naming its command and every long
    /// option `--help` shows; nestbox(1) also carries `cli::MORE_HELP`.
    #[test]
    fn man_pages_cover_the_cli() {
        use std::collections::BTreeSet;
        let dir = Path::new(env!("OUT_DIR")).join("man");
        fn check(dir: &Path, cmd: &clap::Command, want: &mut BTreeSet<String>) {
            let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
            let file = format!("{name}.1");
            let page = std::fs::read_to_string(dir.join(&file))
                .unwrap_or_else(|e| panic!("{file} in {}: {e}", dir.display()));
            assert!(page.contains(&format!(".TH {name} 1 ")), "{file}: title");
            let mut longs = 0;
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    longs += 1;
                    let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
                    assert!(page.contains(&roff), "--{long} missing from {file}");
                }
            }
            assert!(longs > 0, "{file}: not even --help");
            for sub in cmd.get_subcommands() {
                let sub_name = sub.get_display_name().unwrap_or(sub.get_name());
                let roff = format!("{}(1)", sub_name.replace('-', "\\-"));
                assert_eq!(
                    page.contains(&roff),
                    !sub.is_hide_set(),
                    "{file} and {sub_name}(1): listed if and only if visible"
                );
                if !sub.is_hide_set() {
                    check(dir, sub, want);
                }
            }
            want.insert(file);
        }
        let mut cmd = Cli::command().disable_help_subcommand(true);
        cmd.build();
        let mut want = BTreeSet::new();
        check(&dir, &cmd, &mut want);
        assert!(want.contains("nestbox-quota-show.1") && want.contains("nestbox-serve.1"));
        let found: BTreeSet<String> = std::fs::read_dir(&dir)
            .expect("man dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            found, want,
            "pages written by build.rs vs. visible commands"
        );
        let top = std::fs::read_to_string(dir.join("nestbox.1")).expect("nestbox.1");
        for (title, _) in cli::MORE_HELP {
            let heading = format!(".SH \"{}\"", title.to_uppercase());
            assert!(top.contains(&heading), "{heading} missing from nestbox.1");
        }
        assert!(!top.contains(".SH EXTRA"), "MORE_HELP as its own sections");
    }

    #[test]
    fn exit_codes() {
        // Usage errors exit 2, like clap's own.
        let e = Cli::try_parse_from(["nestbox", "bogus"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let c = Cli::try_parse_from(["nestbox", "passwd", "--scheme", "sha512-crypt"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Passwd {
                scheme: PasswdScheme::Sha512Crypt
            }
        ));
        // `quota` takes one user or --all, never both, never neither.
        for args in [
            &["quota", "show"][..],
            &["quota", "recalc", "ann", "--all"],
            &["quota"],
        ] {
            let e = Cli::try_parse_from(std::iter::once("nestbox").chain(args.iter().copied()))
                .unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
        let c = Cli::try_parse_from(["nestbox", "quota", "show", "--recalc", "ann"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Quota(QuotaCommand::Show { target, recalc: true })
                if target.user.as_deref() == Some("ann") && !target.all && !target.json
        ));
        let c = Cli::try_parse_from(["nestbox", "quota", "recalc", "--all", "--json", "-c", "/x"])
            .unwrap();
        assert!(matches!(
            c.command,
            Command::Quota(QuotaCommand::Recalc { target })
                if target.user.is_none() && target.all && target.json
                    && target.config == Path::new("/x")
        ));
        let c = Cli::try_parse_from(["nestbox", "serve"]).unwrap();
        assert!(
            matches!(c.command, Command::Serve { config } if config == Path::new(DEFAULT_CONFIG))
        );
    }

    #[test]
    fn colour_only_at_a_terminal_without_no_color() {
        let set = |v: &str| Some(std::ffi::OsString::from(v));
        assert!(log_colours(true, None));
        assert!(log_colours(true, set("")));
        assert!(!log_colours(true, set("1")));
        assert!(!log_colours(false, None));
        assert!(!log_colours(false, set("1")));
    }

    #[test]
    fn rustls_is_quiet_unless_the_filter_names_it() {
        let want = Some("rustls=error".to_string());
        for spec in [None, Some("info"), Some("debug,nestbox=trace")] {
            assert_eq!(quiet_rustls(spec).map(|d| d.to_string()), want, "{spec:?}");
        }
        assert!(quiet_rustls(Some("info,rustls=debug")).is_none());
    }

    #[test]
    fn newline_stripping() {
        for (input, want) in [
            ("pw\n", "pw"),
            ("pw\r\n", "pw"),
            ("pw", "pw"),
            ("p w \n", "p w "),
            ("\n", ""),
        ] {
            assert_eq!(strip_newline(input.to_string()), want);
        }
    }
}
