//! Tests of `re6st-lite info` (node-lite/src/info.rs). That module is
//! declared inside its entry of `cli::COMMANDS`, where the test harness does
//! not look, so this test crate compiles the file again, with `crate::cli`
//! and `crate::config` pointing at the library's modules.

mod cli {
    pub use node_lite::cli::*;
}
mod config {
    pub use node_lite::config::*;
}
#[path = "../src/info.rs"]
mod info;

mod tests {
    use super::info::*;
    use node_lite::cli::exit;
    use registry_client::state::{Loaded, StateDir};
    use std::ffi::OsString;
    use std::path::Path;
    use std::path::PathBuf;

    const TESTDATA: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../registry-client/src/testdata"
    );

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("re6st-info-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A state directory holding the registry capture's CA, certificate and key.
    fn registered(tag: &str) -> PathBuf {
        let d = tmpdir(tag);
        for (from, to) in [
            ("ca.crt", "ca.crt"),
            ("node.crt", "cert.crt"),
            ("node.key", "cert.key"),
        ] {
            std::fs::copy(Path::new(TESTDATA).join(from), d.join(to)).unwrap();
        }
        d
    }

    fn get<'a>(info: &'a Info, k: &str) -> Option<&'a Value> {
        info.0.iter().find(|(n, _)| *n == k).map(|(_, v)| v)
    }

    fn text(v: &str) -> Option<Value> {
        Some(Value::Text(v.into()))
    }

    #[test]
    fn registered_directory() {
        let d = registered("ok");
        let dir = StateDir::new(&d);
        let Loaded::Registered { id, .. } = dir.load(0).unwrap() else {
            panic!("test state not registered");
        };
        let (not_before, not_after) = (id.cert.not_before(), id.cert.not_after());
        let info = examine(&dir, not_before + 1).unwrap();
        // The capture's network 2001:db8:42::/48 and node 1/20.
        assert_eq!(get(&info, "registered"), Some(&Value::Flag(true)));
        assert_eq!(get(&info, "state"), text("registered").as_ref());
        assert_eq!(
            get(&info, "prefix"),
            text("2001:db8:42:0:1000::/68").as_ref()
        );
        assert_eq!(
            get(&info, "address"),
            text("2001:db8:42:0:1000::1").as_ref()
        );
        assert_eq!(get(&info, "network"), text("2001:db8:42::/48").as_ref());
        assert_eq!(get(&info, "cn"), text("1/20").as_ref());
        assert_eq!(get(&info, "not_after"), Some(&Value::Number(not_after)));
        assert_eq!(get(&info, "expired"), Some(&Value::Flag(false)));
        let lines = info.to_lines();
        assert!(lines.starts_with(&format!("state_dir={}\nregistered=1\n", d.display())));
        assert!(
            lines.contains("\nprefix=2001:db8:42:0:1000::/68\n"),
            "{lines}"
        );
        assert!(lines.contains("\nexpires='20"), "{lines}");
        let json = info.to_json();
        assert!(json.contains(
            r#""registered":true,"state":"registered","prefix":"2001:db8:42:0:1000::/68""#
        ));
        assert!(
            json.contains(&format!(r#""not_after":{not_after},"#)),
            "{json}"
        );

        let later = examine(&dir, not_after + 1).unwrap();
        assert_eq!(get(&later, "state"), text("expired").as_ref());
        assert_eq!(get(&later, "registered"), Some(&Value::Flag(true)));
        assert_eq!(get(&later, "expired"), Some(&Value::Flag(true)));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn empty_missing_and_broken_directories() {
        let d = tmpdir("empty");
        let info = examine(&StateDir::new(&d), 0).unwrap();
        assert_eq!(get(&info, "registered"), Some(&Value::Flag(false)));
        assert_eq!(get(&info, "state"), text("none").as_ref());
        assert_eq!(get(&info, "prefix"), None);
        let missing = examine(&StateDir::new(d.join("nosuch")), 0).unwrap();
        assert_eq!(get(&missing, "state"), text("none").as_ref());

        // A certificate that is not for the key: present but unusable.
        let b = registered("broken");
        std::fs::copy(Path::new(TESTDATA).join("ca.crt"), b.join("cert.crt")).unwrap();
        let info = examine(&StateDir::new(&b), 0).unwrap();
        assert_eq!(get(&info, "registered"), Some(&Value::Flag(false)));
        assert_eq!(get(&info, "state"), text("broken").as_ref());
        let lines = info.to_lines();
        assert!(lines.contains("\nerror='"), "{lines}");
        std::fs::remove_dir_all(d).unwrap();
        std::fs::remove_dir_all(b).unwrap();
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("2001:db8::/64"), "2001:db8::/64");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(x)"), "'$(x)'");
        assert_eq!(json_string("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
    }

    fn run(args: &[&str]) -> Result<(), node_lite::cli::Failure> {
        node_lite::cli::main(args.iter().map(OsString::from))
    }

    /// This file's own copy of the command, called directly.
    fn run_here(args: &[&str]) -> Result<(), node_lite::cli::Failure> {
        command(&mut lexopt::Parser::from_args(args.iter().copied()))
    }

    #[test]
    fn command_line() {
        let d = registered("cli");
        let cfg = d.join("re6st.conf");
        std::fs::write(
            &cfg,
            format!("config node 'node'\n\toption state_dir '{}'\n", d.display()),
        )
        .unwrap();
        let cfg = cfg.to_str().unwrap();
        let dir = d.to_str().unwrap();
        assert!(run(&["info", "-c", cfg]).is_ok());
        assert!(run(&["info", "-c", cfg, "--json"]).is_ok());
        assert!(run(&["info", "-d", dir]).is_ok());
        assert!(run(&["info", "-o", &format!("state_dir={dir}")]).is_ok());
        assert!(run(&["info", "--help"]).is_ok());
        assert!(run_here(&["-d", dir, "--json"]).is_ok());
        assert_eq!(run_here(&["extra"]).unwrap_err().code, exit::USAGE);
        assert_eq!(run(&["info", "--bogus"]).unwrap_err().code, exit::USAGE);
        assert_eq!(
            run(&["info", "-o", "port=0"]).unwrap_err().code,
            exit::USAGE
        );
        assert_eq!(
            run(&["info", "-c", "/nonexistent/re6st"]).unwrap_err().code,
            exit::USAGE
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn unreadable_directory_is_a_state_error() {
        // A file where the directory should be: reading "ca.crt" under it fails.
        let d = tmpdir("notdir");
        let f = d.join("file");
        std::fs::write(&f, b"x").unwrap();
        let e = examine(&StateDir::new(&f), 0).unwrap_err();
        assert_eq!(e.code, registry_client::error::exit::STATE, "{}", e.msg);
        std::fs::remove_dir_all(d).unwrap();
    }
}
