//! Reading files out of a Qt resource bundle (`.rcc`): GCompris ships its photos inside them.
//! Qt's own tools are not on the machine, and the format is small: a header, a tree of nodes,
//! a names table (UTF-16) and a data area of length-prefixed blobs.

use anyhow::{Context, Result, bail};

/// One file of the bundle: its path inside the bundle and its bytes (stored uncompressed).
pub struct Resource {
    pub path: String,
    pub bytes: Vec<u8>,
}

const DIRECTORY: u16 = 0x02;
const COMPRESSED: u16 = 0x01 | 0x04;

fn u16_at(bytes: &[u8], at: usize) -> Result<u16> {
    let slice = bytes.get(at..at + 2).context("the resource bundle ends early")?;
    Ok(u16::from_be_bytes([slice[0], slice[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32> {
    let slice = bytes.get(at..at + 4).context("the resource bundle ends early")?;
    Ok(u32::from_be_bytes([slice[0], slice[1], slice[2], slice[3]]))
}

/// Every uncompressed file in the bundle (compressed ones are skipped: photos are stored as they
/// are, since compressing a WebP gains nothing).
pub fn read_bundle(bytes: &[u8]) -> Result<Vec<Resource>> {
    if bytes.get(..4) != Some(b"qres") {
        bail!("not a Qt resource bundle (no 'qres' header)");
    }
    let version = u32_at(bytes, 4)?;
    let (tree, data, names) = (u32_at(bytes, 8)? as usize, u32_at(bytes, 12)? as usize, u32_at(bytes, 16)? as usize);
    // Version 2 added an 8-byte modification time to every node.
    let node_size = if version >= 2 { 22 } else { 14 };
    let name = |offset: usize| -> Result<String> {
        let at = names + offset;
        let length = u16_at(bytes, at)? as usize;
        // Skip the 4-byte hash; the name is UTF-16 big-endian.
        let units: Vec<u16> = (0..length).map(|i| u16_at(bytes, at + 6 + 2 * i)).collect::<Result<_>>()?;
        String::from_utf16(&units).context("a resource name is not UTF-16")
    };
    let mut out = Vec::new();
    // Depth-first over (node index, parent path); a malformed tree cannot loop past its size.
    let mut stack = vec![(0usize, String::new())];
    let mut visited = 0usize;
    while let Some((index, parent)) = stack.pop() {
        visited += 1;
        if visited > bytes.len() / node_size {
            bail!("the resource tree is malformed (more nodes than the bundle can hold)");
        }
        let at = tree + index * node_size;
        let flags = u16_at(bytes, at + 4)?;
        let path = if index == 0 { String::new() } else { format!("{parent}/{}", name(u32_at(bytes, at)? as usize)?) };
        if flags & DIRECTORY != 0 {
            let (count, first) = (u32_at(bytes, at + 6)? as usize, u32_at(bytes, at + 10)? as usize);
            for child in (first..first + count).rev() {
                stack.push((child, path.clone()));
            }
        } else if flags & COMPRESSED == 0 {
            let offset = data + u32_at(bytes, at + 10)? as usize;
            let length = u32_at(bytes, offset)? as usize;
            let blob = bytes.get(offset + 4..offset + 4 + length).context("a resource runs past the bundle's end")?;
            out.push(Resource { path, bytes: blob.to_vec() });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-2 bundle with `/photos/a.webp` and `/b.txt`, laid out as Qt's rcc writes it.
    fn bundle() -> Vec<u8> {
        let mut names = Vec::new();
        let mut name = |text: &str| -> u32 {
            let offset = names.len() as u32;
            names.extend((text.encode_utf16().count() as u16).to_be_bytes());
            names.extend(0u32.to_be_bytes());
            for unit in text.encode_utf16() {
                names.extend(unit.to_be_bytes());
            }
            offset
        };
        let (photos, a, b) = (name("photos"), name("a.webp"), name("b.txt"));
        let mut data = Vec::new();
        let mut blob = |content: &[u8]| -> u32 {
            let offset = data.len() as u32;
            data.extend((content.len() as u32).to_be_bytes());
            data.extend(content);
            offset
        };
        let (a_data, b_data) = (blob(b"RIFF-photo"), blob(b"text"));
        let node = |name: u32, flags: u16, x: u32, y: u32| -> Vec<u8> {
            let mut n = Vec::new();
            n.extend(name.to_be_bytes());
            n.extend(flags.to_be_bytes());
            n.extend(x.to_be_bytes());
            n.extend(y.to_be_bytes());
            n.extend(0u64.to_be_bytes());
            n
        };
        // root (dir: 2 children from 1), photos (dir: 1 child at 3), b.txt, a.webp.
        let tree: Vec<u8> = [node(0, 2, 2, 1), node(photos, 2, 1, 3), node(b, 0, 0, b_data), node(a, 0, 0, a_data)].concat();
        let header = 20;
        let mut out = b"qres".to_vec();
        out.extend(2u32.to_be_bytes());
        out.extend((header as u32).to_be_bytes());
        out.extend(((header + tree.len()) as u32).to_be_bytes());
        out.extend(((header + tree.len() + data.len()) as u32).to_be_bytes());
        out.extend(tree);
        out.extend(data);
        out.extend(names);
        out
    }

    #[test]
    fn reads_paths_and_bytes_and_refuses_garbage() {
        let files = read_bundle(&bundle()).unwrap();
        let listed: Vec<(&str, &[u8])> = files.iter().map(|f| (f.path.as_str(), f.bytes.as_slice())).collect();
        assert_eq!(listed, [("/photos/a.webp", &b"RIFF-photo"[..]), ("/b.txt", &b"text"[..])]);
        assert!(read_bundle(b"not a bundle").is_err());
        let mut truncated = bundle();
        truncated.truncate(40);
        assert!(read_bundle(&truncated).is_err());
    }
}
