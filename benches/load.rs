//! Loader benchmark: load and validate a generated stack of 1,000 services.
//!
//! `cargo bench --bench load` writes a stack with 1,000 services (each with
//! environment, ports, volumes, networks, healthcheck and depends_on), 20
//! networks and 50 volumes to a temporary directory, then times, over 21
//! runs each: the bare YAML parse (the floor: no loader can beat reading
//! the text), and the whole `stack config` pipeline (parse, interpolate,
//! schema, normalize, validate). It prints medians and the ratio of the two.
//! The goal is under 50 ms for the whole load on our 2-core machines.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const SERVICES: usize = 1000;
const NETWORKS: usize = 20;
const VOLUMES: usize = 50;
const RUNS: usize = 21;

fn generate() -> String {
    let mut y = String::from(
        "name: bench\nx-base: &base\n  image: busybox:${TAG:-latest}\n  restart: unless-stopped\nservices:\n",
    );
    for i in 0..SERVICES {
        let _ = write!(
            y,
            "  svc{i}:\n    <<: *base\n    command: [\"sh\", \"-c\", \"echo {i}\"]\n    environment:\n      INDEX: \"{i}\"\n      MODE: ${{MODE:-prod}}\n    ports:\n      - \"127.0.0.1:{}:80\"\n    volumes:\n      - vol{}:/data\n      - ./conf/{i}:/etc/conf:ro\n    networks: [net{}, net{}]\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 10s\n    mem_limit: 64m\n",
            20000 + i,
            i % VOLUMES,
            i % NETWORKS,
            (i + 1) % NETWORKS,
        );
        if i > 0 {
            let _ = write!(
                y,
                "    depends_on:\n      svc{}:\n        condition: service_started\n",
                i / 2
            );
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

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("compose.yaml");
    let text = generate();
    std::fs::write(&file, &text).expect("the generated stack is written");
    let opts = stack::spec::Options {
        files: vec![file.clone()],
        working_dir: dir.path().to_path_buf(),
        environment: HashMap::from([("HOME".into(), "/root".into())]),
        ..Default::default()
    };
    let project = stack::spec::load(&opts).expect("the generated stack loads");
    assert_eq!(project.stack.services.len(), SERVICES);

    let parse = time(|| {
        let source = stack::spec::diagnostic::Source::new(&file, text.clone());
        std::hint::black_box(stack::spec::yaml::parse(&source).expect("parses"));
    });
    let load = time(|| {
        std::hint::black_box(stack::spec::load(&opts).expect("loads"));
    });
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "stack file: {SERVICES} services, {NETWORKS} networks, {VOLUMES} volumes, {} KiB",
        text.len() / 1024
    );
    println!("yaml parse only (baseline): {:>8.2} ms", ms(parse));
    println!("full load + validate:       {:>8.2} ms", ms(load));
    println!("ratio load / parse:         {:>8.2}x", ms(load) / ms(parse));
    println!(
        "goal: under 50 ms -> {}",
        if ms(load) < 50.0 { "met" } else { "NOT met" }
    );
}
