//! The attach channel's frames: a client's terminal or pipes, joined to a
//! running container's standard streams through its shim.
//!
//! After the request line `attach` and the answer `ok`, a connection to
//! `shim.sock` carries frames both ways, each a kind byte, a big-endian
//! 32-bit length and that many bytes:
//!
//! | kind | direction | payload |
//! |---|---|---|
//! | 0 `STDIN` | client → shim | bytes for the container's standard input |
//! | 1 `STDOUT` | shim → client | the container's output (all of it, with a terminal) |
//! | 2 `STDERR` | shim → client | the container's error output |
//! | 3 `EXIT` | shim → client | an exit line (`exited <code> <signal> <oom>`), last |
//! | 4 `CLOSE_STDIN` | client → shim | end of input: the stdin pipe is closed |
//! | 5 `RESIZE` | client → shim | rows and columns, two big-endian u16: the terminal's size |
//!
//! Output is copied to every attached client as it is read, besides going
//! to the log; a client that falls more than [`MAX_PENDING`] behind makes
//! the shim stop reading the container's output until it catches up
//! (the container then blocks on a full pipe, as under docker attach).

/// Bytes for the container's standard input.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// The container exited; the payload is an exit line.
pub const EXIT: u8 = 3;
/// No more input.
pub const CLOSE_STDIN: u8 = 4;
/// The client's terminal size changed.
pub const RESIZE: u8 = 5;

/// Output queued for one client beyond which the container's output waits.
pub const MAX_PENDING: usize = 1 << 20;

/// One frame, encoded.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + payload.len());
    f.push(kind);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Takes the first complete frame off `buf`, if there is one.
pub fn take_frame(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return None;
    }
    let kind = buf[0];
    let payload = buf[5..5 + len].to_vec();
    buf.drain(..5 + len);
    Some((kind, payload))
}

/// A resize frame's payload.
pub fn resize(rows: u16, cols: u16) -> Vec<u8> {
    let mut p = rows.to_be_bytes().to_vec();
    p.extend_from_slice(&cols.to_be_bytes());
    p
}

/// Rows and columns from a resize payload.
pub fn parse_resize(p: &[u8]) -> Option<(u16, u16)> {
    (p.len() == 4).then(|| {
        (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_wait_for_their_end() {
        let mut buf = frame(STDOUT, b"hello");
        buf.extend(frame(RESIZE, &resize(24, 80)));
        let whole = buf.clone();
        let mut partial = whole[..7].to_vec();
        assert_eq!(take_frame(&mut partial), None);
        assert_eq!(take_frame(&mut buf), Some((STDOUT, b"hello".to_vec())));
        let (kind, p) = take_frame(&mut buf).unwrap();
        assert_eq!((kind, parse_resize(&p)), (RESIZE, Some((24, 80))));
        assert!(buf.is_empty());
    }
}
