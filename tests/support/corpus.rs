//! Where the shared Compose corpus is: `$STACK_CORPUS`, else `../shared/corpus`
//! beside the repository (CI lays it there).

use std::path::{Path, PathBuf};

/// The corpus directory, or `None` after saying loudly that it is missing
/// (and failing on CI, where it must be present).
pub fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("STACK_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.is_dir() {
        return Some(dir);
    }
    eprintln!(
        "\n\n*** COMPOSE CORPUS MISSING: {} not found (set STACK_CORPUS). \
         The corpus tests did not run. ***\n\n",
        dir.display()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "the Compose corpus is missing on CI"
    );
    None
}

/// Every `.yml` / `.yaml` file below `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                todo.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yml" | "yaml")
            ) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
