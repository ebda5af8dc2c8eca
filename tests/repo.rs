//! Checks on the source tree itself rather than on the server.
//!
//! Needs `git` and a git checkout (a fresh clone, as CI has); elsewhere (a crate tarball)
//! the test says it is skipped and passes.
use std::path::Path;
use std::process::Command;

#[test]
fn no_tracked_file_is_ignored() {
    // A tracked file that a `.gitignore` matches stays tracked, but a fresh copy of it
    // (a regenerated lock file, a new result) is silently left out of the next commit, and
    // the ignore list misleads whoever reads it about what the repository holds.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root.join(".git").exists() {
        eprintln!("SKIPPED: {} is not a git checkout", root.display());
        return;
    }
    let out = match Command::new("git")
        .args(["ls-files", "--cached", "--ignored", "--exclude-standard"])
        .current_dir(root)
        .output()
    {
        Ok(out) if out.status.success() => out,
        Ok(out) => panic!("git ls-files: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => {
            eprintln!("SKIPPED: cannot run git ({e})");
            return;
        }
    };
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.trim().is_empty(),
        "tracked files matched by a .gitignore (drop the pattern, or `git rm --cached` the file \
         if it is really generated):\n{listed}"
    );
}
