//! Planner benchmark: plan a 1,000-service stack against 1,000 running
//! containers, one of which changed.
//!
//! `cargo bench --bench plan` generates a stack of 1,000 services (each
//! with environment, a port, a volume, two networks and a depends_on),
//! brings it up on the in-memory host (so 1,000 containers run and the
//! record and revision history exist), changes one service's environment,
//! and times, over 21 runs each (medians printed):
//! - the baseline: desired state alone (one configuration hash per
//!   service, the floor any plan must pay);
//! - `plan_up` given what was observed: the graph, desired state, the diff
//!   and the plan with its field-level explanation;
//! - observe (through the fake host) plus plan.
//!
//! It checks that the plan is exactly the one recreate (and its start) and
//! prints the ratios. The goal is under 20 ms for the plan.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use stack::planner::Desired;
use stack::planner::fake::Sandbox;
use stack::planner::observe::observe;
use stack::planner::plan::{UpOptions, plan_up};
use stack::spec::{self, Stack};

const SERVICES: usize = 1000;
const NETWORKS: usize = 20;
const VOLUMES: usize = 50;
const RUNS: usize = 21;

fn generate(changed: Option<usize>) -> String {
    let mut y = String::from("name: bench\nservices:\n");
    for i in 0..SERVICES {
        let mode = if Some(i) == changed { "canary" } else { "prod" };
        let _ = write!(
            y,
            "  svc{i}:\n    image: busybox:latest\n    command: [sh, -c, 'echo {i}']\n    environment:\n      INDEX: '{i}'\n      MODE: {mode}\n    ports: ['127.0.0.1:{}:80']\n    volumes: ['vol{}:/data']\n    networks: [net{}, net{}]\n    mem_limit: 64m\n",
            20000 + i,
            i % VOLUMES,
            i % NETWORKS,
            (i + 1) % NETWORKS,
        );
        if i > 0 {
            let _ = writeln!(y, "    depends_on: [svc{}]", i / 2);
        }
    }
    y.push_str("networks:\n");
    for i in 0..NETWORKS {
        let _ = writeln!(y, "  net{i}: {{}}");
    }
    y.push_str("volumes:\n");
    for i in 0..VOLUMES {
        let _ = writeln!(y, "  vol{i}: {{}}");
    }
    y
}

fn load(dir: &std::path::Path, yaml: &str) -> Stack {
    let path = dir.join("compose.yaml");
    std::fs::write(&path, yaml).expect("write the stack");
    let opts = spec::Options {
        files: vec![path],
        working_dir: dir.to_path_buf(),
        ..spec::Options::default()
    };
    match spec::load(&opts) {
        Ok(p) => p.stack,
        Err(d) => panic!("{d}"),
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time(mut f: impl FnMut()) -> Duration {
    median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let before = load(dir.path(), &generate(None));
    let after = load(dir.path(), &generate(Some(SERVICES / 2)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let mut sb = Sandbox::new();
    sb.host.publish(
        "busybox:latest",
        "sha256:1111111111111111111111111111111111111111111111111111111111111111",
    );
    let setup = Instant::now();
    runtime
        .block_on(sb.up(&before, &UpOptions::default()))
        .expect("the first up");
    println!(
        "setup: up of {SERVICES} services on the in-memory host in {}",
        ms(setup.elapsed())
    );
    let observed = runtime
        .block_on(observe(
            &sb.host,
            "bench",
            Some(&after),
            Some(&sb.record),
            sb.history.clone(),
        ))
        .expect("observe");
    assert_eq!(observed.containers.len(), SERVICES);

    let opts = UpOptions::default();
    let plan = plan_up(&after, &observed, &opts).expect("plan");
    let ops: Vec<String> = plan
        .ops
        .iter()
        .map(stack::planner::execute::describe)
        .collect();
    assert_eq!(
        ops,
        [
            "recreate container bench-svc500-1",
            "start container bench-svc500-1"
        ],
        "the plan is exactly the one change"
    );
    assert_eq!(
        plan.ops[0].changes[0].to_string(),
        "environment MODE: prod → canary"
    );

    let desired = time(|| {
        std::hint::black_box(Desired::new(&after, &BTreeMap::new()).expect("desired"));
    });
    let planned = time(|| {
        std::hint::black_box(plan_up(&after, &observed, &opts).expect("plan"));
    });
    let whole = time(|| {
        let observed = runtime
            .block_on(observe(
                &sb.host,
                "bench",
                Some(&after),
                Some(&sb.record),
                sb.history.clone(),
            ))
            .expect("observe");
        std::hint::black_box(plan_up(&after, &observed, &opts).expect("plan"));
    });
    let ratio = |d: Duration| d.as_secs_f64() / desired.as_secs_f64();
    println!(
        "{SERVICES} services, {SERVICES} running containers, 1 changed; median of {RUNS} runs:"
    );
    println!("  desired state alone (baseline): {}", ms(desired));
    println!(
        "  plan_up:                        {}  ({:.2}x the baseline; goal < 20 ms)",
        ms(planned),
        ratio(planned)
    );
    println!(
        "  observe + plan_up:              {}  ({:.2}x the baseline)",
        ms(whole),
        ratio(whole)
    );
}
