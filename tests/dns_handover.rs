//! `up -d` replaces the project's watcher without a DNS outage (root,
//! real): while a changed stack is applied, a client container asking the
//! project's DNS server for a service name in a loop never gets a failure.

use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually};

const STACK: &str = r#"name: {project}
services:
  web:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
  client:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sh", "-c", "while true; do if nslookup web >/dev/null 2>&1; then echo ok >> /tmp/count; else date >> /tmp/fails; fi; done"]
  other:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    environment: {ROUND: "ROUND_VALUE"}
    command: ["sleep", "3600"]
"#;

/// Lines of a file in the client (0 when missing).
fn lines(p: &Project, client: &str, file: &str) -> usize {
    let o = p.exec(
        client,
        &["sh", "-c", &format!("cat {file} 2>/dev/null || true")],
    );
    String::from_utf8_lossy(&o.stdout).lines().count()
}

#[test]
fn names_resolve_throughout_up_d_of_a_changed_stack() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new("dnsho", &STACK.replace("ROUND_VALUE", "1"));
    p.ok(&["up", "-d"]);
    let client = p.container("client", 1);
    eventually("the client to resolve web", Duration::from_secs(30), || {
        (lines(&p, &client, "/tmp/count") > 0).then_some(())
    });
    // Lookups made before the first watcher served do not count: only
    // those from a steady state on.
    let first = lines(&p, &client, "/tmp/count");
    eventually("steady answers", Duration::from_secs(30), || {
        (lines(&p, &client, "/tmp/count") > first + 2).then_some(())
    });
    let failed_before = lines(&p, &client, "/tmp/fails");
    for round in 2..5 {
        p.rewrite(&STACK.replace("ROUND_VALUE", &round.to_string()));
        let before = lines(&p, &client, "/tmp/count");
        p.ok(&["up", "-d"]);
        // The new watcher answers too.
        eventually("more answers after up", Duration::from_secs(30), || {
            (lines(&p, &client, "/tmp/count") > before + 2).then_some(())
        });
    }
    let fails = p.exec(&client, &["sh", "-c", "cat /tmp/fails 2>/dev/null || true"]);
    let fails: Vec<String> = String::from_utf8_lossy(&fails.stdout)
        .lines()
        .skip(failed_before)
        .map(str::to_string)
        .collect();
    let count = lines(&p, &client, "/tmp/count");
    assert!(
        fails.is_empty(),
        "lookups failed during up -d ({count} succeeded): {fails:?}"
    );
}
