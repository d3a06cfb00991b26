//! The node's state directory.
//!
//! | file | content | mode |
//! |---|---|---|
//! | `ca.crt` | the network's CA certificate, PEM | 0644 |
//! | `cert.key` | the node's RSA key, PKCS#8 PEM | 0600 |
//! | `cert.crt` | the node's certificate, PEM | 0644 |
//! | `network-config.z` | the last `getNetworkConfig` reply body, byte for byte (zlib JSON, HMAC-checked when received) | 0644 |
//!
//! The same names as re6st-conf uses for the first three. The cached config
//! is stored raw so that it is re-verified (CA signature on `version`) and
//! re-decrypted every time it is loaded, and nothing is lost or reformatted.
//!
//! Every write is atomic: a temporary file in the same directory, written,
//! fsynced, renamed over the target, then the directory fsynced. A reader (or
//! a crash) sees the old file or the new one, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rsa::RsaPrivateKey;

use crate::cert::{self, Certificate};
use crate::netconfig::{NetworkConfig, Payload};
use crate::{Error, Prefix, Subnet};

pub const CA_FILE: &str = "ca.crt";
pub const CERT_FILE: &str = "cert.crt";
pub const KEY_FILE: &str = "cert.key";
pub const NETCONFIG_FILE: &str = "network-config.z";

/// A state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

/// A complete, consistent node identity loaded from disk.
#[derive(Clone, Debug)]
pub struct Identity {
    pub ca: Certificate,
    pub cert: Certificate,
    pub key: RsaPrivateKey,
    pub subnet: Subnet,
}

impl Identity {
    pub fn prefix(&self) -> Prefix {
        self.subnet.node
    }
}

/// What a state directory holds.
#[derive(Debug)]
pub enum Loaded {
    /// No certificate yet (some files may exist, e.g. a reusable key).
    Empty,
    /// Certificate, key and CA agree; the certificate may still be expired
    /// (`expired` true), which the registry renews within its grace period.
    Registered { id: Box<Identity>, expired: bool },
    /// Files are there but do not form a usable identity (why).
    Broken(Error),
}

impl StateDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateDir { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Read a file; `None` if it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let p = self.path(name);
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::state(p, e)),
        }
    }

    /// Create the directory (0700 if new) if needed.
    pub fn create(&self) -> Result<(), Error> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| Error::state(&self.dir, e))
    }

    /// Check now that files can be written here, before spending a token.
    pub fn check_writable(&self) -> Result<(), Error> {
        let (tmp, f) = self.temp_file("probe", 0o600)?;
        drop(f);
        fs::remove_file(&tmp).map_err(|e| Error::state(&tmp, e))
    }

    fn temp_file(&self, name: &str, mode: u32) -> Result<(PathBuf, File), Error> {
        for i in 0..100u32 {
            let tmp = self
                .dir
                .join(format!(".{name}.tmp.{}.{i}", std::process::id()));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)
            {
                Ok(f) => return Ok((tmp, f)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::state(tmp, e)),
            }
        }
        Err(Error::state(
            self.path(name),
            std::io::Error::other("no free temporary file name"),
        ))
    }

    /// Replace `name` with `data` atomically, with permissions `mode`.
    pub fn write_atomic(&self, name: &str, data: &[u8], mode: u32) -> Result<(), Error> {
        let (tmp, mut f) = self.temp_file(name, mode)?;
        let target = self.path(name);
        let res = (|| {
            f.write_all(data)?;
            // The umask may have narrowed `mode`; 0600 must stay 0600 anyway.
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &target)?;
            File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(Error::state(target, e));
        }
        Ok(())
    }

    /// A key that may be reused for a new request: present and of `bits` size.
    pub fn reusable_key(&self, bits: usize) -> Result<Option<RsaPrivateKey>, Error> {
        use rsa::traits::PublicKeyParts;
        let Some(pem) = self.read(KEY_FILE)? else {
            return Ok(None);
        };
        Ok(cert::key_from_pem(&pem)
            .ok()
            .filter(|k| k.n().bits() == bits))
    }

    /// Load and check the identity: the certificate must be issued by the CA
    /// in `ca.crt`, for the key in `cert.key`, with a prefix inside the network.
    pub fn load(&self, now: u64) -> Result<Loaded, Error> {
        let (Some(ca), Some(crt), Some(key)) = (
            self.read(CA_FILE)?,
            self.read(CERT_FILE)?,
            self.read(KEY_FILE)?,
        ) else {
            return Ok(Loaded::Empty);
        };
        let check = || -> Result<(Identity, bool), Error> {
            let ca = Certificate::from_pem(&ca)?;
            let cert = Certificate::from_pem(&crt)?;
            let key = cert::key_from_pem(&key)?;
            cert.verify_issued_by(&ca)?;
            if !cert.is_for_key(&key) {
                return Err(Error::Certificate(format!(
                    "{CERT_FILE} is not for the key in {KEY_FILE}"
                )));
            }
            let subnet = Subnet::new(ca.network()?, cert.prefix()?)?;
            let expired = cert.check_not_expired(now).is_err();
            Ok((
                Identity {
                    ca,
                    cert,
                    key,
                    subnet,
                },
                expired,
            ))
        };
        Ok(match check() {
            Ok((id, expired)) => Loaded::Registered {
                id: Box::new(id),
                expired,
            },
            Err(e) => Loaded::Broken(e),
        })
    }

    /// Load the cached network config, re-verified with the identity's keys.
    pub fn network_config(&self, id: &Identity) -> Result<Option<NetworkConfig>, Error> {
        let Some(raw) = self.read(NETCONFIG_FILE)? else {
            return Ok(None);
        };
        Payload::parse(&raw)?
            .open(id.ca.public_key(), &id.key)
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmpdir(tag: &str) -> StateDir {
        let d = std::env::temp_dir().join(format!("rc-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let s = StateDir::new(&d);
        s.create().unwrap();
        s
    }

    #[test]
    fn atomic_write_replaces_and_keeps_mode() {
        let s = tmpdir("write");
        s.write_atomic(KEY_FILE, b"one", 0o600).unwrap();
        s.write_atomic(KEY_FILE, b"two", 0o600).unwrap();
        assert_eq!(s.read(KEY_FILE).unwrap().unwrap(), b"two");
        let mode = fs::metadata(s.path(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // No temporary file left behind.
        assert_eq!(fs::read_dir(s.dir()).unwrap().count(), 1);
        s.check_writable().unwrap();
        assert_eq!(fs::read_dir(s.dir()).unwrap().count(), 1);
        assert!(matches!(s.load(0).unwrap(), Loaded::Empty));
        assert_eq!(s.read(CA_FILE).unwrap(), None);
        fs::remove_dir_all(s.dir()).unwrap();
    }

    #[test]
    fn failed_write_leaves_the_old_file() {
        let s = tmpdir("fail");
        s.write_atomic(CERT_FILE, b"good", 0o644).unwrap();
        // A directory where the target is: rename fails, old content stays
        // for the other file, and no temporary file is left.
        fs::create_dir(s.path("blocked")).unwrap();
        fs::write(s.path("blocked/x"), b"x").unwrap();
        assert!(s.write_atomic("blocked", b"new", 0o644).is_err());
        assert_eq!(s.read(CERT_FILE).unwrap().unwrap(), b"good");
        assert_eq!(fs::read_dir(s.dir()).unwrap().count(), 2);
        fs::remove_dir_all(s.dir()).unwrap();
    }

    /// Symlinks planted in the state directory (at a file's name, or at the
    /// next temporary name) are never written through.
    #[test]
    fn planted_symlinks_are_not_followed() {
        let s = tmpdir("symlink");
        let outside = std::env::temp_dir().join(format!("rc-outside-{}", std::process::id()));
        fs::write(&outside, b"precious").unwrap();
        std::os::unix::fs::symlink(&outside, s.path(CERT_FILE)).unwrap();
        let tmp = s
            .dir()
            .join(format!(".{KEY_FILE}.tmp.{}.0", std::process::id()));
        std::os::unix::fs::symlink(&outside, &tmp).unwrap();
        s.write_atomic(CERT_FILE, b"cert", 0o644).unwrap();
        s.write_atomic(KEY_FILE, b"key", 0o600).unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"precious");
        assert!(!fs::symlink_metadata(s.path(CERT_FILE))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(s.read(KEY_FILE).unwrap().unwrap(), b"key");
        let mode = fs::metadata(s.path(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(s.dir()).unwrap();
        fs::remove_file(outside).unwrap();
    }

    #[test]
    fn garbage_files_are_broken_not_fatal() {
        let s = tmpdir("broken");
        for f in [CA_FILE, CERT_FILE, KEY_FILE] {
            s.write_atomic(f, b"garbage", 0o600).unwrap();
        }
        assert!(matches!(s.load(0).unwrap(), Loaded::Broken(_)));
        assert!(s.reusable_key(2048).unwrap().is_none());
        fs::remove_dir_all(s.dir()).unwrap();
    }
}
