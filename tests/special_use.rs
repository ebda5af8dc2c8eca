//! Special-use attributes by configuration (`[mail.special_use]`, issue 19): a folder named in
//! it gets the attribute and the folder the name alone would have given it no longer does;
//! attributes stored at CREATE stay the folder's own. (A bad key is refused when the
//! configuration loads: `config`'s unit tests.)
mod common;

use common::{ImapClient, Options, TestServer};

#[test]
fn the_configuration_moves_an_attribute_to_another_folder() {
    let server = TestServer::start_with(Options {
        seed_maildir: Some(common::fixtures_dir().join("maildirs/basic")),
        mail_extra: Some(
            "[mail.special_use]\nSent = \"Sent Items\"\nJunk = \"Work/Projects\"\n".into(),
        ),
        ..Options::default()
    });
    let mut c = ImapClient::login(&server, common::USER, common::PASSWORD);
    c.ok("CREATE \"Sent Items\"");
    let lines = c.ok("LIST \"\" *");
    let line = |name: &str| {
        lines
            .iter()
            .find(|l| l.ends_with(&format!("\"/\" {name}")))
            .cloned()
            .unwrap_or_else(|| panic!("{name}: {lines:?}"))
    };
    assert!(line("\"Sent Items\"").contains("\\Sent"), "{lines:?}");
    assert!(!line("Sent").contains("\\Sent"), "{lines:?}");
    assert!(line("Work/Projects").contains("\\Junk"), "{lines:?}");
    // Defaults not configured stay.
    assert!(line("Drafts").contains("\\Drafts"), "{lines:?}");
    // Stored at CREATE: the folder's own, whatever its name.
    c.ok("CREATE Sent2 (USE (\\Trash))");
    let lines = c.ok("LIST \"\" Sent2");
    assert!(
        lines
            .iter()
            .any(|l| l == "* LIST (\\HasNoChildren \\Trash) \"/\" Sent2"),
        "{lines:?}"
    );
    c.logout();
}
