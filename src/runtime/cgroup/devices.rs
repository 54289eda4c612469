//! Device rules on cgroup v2: a small eBPF program attached to the cgroup.
//!
//! cgroup v1 has a `devices` controller that takes rules as text
//! (`c 1:3 rwm`). v2 has none; instead the kernel runs a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program on every device open or mknod in
//! the cgroup and allows it when the program returns 1. The program is
//! generated here from the same rules, as raw eBPF instructions (it is a
//! handful of compares, so no compiler or libbpf is needed): the rules are
//! checked from the last to the first, the first match decides, nothing
//! matching means deny. This is what runc and crun do too.
//!
//! The context the kernel passes (`struct bpf_cgroup_dev_ctx`) is three
//! 32-bit words: `access_type` (access in the high 16 bits: mknod 1, read 2,
//! write 4; type in the low 16: block 1, char 2), `major`, `minor`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::CgroupError;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

/// One eBPF instruction.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    (code as u64)
        | (((dst & 0xf) | ((src & 0xf) << 4)) as u64) << 8
        | ((off as u16) as u64) << 16
        | ((imm as u32) as u64) << 32
}

const LDX_W: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
const MOV_X: u8 = 0xbf; // r_dst = r_src
const MOV_K: u8 = 0xb7; // r_dst = imm
const AND_K: u8 = 0x57; // r_dst &= imm
const RSH_K: u8 = 0x77; // r_dst >>= imm
const JNE_K: u8 = 0x55; // if r_dst != imm goto +off
const EXIT: u8 = 0x95;

/// A rule parsed from `type major:minor access` (`*` for any number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// 0 any, 1 block, 2 char.
    pub kind: i32,
    pub major: Option<i32>,
    pub minor: Option<i32>,
    /// mknod 1, read 2, write 4.
    pub access: i32,
}

impl Rule {
    pub fn parse(allow: bool, text: &str) -> Option<Rule> {
        let mut parts = text.split_whitespace();
        let kind = match parts.next()? {
            "a" => 0,
            "b" => 1,
            "c" => 2,
            _ => return None,
        };
        let (major, minor) = match parts.next() {
            Some(nums) => nums.split_once(':')?,
            None => ("*", "*"),
        };
        let num = |s: &str| {
            if s == "*" {
                Some(None)
            } else {
                s.parse().ok().map(Some)
            }
        };
        let access = parts.next().unwrap_or("rwm").chars().fold(0, |a, c| {
            a | match c {
                'm' => 1,
                'r' => 2,
                'w' => 4,
                _ => 0,
            }
        });
        Some(Rule {
            allow,
            kind,
            major: num(major)?,
            minor: num(minor)?,
            access,
        })
    }
}

/// The program for `rules` (in OCI order: later rules win; no rule
/// matching means deny).
pub fn program(rules: &[Rule]) -> Vec<u64> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(MOV_X, 3, 2, 0, 0),
        insn(AND_K, 2, 0, 0, 0xffff), // r2 = type
        insn(RSH_K, 3, 0, 0, 16),     // r3 = access
        insn(LDX_W, 4, 1, 4, 0),      // r4 = major
        insn(LDX_W, 5, 1, 8, 0),      // r5 = minor
    ];
    for rule in rules.iter().rev() {
        // Each check jumps past the rest of this rule's block on mismatch.
        let mut checks: Vec<Vec<u64>> = Vec::new();
        if rule.kind != 0 {
            checks.push(vec![insn(JNE_K, 2, 0, 0, rule.kind)]);
        }
        if rule.access & 7 != 7 {
            // The request must not ask for more than the rule gives.
            checks.push(vec![
                insn(MOV_X, 6, 3, 0, 0),
                insn(AND_K, 6, 0, 0, !rule.access & 7),
                insn(JNE_K, 6, 0, 0, 0),
            ]);
        }
        if let Some(m) = rule.major {
            checks.push(vec![insn(JNE_K, 4, 0, 0, m)]);
        }
        if let Some(m) = rule.minor {
            checks.push(vec![insn(JNE_K, 5, 0, 0, m)]);
        }
        let unconditional = checks.is_empty();
        let tail = [
            insn(MOV_K, 0, 0, 0, i32::from(rule.allow)),
            insn(EXIT, 0, 0, 0, 0),
        ];
        let total: usize = checks.iter().map(Vec::len).sum::<usize>() + tail.len();
        let mut emitted = 0;
        for check in checks {
            emitted += check.len();
            let skip = (total - emitted) as i16;
            for (i, ins) in check.iter().enumerate() {
                if i + 1 == check.len() {
                    // The jump is the last instruction of each check.
                    p.push((ins & !(0xffff << 16)) | (((skip as u16) as u64) << 16));
                } else {
                    p.push(*ins);
                }
            }
        }
        p.extend(tail);
        // Nothing after a rule that matches everything can run, and the
        // verifier refuses unreachable instructions.
        if unconditional {
            return p;
        }
    }
    p.push(insn(MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> std::io::Result<i64> {
    // SAFETY: attr is a zero-padded bpf_attr of the size we pass; every
    // pointer inside it refers to memory that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Loads the program for `rules` and attaches it to the cgroup `dir`. The
/// attachment lives as long as the cgroup.
pub fn attach(dir: &Path, rules: &[Rule]) -> Result<(), CgroupError> {
    let io = |source| CgroupError::Io {
        action: "attach the device filter to",
        path: dir.to_path_buf(),
        source,
    };
    let insns = program(rules);
    let license = b"Apache-2.0\0";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_CGROUP_DEVICE.to_ne_bytes());
    attr[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    let prog = bpf(BPF_PROG_LOAD, &mut attr).map_err(io)?;
    // SAFETY: BPF_PROG_LOAD returned a new descriptor that we now own.
    let prog = unsafe { OwnedFd::from_raw_fd(prog as i32) };
    let cgroup = std::fs::File::open(dir).map_err(io)?;
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(cgroup.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a program on a context, interpreting the few opcodes we emit.
    fn run(p: &[u64], kind: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | kind, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (code, dst, src) = (
                (i & 0xff) as u8,
                ((i >> 8) & 0xf) as usize,
                ((i >> 12) & 0xf) as usize,
            );
            let off = ((i >> 16) & 0xffff) as u16 as i16;
            let imm = (i >> 32) as u32 as i32 as i64 as u64;
            pc += 1;
            match code {
                LDX_W => r[dst] = ctx[off as usize / 4] as u64,
                MOV_X => r[dst] = r[src],
                MOV_K => r[dst] = imm,
                AND_K => r[dst] &= imm,
                RSH_K => r[dst] >>= imm,
                JNE_K => {
                    if r[dst] != imm {
                        pc = (pc as i64 + off as i64) as usize;
                    }
                }
                EXIT => return r[0],
                _ => panic!("unknown opcode {code:#x}"),
            }
        }
    }

    #[test]
    fn rules_parse_from_cgroup_v1_text() {
        assert_eq!(
            Rule::parse(true, "c 1:3 rwm"),
            Some(Rule {
                allow: true,
                kind: 2,
                major: Some(1),
                minor: Some(3),
                access: 7
            })
        );
        assert_eq!(
            Rule::parse(false, "a *:* rwm"),
            Some(Rule {
                allow: false,
                kind: 0,
                major: None,
                minor: None,
                access: 7
            })
        );
        assert_eq!(Rule::parse(true, "x 1:1 r"), None);
    }

    #[test]
    fn the_default_rules_allow_only_the_standard_devices() {
        let rules: Vec<Rule> = super::super::DEFAULT_DEVICE_RULES
            .iter()
            .map(|(allow, t, ma, mi, acc)| {
                let n = |v: &Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
                Rule::parse(*allow, &format!("{t} {}:{} {acc}", n(ma), n(mi))).unwrap()
            })
            .collect();
        let p = program(&rules);
        const CHAR: u32 = 2;
        const BLOCK: u32 = 1;
        assert_eq!(run(&p, CHAR, 2 | 4, 1, 3), 1, "/dev/null read-write");
        assert_eq!(run(&p, CHAR, 2, 136, 7), 1, "a pty");
        assert_eq!(run(&p, BLOCK, 2, 8, 0), 0, "reading a disk");
        assert_eq!(run(&p, BLOCK, 1, 8, 0), 1, "mknod is allowed");
        assert_eq!(run(&p, CHAR, 2, 1, 11), 0, "/dev/kmsg");
    }
}
