use super::*;
use std::fs::File;

fn host() -> &'static str {
    filename::host()
}

/// Writes a lock naming `owner` with an mtime `age` in the past.
fn plant(dir: &Path, owner: &str, age: Duration) {
    let p = dir.join(LOCK);
    fs::write(&p, owner).unwrap();
    let t = SystemTime::now() - age;
    filetime::set_file_mtime(&p, filetime::FileTime::from_system_time(t)).unwrap();
}

/// Names in `dir` other than the lock itself that this module made.
fn side_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(LOCK) && n != LOCK)
        .collect()
}

/// A running process that is not us: killed and reaped on drop.
struct Sleeper(std::process::Child);

impl Sleeper {
    fn start() -> Sleeper {
        Sleeper(
            std::process::Command::new("sleep")
                .arg("600")
                .spawn()
                .unwrap(),
        )
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn lock_appears_with_owner_and_release_removes_it() {
    let d = tempfile::tempdir().unwrap();
    let l = lock(d.path(), Duration::from_secs(5)).unwrap();
    let content = fs::read_to_string(d.path().join(LOCK)).unwrap();
    assert_eq!(content, format!("{}:{}", std::process::id(), host()));
    assert!(
        side_files(d.path()).is_empty(),
        "{:?}",
        side_files(d.path())
    );
    assert_eq!(
        probe(d.path(), Duration::ZERO).unwrap(),
        Probe::Ours,
        "our own live lock is never judged stale"
    );
    drop(l);
    assert!(!d.path().join(LOCK).exists());
    // Taken again at once: nothing of the first hold is left in HELD.
    let t = Instant::now();
    drop(lock(d.path(), Duration::from_secs(5)).unwrap());
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_second_taker_in_this_process_waits_for_the_first() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().to_path_buf();
    let held = lock(&path, Duration::from_millis(50)).unwrap();
    let p2 = path.clone();
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        let l = lock(&p2, Duration::from_millis(50)).unwrap();
        drop(l);
        t.elapsed()
    });
    std::thread::sleep(Duration::from_millis(300));
    drop(held);
    let waited = waiter.join().unwrap();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
}

#[test]
fn a_live_foreign_lock_is_waited_for_not_broken() {
    let d = tempfile::tempdir().unwrap();
    // PID 1 started before this lock was written, and the lock is fresh.
    plant(d.path(), &format!("1:{}", host()), Duration::ZERO);
    let path = d.path().to_path_buf();
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        drop(lock(&path, Duration::from_millis(10)).unwrap());
        t.elapsed()
    });
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        fs::read_to_string(d.path().join(LOCK)).unwrap(),
        format!("1:{}", host())
    );
    fs::remove_file(d.path().join(LOCK)).unwrap();
    assert!(waiter.join().unwrap() >= Duration::from_millis(350));
}

#[test]
fn without_waiting_a_live_foreign_lock_is_busy_at_once() {
    let d = tempfile::tempdir().unwrap();
    plant(d.path(), &format!("1:{}", host()), Duration::ZERO);
    let t = Instant::now();
    let e = without_waiting(|| lock(d.path(), Duration::from_millis(10))).unwrap_err();
    assert!(is_busy(&e), "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    // Not broken, and nothing of ours left beside it.
    assert_eq!(
        fs::read_to_string(d.path().join(LOCK)).unwrap(),
        format!("1:{}", host())
    );
    assert!(
        side_files(d.path()).is_empty(),
        "{:?}",
        side_files(d.path())
    );
    // Outside the scope the thread waits again; other errors are not busy.
    assert!(!NO_WAIT.get());
    assert!(!is_busy(&io::Error::from(io::ErrorKind::WouldBlock)));
    // A stale lock is still broken, and a free one taken, inside it.
    plant(d.path(), "", Duration::from_secs(60));
    drop(without_waiting(|| lock(d.path(), Duration::from_secs(5))).unwrap());
    assert!(!d.path().join(LOCK).exists());
    // Another thread of this process holding it is waited for (milliseconds).
    let held = lock(d.path(), Duration::from_secs(5)).unwrap();
    let path = d.path().to_path_buf();
    let waiter = std::thread::spawn(move || {
        without_waiting(|| lock(&path, Duration::from_secs(5)).map(drop))
    });
    std::thread::sleep(Duration::from_millis(100));
    drop(held);
    waiter.join().unwrap().unwrap();
}

#[test]
fn breaks_lock_of_dead_pid_at_once() {
    let d = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    plant(
        d.path(),
        &format!("{pid}:{host}", host = host()),
        Duration::ZERO,
    );
    let t = Instant::now();
    let _l = lock(d.path(), Duration::from_secs(30)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn breaks_lock_naming_this_process_that_it_does_not_hold() {
    // What a restarted server (same PID, e.g. PID 1 in a container) finds.
    let d = tempfile::tempdir().unwrap();
    plant(
        d.path(),
        &format!("{}:{}", std::process::id(), host()),
        Duration::ZERO,
    );
    let t = Instant::now();
    let _l = lock(d.path(), Duration::from_secs(30)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn breaks_lock_of_a_reused_pid_at_once() {
    let d = tempfile::tempdir().unwrap();
    let s = Sleeper::start();
    // The sleeper started just now; a lock made a minute ago is not its.
    plant(
        d.path(),
        &format!("{}:{}", s.pid(), host()),
        Duration::from_secs(60),
    );
    let t = Instant::now();
    let _l = lock(d.path(), Duration::from_secs(30)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
    // The same sleeper, with a lock made after it started, is an owner.
    drop(_l);
    std::thread::sleep(Duration::from_millis(50));
    plant(d.path(), &format!("{}:{}", s.pid(), host()), Duration::ZERO);
    assert_eq!(probe(d.path(), Duration::ZERO).unwrap(), Probe::Held);
}

#[test]
fn breaks_an_untouched_lock_of_a_live_owner_after_the_bound() {
    let d = tempfile::tempdir().unwrap();
    let owner = format!("1:{}", host());
    plant(d.path(), &owner, HOLD_BOUND - Duration::from_secs(5));
    assert_eq!(probe(d.path(), Duration::ZERO).unwrap(), Probe::Held);
    plant(d.path(), &owner, HOLD_BOUND + Duration::from_secs(5));
    let t = Instant::now();
    let _l = lock(d.path(), Duration::from_secs(30)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn breaks_ownerless_lock_after_timeout_only() {
    let d = tempfile::tempdir().unwrap();
    for owner in ["", "garbage", "123:another.host"] {
        plant(d.path(), owner, Duration::ZERO);
        let t = Instant::now();
        let _l = lock(d.path(), Duration::from_millis(300)).unwrap();
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(250),
            "{owner:?}: {waited:?}"
        );
        assert!(waited < Duration::from_secs(2), "{owner:?}: {waited:?}");
    }
}

#[test]
fn breaking_never_removes_a_lock_taken_meanwhile() {
    let d = tempfile::tempdir().unwrap();
    // We judged an old lock stale; before we act, it was replaced.
    plant(d.path(), "", Duration::from_secs(60));
    let old = Ident::of(&fs::symlink_metadata(d.path().join(LOCK)).unwrap());
    fs::remove_file(d.path().join(LOCK)).unwrap();
    let fresh = lock(d.path(), Duration::from_secs(5)).unwrap();
    let fresh_id = Ident::of(&fs::symlink_metadata(d.path().join(LOCK)).unwrap());
    assert_ne!(old, fresh_id);
    break_lock(d.path(), old, b"", ("test", true)).unwrap();
    let now = Ident::of(&fs::symlink_metadata(d.path().join(LOCK)).unwrap());
    assert_eq!(now, fresh_id, "the fresh lock is back in place");
    assert!(
        side_files(d.path()).is_empty(),
        "{:?}",
        side_files(d.path())
    );
    drop(fresh);
    assert!(!d.path().join(LOCK).exists());
}

#[test]
fn release_leaves_a_successors_lock_alone() {
    let d = tempfile::tempdir().unwrap();
    let l = lock(d.path(), Duration::from_secs(5)).unwrap();
    // Someone wrongly broke ours and took theirs (often the same inode).
    fs::remove_file(d.path().join(LOCK)).unwrap();
    fs::write(d.path().join(LOCK), "1:elsewhere").unwrap();
    drop(l);
    assert_eq!(
        fs::read_to_string(d.path().join(LOCK)).unwrap(),
        "1:elsewhere"
    );
}

#[test]
fn temp_files_of_dead_writers_are_cleaned_up_when_a_lock_is_broken() {
    let d = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let live = Sleeper::start();
    let h = host();
    let dead_temp = format!("{LOCK}.{dead}.0.{h}{TEMP_SUFFIX}");
    let live_temp = format!("{LOCK}.{}.0.{h}{TEMP_SUFFIX}", live.pid());
    let old_aside = format!("{LOCK}.{}.7.{h}{ASIDE_SUFFIX}", live.pid());
    for n in [&dead_temp, &live_temp, &old_aside] {
        fs::write(d.path().join(n), format!("{dead}:{h}")).unwrap();
    }
    let long_ago = SystemTime::now() - HOLD_BOUND - Duration::from_secs(10);
    filetime::set_file_mtime(
        d.path().join(&old_aside),
        filetime::FileTime::from_system_time(long_ago),
    )
    .unwrap();
    // A writer killed after linking: the lock and its temp file remain.
    fs::hard_link(d.path().join(&dead_temp), d.path().join(LOCK)).unwrap();
    let _l = lock(d.path(), Duration::from_secs(30)).unwrap();
    assert_eq!(side_files(d.path()), vec![live_temp]);
}

#[cfg(not(nestbox_not_root))]
#[test]
fn a_full_disk_leaves_no_lock_behind() {
    let d = tempfile::tempdir().unwrap();
    let mnt = d.path().join("fs");
    fs::create_dir(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,nr_inodes=64", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success(), "mount tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    // Fill every block: new files can be made (inodes remain) but get no
    // byte of content.
    let mut f = File::create(mnt.join("fill")).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    drop(f);
    let e = lock(&mnt, Duration::from_secs(1)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
    assert!(!mnt.join(LOCK).exists(), "no lock is left behind");
    assert!(side_files(&mnt).is_empty(), "{:?}", side_files(&mnt));
    // Space again: the lock is taken at once.
    fs::remove_file(mnt.join("fill")).unwrap();
    let t = Instant::now();
    let l = lock(&mnt, Duration::from_secs(1)).unwrap();
    assert!(t.elapsed() < Duration::from_millis(500));
    drop(l);
}

#[test]
fn process_age_is_read_from_proc() {
    let ours = process_age(std::process::id() as i32).unwrap();
    let s = Sleeper::start();
    std::thread::sleep(Duration::from_millis(200));
    let sleeper = process_age(s.pid() as i32).unwrap();
    assert!(sleeper < Duration::from_secs(5), "{sleeper:?}");
    assert!(
        ours + Duration::from_millis(50) >= sleeper,
        "{ours:?} {sleeper:?}"
    );
    assert!(process_age(i32::MAX).is_none());
}

#[test]
fn wait_free_waits_without_taking_the_lock() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let d = tempfile::tempdir().unwrap();
    rt.block_on(async {
        // Free: at once, and nothing is taken.
        wait_free(d.path(), Duration::from_secs(5)).await.unwrap();
        assert!(!d.path().join(LOCK).exists());
        // Ours: at once.
        let l = lock(d.path(), Duration::from_secs(5)).unwrap();
        wait_free(d.path(), Duration::from_secs(5)).await.unwrap();
        drop(l);
        // A live owner's: until it goes. On a current-thread runtime, so
        // the remover below runs only while wait_free sleeps on the timer.
        plant(d.path(), &format!("1:{}", host()), Duration::ZERO);
        let lock_path = d.path().join(LOCK);
        let remover = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            fs::remove_file(lock_path).unwrap();
        });
        let t = Instant::now();
        wait_free(d.path(), Duration::from_secs(5)).await.unwrap();
        assert!(t.elapsed() >= Duration::from_millis(250));
        remover.await.unwrap();
        // A stale one: broken at once.
        plant(d.path(), "", Duration::from_secs(60));
        wait_free(d.path(), Duration::from_secs(5)).await.unwrap();
        assert!(!d.path().join(LOCK).exists());
    });
}

#[test]
fn a_lock_of_an_unreaped_process_is_broken_at_once() {
    // A child that has exited and is not waited for stays a zombie: signal 0
    // still finds it, but it holds nothing (a worker killed with its front,
    // whose new parent never reaps it).
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !zombie(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "child never became a zombie"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!alive(pid));
    let dir = tempfile::tempdir().unwrap();
    plant(dir.path(), &format!("{pid}:{}", host()), Duration::ZERO);
    let t = std::time::Instant::now();
    let held = lock(dir.path(), Duration::from_secs(10)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    drop(held);
    child.wait().unwrap();
}

#[test]
fn log_lines_name_the_folder_not_the_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::open(dir.path()).unwrap();
    let via_fd = Path::new("/proc/self/fd")
        .join(std::os::fd::AsRawFd::as_raw_fd(&f).to_string())
        .join(LOCK);
    let real = std::fs::canonicalize(dir.path()).unwrap().join(LOCK);
    assert_eq!(shown(&via_fd), real);
    assert_eq!(shown(&real), real);
}
