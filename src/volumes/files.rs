//! Secrets, configs and bind-mount sources: the host-side files a container mounts.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;

use super::VolumeError;
use crate::spec::env::Environment;
use crate::spec::model::FileObject;
use crate::state::write_atomic;

/// Writes a secret's or config's content to `dest` with the owner and mode
/// the service asks for (default root and 0444), for the runtime to mount
/// read-only. The content comes from the object's file, an environment
/// variable, or inline content. Docker compose ignores uid, gid and mode
/// for file-based secrets; stack honours them.
pub fn write_file_object(
    object: &FileObject,
    env: &Environment,
    dest: &Path,
    uid: u32,
    gid: u32,
    mode: u32,
) -> Result<(), VolumeError> {
    let content: Vec<u8> = if let Some(file) = &object.file {
        fs::read(file).map_err(VolumeError::io("read", file))?
    } else if let Some(var) = &object.environment {
        match env.get(var) {
            Some(value) => value.as_bytes().to_vec(),
            None => {
                return Err(VolumeError::BadOption(format!(
                    "`environment: {var}` of `{}` names a variable that is not set",
                    object.name
                )));
            }
        }
    } else if let Some(content) = &object.content {
        content.as_bytes().to_vec()
    } else {
        return Err(VolumeError::BadOption(format!(
            "`{}` has no file, environment or content to take its value from",
            object.name
        )));
    };
    write_atomic(dest, &content)?;
    chown(dest, Some(uid), Some(gid)).map_err(VolumeError::io("chown", dest))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(VolumeError::io("chmod", dest))
}

/// Makes sure a bind mount's host path exists: a missing one is created as
/// a directory (as docker does) unless the service forbids it.
pub fn prepare_bind_source(source: &Path, create_host_path: bool) -> Result<(), VolumeError> {
    match fs::symlink_metadata(source) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !create_host_path {
                return Err(VolumeError::MissingBindSource(source.to_path_buf()));
            }
            fs::create_dir_all(source).map_err(VolumeError::io("create", source))
        }
        Err(e) => Err(VolumeError::io("inspect", source)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn secrets_from_file_environment_and_content_with_owner_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("pw.txt");
        fs::write(&src, "hunter2").unwrap();
        let env = Environment::from_pairs([("TOKEN", "t0k")]);
        let cases = [
            (
                FileObject {
                    name: "a".into(),
                    file: Some(src),
                    ..FileObject::default()
                },
                "hunter2",
            ),
            (
                FileObject {
                    name: "b".into(),
                    environment: Some("TOKEN".into()),
                    ..FileObject::default()
                },
                "t0k",
            ),
            (
                FileObject {
                    name: "c".into(),
                    content: Some("inline".into()),
                    ..FileObject::default()
                },
                "inline",
            ),
        ];
        for (object, expected) in cases {
            let dest = dir.path().join("run/secrets").join(&object.name);
            write_file_object(&object, &env, &dest, 1000, 1001, 0o400).unwrap();
            assert_eq!(fs::read_to_string(&dest).unwrap(), expected);
            let meta = fs::metadata(&dest).unwrap();
            assert_eq!(meta.mode() & 0o7777, 0o400);
            if rustix::process::geteuid().is_root() {
                assert_eq!((meta.uid(), meta.gid()), (1000, 1001));
            }
        }
        let missing = FileObject {
            name: "d".into(),
            environment: Some("NOPE".into()),
            ..FileObject::default()
        };
        let err =
            write_file_object(&missing, &env, &dir.path().join("d"), 0, 0, 0o444).unwrap_err();
        assert!(err.to_string().contains("NOPE"), "{err}");
    }

    #[test]
    fn bind_sources_are_created_unless_forbidden() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b");
        let err = prepare_bind_source(&path, false).unwrap_err();
        assert!(err.to_string().contains("create_host_path"), "{err}");
        assert!(!path.exists());
        prepare_bind_source(&path, true).unwrap();
        assert!(path.is_dir());
    }
}
