//! `BPF_MAP_LOOKUP_BATCH` over the per-source map: one walk in large chunks that, unlike
//! `get_next_key`, neither restarts nor skips when the LRU evicts entries meanwhile (the
//! kernel resumes from a bucket index, not from a key that may be gone).

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd},
};

use icmp_guard_common::{SourceKey, SourceRecord};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// Entries fetched per syscall.
const CHUNK: u32 = 4096;

/// The batch member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Every entry of an `LRU_HASH` of `SourceKey -> SourceState`, its value as plain integers.
pub fn sources(map: BorrowedFd<'_>) -> io::Result<Vec<(SourceKey, SourceRecord)>> {
    let mut out = Vec::new();
    for_each_source(map, |key, record| out.push((key, record)))?;
    Ok(out)
}

/// Calls `f` on every entry of an `LRU_HASH` of `SourceKey -> SourceState`, a chunk at a
/// time, so a reader that keeps only some of them never holds the whole table (48 bytes an
/// entry, 768 MiB at the largest `--max-sources`).
pub fn for_each_source(
    map: BorrowedFd<'_>,
    mut f: impl FnMut(SourceKey, SourceRecord),
) -> io::Result<()> {
    let mut keys = vec![SourceKey { addr: [0; 16] }; CHUNK as usize];
    let mut values = vec![SourceRecord::default(); CHUNK as usize];
    // The batch token is a bucket index; 8 bytes hold it with room.
    let (mut token_in, mut token_out) = (0u64, 0u64);
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                (&raw const token_in) as u64
            },
            out_batch: (&raw mut token_out) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK,
            map_fd: map.as_raw_fd().cast_unsigned(),
            ..BatchAttr::default()
        };
        // SAFETY: attr points at live buffers of CHUNK keys and CHUNK values (of the map's
        // value size, asserted in the common crate) and at the two tokens; the kernel writes
        // at most that much.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &raw mut attr,
                size_of::<BatchAttr>(),
            )
        };
        let done = if rc == 0 {
            false
        } else {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ENOENT) {
                return Err(err);
            }
            true
        };
        let filled = attr.count as usize;
        for (key, record) in keys.iter().zip(&values).take(filled) {
            f(*key, *record);
        }
        if done {
            return Ok(());
        }
        token_in = token_out;
        first = false;
    }
}
