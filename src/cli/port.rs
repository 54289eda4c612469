//! `stack port`: where on the host a container's port is published.
//!
//! The answer comes from the project's network record, which holds the
//! port actually bound, so a randomly assigned host port (`ports: ["80"]`)
//! is reported as the kernel gave it. Exit code 1 when the port is not
//! published.

use std::io::Write as _;

use anyhow::anyhow;

use super::Failure;
use super::args::{Global, PortArgs, Protocol};
use super::containers;

/// Runs `stack port`.
pub fn run(global: &Global, args: &PortArgs) -> Result<(), Failure> {
    let scope = containers::scope(global)?;
    let protocol = match args.protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    };
    let rt = containers::tokio()?;
    let ports = rt.block_on(async {
        let host = containers::open_host(global, &scope).await?;
        let result = async {
            let list =
                containers::containers(&host, &scope, std::slice::from_ref(&args.service), false)
                    .await?;
            let c = containers::replica(&list, &args.service, args.index)?;
            Ok::<_, Failure>(host.networks().ports(&c.name).await)
        }
        .await;
        host.close().await;
        result
    })?;
    let found: Vec<_> = ports
        .iter()
        .filter(|p| p.target == args.port && p.protocol == protocol)
        .collect();
    if found.is_empty() {
        return Err(anyhow!(
            "no port {}/{protocol} of service `{}` is published; `stack ps` shows what is",
            args.port,
            args.service
        )
        .into());
    }
    let mut out = std::io::stdout().lock();
    for p in found {
        let ip = p.host_ip.map_or("0.0.0.0".into(), |i| i.to_string());
        writeln!(out, "{ip}:{}", p.host_port)?;
    }
    Ok(())
}
