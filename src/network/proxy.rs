//! The userland proxy: a published port served by stack itself.
//!
//! Kernel DNAT serves connections that arrive on the host's addresses, but
//! not those to `127.0.0.1`: the kernel refuses to route a loopback source
//! out of a bridge unless `route_localnet` is switched on, which would let
//! the outside reach services bound to loopback. docker's answer, and
//! stack's, is a proxy: it listens on the published address and port and
//! splices each TCP connection (or UDP flow) to the container.
//!
//! The listener is bound *before* any rule is written: binding is the test
//! that the host port is free, and holding it keeps another program from
//! taking it while the container runs. Binding port 0 lets the kernel choose
//! a free port, which is how random host ports are picked.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Mutex;
use tokio::task::{JoinHandle, JoinSet};

use super::nft::Proto;

/// A UDP flow without traffic for this long is forgotten.
const UDP_IDLE: Duration = Duration::from_secs(60);

enum Socket {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

/// A host port held by stack, not yet forwarding.
pub struct BoundPort {
    pub protocol: Proto,
    /// The address actually bound (with the chosen port when 0 was asked).
    pub addr: SocketAddr,
    socket: Socket,
}

impl std::fmt::Debug for BoundPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BoundPort({}/{})", self.addr, self.protocol.as_str())
    }
}

/// Binds `addr` for `protocol`; fails when the port is taken.
pub fn bind(protocol: Proto, addr: SocketAddr) -> io::Result<BoundPort> {
    let socket = match protocol {
        Proto::Tcp => {
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Socket::Tcp(l)
        }
        Proto::Udp => {
            let s = std::net::UdpSocket::bind(addr)?;
            s.set_nonblocking(true)?;
            Socket::Udp(s)
        }
    };
    let addr = match &socket {
        Socket::Tcp(l) => l.local_addr()?,
        Socket::Udp(s) => s.local_addr()?,
    };
    Ok(BoundPort {
        protocol,
        addr,
        socket,
    })
}

/// A running proxy; dropping it stops it and every connection it carries.
#[derive(Debug)]
pub struct Proxy {
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BoundPort {
    /// Starts forwarding to `target`. Needs a tokio runtime.
    pub fn start(self, target: SocketAddr) -> io::Result<Proxy> {
        let task = match self.socket {
            Socket::Tcp(l) => {
                let l = TcpListener::from_std(l)?;
                tokio::spawn(serve_tcp(l, target))
            }
            Socket::Udp(s) => {
                let s = UdpSocket::from_std(s)?;
                tokio::spawn(serve_udp(Arc::new(s), target))
            }
        };
        Ok(Proxy { task })
    }
}

async fn serve_tcp(listener: TcpListener, target: SocketAddr) {
    // Owned here, so aborting this task aborts every connection too.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else { continue };
                conns.spawn(async move {
                    // A container that is not listening: the client sees the close.
                    if let Ok(mut upstream) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, target: SocketAddr) {
    let flows: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut relays = JoinSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((n, client)) = received else { continue };
                let upstream = {
                    let mut map = flows.lock().await;
                    match map.get(&client) {
                        Some(u) => u.clone(),
                        None => {
                            let Ok(u) = UdpSocket::bind(("0.0.0.0", 0)).await else { continue };
                            if u.connect(target).await.is_err() {
                                continue;
                            }
                            let u = Arc::new(u);
                            map.insert(client, u.clone());
                            relays.spawn(relay_back(u.clone(), socket.clone(), client, flows.clone()));
                            u
                        }
                    }
                };
                let _ = upstream.send(&buf[..n]).await;
            }
            Some(_) = relays.join_next(), if !relays.is_empty() => {}
        }
    }
}

/// Replies from the container go back to `client` from the published
/// address, until the flow is idle.
async fn relay_back(
    upstream: Arc<UdpSocket>,
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    flows: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, upstream.recv(&mut buf)).await {
        let _ = listener.send_to(&buf[..n], client).await;
    }
    flows.lock().await.remove(&client);
}
