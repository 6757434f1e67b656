//! A compact sorted set of ids (byte strings). Pure logic, no Redis types.
//!
//! `INVALIDATE ALL` uses one per database and kind to reach that kind's
//! keys without visiting the rest of the keyspace, so it must cost little
//! memory next to the entries themselves (a prediction is about 400 bytes).
//! Ids are kept sorted in blocks of at most [`BLOCK_BYTES`], each front
//! coded: an entry is `varint(shared) varint(suffix length) suffix`, where
//! `shared` is how many leading bytes it has in common with the entry before
//! it in the block (0 for a block's first entry). Ids that share prefixes,
//! like `apv-0012345` and `apv-0012346`, cost about three bytes each.
//!
//! Blocks are keyed by a lower bound of their ids: the first id a block held
//! when it was made. Removing a block's first id keeps the key a lower
//! bound, so only an id below every key re-keys a block.

use std::collections::BTreeMap;
use std::ops::Bound;

/// A block is split once its encoded entries exceed this.
const BLOCK_BYTES: usize = 512;
/// A block this small after a removal is merged into its successor if the
/// two fit in one.
const MERGE_BELOW: usize = BLOCK_BYTES / 4;
/// Capacity kept beyond the bytes in use (whole reallocations are rarer).
const SLACK: usize = 32;

/// A block's key: the lower bound of its ids, its first 16 bytes also held
/// inline (zero padded, big-endian), so that searching the map compares
/// integers and rarely follows a pointer. Ordering by (head, id) is the
/// ids' byte order: heads that differ differ where the ids first differ
/// (or where the shorter one, padded with zero, ends).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct BlockKey {
    head: u128,
    id: Box<[u8]>,
}

impl BlockKey {
    fn new(id: &[u8]) -> Self {
        let mut head = [0u8; 16];
        for (slot, byte) in head.iter_mut().zip(id) {
            *slot = *byte;
        }
        Self {
            head: u128::from_be_bytes(head),
            id: id.into(),
        }
    }
}

#[derive(Default)]
pub struct IdSet {
    blocks: BTreeMap<BlockKey, Vec<u8>>,
    len: usize,
}

impl IdSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes held, about (block buffers, block keys, map nodes).
    pub fn heap_bytes(&self) -> usize {
        // A map entry costs its key and value slots in a node, nodes being
        // about two thirds full.
        const PER_BLOCK: usize = (32 + 24) * 3 / 2;
        self.blocks
            .iter()
            .map(|(key, block)| key.id.len() + block.capacity() + PER_BLOCK)
            .sum()
    }

    /// Adds `id`; false if it was there already.
    pub fn insert(&mut self, id: &[u8]) -> bool {
        let probe = BlockKey::new(id);
        let Some((key, block)) = block_for(&mut self.blocks, &probe) else {
            // Below every block (or no block at all): the first block takes
            // it as its new first id, and its key with it.
            let block = self.blocks.pop_first().map(|(_, block)| block).unwrap_or_default();
            let mut rest = Vec::with_capacity(block.len() + id.len() + 4);
            encode(&mut rest, 0, id);
            if let Some((first, end)) = first_id(&block) {
                let shared = common_prefix(id, &first);
                encode(&mut rest, shared, first.get(shared..).unwrap_or_default());
                rest.extend_from_slice(block.get(end..).unwrap_or_default());
            }
            self.len += 1;
            self.blocks.insert(probe.clone(), rest);
            self.split_if_full(probe, false);
            return true;
        };
        let Some(found) = locate(block, id) else {
            return false;
        };
        if found.present {
            return false;
        }
        let mut patch = Vec::with_capacity(id.len() + found.next.as_ref().map_or(0, Vec::len) + 8);
        encode(
            &mut patch,
            found.shared_prev,
            id.get(found.shared_prev..).unwrap_or_default(),
        );
        if let Some(next) = &found.next {
            let shared = common_prefix(id, next);
            encode(&mut patch, shared, next.get(shared..).unwrap_or_default());
        }
        let appended = found.next.is_none();
        replace(block, found.start, found.next_end, &patch);
        self.len += 1;
        if block.len() > BLOCK_BYTES {
            let key = key.clone();
            self.split_if_full(key, appended);
        }
        true
    }

    /// Removes `id`; false if it was not there.
    pub fn remove(&mut self, id: &[u8]) -> bool {
        let probe = BlockKey::new(id);
        let Some((key, block)) = block_for(&mut self.blocks, &probe) else {
            return false;
        };
        let Some(found) = locate(block, id).filter(|found| found.present) else {
            return false;
        };
        let mut patch = Vec::new();
        if let Some(next) = &found.next {
            // prev < id < next: what prev and next share, id shares with both.
            let shared = found.shared_prev.min(common_prefix(id, next));
            encode(&mut patch, shared, next.get(shared..).unwrap_or_default());
        }
        replace(block, found.start, found.next_end, &patch);
        self.len -= 1;
        if block.is_empty() {
            let key = key.clone();
            self.blocks.remove(&key);
        } else if block.len() < MERGE_BELOW {
            let key = key.clone();
            self.merge_with_next(key);
        } else if block.capacity() > 2 * block.len() + SLACK {
            block.shrink_to(block.len() + SLACK);
        }
        true
    }

    pub fn contains(&self, id: &[u8]) -> bool {
        let probe = BlockKey::new(id);
        self.blocks
            .range::<BlockKey, _>((Bound::Unbounded, Bound::Included(&probe)))
            .next_back()
            .and_then(|(_, block)| locate(block, id))
            .is_some_and(|found| found.present)
    }

    /// Takes the block of the smallest ids out of the set and calls `visit`
    /// for each of its ids, in order. False once the set is empty.
    pub fn drain_block(&mut self, mut visit: impl FnMut(&[u8])) -> bool {
        let Some((_, block)) = self.blocks.pop_first() else {
            return false;
        };
        let mut n = 0;
        for_each_in_block(&block, |id| {
            n += 1;
            visit(id);
        });
        self.len = self.len.saturating_sub(n);
        true
    }

    /// Calls `visit` for every id, in order.
    pub fn for_each(&self, mut visit: impl FnMut(&[u8])) {
        for block in self.blocks.values() {
            for_each_in_block(block, &mut visit);
        }
    }

    /// Adds every id of `other`, inserting the smaller set into the larger.
    pub fn absorb(&mut self, mut other: IdSet) {
        if self.len() < other.len() {
            std::mem::swap(self, &mut other);
        }
        while other.drain_block(|id| {
            self.insert(id);
        }) {}
    }

    /// Splits the block under `key` in two if it outgrew [`BLOCK_BYTES`].
    /// After an append at the end the new id alone starts the next block,
    /// so ids added in order fill blocks completely; otherwise the split is
    /// in the middle.
    fn split_if_full(&mut self, key: BlockKey, appended: bool) {
        let Some(block) = self.blocks.get_mut(&key) else {
            return;
        };
        if block.len() <= BLOCK_BYTES {
            return;
        }
        // The new id alone after an append, else the first entry boundary
        // from the middle on (never the block's start).
        let mut chosen = None;
        let mut current = Vec::new();
        let mut pos = 0;
        while let Some((shared, suffix, end)) = read_entry(block, pos) {
            current.truncate(shared);
            current.extend_from_slice(suffix);
            let last = end == block.len();
            if pos > 0 && (if appended { last } else { pos >= block.len() / 2 }) {
                chosen = Some((pos, end, current));
                break;
            }
            pos = end;
        }
        let Some((cut, first_end, first)) = chosen else {
            return;
        };
        let mut right = Vec::with_capacity(block.len() - cut + first.len() + SLACK);
        encode(&mut right, 0, &first);
        right.extend_from_slice(block.get(first_end..).unwrap_or_default());
        block.truncate(cut);
        block.shrink_to(cut + SLACK);
        self.blocks.insert(BlockKey::new(&first), right);
    }

    /// Merges the block under `key` with the next block if both fit in one.
    fn merge_with_next(&mut self, key: BlockKey) {
        let next_key = self
            .blocks
            .range::<BlockKey, _>((Bound::Excluded(&key), Bound::Unbounded))
            .next()
            .map(|(k, block)| (k.clone(), block.len()));
        let Some((next_key, next_len)) = next_key else {
            return;
        };
        let Some(len) = self.blocks.get(&key).map(Vec::len) else {
            return;
        };
        if len + next_len > BLOCK_BYTES {
            return;
        }
        let Some(next) = self.blocks.remove(&next_key) else {
            return;
        };
        let Some(block) = self.blocks.get_mut(&key) else {
            return;
        };
        let last = last_id(block);
        if let Some((first, end)) = first_id(&next) {
            let shared = common_prefix(&last, &first);
            encode(block, shared, first.get(shared..).unwrap_or_default());
            block.extend_from_slice(next.get(end..).unwrap_or_default());
        }
    }
}

/// The block that holds, or would hold, the id of `probe`: the last one
/// keyed at or below it. `None` if it is below every block's key.
fn block_for<'a>(
    blocks: &'a mut BTreeMap<BlockKey, Vec<u8>>,
    probe: &BlockKey,
) -> Option<(&'a BlockKey, &'a mut Vec<u8>)> {
    blocks
        .range_mut::<BlockKey, _>((Bound::Unbounded, Bound::Included(probe)))
        .next_back()
}

/// Where `id` is, or would go, in a block.
struct Found {
    /// Whether the entry at `start` is `id` itself.
    present: bool,
    /// Where `id`'s entry is, or would go.
    start: usize,
    /// Common prefix length of `id` and the id before `start` (0 if none).
    shared_prev: usize,
    /// The first id after `id` (or after where it would go), and where that
    /// id's entry ends; `None` (and the end of `id`'s entry or of the
    /// block) if there is none.
    next: Option<Vec<u8>>,
    next_end: usize,
}

/// Finds `id` in a block without rebuilding the ids it passes: an entry
/// that shares more with the id before it than that one shares with `id` is
/// below `id` too, one that shares less is above it; only entries sharing
/// exactly as much are compared, and only by their suffix. `None` only for
/// a corrupt block, which cannot happen.
fn locate(block: &[u8], id: &[u8]) -> Option<Found> {
    // Common prefix length of `id` and the last entry passed (all below `id`).
    let mut common = 0;
    let mut pos = 0;
    while pos < block.len() {
        let (shared, suffix, end) = read_entry(block, pos)?;
        if shared > common {
            pos = end;
            continue;
        }
        // From here this entry is id[..shared] + suffix.
        let rest = id.get(shared..)?;
        let same = common_prefix(suffix, rest);
        let order = if shared < common {
            std::cmp::Ordering::Greater
        } else {
            // Ids are short: no memcmp call, the common prefix says it all.
            match (suffix.get(same), rest.get(same)) {
                (Some(a), Some(b)) => a.cmp(b),
                (a, b) => a.is_some().cmp(&b.is_some()),
            }
        };
        match order {
            std::cmp::Ordering::Less => {
                common = shared + same;
                pos = end;
            }
            std::cmp::Ordering::Equal => {
                let (next, next_end) = match read_entry(block, end) {
                    Some((shared, suffix, next_end)) => (Some(join(id.get(..shared)?, suffix)), next_end),
                    None => (None, end),
                };
                return Some(Found {
                    present: true,
                    start: pos,
                    shared_prev: common,
                    next,
                    next_end,
                });
            }
            std::cmp::Ordering::Greater => {
                return Some(Found {
                    present: false,
                    start: pos,
                    shared_prev: common,
                    next: Some(join(id.get(..shared)?, suffix)),
                    next_end: end,
                });
            }
        }
    }
    Some(Found {
        present: false,
        start: block.len(),
        shared_prev: common,
        next: None,
        next_end: block.len(),
    })
}

fn join(head: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut joined = Vec::with_capacity(head.len() + tail.len());
    joined.extend_from_slice(head);
    joined.extend_from_slice(tail);
    joined
}

/// Replaces `block[start..end]` with `patch`, keeping capacity tight.
fn replace(block: &mut Vec<u8>, start: usize, end: usize, patch: &[u8]) {
    let new_len = block.len() - (end - start) + patch.len();
    if new_len > block.capacity() {
        block.reserve_exact(new_len - block.len() + SLACK);
    }
    block.splice(start..end, patch.iter().copied());
}

fn for_each_in_block(block: &[u8], mut visit: impl FnMut(&[u8])) {
    let mut current = Vec::new();
    let mut pos = 0;
    while let Some((shared, suffix, end)) = read_entry(block, pos) {
        current.truncate(shared);
        current.extend_from_slice(suffix);
        visit(&current);
        pos = end;
    }
}

/// The first id of a block and where its entry ends.
fn first_id(block: &[u8]) -> Option<(Vec<u8>, usize)> {
    read_entry(block, 0).map(|(_, suffix, end)| (suffix.to_vec(), end))
}

fn last_id(block: &[u8]) -> Vec<u8> {
    let mut last = Vec::new();
    for_each_in_block(block, |id| last = id.to_vec());
    last
}

/// The entry at `pos`: (shared, suffix, end). `None` at the end.
#[inline]
fn read_entry(block: &[u8], pos: usize) -> Option<(usize, &[u8], usize)> {
    let mut pos = pos;
    let shared = read_varint(block, &mut pos)?;
    let len = read_varint(block, &mut pos)?;
    let suffix = block.get(pos..pos.checked_add(len)?)?;
    Some((shared, suffix, pos + len))
}

fn encode(out: &mut Vec<u8>, shared: usize, suffix: &[u8]) {
    write_varint(out, shared);
    write_varint(out, suffix.len());
    out.extend_from_slice(suffix);
}

fn write_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[inline(always)]
fn read_varint(buf: &[u8], pos: &mut usize) -> Option<usize> {
    // Lengths below 128 (nearly all) are one byte.
    let first = *buf.get(*pos)?;
    if first < 0x80 {
        *pos += 1;
        return Some(usize::from(first));
    }
    let mut n: usize = 0;
    let mut shift = 0;
    loop {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        n |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(n);
        }
        shift += 7;
    }
}

#[inline]
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::collections::BTreeSet;

    fn ids_of(set: &IdSet) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        set.for_each(|id| out.push(id.to_vec()));
        out
    }

    fn check(set: &IdSet, reference: &BTreeSet<Vec<u8>>) {
        assert_eq!(set.len(), reference.len());
        assert_eq!(ids_of(set), reference.iter().cloned().collect::<Vec<_>>());
        for (key, block) in &set.blocks {
            let (first, _) = first_id(block).expect("no empty block");
            assert!(*key.id <= *first, "a block key must bound its ids from below");
            assert!(*key <= BlockKey::new(&first), "key order is id order");
            assert_eq!(
                read_entry(block, 0).map(|entry| entry.0),
                Some(0),
                "a block starts with a whole id"
            );
        }
    }

    /// Ids drawn from a few shapes: sequential, a small alphabet (long
    /// shared prefixes, many repeats), arbitrary bytes, and long ids.
    fn random_id(rng: &mut StdRng) -> Vec<u8> {
        match rng.gen_range(0..6) {
            0 | 1 => format!("apv-{:07}", rng.gen_range(0..5000)).into_bytes(),
            2 => (0..rng.gen_range(0..6)).map(|_| b"ab"[rng.gen_range(0..2)]).collect(),
            3 => (0..rng.gen_range(0..20)).map(|_| rng.gen::<u8>()).collect(),
            4 => {
                let mut id = vec![b'x'; rng.gen_range(100..700)];
                id.push(rng.gen_range(b'0'..=b'9'));
                id
            }
            _ => format!("{:016x}", rng.gen::<u64>() % 3000).into_bytes(),
        }
    }

    #[test]
    fn random_operations_agree_with_a_btreeset() {
        for seed in 0..40 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut set = IdSet::new();
            let mut reference = BTreeSet::new();
            for step in 0..4000 {
                let id = random_id(&mut rng);
                match rng.gen_range(0..10) {
                    0..=5 => assert_eq!(set.insert(&id), reference.insert(id.clone()), "insert {id:?}"),
                    6..=8 => assert_eq!(set.remove(&id), reference.remove(&id), "remove {id:?}"),
                    _ => assert_eq!(set.contains(&id), reference.contains(&id)),
                }
                if step % 500 == 0 {
                    check(&set, &reference);
                }
            }
            check(&set, &reference);
            for id in reference.iter() {
                assert!(set.contains(id));
            }
            // Remove everything in random order: blocks merge and vanish.
            let mut all: Vec<_> = reference.iter().cloned().collect();
            while !all.is_empty() {
                let id = all.swap_remove(rng.gen_range(0..all.len()));
                assert!(set.remove(&id));
                reference.remove(&id);
                if all.len() % 300 == 0 {
                    check(&set, &reference);
                }
            }
            assert!(set.is_empty() && set.blocks.is_empty());
        }
    }

    #[test]
    fn draining_yields_every_id_in_order_once() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut set = IdSet::new();
        let mut reference = BTreeSet::new();
        for _ in 0..20_000 {
            let id = random_id(&mut rng);
            set.insert(&id);
            reference.insert(id);
        }
        let mut drained = Vec::new();
        while set.drain_block(|id| drained.push(id.to_vec())) {}
        assert_eq!(drained, reference.into_iter().collect::<Vec<_>>());
        assert!(set.is_empty());
    }

    #[test]
    fn absorb_is_a_union() {
        let mut rng = StdRng::seed_from_u64(9);
        let (mut a, mut b, mut reference) = (IdSet::new(), IdSet::new(), BTreeSet::new());
        for i in 0..6000 {
            let id = random_id(&mut rng);
            if i % 2 == 0 {
                a.insert(&id)
            } else {
                b.insert(&id)
            };
            reference.insert(id);
        }
        a.absorb(b);
        check(&a, &reference);
        let mut empty = IdSet::new();
        empty.absorb(a);
        check(&empty, &reference);
    }

    #[test]
    fn ids_with_shared_prefixes_cost_a_few_bytes() {
        // In order (as a bulk load writes them) and shuffled.
        let ids: Vec<Vec<u8>> = (0..200_000).map(|i| format!("apv-{i:07}").into_bytes()).collect();
        let mut in_order = IdSet::new();
        ids.iter().for_each(|id| assert!(in_order.insert(id)));
        let per_id = in_order.heap_bytes() as f64 / ids.len() as f64;
        eprintln!("{per_id:.2} bytes per id in order");
        assert!(per_id < 4.5, "{per_id:.2} bytes per id in order");
        let mut shuffled_ids = ids.clone();
        let mut rng = StdRng::seed_from_u64(3);
        for i in (1..shuffled_ids.len()).rev() {
            shuffled_ids.swap(i, rng.gen_range(0..=i));
        }
        let mut shuffled = IdSet::new();
        shuffled_ids.iter().for_each(|id| assert!(shuffled.insert(id)));
        let per_id = shuffled.heap_bytes() as f64 / ids.len() as f64;
        eprintln!("{per_id:.2} bytes per id shuffled");
        assert!(per_id < 6.5, "{per_id:.2} bytes per id shuffled");
        assert_eq!(ids_of(&shuffled), ids);
    }

    #[test]
    fn block_keys_order_as_their_ids() {
        let mut rng = StdRng::seed_from_u64(11);
        let pick = |rng: &mut StdRng| -> Vec<u8> {
            let len = rng.gen_range(0..20);
            (0..len).map(|_| [0u8, 1, b'a', 0xff][rng.gen_range(0..4)]).collect()
        };
        for _ in 0..200_000 {
            let (a, b) = (pick(&mut rng), pick(&mut rng));
            assert_eq!(BlockKey::new(&a).cmp(&BlockKey::new(&b)), a.cmp(&b), "{a:?} {b:?}");
        }
        assert!(BlockKey::new(b"a") < BlockKey::new(b"a\0"));
    }

    #[test]
    fn varints_round_trip() {
        for n in [0usize, 1, 127, 128, 300, 16_383, 16_384, usize::MAX] {
            let mut out = Vec::new();
            write_varint(&mut out, n);
            let mut pos = 0;
            assert_eq!(read_varint(&out, &mut pos), Some(n));
            assert_eq!(pos, out.len());
        }
        assert_eq!(read_varint(&[0x80], &mut 0), None);
    }
}
