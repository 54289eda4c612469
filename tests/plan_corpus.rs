//! The planner over the whole shared Compose corpus: for every stack that
//! loads, a fresh `up` plans in an order that can run, executes on the
//! in-memory host, and converges (a second `up` plans nothing); then
//! `down` removes every container and network, keeping volumes.
//!
//! Images are pulled from an open fake registry; images a service would
//! build are put in the local store first (stack cannot build yet), and
//! external networks and volumes are created first, as their users must.

#[path = "support/corpus.rs"]
mod support;

use std::collections::HashMap;

use stack::planner::Status;
use stack::planner::desired::container_name;
use stack::planner::fake::Sandbox;
use stack::planner::plan::{DownOptions, UpOptions};
use stack::spec::model::Condition;

#[test]
fn every_corpus_stack_plans_runs_converges_and_comes_down() {
    let Some(root) = support::corpus() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (mut checked, mut failures) = (0, Vec::new());
    for file in support::yaml_files(&root) {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.contains("/.github/") || rel.starts_with("compose-go/schema/") {
            continue;
        }
        let opts = stack::spec::Options {
            files: vec![file.clone()],
            working_dir: file.parent().unwrap().to_path_buf(),
            environment: HashMap::from([("HOME".into(), "/home/user".into())]),
            ..Default::default()
        };
        let Ok(project) = stack::spec::load(&opts) else {
            continue; // conformance.rs covers what does not load
        };
        let stack = project.stack;
        let mut sb = Sandbox::new();
        sb.host.edit(|w| {
            w.open_registry = true;
            for (name, s) in &stack.services {
                if s.image.is_none() || s.pull_policy.as_deref() == Some("build") {
                    let image = s.image.clone().unwrap_or(format!("{}-{name}", stack.name));
                    w.images.insert(image, "sha256:built".into());
                }
                if let (Some("never"), Some(image)) = (s.pull_policy.as_deref(), &s.image) {
                    w.images.insert(image.clone(), "sha256:local".into());
                }
            }
            for n in stack.networks.values().filter(|n| n.external) {
                w.networks.insert(n.name.clone(), Default::default());
            }
            for v in stack.volumes.values().filter(|v| v.external) {
                w.volumes.insert(v.name.clone(), Default::default());
            }
        });
        // Dependencies reach the state their dependents wait for (the fake
        // runs no health checks and no processes).
        for s in stack.services.values() {
            for (dep, d) in &s.depends_on {
                let Some(target) = stack.services.get(dep) else {
                    continue;
                };
                let status = match d.condition {
                    Condition::ServiceHealthy => Status::Healthy,
                    Condition::ServiceCompletedSuccessfully => Status::Exited { code: 0 },
                    Condition::ServiceStarted => continue,
                };
                for n in 1..=target.replicas().max(1) {
                    let name = target
                        .container_name
                        .clone()
                        .unwrap_or_else(|| container_name(&stack.name, dep, n));
                    sb.host.on_start(&name, status);
                }
            }
        }
        let outcome: Result<(), String> = runtime.block_on(async {
            let (plan, _) = sb
                .up(&stack, &UpOptions::default())
                .await
                .map_err(|e| format!("up: {e}"))?;
            for op in &plan.ops {
                if op.after.iter().any(|&a| a >= op.id) {
                    return Err(format!("op {} waits for a later op", op.id));
                }
            }
            let again = sb
                .plan(&stack, &UpOptions::default())
                .await
                .map_err(|e| format!("second plan: {e}"))?;
            if !again.is_empty() {
                let ops: Vec<String> = again
                    .ops
                    .iter()
                    .map(stack::planner::execute::describe)
                    .collect();
                return Err(format!("a second up is not a no-op: {ops:?}"));
            }
            let down = sb
                .plan_down(Some(&stack), &stack.name, &DownOptions::default())
                .await
                .map_err(|e| format!("down plan: {e}"))?;
            sb.run(&down).await.map_err(|e| format!("down: {e}"))?;
            let world = sb.host.world();
            if !world.containers.is_empty() {
                return Err(format!(
                    "containers left after down: {:?}",
                    world.containers.keys()
                ));
            }
            let owned = world
                .networks
                .keys()
                .filter(|n| !stack.networks.values().any(|d| d.external && &&d.name == n))
                .count();
            if owned > 0 {
                return Err(format!(
                    "networks left after down: {:?}",
                    world.networks.keys()
                ));
            }
            Ok(())
        });
        checked += 1;
        if let Err(e) = outcome {
            failures.push(format!("{rel}: {e}"));
        }
    }
    println!(
        "planner over the corpus: {checked} stacks, {} failures",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        checked > 200,
        "only {checked} stacks: is the corpus complete?"
    );
}
