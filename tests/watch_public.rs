//! The change watcher through its public API only, the way the store uses
//! it: one `Watcher` for the process, a guard per open folder, a task that
//! turns each fire into a rescan.
use std::fs;
use std::path::Path;
use std::time::Duration;

use nestbox::watch::{Mode, WatchOptions, Watcher};
use tokio::time::{Instant, timeout};

fn maildir(dir: &Path) {
    for sub in ["new", "cur", "tmp"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
}

fn deliver(dir: &Path, name: &str) {
    let tmp = dir.join("tmp").join(name);
    fs::write(&tmp, b"Subject: x\r\n\r\nbody\r\n").unwrap();
    fs::rename(&tmp, dir.join("new").join(name)).unwrap();
}

/// Many users, one watcher: every folder's task sees exactly its own
/// deliveries, and the rescans after the last fire see every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_watcher_many_folders() {
    const FOLDERS: usize = 20;
    const PER_FOLDER: usize = 10;
    let opts = WatchOptions {
        poll_interval: Duration::from_millis(100),
        ..WatchOptions::default()
    };
    let watcher = Watcher::new(opts);
    let t = tempfile::tempdir().unwrap();
    let mut tasks = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..FOLDERS {
        let dir = t.path().join(format!("user{i}/Maildir"));
        maildir(&dir);
        let mut fw = watcher.watch_folder(&dir);
        let new = dir.join("new");
        // The store's task: on each fire, rescan (here: count new/).
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            while timeout(Duration::from_millis(1500), fw.changed())
                .await
                .is_ok()
            {
                last = fs::read_dir(&new).unwrap().count();
            }
            last
        }));
        dirs.push(dir);
    }
    assert_eq!(watcher.registrations(), FOLDERS);
    let started = Instant::now();
    for n in 0..PER_FOLDER {
        for dir in &dirs {
            deliver(dir, &format!("{n}.x.host"));
        }
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), PER_FOLDER);
    }
    // All tasks ended (their guards dropped): nothing stays watched.
    assert_eq!(watcher.registrations(), 0);
    assert_eq!(watcher.watched_dirs(), 0);
    assert!(started.elapsed() < Duration::from_secs(10));
    if std::env::var_os("NESTBOX_FORCE_POLL").is_none() {
        assert_eq!(watcher.mode(), Mode::Inotify);
    }
}
