//! Pulls from a real registry (Debian's docker-registry on 127.0.0.1),
//! with test images built from the static busybox.

#[path = "support/images.rs"]
mod images;

use std::path::Path;

use images::{Registry, push, stack, umoci_image};
use stack::runtime::image::{Credentials, ImageRef, ImageStore, Platform, PullEvent, PullOptions};

fn pull(
    store: &ImageStore,
    reference: &str,
    options: &PullOptions,
) -> Result<stack::runtime::image::Image, String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reference = ImageRef::parse(reference).unwrap();
    runtime
        .block_on(store.pull(&reference, options, &|_: PullEvent| {}))
        .map_err(|e| e.to_string())
}

fn no_docker_config(root: &Path) -> PullOptions {
    PullOptions {
        docker_config: Some(root.join("absent/config.json")),
        ..PullOptions::default()
    }
}

#[test]
fn pulls_by_tag_and_by_digest() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let layout = work.path().join("layout");
    let manifest = umoci_image(
        work.path(),
        &layout,
        "v1",
        "amd64",
        &[vec![("hello.txt", b"hi\n".to_vec())]],
    );
    let reference = push(&registry, &layout, "v1", "tests/busybox", &[]);

    // By tag, through the command line.
    let root = work.path().join("root");
    let out = images::run(stack(&root).args(["image", "pull", &reference]));
    let store = ImageStore::open(&root).unwrap();
    let image = store.get(&reference).unwrap();
    assert_eq!(out.trim(), image.id);
    assert_eq!(image.tags, std::slice::from_ref(&reference));
    assert_eq!(image.layers.len(), 2);
    assert!(image.layers[0].join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read(image.layers[1].join("hello.txt")).unwrap(),
        b"hi\n"
    );
    assert_eq!(image.config.cmd.as_deref(), Some(&["sh".to_owned()][..]));
    assert!(
        image
            .config
            .env
            .as_ref()
            .unwrap()
            .contains(&"GREETING=hello".to_owned())
    );
    assert_eq!(image.config.working_dir.as_deref(), Some("/tmp"));
    assert!(image.pulled_at.is_some());
    let repo_digest = format!("{}/tests/busybox@{manifest}", registry.host());
    assert_eq!(image.repo_digests, std::slice::from_ref(&repo_digest));

    // By digest, into a fresh store: the same image, found by that digest.
    let root2 = work.path().join("root2");
    let store2 = ImageStore::open(&root2).unwrap();
    let by_digest = pull(&store2, &repo_digest, &no_docker_config(&root2)).unwrap();
    assert_eq!(by_digest.id, image.id);
    assert!(by_digest.tags.is_empty());
    assert_eq!(store2.get(&repo_digest).unwrap().id, image.id);
    // Docker's v2 schema 2 media types work the same.
    let docker = push(
        &registry,
        &layout,
        "v1",
        "tests/docker-format",
        &["--format", "v2s2"],
    );
    let manifest = registry.manifest("tests/docker-format", "v1");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let pulled = pull(&store2, &docker, &no_docker_config(&root2)).unwrap();
    assert_eq!(pulled.diff_ids, image.diff_ids);
    assert_eq!(pulled.config.cmd, image.config.cmd);

    // A digest that does not exist is a clear registry error.
    let missing = format!(
        "{}/tests/busybox@sha256:{}",
        registry.host(),
        "0".repeat(64)
    );
    let err = pull(&store2, &missing, &no_docker_config(&root2)).unwrap_err();
    assert!(err.contains("registry error"), "{err}");
}

#[test]
fn an_index_with_two_platforms_gives_the_requested_one() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let layout = work.path().join("layout");
    let amd = umoci_image(
        work.path(),
        &layout,
        "amd",
        "amd64",
        &[vec![("arch", b"amd64".to_vec())]],
    );
    let arm = umoci_image(
        work.path(),
        &layout,
        "arm",
        "arm64",
        &[vec![("arch", b"arm64".to_vec())]],
    );
    images::add_index(&layout, "multi", &[(&arm, "arm64"), (&amd, "amd64")]);
    let reference = push(&registry, &layout, "multi", "tests/multi", &["--all"]);

    let root = work.path().join("root");
    let store = ImageStore::open(&root).unwrap();
    let mut options = no_docker_config(&root);
    for (platform, manifest, arch) in [
        ("linux/amd64", &amd, "amd64"),
        ("linux/arm64", &arm, "arm64"),
    ] {
        options.platform = Some(Platform::parse(platform).unwrap());
        let image = pull(&store, &reference, &options).unwrap();
        assert_eq!(&image.manifest_digest, manifest, "{platform}");
        assert_eq!(image.platform.architecture, arch);
        assert_eq!(
            std::fs::read(image.layers.last().unwrap().join("arch")).unwrap(),
            arch.as_bytes()
        );
    }
    options.platform = Some(Platform::parse("linux/s390x").unwrap());
    let err = pull(&store, &reference, &options).unwrap_err();
    assert!(
        err.contains("no image for linux/s390x") && err.contains("linux/arm64, linux/amd64"),
        "{err}"
    );
}

#[test]
fn basic_auth_uses_credentials_from_docker_config() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start_with_auth("tester", "s3cret");
    let layout = work.path().join("layout");
    umoci_image(work.path(), &layout, "v1", "amd64", &[]);
    let reference = push(
        &registry,
        &layout,
        "v1",
        "tests/private",
        &["--dest-creds", "tester:s3cret"],
    );
    let root = work.path().join("root");
    let store = ImageStore::open(&root).unwrap();

    // Anonymous and wrong credentials are refused, with advice.
    let err = pull(&store, &reference, &no_docker_config(&root)).unwrap_err();
    assert!(err.contains("docker login") || err.contains("401"), "{err}");
    let wrong = PullOptions {
        credentials: Some(Credentials::Basic {
            username: "tester".into(),
            password: "wrong".into(),
        }),
        ..PullOptions::default()
    };
    let err = pull(&store, &reference, &wrong).unwrap_err();
    assert!(err.contains("docker login"), "{err}");

    // ~/.docker/config.json as `docker login` writes it.
    let config_dir = work.path().join("docker");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.json"),
        format!(
            r#"{{"auths": {{"{}": {{"auth": "dGVzdGVyOnMzY3JldA=="}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let options = PullOptions {
        docker_config: Some(config_dir.join("config.json")),
        ..PullOptions::default()
    };
    let image = pull(&store, &reference, &options).unwrap();
    assert!(image.layers[0].join("bin/busybox").is_file());

    // And through the command line, with DOCKER_CONFIG.
    let root2 = work.path().join("root2");
    images::run(
        stack(&root2)
            .env("DOCKER_CONFIG", &config_dir)
            .args(["image", "pull", "-q", &reference]),
    );
    assert!(
        ImageStore::open(&root2)
            .unwrap()
            .resolve(&reference)
            .unwrap()
            .is_some()
    );
}

#[test]
fn a_corrupted_blob_is_rejected_and_not_stored() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let layout = work.path().join("layout");
    umoci_image(
        work.path(),
        &layout,
        "v1",
        "amd64",
        &[vec![("data", vec![7u8; 4096])]],
    );
    let reference = push(&registry, &layout, "v1", "tests/corrupt", &[]);
    // Flip bytes of the top layer in the registry's storage, size unchanged.
    let manifest = registry.manifest("tests/corrupt", "v1");
    let layer = manifest["layers"][1]["digest"].as_str().unwrap().to_owned();
    let file = registry.blob_file(&layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let root = work.path().join("root");
    let store = ImageStore::open(&root).unwrap();
    let err = pull(&store, &reference, &no_docker_config(&root)).unwrap_err();
    assert!(err.to_lowercase().contains("digest"), "{err}");
    assert!(
        !store.has_blob(&layer),
        "the corrupt blob must not be stored"
    );
    assert!(
        store.resolve(&reference).unwrap().is_none(),
        "no image is recorded"
    );
    let leftovers = std::fs::read_dir(store.dir().join("tmp")).unwrap().count();
    assert_eq!(leftovers, 0, "temporary files are cleaned up");
}

#[test]
fn pulling_twice_downloads_once() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let layout = work.path().join("layout");
    umoci_image(
        work.path(),
        &layout,
        "v1",
        "amd64",
        &[vec![("a", b"1".to_vec())]],
    );
    umoci_image(
        work.path(),
        &layout,
        "v2",
        "amd64",
        &[vec![("a", b"2".to_vec())]],
    );
    let v1 = push(&registry, &layout, "v1", "tests/twice", &[]);
    let v2 = push(&registry, &layout, "v2", "tests/twice", &[]);
    let root = work.path().join("root");
    let store = ImageStore::open(&root).unwrap();
    let options = no_docker_config(&root);

    let before = registry.blob_gets();
    let first = pull(&store, &v1, &options).unwrap();
    let after_first = registry.blob_gets();
    // Config + 2 layers.
    assert_eq!(after_first - before, 3);
    let events = std::sync::Mutex::new(Vec::new());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let again = runtime
        .block_on(store.pull(&ImageRef::parse(&v1).unwrap(), &options, &|e| {
            events.lock().unwrap().push(e)
        }))
        .unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(
        registry.blob_gets(),
        after_first,
        "nothing downloaded the second time"
    );
    let cached = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, PullEvent::LayerCached { .. }))
        .count();
    assert_eq!(cached, 2);

    // Another image sharing the busybox layer downloads only what differs.
    let second = pull(&store, &v2, &options).unwrap();
    assert_eq!(
        registry.blob_gets() - after_first,
        2,
        "config + the one new layer"
    );
    assert_eq!(
        second.layers[0], first.layers[0],
        "the shared layer is unpacked once"
    );
}

#[test]
fn stack_pull_pulls_the_services_images() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let layout = work.path().join("layout");
    umoci_image(work.path(), &layout, "v1", "amd64", &[]);
    let reference = push(&registry, &layout, "v1", "tests/app", &[]);
    let project = work.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("compose.yaml"),
        format!(
            "services:\n  web:\n    image: {reference}\n  built:\n    image: local/built\n    build: .\n    pull_policy: build\n  broken:\n    image: {}/tests/missing:v1\n",
            registry.host()
        ),
    )
    .unwrap();
    let root = work.path().join("root");
    let compose = project.join("compose.yaml");

    // One service's image is missing: the command fails and says which,
    // unless told to go on.
    let failed = stack(&root)
        .arg("-f")
        .arg(&compose)
        .arg("pull")
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("service `broken`") && stderr.contains("--ignore-pull-failures"),
        "{stderr}"
    );
    let ok = stack(&root)
        .arg("-f")
        .arg(&compose)
        .args(["pull", "-q", "--ignore-pull-failures"])
        .output()
        .unwrap();
    assert!(ok.status.success());
    let store = ImageStore::open(&root).unwrap();
    assert!(store.resolve(&reference).unwrap().is_some());
    assert!(
        store.resolve("local/built").unwrap().is_none(),
        "pull_policy: build is not pulled"
    );

    // Only the named service.
    let root2 = work.path().join("root2");
    images::run(stack(&root2).arg("-f").arg(&compose).args(["pull", "web"]));
    assert_eq!(ImageStore::open(&root2).unwrap().list().unwrap().len(), 1);
}

#[test]
fn gzip_zstd_and_uncompressed_layers_pull_to_the_same_layers() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let layout = work.path().join("layout");
    umoci_image(
        work.path(),
        &layout,
        "v1",
        "amd64",
        &[vec![("data", vec![3u8; 10_000])]],
    );
    // Re-encode the layers: none (a `dir:` copy, decompressed), then zstd
    // (skopeo compresses uncompressed layers with the format asked for).
    let plain = work.path().join("plain");
    images::skopeo_copy(
        &layout,
        "v1",
        &format!("dir:{}", plain.display()),
        &["--dest-decompress"],
    );
    let zstd = work.path().join("zstd");
    images::run(std::process::Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "-q",
        "--dest-compress-format",
        "zstd",
        &format!("dir:{}", plain.display()),
        &format!("oci:{}:v1", zstd.display()),
    ]));
    let gz_ref = push(&registry, &layout, "v1", "tests/gzip", &[]);
    // skopeo re-encodes what it pushes to a registry as gzip: push these
    // with the registry client itself, layers as they are.
    let zstd_index = read_json(&zstd.join("index.json"));
    let zstd_blobs = zstd.join("blobs/sha256");
    let zstd_manifest = read_json(
        &zstd_blobs.join(
            zstd_index["manifests"][0]["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:"),
        ),
    );
    push_as_is(&registry, &zstd_manifest, &zstd_blobs, "tests/zstd:v1");
    let zstd_ref = format!("{}/tests/zstd:v1", registry.host());
    push_as_is(
        &registry,
        &read_json(&plain.join("manifest.json")),
        &plain,
        "tests/plain:v1",
    );
    let plain_ref = format!("{}/tests/plain:v1", registry.host());

    let media_types = |repo: &str| -> Vec<String> {
        registry.manifest(repo, "v1")["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        media_types("tests/gzip")
            .iter()
            .all(|m| m.ends_with("gzip"))
    );
    assert!(
        media_types("tests/zstd")
            .iter()
            .all(|m| m.ends_with("zstd"))
    );
    assert!(
        media_types("tests/plain")
            .iter()
            .all(|m| m.ends_with(".tar")),
        "{:?}",
        media_types("tests/plain")
    );

    let mut diff_ids = Vec::new();
    for (i, reference) in [gz_ref, zstd_ref, plain_ref].iter().enumerate() {
        let root = work.path().join(format!("root{i}"));
        let store = ImageStore::open(&root).unwrap();
        let image = pull(&store, reference, &no_docker_config(&root)).unwrap();
        assert_eq!(
            std::fs::read(image.layers[1].join("data")).unwrap(),
            vec![3u8; 10_000],
            "{reference}"
        );
        diff_ids.push(image.diff_ids);
    }
    assert_eq!(diff_ids[0], diff_ids[1]);
    assert_eq!(diff_ids[0], diff_ids[2]);
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Pushes the image `manifest` describes, its blobs named by hex digest in
/// `blobs`, with each layer's media type and bytes unchanged.
fn push_as_is(registry: &Registry, manifest: &serde_json::Value, blobs: &Path, name: &str) {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    let blob = |d: &serde_json::Value| {
        std::fs::read(blobs.join(d["digest"].as_str().unwrap().trim_start_matches("sha256:")))
            .unwrap()
    };
    let layers: Vec<ImageLayer> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| ImageLayer::new(blob(l), l["mediaType"].as_str().unwrap().to_owned(), None))
        .collect();
    let config = Config::new(
        blob(&manifest["config"]),
        "application/vnd.oci.image.config.v1+json".into(),
        None,
    );
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let reference: oci_client::Reference = format!("{}/{name}", registry.host()).parse().unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(client.push(
            &reference,
            &layers,
            config,
            &oci_client::secrets::RegistryAuth::Anonymous,
            None,
        ))
        .unwrap();
}
