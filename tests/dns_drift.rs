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
    restart: always
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

    // The watcher changes the record next (restarting app attaches it
    // again): the one-off's endpoint, saved by another process, survives,
    // and the two never share an address.
    let before = eventually("app's pid", Duration::from_secs(10), || p.pid(&app));
    // SAFETY: kill has no memory effects; the pid is app's process, which this test started.
    unsafe { libc::kill(before as i32, libc::SIGKILL) };
    eventually("app restarted", Duration::from_secs(30), || {
        p.pid(&app).filter(|pid| *pid != before)
    });
    let record = std::fs::read_to_string(p.root.join("network").join(format!("{}.json", p.name)))
        .expect("the project's network record");
    let v: serde_json::Value = serde_json::from_str(&record).unwrap();
    let endpoints = v["endpoints"].as_object().expect("endpoints");
    let ip_of = |c: &str| {
        endpoints
            .values()
            .find(|e| e["container"] == c)
            .map(|e| e["ip"].as_str().unwrap_or_default().to_string())
    };
    let oneoff_ip =
        ip_of(&name).unwrap_or_else(|| panic!("the one-off's endpoint was lost: {record}"));
    assert_eq!(oneoff_ip, ip, "{record}");
    assert_ne!(ip_of(&app).as_deref(), Some(ip.as_str()), "{record}");
    let o = p.exec(&app, &["nslookup", &name]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&ip),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
