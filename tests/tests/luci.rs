//! luci-app-re6st's views in a real headless Chromium, against STAND-INS of
//! LuCI's JS runtime and of uhttpd/rpcd/procd written here
//! (`luci-app-re6st/tests/standin/`: not LuCI, not OpenWrt), with the app's
//! real views, ACL file and rpcd plugin, and real nodes with the real
//! registry:
//! - Overview of a node with 10 tunnels: service running, registration,
//!   the neighbourhood picture, tunnels, neighbours and routes;
//! - Settings: every option of the daemon is on the page; a bad value is
//!   refused by the daemon's own check with the option named and nothing
//!   saved; a good one is saved to the config file;
//! - Log: the node's lines;
//! - a node not registered: Overview says so, "Register now" registers it
//!   (the stand-in procd runs what the init script runs) and the node
//!   starts; its Overview then shows it registered and its tunnels.
//!
//! Screenshots go to `<target>/luci-screenshots/` (those in the app's README
//! were made by this test).
//!
//! With `LUCI_RUNTIME=<a LuCI checkout>` (not in CI: it cannot fetch LuCI),
//! the Overview, Settings and Log of node 0 are also loaded in LuCI's own
//! runtime (luci-base's luci.js, ui.js, form.js, rpc.js... and the
//! bootstrap theme's CSS from that checkout) and checked the same way.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::{free_port, node_bin, run_ok, Options};

const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../luci-app-re6st");

fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.to_string();
        }
    }
    panic!("no chromium: run tests/setup.sh");
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let d = target.join("luci-screenshots");
    fs::create_dir_all(&d).expect("screenshot dir");
    d
}

/// The stand-in server for one node; killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(config: &Path, log: &Path, service: &Path, firewall: &Path) -> Server {
        let port = free_port();
        let mut cmd = Command::new("python3");
        if let Some(luci) = std::env::var_os("LUCI_RUNTIME").map(PathBuf::from) {
            cmd.arg(Path::new(APP).join("tests/standin/server.py"))
                .arg("--luci-runtime")
                .arg(luci.join("modules/luci-base/htdocs/luci-static"))
                .arg("--luci-theme")
                .arg(luci.join("themes/luci-theme-bootstrap/htdocs/luci-static/bootstrap"));
        } else {
            cmd.arg(Path::new(APP).join("tests/standin/server.py"));
        }
        let child = cmd
            .args(["--port", &port.to_string(), "--bin"])
            .arg(node_bin())
            .arg("--config")
            .arg(config)
            .arg("--log")
            .arg(log)
            .arg("--service")
            .arg(service)
            .arg("--firewall")
            .arg(firewall)
            .stdout(Stdio::null())
            .spawn()
            .expect("stand-in server");
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up.is_some(), "stand-in server did not start");
        Server { child, port }
    }

    fn url(&self, query: &str) -> String {
        format!("http://127.0.0.1:{}/?{query}", self.port)
    }

    /// The page's DOM once the view rendered (and clicked).
    fn dom(&self, query: &str) -> String {
        let out = run_ok(
            Command::new(chromium())
                .args(headless())
                .arg("--dump-dom")
                .arg(self.url(query)),
            "chromium --dump-dom",
        );
        assert!(!out.contains("data-error="), "{query}: {out}");
        assert!(
            out.contains("data-rendered="),
            "{query}: not rendered\n{out}"
        );
        out
    }

    fn screenshot(&self, query: &str, name: &str) {
        self.screenshot_of(&self.url(query), name);
    }

    fn screenshot_of(&self, url: &str, name: &str) {
        let file = screenshots().join(name);
        run_ok(
            Command::new(chromium())
                .args(headless())
                .arg(format!("--screenshot={}", file.display()))
                .args(["--window-size=1100,1900"])
                .arg(url),
            "chromium --screenshot",
        );
        assert!(file.is_file(), "no {}", file.display());
    }

    /// The page's DOM in LuCI's own runtime (`LUCI_RUNTIME`).
    fn real_dom(&self, view: &str) -> String {
        let url = format!("http://127.0.0.1:{}/real?view={view}", self.port);
        run_ok(
            Command::new(chromium())
                .args(headless())
                .arg("--dump-dom")
                .arg(&url),
            "chromium --dump-dom (LuCI runtime)",
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn headless() -> [&'static str; 5] {
    [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=10000",
        "--hide-scrollbars",
    ]
}

/// The node's config file, as the app edits it.
fn write_config(path: &Path, dir: &Path, run: &Path, registry: &str, extra: &str) {
    fs::write(
        path,
        format!(
            "config node 'node'\n\toption state_dir '{}'\n\toption run_dir '{}'\n\toption registry '{registry}'\n{extra}",
            dir.display(),
            run.display()
        ),
    )
    .expect("config");
}

/// A STAND-IN for procd and the package's init script: `list` prints the
/// service's instances as procd's `service list` does, `start`/`restart`
/// registers the node if it has no certificate (as the init script's
/// `register` instance does), then runs it in its namespace.
fn service_script(
    path: &Path,
    ns: &str,
    config: &Path,
    dir: &Path,
    run: &Path,
    log: &Path,
    url: &str,
) {
    let script = format!(
        r#"#!/bin/sh
# STAND-IN for procd + /etc/init.d/re6st, written by tests/tests/luci.rs.
BIN='{bin}' CONF='{conf}' NS='{ns}' DIR='{dir}' RUN='{run}' LOG='{log}' URL='{url}'
mkdir -p "$RUN"
alive() {{ [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }}
case "$1" in
list)
	printf '{{"instances":{{'
	sep=''
	if alive node; then printf '"node":{{"running":true}}'; sep=,; fi
	if alive register; then printf '%s"register":{{"running":true}}' "$sep"; fi
	printf '}}}}\n'
	;;
start|restart)
	"$0" stop
	(
		if [ ! -f "$DIR/cert.crt" ]; then
			"$BIN" register --registry "$URL" --anonymous --dir "$DIR" \
				--progress "$RUN/registration.json" >>"$LOG" 2>&1 </dev/null || exit 1
		fi
		ip netns exec "$NS" "$BIN" --log-level debug run -c "$CONF" >>"$LOG" 2>&1 </dev/null &
		echo $! > "$RUN/node.pid"
	) >/dev/null 2>&1 &
	echo $! > "$RUN/register.pid"
	;;
stop)
	for p in node register; do
		alive $p && kill "$(cat "$RUN/$p.pid")"
		rm -f "$RUN/$p.pid"
	done
	;;
esac
"#,
        bin = node_bin().display(),
        conf = config.display(),
        dir = dir.display(),
        run = run.display(),
        log = log.display(),
    );
    fs::write(path, script).expect("service script");
    run_ok(Command::new("chmod").arg("755").arg(path), "chmod");
}

fn options_of_the_daemon() -> Vec<String> {
    let defaults = run_ok(
        Command::new(node_bin()).args(["config", "--defaults"]),
        "config --defaults",
    );
    defaults
        .lines()
        .filter_map(|l| {
            let l = l.trim().trim_start_matches('#');
            let rest = l
                .strip_prefix("option ")
                .or_else(|| l.strip_prefix("list "))?;
            Some(rest.split_whitespace().next()?.to_string())
        })
        .collect()
}

#[test]
fn luci_app_in_chromium() {
    let opts = Options {
        extra: [
            "--hello",
            "2",
            "--client-count",
            "10",
            "--max-clients",
            "20",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Options::default()
    };
    let mut m = Mesh::build(11, opts);
    let url = m.registry.url();
    // Declared after the mesh: dropped first, also on panic.
    let _forwards = m.registry_in_every_node();
    let tmp = m.path().to_path_buf();

    // Node 0, seen through the app.
    let conf0 = tmp.join("re6st-0.conf");
    write_config(&conf0, &m.nodes[0].dir, &m.nodes[0].run_dir, &url, "");
    m.nodes[0].config = Some(conf0.clone());
    m.spawn_all();
    let pid0 = m.nodes[0].proc.as_ref().expect("running").pid();
    fs::write(m.nodes[0].run_dir.join("node.pid"), pid0.to_string()).expect("pid");
    let ten = wait_until(Duration::from_secs(120), || m.tunnels_up(0) >= 10);
    assert!(
        ten.is_some(),
        "node 0 has {} tunnels\n{}",
        m.tunnels_up(0),
        m.logs()
    );
    let service0 = tmp.join("service-0");
    let ns0 = m.nodes[0].ns.name.clone();
    let (dir0, run0, log0) = (
        m.nodes[0].dir.clone(),
        m.nodes[0].run_dir.clone(),
        m.nodes[0].log.clone(),
    );
    service_script(&service0, &ns0, &conf0, &dir0, &run0, &log0, &url);
    // The router's firewall as the package's uci-defaults leave it: the
    // tunnel port open on wan.
    let firewall0 = tmp.join("firewall-0");
    fs::write(
        &firewall0,
        "config zone\n\toption name 'wan'\n\nconfig rule 're6st_tunnel'\n\toption name 'Allow-re6st-tunnel'\n\
         \toption src 'wan'\n\toption proto 'udp'\n\toption dest_port '1194'\n\toption target 'ACCEPT'\n",
    )
    .expect("firewall");
    let s0 = Server::start(&conf0, &log0, &service0, &firewall0);

    // Overview.
    let dom = s0.dom("view=re6st/overview");
    for want in [
        "running",
        "registered",
        "Neighbourhood",
        "<svg",
        "Tunnels",
        "Babel neighbours",
        "Routes",
        // The NAT line and each tunnel's kind (these nodes are public).
        "none (public address)",
        "data-title=\"Kind\">direct</td>",
        &m.nodes[0].prefix,
    ] {
        assert!(dom.contains(want), "overview lacks {want:?}\n{dom}");
    }
    assert!(!dom.contains("is not open on wan"), "{dom}");
    let up = dom
        .matches(r#"<span class="label success">up</span>"#)
        .count();
    assert!(up >= 10, "{up} tunnels up on the page\n{dom}");
    s0.screenshot("view=re6st/overview", "overview.png");

    // Settings: every option of the daemon, each checked before a save.
    let dom = s0.dom("view=re6st/settings");
    for o in options_of_the_daemon() {
        assert!(
            dom.contains(&format!(r#"data-name="{o}""#)),
            "settings lack {o}"
        );
    }
    s0.screenshot("view=re6st/settings", "settings.png");
    let before = fs::read_to_string(&conf0).unwrap();
    let dom = s0.dom("view=re6st/settings&set=port=0&click=Save");
    assert!(
        dom.contains("port: "),
        "the error does not name the option\n{dom}"
    );
    assert_eq!(
        fs::read_to_string(&conf0).unwrap(),
        before,
        "saved though refused"
    );
    let dom = s0.dom("view=re6st/settings&set=port=1195&click=Save");
    assert!(!dom.contains("Save error"), "{dom}");
    let saved = wait_until(Duration::from_secs(5), || {
        fs::read_to_string(&conf0)
            .unwrap()
            .contains("option port '1195'")
    });
    assert!(saved.is_some(), "{}", fs::read_to_string(&conf0).unwrap());
    run_ok(
        Command::new(node_bin()).arg("config").arg("-c").arg(&conf0),
        "config -c (saved file)",
    );

    // Log.
    let dom = s0.dom("view=re6st/log");
    assert!(
        dom.contains("is up"),
        "no tunnel line in the log view\n{dom}"
    );

    if std::env::var_os("LUCI_RUNTIME").is_some() {
        let dom = s0.real_dom("re6st/overview");
        for want in [
            "re6st-overview",
            "running",
            "Neighbourhood",
            "<svg",
            &m.nodes[0].prefix,
        ] {
            assert!(
                dom.contains(want),
                "LuCI runtime: overview lacks {want:?}\n{dom}"
            );
        }
        s0.screenshot_of(
            &format!("http://127.0.0.1:{}/real?view=re6st/overview", s0.port),
            "luci-overview.png",
        );
        let dom = s0.real_dom("re6st/settings");
        for o in options_of_the_daemon() {
            assert!(
                dom.contains(&format!("cbid.re6st.node.{o}")),
                "LuCI runtime: settings lack {o}\n{dom}"
            );
        }
        s0.screenshot_of(
            &format!("http://127.0.0.1:{}/real?view=re6st/settings", s0.port),
            "luci-settings.png",
        );
        let dom = s0.real_dom("re6st/log");
        assert!(dom.contains("is up"), "LuCI runtime: log\n{dom}");
        println!("LuCI runtime: overview, settings and log rendered");
    } else {
        println!("LuCI runtime: not checked (set LUCI_RUNTIME to a LuCI checkout)");
    }

    // A node that is not registered: Register now.
    let i = m.add_node_unregistered();
    let n = &m.nodes[i];
    let conf = tmp.join("re6st-new.conf");
    let peer = format!("\tlist peer '{}:1194'\n", m.nodes[1].ip);
    write_config(
        &conf,
        &n.dir,
        &n.run_dir,
        &url,
        &format!("\toption anonymous '1'\n{peer}"),
    );
    let service = tmp.join("service-new");
    service_script(
        &service, &n.ns.name, &conf, &n.dir, &n.run_dir, &n.log, &url,
    );
    let (dir, log) = (n.dir.clone(), n.log.clone());
    // This router's firewall lacks the rule: the Overview says so.
    let firewall = tmp.join("firewall-new");
    fs::write(&firewall, "config zone\n\toption name 'wan'\n").expect("firewall");
    let s = Server::start(&conf, &log, &service, &firewall);
    let dom = s.dom("view=re6st/overview");
    for want in ["stopped", "not registered", "Register now", "not running"] {
        assert!(
            dom.contains(want),
            "overview of a new node lacks {want:?}\n{dom}"
        );
    }
    s.screenshot("view=re6st/overview", "overview-stopped.png");
    s.dom("view=re6st/overview&click=Register now");
    let registered = wait_until(Duration::from_secs(120), || dir.join("cert.crt").is_file());
    assert!(
        registered.is_some(),
        "not registered\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    let tunnel = wait_until(Duration::from_secs(60), || {
        s.dom("view=re6st/overview")
            .contains(r#"<span class="label success">up</span>"#)
    });
    assert!(
        tunnel.is_some(),
        "no tunnel after Register now\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    let dom = s.dom("view=re6st/overview");
    assert!(
        dom.contains("registered") && dom.contains("running"),
        "{dom}"
    );
    assert!(dom.contains("UDP port 1194 is not open on wan"), "{dom}");
    let progress = fs::read_to_string(m.nodes[i].run_dir.join("registration.json")).unwrap();
    assert!(progress.contains(r#""state":"done""#), "{progress}");
    let _ = Command::new(&service).arg("stop").status();
}
