//! A full disk during a certificate write loses nothing (issue 19, local
//! security): the state directory is a 512 KiB tmpfs, registered for real
//! with the registry, then filled; `register --renew` gets a new
//! certificate from the registry, cannot write it (ENOSPC) and fails with
//! the state exit code (21), leaving the certificate, key and CA exactly as
//! they were and no temporary file. With room again, the renewal goes
//! through.

use std::path::{Path, PathBuf};
use std::process::Command;

use re6st_integration::registry::{re6st_lite, register_anonymous, Options, Registry, TempDir};

/// A tmpfs mounted for the test, unmounted when dropped (also on failure).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("mount");
        assert!(ok.success(), "mount tmpfs (root needed)");
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "filler")
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            (name, bytes)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_full_disk_during_renewal_loses_nothing() {
    let registry = Registry::start(Options::default());
    let tmp = TempDir::new("fulldisk");
    let state = tmp.path().join("state");
    let _fs = Tmpfs::new(&state, "512k");
    let url = registry.url();
    register_anonymous(&url, &state);
    let before = snapshot(&state);
    let names: Vec<&str> = before.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"cert.crt") && names.contains(&"cert.key"),
        "{names:?}"
    );

    // Fill the file system to the last block.
    let filler = state.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
    let _ = std::io::Write::write_all(&mut f, &[0u8; 1]);
    drop(f);

    let d = state.to_str().unwrap();
    let run = re6st_lite(&["register", "--registry", &url, "--renew", "--dir", d]);
    assert_eq!(run.code, 21, "renewal on a full disk: {}", run.output());
    assert!(
        run.output().contains("No space left on device"),
        "{}",
        run.output()
    );
    assert_eq!(snapshot(&state), before, "the state changed on a full disk");

    // Room again: the same renewal goes through (the registry 0.642 gives
    // the same certificate back while more than 30 days are left), and
    // leaves no temporary file either.
    std::fs::remove_file(&filler).unwrap();
    let run = re6st_lite(&["register", "--registry", &url, "--renew", "--dir", d]);
    assert_eq!(run.code, 0, "{}", run.output());
    let names = |s: &[(String, Vec<u8>)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&snapshot(&state)), names(&before));
}
