//! What a shim gives back once the container runs.
//!
//! A shim lives as long as its container, so its private memory is paid
//! per container, for hours. Setting up is what needs memory (the parsed
//! configuration, the compiled seccomp program, deep call chains while
//! parsing); serving needs little. So once setup is done, the shim returns
//! the heap that is free again (`malloc_trim`) and the part of its stack
//! that the setup's deep calls touched and nothing uses any more: pages
//! below the current frame hold no live data, and `MADV_DONTNEED` turns
//! them back into untouched memory, read as zeros should they be used
//! again.

/// How much stack below the caller's frame is kept: room for the calls
/// this function itself makes while releasing the rest.
const STACK_MARGIN: usize = 64 * 1024;

/// Releases the free heap and the unused depth of the stack.
pub fn release_after_setup() {
    release_unused_stack();
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
}

#[inline(never)]
fn release_unused_stack() {
    let marker = 0u8;
    let here = std::ptr::addr_of!(marker) as usize;
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    // "start-end perms ... [stack]": the main thread's stack grows down
    // from `end` towards `start`.
    let Some(start) = maps
        .lines()
        .find(|l| l.ends_with("[stack]"))
        .and_then(|l| usize::from_str_radix(l.split('-').next()?, 16).ok())
    else {
        return;
    };
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let end = here.saturating_sub(STACK_MARGIN) & !(page - 1);
    if end > start {
        // SAFETY: [start, end) is the main thread's stack below every live
        // frame (the margin covers this call's own): nothing there is
        // used, and discarded anonymous pages read back as zeros.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}
