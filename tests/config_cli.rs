//! `stack config` end to end: the built binary, real files, real exit codes.

#[path = "support/corpus.rs"]
mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn stack(dir: &Path, args: &[&str]) -> Output {
    stack_with(dir, args, &[], None)
}

fn stack_with(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stack"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", "/home/user")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("stack runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/stacks/demo")
}

#[test]
fn demo_prints_the_normalized_stack() {
    let out = stack(&demo(), &["config"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "name: demo\n",
        "      - mode: ingress\n        protocol: tcp\n        published: \"8080\"\n        target: 8080\n",
        "    name: demo_default\n",
        "        condition: service_healthy\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // The `setup` profile is off: its service is not printed.
    assert!(!text.contains("seed"), "{text}");
}

#[test]
fn output_reloads_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let first = stack(&demo(), &["config"]);
    assert!(first.status.success());
    write(dir.path(), "compose.yaml", &stdout(&first));
    let second = stack(dir.path(), &["config"]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(stdout(&first), stdout(&second));
}

#[test]
fn json_format_and_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = stack(&demo(), &["config", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["services"]["web"]["ports"][0]["target"], 8080);
    let file = dir.path().join("out.yaml");
    let out = stack(&demo(), &["config", "-o", file.to_str().unwrap(), "web"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&file).unwrap();
    // `web` and what it depends on.
    assert!(
        text.contains("  store:\n") && text.contains("  web:\n"),
        "{text}"
    );
}

#[test]
fn listing_flags() {
    let lines = |args: &[&str]| stdout(&stack(&demo(), args));
    assert_eq!(lines(&["config", "--services"]), "store\nweb\n");
    assert_eq!(
        lines(&["--profile", "setup", "config", "--services"]),
        "seed\nstore\nweb\n"
    );
    assert_eq!(lines(&["config", "--volumes"]), "data\n");
    assert_eq!(lines(&["config", "--networks"]), "back\ndefault\n");
    assert_eq!(lines(&["config", "--profiles"]), "setup\n");
    assert_eq!(
        lines(&["config", "--images"]),
        "busybox:latest\nbusybox:latest\n"
    );
    let hashes = lines(&["config", "--hash", "*"]);
    assert_eq!(hashes.lines().count(), 2);
    assert!(hashes.starts_with("store sha256:"), "{hashes}");
    let one = lines(&["config", "--hash", "web"]);
    assert!(hashes.contains(&one), "{one} in {hashes}");
    let vars = lines(&["config", "--variables"]);
    assert!(vars.contains("WEB_PORT  8080"), "{vars}");
    assert!(stack(&demo(), &["config", "-q"]).stdout.is_empty());
}

#[test]
fn variables_say_where_values_come_from() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ".env", "FROM_FILE=f\nBOTH=file\n");
    write(
        dir.path(),
        "compose.yaml",
        "services:\n  a:\n    image: x:${FROM_FILE}-${BOTH}-${DEF:-d}-${NONE}\n",
    );
    let out = stack_with(
        dir.path(),
        &["config", "--variables", "--format", "json"],
        &[("BOTH", "shell")],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["BOTH"]["source"], "shell");
    assert_eq!(v["BOTH"]["value"], "shell");
    assert!(v["FROM_FILE"]["source"].as_str().unwrap().ends_with(".env"));
    assert_eq!(v["DEF"]["source"], "default");
    assert_eq!(v["NONE"]["source"], "unset");
}

#[test]
fn global_flags_and_their_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "one.yaml",
        "services:\n  a:\n    image: ${IMG:-one}\n",
    );
    write(
        dir.path(),
        "two.yaml",
        "services:\n  a:\n    environment: [X=1]\n",
    );
    write(dir.path(), "alt.env", "IMG=alt\n");
    let out = stack_with(
        dir.path(),
        &["config"],
        &[
            ("COMPOSE_FILE", "one.yaml:two.yaml"),
            ("COMPOSE_PROJECT_NAME", "envname"),
        ],
        None,
    );
    let text = stdout(&out);
    assert!(
        text.starts_with("name: envname\n"),
        "{text}{}",
        stderr(&out)
    );
    assert!(text.contains("X: \"1\""), "{text}");
    let out = stack(
        dir.path(),
        &[
            "-f",
            "one.yaml",
            "-p",
            "flagname",
            "--env-file",
            "alt.env",
            "config",
        ],
    );
    let text = stdout(&out);
    assert!(
        text.starts_with("name: flagname\n") && text.contains("image: alt"),
        "{text}"
    );
    let out = stack_with(
        dir.path(),
        &["-f", "-", "--project-directory", "sub", "config"],
        &[],
        Some("services:\n  s:\n    image: x\n    volumes: ['./data:/data']\n"),
    );
    let text = stdout(&out);
    let expected = dir.path().join("sub/data");
    assert!(
        text.contains(&format!("source: {}", expected.display())),
        "{text}{}",
        stderr(&out)
    );
    assert!(text.starts_with("name: sub\n"), "{text}");
    let out = stack(dir.path(), &["-p", "Bad Name", "-f", "one.yaml", "config"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("not a valid project name"));
}

#[test]
fn invalid_files_name_every_problem_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "compose.yaml",
        "services:\n  web:\n    image: x\n    enviroment: {}\n    restart: 5\n",
    );
    let out = stack(dir.path(), &["config"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("compose.yaml:4:5"), "{err}");
    assert!(err.contains("did you mean `environment`?"), "{err}");
    assert!(err.contains("services.web.restart"), "{err}");
    assert!(err.contains("2 errors"), "{err}");
    assert!(out.stdout.is_empty());

    let out = stack(dir.path(), &["config", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));

    let empty = tempfile::tempdir().unwrap();
    let out = stack(empty.path(), &["config"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("no stack file found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn completions_and_man_page_come_from_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = stack(dir.path(), &["completion", shell]);
        assert!(out.status.success());
        let text = stdout(&out);
        assert!(
            text.contains("config") && text.contains("project-directory"),
            "{shell}"
        );
    }
    let out = stack(dir.path(), &["man"]);
    let text = stdout(&out);
    assert!(
        text.starts_with(".ie") || text.contains(".TH stack"),
        "{text}"
    );
    assert!(text.contains("project\\-directory"), "{text}");
}

/// Every corpus file that loads prints output that loads again to the same bytes.
#[test]
fn corpus_round_trips() {
    let Some(corpus) = support::corpus() else {
        return;
    };
    let files = support::yaml_files(&corpus);
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for file in files {
        let opts = |f: PathBuf, dir: &Path| stack::spec::Options {
            files: vec![f],
            working_dir: dir.to_path_buf(),
            environment: HashMap::from([("HOME".into(), "/home/user".into())]),
            ..Default::default()
        };
        let Ok(first) = stack::spec::load(&opts(file.clone(), file.parent().unwrap())) else {
            continue;
        };
        let yaml = stack::cli::render::stack(&first.stack, None, stack::cli::args::Format::Yaml);
        let copy = write(tmp.path(), "compose.yaml", &yaml);
        // The printed services are the enabled ones; their profiles may have
        // come from the original directory's .env, so enable them all.
        let mut again_opts = opts(copy, tmp.path());
        again_opts.profiles = vec!["*".into()];
        let second = stack::spec::load(&again_opts).unwrap_or_else(|e| {
            panic!(
                "{} printed output that does not load:\n{e}\n{yaml}",
                file.display()
            )
        });
        let again = stack::cli::render::stack(&second.stack, None, stack::cli::args::Format::Yaml);
        assert_eq!(yaml, again, "{} does not round-trip", file.display());
        checked += 1;
    }
    println!("round trip: {checked} corpus files print the same bytes when reloaded");
    assert!(checked > 200, "only {checked} files checked");
}
