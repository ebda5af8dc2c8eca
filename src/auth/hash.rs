//! Password hash schemes of Dovecot's passwd-file (SPEC §4): parsing the `{SCHEME}hash`
//! field, verifying a password against it, and making new hashes for `nestbox passwd`.
//!
//! Verification is CPU-heavy on purpose (Argon2, SHA-crypt rounds, bcrypt): callers must run
//! [`StoredHash::verify`] off the async runtime (`spawn_blocking`). This module never logs
//! or stores a password, and never compares secrets with a short-circuiting `==`.
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// A supported hash scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `{ARGON2ID}$argon2id$v=19$m=..,t=..,p=..$salt$hash` (PHC string).
    Argon2id,
    /// `{SHA512-CRYPT}$6$[rounds=N$]salt$hash`.
    Sha512Crypt,
    /// `{SHA256-CRYPT}$5$[rounds=N$]salt$hash`.
    Sha256Crypt,
    /// `{BLF-CRYPT}$2y$cost$...` (also `$2a$`, `$2b$`).
    BlfCrypt,
    /// `{PLAIN}password`: stored in the clear; works, but is warned about.
    Plain,
}

impl Scheme {
    /// The Dovecot name written between braces.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Argon2id => "ARGON2ID",
            Scheme::Sha512Crypt => "SHA512-CRYPT",
            Scheme::Sha256Crypt => "SHA256-CRYPT",
            Scheme::BlfCrypt => "BLF-CRYPT",
            Scheme::Plain => "PLAIN",
        }
    }

    /// Recognises a crypt(3)-style hash by its `$id$` prefix.
    fn from_crypt_prefix(h: &str) -> Option<Scheme> {
        if h.starts_with("$argon2id$") {
            Some(Scheme::Argon2id)
        } else if h.starts_with("$6$") {
            Some(Scheme::Sha512Crypt)
        } else if h.starts_with("$5$") {
            Some(Scheme::Sha256Crypt)
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| h.starts_with(p)) {
            Some(Scheme::BlfCrypt)
        } else {
            None
        }
    }
}

/// A password field from the passwd-file, split into scheme and hash.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash {
    pub scheme: Scheme,
    /// The part after `{SCHEME}` (for crypt schemes, the full `$id$...` string).
    value: String,
}

impl std::fmt::Debug for StoredHash {
    // Never print the hash (or, for PLAIN, the password) into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredHash({{{}}}...)", self.scheme.name())
    }
}

impl StoredHash {
    /// Parses `{SCHEME}value`, `{CRYPT}$6$...`, or a bare `$6$...`/`$5$...`/`$2y$...`/
    /// `$argon2id$...`. The error says what is wrong without echoing the secret.
    pub fn parse(field: &str) -> Result<StoredHash, String> {
        let (scheme, value) = if let Some(rest) = field.strip_prefix('{') {
            let Some((name, value)) = rest.split_once('}') else {
                return Err("unterminated {SCHEME} prefix".into());
            };
            let scheme = match name.to_ascii_uppercase().as_str() {
                "ARGON2ID" => Scheme::Argon2id,
                "SHA512-CRYPT" => Scheme::Sha512Crypt,
                "SHA256-CRYPT" => Scheme::Sha256Crypt,
                "BLF-CRYPT" => Scheme::BlfCrypt,
                "PLAIN" | "CLEAR" | "CLEARTEXT" => Scheme::Plain,
                "CRYPT" => Scheme::from_crypt_prefix(value).ok_or(
                    "{CRYPT} hash of an unsupported kind (only $6$, $5$, $2y$, $argon2id$)",
                )?,
                other => return Err(format!("unsupported password scheme {{{other}}}")),
            };
            (scheme, value)
        } else {
            let scheme = Scheme::from_crypt_prefix(field).ok_or(
                "password field has no {SCHEME} prefix and is not a $6$, $5$, $2y$ or $argon2id$ hash",
            )?;
            (scheme, field)
        };
        if scheme != Scheme::Plain && Scheme::from_crypt_prefix(value) != Some(scheme) {
            return Err(format!(
                "{{{}}} value is not a {} hash",
                scheme.name(),
                scheme.name()
            ));
        }
        if scheme == Scheme::Argon2id {
            // Catch a malformed PHC string at load time rather than at every login.
            let h = PasswordHash::new(value).map_err(|e| format!("bad ARGON2ID hash: {e}"))?;
            if h.salt.is_none() || h.hash.is_none() {
                return Err("bad ARGON2ID hash: no salt or hash part".into());
            }
        }
        Ok(StoredHash {
            scheme,
            value: value.to_string(),
        })
    }

    /// True when `password` matches. Slow by design; call from a blocking thread.
    pub fn verify(&self, password: &str) -> bool {
        match self.scheme {
            Scheme::Argon2id => match PasswordHash::new(&self.value) {
                Ok(h) => argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok(),
                Err(_) => false,
            },
            Scheme::Sha512Crypt => sha_crypt::sha512_check(password, &self.value).is_ok(),
            Scheme::Sha256Crypt => sha_crypt::sha256_check(password, &self.value).is_ok(),
            // Truncating verify on purpose: hashes made by libc/Dovecot cover only the first
            // 72 bytes, and the non-truncating variant would reject their long passwords.
            Scheme::BlfCrypt => bcrypt::verify(password, &self.value).unwrap_or(false),
            Scheme::Plain => ct_eq(password.as_bytes(), self.value.as_bytes()),
        }
    }
}

impl StoredHash {
    /// APOP (RFC 1939 §7): whether `digest_hex` is the MD5 digest of `timestamp` followed
    /// by the shared secret, in hexadecimal (either case). Only a `{PLAIN}` secret can
    /// answer; for any other scheme a digest is still made (of the stored hash, which no
    /// client knows) so the time taken does not say which kind of secret a user has.
    pub fn apop_matches(&self, timestamp: &str, digest_hex: &str) -> bool {
        let made = apop_digest(timestamp, &self.value);
        ct_eq(made.as_bytes(), digest_hex.to_ascii_lowercase().as_bytes())
            && self.scheme == Scheme::Plain
    }
}

/// `MD5(timestamp secret)` in lower-case hexadecimal, as RFC 1939 §7 has the client send it.
pub fn apop_digest(timestamp: &str, secret: &str) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    h.update(timestamp.as_bytes());
    h.update(secret.as_bytes());
    h.finalize()
        .iter()
        .fold(String::with_capacity(32), |mut out, b| {
            use std::fmt::Write;
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Compares two byte strings in time that depends only on their lengths, not on where they
/// differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    // Walk the longer input completely so a short guess does not finish early.
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// Error from making a new hash.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash password: {0}")]
pub struct HashError(String);

/// Makes a passwd-file password field, e.g. `{ARGON2ID}$argon2id$v=19$...`.
/// Only the schemes `nestbox passwd` offers: Argon2id (default) and SHA512-CRYPT.
pub fn hash_password(password: &str, scheme: Scheme) -> Result<String, HashError> {
    let value = match scheme {
        Scheme::Argon2id => {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            argon2::Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map_err(|e| HashError(e.to_string()))?
                .to_string()
        }
        Scheme::Sha512Crypt => {
            let params = sha_crypt::Sha512Params::new(sha_crypt::ROUNDS_DEFAULT)
                .map_err(|e| HashError(format!("{e:?}")))?;
            sha_crypt::sha512_simple(password, &params).map_err(|e| HashError(format!("{e:?}")))?
        }
        other => {
            return Err(HashError(format!(
                "making {{{}}} hashes is not supported",
                other.name()
            )));
        }
    };
    Ok(format!("{{{}}}{value}", scheme.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1939 §7's example, and what must not pass.
    #[test]
    fn apop_rfc1939_example() {
        let ts = "<1896.697170952@dbc.mtview.ca.us>";
        assert_eq!(
            apop_digest(ts, "tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb"
        );
        let plain = StoredHash::parse("{PLAIN}tanstaaf").unwrap();
        assert!(plain.apop_matches(ts, "c4c9334bac560ecc979e58001b3e22fb"));
        assert!(plain.apop_matches(ts, "C4C9334BAC560ECC979E58001B3E22FB"));
        for bad in [
            "c4c9334bac560ecc979e58001b3e22fc",
            "c4c9334bac560ecc979e58001b3e22f",
            "",
            "c4c9334bac560ecc979e58001b3e22fbb",
        ] {
            assert!(!plain.apop_matches(ts, bad), "{bad:?}");
        }
        // Another timestamp (a replay against a new greeting) fails.
        assert!(!plain.apop_matches(
            "<1897.697170952@dbc.mtview.ca.us>",
            "c4c9334bac560ecc979e58001b3e22fb"
        ));
        // A hashed secret never matches, not even the digest of its own stored form.
        let hashed = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";
        let h = StoredHash::parse(&format!("{{SHA256-CRYPT}}{hashed}")).unwrap();
        assert!(!h.apop_matches(ts, &apop_digest(ts, hashed)));
        assert!(!h.apop_matches(ts, &apop_digest(ts, "secret")));
    }

    /// (stored field, password that matches). Vectors from `doveadm pw` (Dovecot 2.3) and
    /// Python's `crypt` (glibc), plus the classic OpenBSD bcrypt vector.
    const VECTORS: &[(&str, &str)] = &[
        (
            "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$dp1xU77yZY4tVlROBCX6Vg$PxF/XXGBDAwWPfIwn7LfWEeAojeWrv9KE5j7cnnR6po",
            "secret",
        ),
        (
            "{SHA512-CRYPT}$6$.eBjWqg09wjDaiUQ$Dlgt/WZ7K/HuhbvHeB6x9lPuPsMZknKb8ocB6bXsuUPJI56f3U9TDUmSx9FXsKIWU1nrRaRE7z.R1smt9yCqt.",
            "secret",
        ),
        (
            "{SHA512-CRYPT}$6$rounds=5000$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
            "secret",
        ),
        (
            "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
            "secret",
        ),
        (
            "{CRYPT}$6$rounds=10000$Xy7.Qz/9$jszrPL5nmq9IJuGxfjDmkCYFHp/ypW4Ei130SAcWDhc5PG59WkLCSPDcmfLbfBp9VENeWzeQz5LwDYP904jjW0",
            "pässwörd",
        ),
        (
            "{SHA256-CRYPT}$5$eJ8PUG6dXEyqzK3N$H3OqTdbZ9p5ABQT6EPjQkmIzsI0bIxxNH7f/CjiELSC",
            "secret",
        ),
        (
            "$5$rounds=12000$abcdefgh$OGZiozn781KhTZV55rHbd6Yczjgz3dvCvJ1Bko/h3F.",
            "secret",
        ),
        (
            "{BLF-CRYPT}$2y$05$pbAgAMuXKMJSt9BnzrA1G.7XStBqKtgb.9r0tImweHFuf24JUYHwe",
            "secret",
        ),
        (
            "{blf-crypt}$2y$05$KlrPAvvPoau6Biph3RUIrODBOtLN4duXX5lZ0YPhkHzpLrwkly8v6",
            "pässwörd",
        ),
        (
            "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "U*U",
        ),
        (
            "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "U*U",
        ),
        ("{PLAIN}secret", "secret"),
        ("{PLAIN}", ""),
        ("{CLEARTEXT}a:b", "a:b"),
    ];

    #[test]
    fn known_vectors() {
        for (field, pw) in VECTORS {
            let h = StoredHash::parse(field).unwrap_or_else(|e| panic!("{field}: {e}"));
            assert!(h.verify(pw), "{field} should accept {pw:?}");
            // Few wrong guesses: Argon2 with Dovecot's parameters is slow in debug builds.
            for wrong in ["Secret", "secret "] {
                if wrong != *pw {
                    assert!(!h.verify(wrong), "{field} accepted {wrong:?}");
                }
            }
        }
    }

    #[test]
    fn scheme_detection() {
        let table: &[(&str, Option<Scheme>)] = &[
            (
                "{ARGON2ID}$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YWJjZGVmZ2hpamtsbW5vcA",
                Some(Scheme::Argon2id),
            ),
            (
                "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YWJjZGVmZ2hpamtsbW5vcA",
                Some(Scheme::Argon2id),
            ),
            ("{ARGON2ID}$argon2id$garbage", None),
            ("{ARGON2ID}$6$abc$def", None),
            ("{SHA512-CRYPT}$5$abc$def", None),
            ("{BLF-CRYPT}$2y$05$x", Some(Scheme::BlfCrypt)),
            ("{CRYPT}abDES", None),
            ("{SSHA512}abc", None),
            ("{MD5-CRYPT}$1$abc$def", None),
            ("{PLAIN", None),
            ("hunter2", None),
            ("", None),
            ("{plain}x", Some(Scheme::Plain)),
        ];
        for (field, want) in table {
            assert_eq!(
                StoredHash::parse(field).ok().map(|h| h.scheme),
                *want,
                "{field}"
            );
        }
        // The Debug form must not reveal the secret.
        let h = StoredHash::parse("{PLAIN}topsecret").unwrap();
        assert!(!format!("{h:?}").contains("topsecret"));
    }

    #[test]
    fn made_hashes_verify() {
        for scheme in [Scheme::Argon2id, Scheme::Sha512Crypt] {
            let field = hash_password("correct horse", scheme).unwrap();
            assert!(
                field.starts_with(&format!("{{{}}}$", scheme.name())),
                "{field}"
            );
            let h = StoredHash::parse(&field).unwrap();
            assert_eq!(h.scheme, scheme);
            assert!(h.verify("correct horse"));
            assert!(!h.verify("correct horse "));
        }
        assert!(hash_password("x", Scheme::Plain).is_err());
    }

    #[test]
    fn constant_time_eq() {
        let table: &[(&[u8], &[u8], bool)] = &[
            (b"", b"", true),
            (b"a", b"a", true),
            (b"abc", b"abd", false),
            (b"abc", b"ab", false),
            (b"", b"\0", false),
            (b"\0", b"", false),
        ];
        for (a, b, want) in table {
            assert_eq!(ct_eq(a, b), *want, "{a:?} {b:?}");
        }
    }
}
