//! Pull-and-unpack benchmark: stack against `skopeo copy` + `tar -x`.
//!
//! Builds a 3-layer image of a few tens of MiB (busybox, then two layers of
//! mixed random and text data), pushes it to a local docker-registry, and
//! in the same run times, each from a cold store: stack's pull (download,
//! verify, unpack every layer) and `skopeo copy` into an OCI directory
//! followed by `tar -xzf` of each layer. Prints both medians and their
//! ratio. Goal: stack no slower than skopeo plus tar (ratio <= 1).
//!
//! `cargo bench --bench pull` (needs root, docker-registry, skopeo, umoci,
//! busybox-static; STACK_BENCH_RUNS sets the number of runs, default 7).

#[path = "../tests/support/images.rs"]
mod images;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use stack::runtime::image::{ImageRef, ImageStore, PullOptions};

/// Pseudo-random bytes (xorshift), so gzip cannot shrink them away.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn text(len: usize) -> Vec<u8> {
    let line = b"the quick brown fox jumps over the lazy dog 0123456789\n";
    line.iter().copied().cycle().take(len).collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("STACK_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let work = tempfile::tempdir().unwrap();
    let registry = images::Registry::start();
    let layout = work.path().join("layout");
    const MIB: usize = 1 << 20;
    let layer2 = vec![
        ("data/random.bin", noise(12 * MIB, 1)),
        ("data/text.txt", text(8 * MIB)),
    ];
    let layer3 = (0..200)
        .map(|i| {
            (
                Box::leak(format!("srv/file{i}.bin").into_boxed_str()) as &str,
                noise(64 * 1024, i + 7),
            )
        })
        .collect::<Vec<_>>();
    images::umoci_image(work.path(), &layout, "v1", "amd64", &[layer2, layer3]);
    let reference = images::push(&registry, &layout, "v1", "bench/app", &[]);
    let blobs: u64 = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    println!(
        "image: {reference}, 3 layers, {:.1} MiB of blobs in the layout",
        blobs as f64 / MIB as f64
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let image_ref = ImageRef::parse(&reference).unwrap();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // stack: a fresh store each run.
        let root = work.path().join(format!("stack-{i}"));
        let start = Instant::now();
        let store = ImageStore::open(&root).unwrap();
        let options = PullOptions {
            docker_config: Some(root.join("none.json")),
            ..PullOptions::default()
        };
        let image = runtime
            .block_on(store.pull(&image_ref, &options, &|_| {}))
            .unwrap();
        ours.push(start.elapsed());
        assert_eq!(image.layers.len(), 3);

        // skopeo copy to an OCI directory, then tar -x of every layer.
        let dir = work.path().join(format!("skopeo-{i}"));
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        let start = Instant::now();
        images::run(
            Command::new("skopeo")
                .args(["--insecure-policy", "copy", "-q", "--src-tls-verify=false"])
                .arg(format!("docker://{reference}"))
                .arg(format!("oci:{}/layout:v1", dir.display())),
        );
        let layout_dir = dir.join("layout");
        for layer in layers_of(&layout_dir) {
            images::run(
                Command::new("tar")
                    .arg("-xzf")
                    .arg(&layer)
                    .arg("-C")
                    .arg(&rootfs),
            );
        }
        theirs.push(start.elapsed());
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (a, b) = (median(ours), median(theirs));
    println!(
        "stack pull + unpack:        {:>8.1} ms (median of {runs})",
        a.as_secs_f64() * 1e3
    );
    println!(
        "skopeo copy + tar -x:       {:>8.1} ms (median of {runs})",
        b.as_secs_f64() * 1e3
    );
    println!(
        "ratio stack / skopeo+tar:   {:>8.2} (goal: <= 1)",
        a.as_secs_f64() / b.as_secs_f64()
    );
}

/// The layer blobs of the only image of an OCI layout, bottom first.
fn layers_of(layout: &Path) -> Vec<std::path::PathBuf> {
    let read = |d: &str| -> serde_json::Value {
        let path = layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = read(index["manifests"][0]["digest"].as_str().unwrap());
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            layout
                .join("blobs/sha256")
                .join(l["digest"].as_str().unwrap().trim_start_matches("sha256:"))
        })
        .collect()
}
