//! Frames recorded for the injector: `[u32 length][u32 times][bytes]` records, little endian.

use std::path::Path;

use anyhow::{Context as _, Result, ensure};

/// Writes `(frame, times)` records to `path`.
pub fn write(path: &Path, frames: &[(Vec<u8>, u32)]) -> Result<()> {
    let mut out = Vec::new();
    for (frame, times) in frames {
        out.extend_from_slice(&u32::try_from(frame.len())?.to_le_bytes());
        out.extend_from_slice(&times.to_le_bytes());
        out.extend_from_slice(frame);
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// Reads the records of `path`.
pub fn read(path: &Path) -> Result<Vec<(Vec<u8>, u32)>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rest = bytes.as_slice();
    let mut frames = Vec::new();
    while !rest.is_empty() {
        ensure!(
            rest.len() >= 8,
            "truncated record header in {}",
            path.display()
        );
        let len = u32::from_le_bytes(rest[..4].try_into()?) as usize;
        let times = u32::from_le_bytes(rest[4..8].try_into()?);
        ensure!(
            rest.len() >= 8 + len,
            "truncated frame in {}",
            path.display()
        );
        frames.push((rest[8..8 + len].to_vec(), times));
        rest = &rest[8 + len..];
    }
    Ok(frames)
}
