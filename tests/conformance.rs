//! Conformance: every Compose file of the shared corpus loads, or fails with
//! the clear error it is meant to fail with.
//!
//! The corpus (../shared/corpus, or $STACK_CORPUS) holds docker/awesome-compose,
//! docker compose's end-to-end fixtures, compose-go's loader test data and
//! the spec's conformance tests. Each YAML file is loaded on its own, as
//! `stack -f FILE config` would, from its own directory. Files that are meant
//! to fail (cycles, missing includes, invalid values) are listed in
//! `EXPECTED_FAILURES` with the reason and a piece of the message they must
//! produce. Any other outcome is a surprise and fails the test.

#[path = "support/corpus.rs"]
mod support;

use std::collections::HashMap;

/// (path relative to the corpus, text the error must contain, why it fails).
const EXPECTED_FAILURES: &[(&str, &str, &str)] = &[
    (
        "compose-go/loader/testdata/compose-depends-on-cycle.yaml",
        "dependency cycle between services: service1 → service2 → service3 → service1",
        "a depends_on cycle",
    ),
    (
        "compose-go/loader/testdata/compose-depends-on-profile-no-cycle.yaml",
        "dependency cycle between services: service1 → service2 → service3 → service1",
        "the same cycle; compose-go's test only loads it with a service selection",
    ),
    (
        "compose-go/loader/testdata/compose-depends-on-self.yaml",
        "service `service1` depends on itself",
        "a service that depends on itself",
    ),
    (
        "compose-go/loader/testdata/compose-include-cycle.yaml",
        "include cycle",
        "a file that includes itself",
    ),
    (
        "compose-go/loader/testdata/extends/base.yaml",
        "`services.nil` must be a mapping, not null",
        "a deliberately empty service, only ever used as an extends target",
    ),
    (
        "compose-go/loader/testdata/include/dir/compose.yaml",
        "extra.env",
        "its env_file exists only when loaded through the include that sets the project directory",
    ),
    (
        "compose-go/loader/testdata/remote/cycle/compose-cycle.yaml",
        "remote:cycle",
        "includes a remote project through a loader that exists only in compose-go's tests",
    ),
    (
        "compose-go/loader/testdata/remote/cycle/compose.yaml",
        "remote:cycle",
        "includes a remote project through a loader that exists only in compose-go's tests",
    ),
    (
        "compose-go/loader/testdata/remote/nested/compose.yaml",
        "remote:nested",
        "includes a remote project through a loader that exists only in compose-go's tests",
    ),
    (
        "docker-compose/pkg/e2e/fixtures/env_file/compose.yaml",
        "/doesnotexist/.env",
        "its env_file is missing on purpose (the e2e test starts only the other service)",
    ),
    (
        "docker-compose/pkg/e2e/fixtures/logs-test/cat.yaml",
        "the source is empty",
        "needs FILE set by the e2e test; unset, the volume has no source",
    ),
    (
        "docker-compose/pkg/e2e/fixtures/publish/oci/compose-override.yaml",
        "neither an image nor a build",
        "an override file, only valid merged onto compose.yaml",
    ),
    (
        "docker-compose/pkg/e2e/fixtures/wrong-composefile/compose.yaml",
        "unknown key `wrongField` in service `simple`",
        "an unknown key, on purpose",
    ),
    (
        "docker-compose/pkg/e2e/testdata/TestLocalComposeConfigNoConsistency/compose.yaml",
        "service `incomplete` has neither an image nor a build context",
        "the e2e test runs it with --no-consistency to skip this very check",
    ),
    (
        "docker-compose/pkg/e2e/testdata/TestUpContainerNameConflict/compose.yaml",
        "does not match the pattern",
        "needs FIXED_NAME set by the e2e test; unset, container_name is empty",
    ),
    (
        "docker-compose/pkg/e2e/testdata/TestUpImageID/compose.yaml",
        "required variable `ID` is missing a value",
        "needs ID set by the e2e test (`${ID:?...}`)",
    ),
];

/// YAML files in the corpus that are not Compose files at all.
fn is_compose_file(rel: &str) -> bool {
    !rel.contains("/.github/")
        && !rel.starts_with("compose-go/schema/")
        // Kubernetes manifests that docker compose generates, not Compose files.
        && !rel.contains("/expected-helm/")
        && !rel.contains("/expected-kubernetes/")
}

#[test]
fn corpus_loads_or_fails_as_expected() {
    let Some(root) = support::corpus() else {
        return;
    };
    let files = support::yaml_files(&root);
    let expected: HashMap<&str, (&str, &str)> = EXPECTED_FAILURES
        .iter()
        .map(|(p, needle, why)| (*p, (*needle, *why)))
        .collect();
    let (mut loaded, mut failed, mut surprises) = (0, 0, Vec::new());
    for file in &files {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if !is_compose_file(&rel) {
            continue;
        }
        let opts = stack::spec::Options {
            files: vec![file.clone()],
            working_dir: file.parent().unwrap().to_path_buf(),
            environment: HashMap::from([("HOME".into(), "/home/user".into())]),
            ..Default::default()
        };
        let outcome = stack::spec::load(&opts);
        match (outcome, expected.get(rel.as_str())) {
            (Ok(_), None) => loaded += 1,
            (Err(e), Some((needle, _))) => {
                failed += 1;
                let text = e.to_string();
                if !text.contains(needle) {
                    surprises.push(format!("{rel}: failed, but without `{needle}`:\n{text}"));
                }
            }
            (Ok(_), Some((_, why))) => {
                surprises.push(format!("{rel}: loaded, but is expected to fail ({why})"))
            }
            (Err(e), None) => surprises.push(format!("{rel}: unexpected failure:\n{e}")),
        }
    }
    println!(
        "conformance: {} files, {loaded} loaded, {failed} failed as expected, {} surprises",
        loaded + failed + surprises.len(),
        surprises.len()
    );
    assert!(
        surprises.is_empty(),
        "{} surprises:\n\n{}",
        surprises.len(),
        surprises.join("\n\n")
    );
    assert!(
        loaded > 200,
        "only {loaded} files loaded: is the corpus complete?"
    );
}
