// The busybox root filesystem of DESIGN.md's recipe, for end-to-end and
// runtime tests and for the benchmarks: Debian's static busybox with a
// link per applet, root and nobody in /etc/passwd and /etc/group, empty
// name files for stack to bind over, and the mount points a container
// needs. Included (`include!`) by the test supports and as a module
// (`#[path]`) by the benchmarks, so that there is one recipe; hence no
// `use` lines and no inner doc comment here.

/// A busybox root filesystem at `dir/rootfs`.
pub fn busybox_rootfs(dir: &std::path::Path) -> std::path::PathBuf {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "srv", "root", "proc", "sys", "dev"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    for f in ["hosts", "resolv.conf", "hostname"] {
        std::fs::write(rootfs.join("etc").join(f), "").unwrap();
    }
    rootfs
}
