//! The UDP half of the conformance test's stand-in server: answers every
//! datagram on port 10001 with the same bytes. Busybox's `nc` has no UDP
//! mode, so `tests/conformance_runtime.rs` compiles this file with
//! `rustc` into a static binary and puts it into the test image.

fn main() {
    let socket = std::net::UdpSocket::bind("0.0.0.0:10001").expect("port 10001 is free");
    let mut buf = [0u8; 65536];
    loop {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    }
}
