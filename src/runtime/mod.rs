//! The runtime: what stack runs containers from, and (later) runs them with.
//!
//! Only the image side exists yet: [`image`] keeps images on disk, pulls
//! them from registries, loads them from archives and unpacks their layers
//! safely, ready to be the lower layers of a container's overlayfs.

pub mod image;
