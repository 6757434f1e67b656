//! The key index's id set against `BTreeSet`: arbitrary inserts, removals,
//! lookups and drains. Never panics; same answers, same contents, in order.

#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use wargaming::idset::IdSet;

fuzz_target!(|data: &[u8]| {
    let mut set = IdSet::new();
    let mut reference: BTreeSet<Vec<u8>> = BTreeSet::new();
    // Each operation: one byte (kind in the low 2 bits, id length in the
    // rest), then that many id bytes. Short alphabets come from the input
    // itself, so ids share long prefixes often.
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        let len = usize::from(op >> 2).min(tail.len());
        let (id, tail) = tail.split_at(len);
        rest = tail;
        match op & 3 {
            0 | 1 => assert_eq!(set.insert(id), reference.insert(id.to_vec()), "insert {id:?}"),
            2 => assert_eq!(set.remove(id), reference.remove(id), "remove {id:?}"),
            _ => assert_eq!(set.contains(id), reference.contains(id), "contains {id:?}"),
        }
        // Long ids, to cross the block size, from a repeated short one.
        if op == 0xff {
            let long: Vec<u8> = id.iter().cycle().take(600).copied().collect();
            assert_eq!(set.insert(&long), reference.insert(long.clone()));
        }
    }
    assert_eq!(set.len(), reference.len());
    let mut seen = Vec::new();
    set.for_each(|id| seen.push(id.to_vec()));
    assert!(seen.iter().eq(reference.iter()), "contents differ");
    let mut drained = Vec::new();
    while set.drain_block(|id| drained.push(id.to_vec())) {}
    assert_eq!(drained, seen);
    assert!(set.is_empty());
});
