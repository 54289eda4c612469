//! Images without a registry: docker-save archives, OCI layouts, rootfs
//! imports; and the store's command line (ls, inspect, rm, prune).

#[path = "support/images.rs"]
mod images;

use std::process::Command;

use images::{busybox_rootfs, run, skopeo_copy, stack, umoci_image};
use stack::runtime::image::ImageStore;

#[test]
fn loads_a_docker_save_archive() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    umoci_image(
        work.path(),
        &layout,
        "v1",
        "amd64",
        &[vec![("etc/motd", b"welcome\n".to_vec())]],
    );
    let archive = work.path().join("busybox.tar");
    skopeo_copy(
        &layout,
        "v1",
        &format!(
            "docker-archive:{}:localhost/busybox:latest",
            archive.display()
        ),
        &[],
    );

    let root = work.path().join("root");
    let out = run(stack(&root).args(["image", "load", "-i"]).arg(&archive));
    assert_eq!(out.trim(), "Loaded image: localhost/busybox:latest");
    let store = ImageStore::open(&root).unwrap();
    let image = store.get("localhost/busybox").unwrap();
    assert!(image.layers[0].join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read(image.layers[1].join("etc/motd")).unwrap(),
        b"welcome\n"
    );
    assert_eq!(image.config.cmd.as_deref(), Some(&["sh".to_owned()][..]));
    assert!(image.pulled_at.is_none());
    // Every blob the image needs is in the store, under its digest.
    assert!(store.has_blob(&image.id) && store.has_blob(&image.manifest_digest));
    // Flattened: both layers in one directory.
    let flat = work.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    store.flatten(&image, &flat).unwrap();
    assert!(flat.join("bin/busybox").is_file() && flat.join("etc/motd").is_file());
    assert_eq!(
        std::fs::read_dir(store.dir().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn loads_an_oci_layout_directory_and_tar() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    umoci_image(work.path(), &layout, "v1", "amd64", &[]);
    // A layout whose ref name is a full reference, as skopeo writes it.
    let named = work.path().join("named");
    skopeo_copy(
        &layout,
        "v1",
        &format!("oci:{}:example.com/app:2", named.display()),
        &[],
    );

    let root = work.path().join("root");
    let out = run(stack(&root).args(["image", "load", "-i"]).arg(&named));
    assert_eq!(out.trim(), "Loaded image: example.com/app:2");
    let store = ImageStore::open(&root).unwrap();
    let image = store.get("example.com/app:2").unwrap();
    assert!(
        image.layers[0]
            .join("bin/sh")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // The user's directory is left as it was.
    assert!(named.join("index.json").is_file());

    // umoci's bare tag `v1` names no repository: loaded untagged, by ID,
    // from a tar of the layout.
    let tarball = work.path().join("layout.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    let out = run(stack(&root).args(["image", "load", "-i"]).arg(&tarball));
    assert_eq!(out.trim(), format!("Loaded image ID: {}", image.id));

    // Not an image at all.
    let err = stack(&root)
        .args(["image", "load", "-i"])
        .arg(work.path().join("layout/blobs"))
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&err.stderr).contains("neither a docker-save archive"));
}

#[test]
fn imports_a_rootfs_tar_and_directory_with_changes() {
    let work = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(work.path());
    let tarball = work.path().join("rootfs.tar");
    run(Command::new("tar")
        .args(["--numeric-owner", "--sort=name", "--mtime=@0", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    let root = work.path().join("root");
    let id = run(stack(&root).args(["image", "import"]).arg(&tarball).args([
        "mybox:1",
        "--change",
        r#"CMD ["/bin/sh", "-c", "echo hi"]"#,
        "-c",
        "ENV A=1",
        "-c",
        "WORKDIR /tmp",
    ]));
    let store = ImageStore::open(&root).unwrap();
    let image = store.get("mybox:1").unwrap();
    assert_eq!(id.trim(), image.id);
    assert_eq!(image.tags, ["docker.io/library/mybox:1"]);
    // By a short ID, with or without the algorithm, and by full name.
    assert_eq!(store.get(&image.id[7..19]).unwrap().id, image.id);
    assert_eq!(store.get(&image.id[..19]).unwrap().id, image.id);
    assert_eq!(store.get("docker.io/library/mybox:1").unwrap().id, image.id);
    assert!(store.resolve("mybox:2").unwrap().is_none());
    assert_eq!(
        image.config.cmd.as_deref().unwrap(),
        ["/bin/sh", "-c", "echo hi"]
    );
    assert_eq!(image.config.env.as_deref().unwrap(), ["A=1"]);
    assert_eq!(image.config.working_dir.as_deref(), Some("/tmp"));
    assert_eq!(image.layers.len(), 1);
    assert!(image.layers[0].join("bin/busybox").is_file());

    // A directory works too; same content, so the same layer.
    let from_dir = run(stack(&root)
        .args(["image", "import"])
        .arg(&rootfs)
        .arg("mybox:dir"));
    let dir_image = store.get(from_dir.trim()).unwrap();
    assert!(dir_image.layers[0].join("etc/passwd").is_file());

    let bad = stack(&root)
        .args(["image", "import"])
        .arg(&tarball)
        .args(["x", "-c", "RUN true"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`--change RUN true` is not supported"));
}

#[test]
fn ls_inspect_rm_and_prune() {
    let work = tempfile::tempdir().unwrap();
    let rootfs = busybox_rootfs(work.path());
    let root = work.path().join("root");
    let a = run(stack(&root)
        .args(["image", "import"])
        .arg(&rootfs)
        .args(["app:1", "-c", "CMD sh"]));
    run(stack(&root)
        .args(["image", "import"])
        .arg(&rootfs)
        .args(["other:1", "-c", "CMD true"]));

    let ls = run(stack(&root).args(["image", "ls"]));
    assert!(ls.contains("app:1") && ls.contains("other:1"), "{ls}");
    let ids = run(stack(&root).args(["image", "ls", "-q"]));
    assert_eq!(ids.lines().count(), 2);

    let inspect: serde_json::Value =
        serde_json::from_str(&run(stack(&root).args(["image", "inspect", "app:1"]))).unwrap();
    assert_eq!(inspect[0]["id"], a.trim());
    assert_eq!(inspect[0]["config"]["Cmd"][2], "sh");
    let missing = stack(&root)
        .args(["image", "inspect", "nope"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("`nope` is not in the store"));

    // A container of a project uses other:1: prune keeps it.
    let project = root.join("projects/demo");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("state.json"),
        r#"{"project":"demo","revision":1,"networks":{},"volumes":{},"containers":{"demo-x-1":{"name":"demo-x-1","id":"c1","service":"x","replica":1,"config_hash":"h","image":"other:1","revision":1,"one_off":false,"labels":{}}}}"#,
    )
    .unwrap();
    let refused = stack(&root)
        .args(["image", "rm", "other:1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("used by a container"));

    let pruned = run(stack(&root).args(["image", "prune"]));
    assert!(
        pruned.contains(&format!("Deleted: {}", a.trim())),
        "{pruned}"
    );
    let store = ImageStore::open(&root).unwrap();
    assert!(store.resolve("app:1").unwrap().is_none());
    let kept = store.get("other:1").unwrap();
    // Shared layer stays (other:1 needs it); app:1's config blob is gone.
    assert!(kept.layers[0].is_dir());
    assert!(!store.has_blob(a.trim()));

    // Forced, an image a container uses only loses its name: its layers
    // are the container's lower directories.
    let forced = run(stack(&root).args(["image", "rm", "--force", "other:1"]));
    assert!(
        forced.contains("Untagged: docker.io/library/other:1"),
        "{forced}"
    );
    assert!(!forced.contains("Deleted"), "{forced}");
    let dangling = store.get(&kept.id).unwrap();
    assert!(dangling.tags.is_empty() && dangling.layers[0].is_dir());

    // Without the container, rm by ID removes it and everything it had.
    std::fs::remove_dir_all(&project).unwrap();
    let out = run(stack(&root).args(["image", "rm", &kept.id]));
    assert_eq!(out.trim(), format!("Deleted: {}", kept.id));
    assert_eq!(
        std::fs::read_dir(store.dir().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(store.dir().join("layers"))
            .unwrap()
            .count(),
        0
    );
}
