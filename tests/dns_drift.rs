//! DNS drift (root, real): names the project's DNS server does not serve
//! are repaired by the watcher. The real loss: `stack run -d` attaches a
//! one-off while the watcher runs (it is not stopped for a one-off that
//! publishes no port), so the watcher's DNS does not know its name until
//! its round finds the endpoint in the project's network record and serves
//! it again, with a `drift-repair` event.

use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually};

#[test]
fn a_name_missing_from_the_dns_server_is_served_again() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "dnsdrift",
        r#"name: {project}
services:
  app:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
  tool:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
"#,
    );
    p.ok(&["up", "-d"]);
    let app = p.container("app", 1);
    let name = format!("{}-oneoff", p.name);
    p.ok(&["run", "-d", "--name", &name, "tool", "sleep", "3600"]);
    let ip = eventually(
        "the one-off's name to resolve",
        Duration::from_secs(30),
        || {
            let o = p.exec(&app, &["nslookup", &name]);
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            let answer = out.split(&format!("Name:\t{name}")).nth(1)?.to_string();
            answer
                .lines()
                .find_map(|l| l.strip_prefix("Address: "))
                .map(|a| a.trim().to_string())
        },
    );
    assert!(ip.starts_with(|c: char| c.is_ascii_digit()), "{ip}");
    let events = p.ok(&["events", "--json", "--no-follow"]);
    let repair = events
        .lines()
        .find(|l| l.contains("\"drift-repair\"") && l.contains(&name))
        .unwrap_or_else(|| panic!("no drift-repair event for {name}:\n{events}"));
    assert!(repair.contains("DNS records"), "{repair}");
    // /etc/hosts of its peers follows.
    eventually(
        "app's /etc/hosts to name it",
        Duration::from_secs(30),
        || {
            let o = p.exec(&app, &["cat", "/etc/hosts"]);
            String::from_utf8_lossy(&o.stdout)
                .contains(&name)
                .then_some(())
        },
    );
}
