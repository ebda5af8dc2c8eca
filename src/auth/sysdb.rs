//! The system's user and group database (NSS: /etc/passwd, LDAP, systemd-userdb, ...):
//! a user's uid, gid and home, a group's gid, a user's supplementary groups, and (for
//! operator commands such as `nestbox quota --all`) every user it lists.
//!
//! Every call may block (NSS modules talk to the network), so callers on the runtime use
//! the blocking pool. libc's reentrant `_r` calls and `getgrouplist`; no crate wraps NSS
//! without pulling in more than these three functions (the `users` crate is unsound, SPEC
//! §7), so the unsafe code is here, small and commented.
use super::AuthError;

/// The fields of a system passwd entry nestbox needs.
#[cfg_attr(not(feature = "nonstick"), allow(dead_code))]
pub(crate) struct PasswdEntry {
    pub uid: u32,
    pub gid: u32,
    pub home: std::path::PathBuf,
}

/// `getpwnam_r` for `name`; `Ok(None)` when there is no such user. Blocking (NSS may ask
/// LDAP or systemd-userdb).
pub(crate) fn passwd_entry(name: &str) -> Result<Option<PasswdEntry>, AuthError> {
    use std::os::unix::ffi::OsStrExt;
    let cname = std::ffi::CString::new(name).map_err(|_| AuthError::Failed)?;
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: passwd is plain data; getpwnam_r fills it, pointing into `buf`.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the stated lengths for the duration of the call.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(AuthError::Unavailable(format!(
                "getpwnam_r: {}",
                std::io::Error::from_raw_os_error(rc)
            )));
        }
        if result.is_null() {
            return Ok(None);
        }
        let home = if pwd.pw_dir.is_null() {
            std::path::PathBuf::new()
        } else {
            // SAFETY: on success pw_dir points to a NUL-terminated string inside `buf`.
            let bytes = unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) }.to_bytes();
            std::path::PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
        };
        return Ok(Some(PasswdEntry {
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home,
        }));
    }
}

/// Every user the database lists (`setpwent`/`getpwent`/`endpwent`), name and entry. Blocking,
/// and possibly long with a network directory.
///
/// `getpwent` keeps its place in the C library's static state, so this is not for concurrent
/// use: only operator commands call it, once, from one thread (the server never enumerates
/// users). glibc's `getpwent_r` would not help there: it shares the same iteration. Each entry
/// is copied out before the next call overwrites it.
pub(crate) fn all_passwd_entries() -> Vec<(String, PasswdEntry)> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    // SAFETY: setpwent/getpwent/endpwent have no arguments; getpwent returns NULL at the end
    // (or on an error, which ends the list the same way) or a pointer to static storage that
    // stays valid until the next call, and every string is copied out before that.
    unsafe {
        libc::setpwent();
        loop {
            let pw = libc::getpwent();
            if pw.is_null() {
                break;
            }
            let pw = &*pw;
            if pw.pw_name.is_null() {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(pw.pw_name)
                .to_string_lossy()
                .into_owned();
            let home = if pw.pw_dir.is_null() {
                std::path::PathBuf::new()
            } else {
                let bytes = std::ffi::CStr::from_ptr(pw.pw_dir).to_bytes();
                std::path::PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
            };
            out.push((
                name,
                PasswdEntry {
                    uid: pw.pw_uid,
                    gid: pw.pw_gid,
                    home,
                },
            ));
        }
        libc::endpwent();
    }
    out
}

/// `getgrnam_r`: the gid of group `name`, `Ok(None)` when there is no such group.
pub(crate) fn group_gid(name: &str) -> Result<Option<u32>, AuthError> {
    let cname = std::ffi::CString::new(name).map_err(|_| AuthError::Failed)?;
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: group is plain data; getgrnam_r fills it, pointing into `buf`.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the stated lengths for the duration of the call.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 22 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(AuthError::Unavailable(format!(
                "getgrnam_r: {}",
                std::io::Error::from_raw_os_error(rc)
            )));
        }
        return Ok((!result.is_null()).then_some(grp.gr_gid));
    }
}

/// `getgrouplist`: every group `user` belongs to, `gid` (their primary group) first.
pub(crate) fn group_list(user: &str, gid: u32) -> Result<Vec<u32>, AuthError> {
    let cname = std::ffi::CString::new(user).map_err(|_| AuthError::Failed)?;
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut n = groups.len() as libc::c_int;
        // SAFETY: `groups` has room for `n` entries; getgrouplist writes at most that many
        // and sets `n` to the number it has (or needs, when it returns -1).
        let rc = unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc == -1 {
            if n as usize > groups.len() && n < 65_536 {
                groups.resize(n as usize, 0);
                continue;
            }
            if groups.len() < 65_536 {
                let len = groups.len() * 4;
                groups.resize(len, 0);
                continue;
            }
            return Err(AuthError::Unavailable(format!(
                "getgrouplist({user}): too many groups"
            )));
        }
        groups.truncate(n.max(0) as usize);
        let mut out = vec![gid];
        out.extend(groups.into_iter().filter(|&g| g != gid));
        return Ok(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_its_group() {
        let root = passwd_entry("root").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(group_gid("root").unwrap(), Some(0));
        assert_eq!(group_list("root", 0).unwrap()[0], 0);
        assert!(passwd_entry("no-such-user-nestbox").unwrap().is_none());
        assert!(group_gid("no-such-group-nestbox").unwrap().is_none());
        let all = all_passwd_entries();
        assert!(
            all.iter().any(|(n, e)| n == "root" && e.uid == 0),
            "root listed"
        );
    }
}
