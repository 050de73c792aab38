//! The Merkle tree of RFC 9162 (Certificate Transparency v2), section 2.1:
//! tree hashes, inclusion and consistency proofs, over leaf hashes and the
//! hashes of complete subtrees that a store keeps.
//!
//! A complete subtree is named by its `level` (it covers `2^level` leaves)
//! and its `index` among the subtrees of that level; level 0 is the leaves.

use aws_lc_rs::digest;

pub type Hash = [u8; 32];

/// `SHA-256(0x00 || entry)`: the hash of one leaf.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(&[0x00]);
    context.update(entry);
    to_hash(context.finish())
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(&[0x01]);
    context.update(left);
    context.update(right);
    to_hash(context.finish())
}

/// The hash of the empty tree: `SHA-256()`.
pub fn empty_root() -> Hash {
    to_hash(digest::digest(&digest::SHA256, b""))
}

fn to_hash(digest: digest::Digest) -> Hash {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest.as_ref());
    hash
}

/// Where the hashes of complete subtrees come from.
pub trait Nodes {
    type Error;
    fn node(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// The largest power of two smaller than `n` (for `n > 1`).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH of the leaves `[start, end)`, where the range is one the RFC's
/// recursion reaches: every left part is a complete, aligned subtree.
fn range_hash<N: Nodes>(nodes: &mut N, start: u64, end: u64) -> Result<Hash, N::Error> {
    let n = end - start;
    if n.is_power_of_two() {
        let level = n.trailing_zeros();
        return nodes.node(level, start >> level);
    }
    let k = split(n);
    let left = range_hash(nodes, start, start + k)?;
    let right = range_hash(nodes, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The tree head hash of the first `size` leaves.
pub fn root<N: Nodes>(nodes: &mut N, size: u64) -> Result<Hash, N::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(nodes, 0, size)
}

/// The audit path of leaf `index` in the tree of `size` leaves (RFC 9162
/// 2.1.3.1, PATH), for `index < size`.
pub fn inclusion_proof<N: Nodes>(
    nodes: &mut N,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, N::Error> {
    let mut proof = Vec::new();
    path(nodes, index, 0, size, &mut proof)?;
    Ok(proof)
}

fn path<N: Nodes>(
    nodes: &mut N,
    m: u64,
    start: u64,
    end: u64,
    proof: &mut Vec<Hash>,
) -> Result<(), N::Error> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(nodes, m, start, start + k, proof)?;
        proof.push(range_hash(nodes, start + k, end)?);
    } else {
        path(nodes, m - k, start + k, end, proof)?;
        proof.push(range_hash(nodes, start, start + k)?);
    }
    Ok(())
}

/// The consistency proof from the tree of `old` leaves to the tree of
/// `new` leaves (RFC 9162 2.1.4.1, PROOF), for `0 < old <= new`.
pub fn consistency_proof<N: Nodes>(
    nodes: &mut N,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, N::Error> {
    let mut proof = Vec::new();
    if old < new {
        subproof(nodes, old, 0, new, true, &mut proof)?;
    }
    Ok(proof)
}

fn subproof<N: Nodes>(
    nodes: &mut N,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    proof: &mut Vec<Hash>,
) -> Result<(), N::Error> {
    let n = end - start;
    if m == n {
        if !whole {
            proof.push(range_hash(nodes, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(nodes, m, start, start + k, whole, proof)?;
        proof.push(range_hash(nodes, start + k, end)?);
    } else {
        subproof(nodes, m - k, start + k, end, false, proof)?;
        proof.push(range_hash(nodes, start, start + k)?);
    }
    Ok(())
}

/// The complete subtrees above the leaves that appending leaves
/// `[old, new)` completes: `(level, index, hash)` for levels 1 and up, in
/// increasing level. `nodes` must answer for every complete subtree of the
/// first `old` leaves and for the new leaves.
pub fn completed_subtrees<N: Nodes>(
    nodes: &mut N,
    old: u64,
    new: u64,
) -> Result<Vec<(u32, u64, Hash)>, N::Error> {
    // The level below's subtrees made here: indexes `below_first..`, in order.
    let mut below: Vec<Hash> = Vec::new();
    let mut below_first = 0;
    let mut out = Vec::new();
    let mut level = 1;
    while new >> level > 0 {
        // Subtrees of this level that end after `old` and by `new`.
        let first = old >> level;
        let last = new >> level;
        let mut made = Vec::with_capacity(usize::try_from(last - first).unwrap_or(0));
        for index in first..last {
            let mut child = |index: u64| -> Result<Hash, N::Error> {
                let made_below = index
                    .checked_sub(below_first)
                    .and_then(|at| below.get(usize::try_from(at).ok()?));
                match made_below {
                    Some(hash) => Ok(*hash),
                    None => nodes.node(level - 1, index),
                }
            };
            let hash = node_hash(&child(2 * index)?, &child(2 * index + 1)?);
            made.push(hash);
            out.push((level, index, hash));
        }
        (below, below_first) = (made, first);
        level += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Leaves in memory, and complete subtrees computed by the RFC's MTH.
    struct Naive(Vec<Hash>);

    impl Naive {
        fn mth(&self, start: usize, end: usize) -> Hash {
            match end - start {
                0 => empty_root(),
                1 => self.0[start],
                n => {
                    let k = split(n as u64) as usize;
                    node_hash(&self.mth(start, start + k), &self.mth(start + k, end))
                }
            }
        }
    }

    impl Nodes for Naive {
        type Error = ();
        fn node(&mut self, level: u32, index: u64) -> Result<Hash, ()> {
            let start = (index << level) as usize;
            Ok(self.mth(start, start + (1 << level)))
        }
    }

    fn leaves(n: usize) -> Naive {
        Naive(
            (0..n)
                .map(|i| leaf_hash(&[i as u8, (i >> 8) as u8]))
                .collect(),
        )
    }

    #[test]
    fn roots_agree_with_the_rfc_definition() {
        let tree = leaves(70);
        for size in 0..=70 {
            assert_eq!(
                root(&mut leaves(70), size).unwrap(),
                tree.mth(0, size as usize)
            );
        }
    }

    #[test]
    fn completed_subtrees_are_those_of_the_definition() {
        let mut tree = leaves(40);
        let mut stored: HashMap<(u32, u64), Hash> = HashMap::new();
        for (old, new) in [(0, 1), (1, 5), (5, 8), (8, 9), (9, 40)] {
            for (level, index, hash) in completed_subtrees(&mut tree, old, new).unwrap() {
                assert_eq!(hash, tree.node(level, index).unwrap(), "{level}/{index}");
                assert!(stored.insert((level, index), hash).is_none(), "made once");
            }
        }
        // Every complete subtree of 40 leaves above the leaves: 20 + 10 + 5 + 2 + 1.
        assert_eq!(stored.len(), 38);
    }

    #[test]
    fn known_answer_for_a_small_tree() {
        // RFC 6962's test vectors (shared by RFC 9162): the root of the
        // eight leaves "", 00, 10, 2021, 3031, 40414243, 5051525354555657,
        // 606162636465666768696a6b6c6d6e6f.
        let entries: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
                0x6e, 0x6f,
            ],
        ];
        let mut tree = Naive(entries.iter().map(|entry| leaf_hash(entry)).collect());
        let hex: String = root(&mut tree, 8)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
    }
}

/// The right edge of a growing tree: the complete subtrees that make up the
/// first `size` leaves, largest first. Enough to give the root at any size
/// while leaves stream past, as verification does.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    subtrees: Vec<(u32, Hash)>,
    size: u64,
}

impl Frontier {
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut level = 0;
        while let Some((top, left)) = self.subtrees.last().copied() {
            if top != level {
                break;
            }
            self.subtrees.pop();
            hash = node_hash(&left, &hash);
            level += 1;
        }
        self.subtrees.push((level, hash));
        self.size += 1;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree head hash of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.subtrees.iter().rev();
        match subtrees.next() {
            None => empty_root(),
            Some((_, last)) => subtrees.fold(*last, |right, (_, left)| node_hash(left, &right)),
        }
    }
}

#[cfg(test)]
mod frontier_tests {
    use super::*;

    struct Leaves(Vec<Hash>);

    impl Nodes for Leaves {
        type Error = ();
        fn node(&mut self, level: u32, index: u64) -> Result<Hash, ()> {
            let start = index << level;
            let mut layer: Vec<Hash> =
                self.0[start as usize..(start + (1 << level)) as usize].to_vec();
            while layer.len() > 1 {
                layer = layer
                    .chunks(2)
                    .map(|pair| node_hash(&pair[0], &pair[1]))
                    .collect();
            }
            Ok(layer[0])
        }
    }

    #[test]
    fn the_frontier_gives_the_root_at_every_size() {
        let leaves: Vec<Hash> = (0..50u8).map(|i| leaf_hash(&[i])).collect();
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), empty_root());
        for (i, leaf) in leaves.iter().enumerate() {
            frontier.push(*leaf);
            let size = i as u64 + 1;
            assert_eq!(frontier.size(), size);
            assert_eq!(
                frontier.root(),
                root(&mut Leaves(leaves.clone()), size).unwrap()
            );
        }
    }
}
