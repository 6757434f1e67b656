//! The ids of every entry, per database and kind, so `INVALIDATE ALL`
//! reaches a kind's keys without visiting the rest of the keyspace (on Redis
//! 7.0 every scanning primitive costs close to a microsecond per visited
//! key). Ids are stored front coded (`idset.rs`): a few bytes per entry.
//!
//! Kept from the same events as the key counts, for every key named like an
//! entry however it was written (module, plain SET, RESTORE, replication,
//! AOF or RDB load): `new`, `loaded`, `rename_to`, `move_to`, `copy_to` and
//! `restore` add; `del`, `expired`, `evicted`, `rename_from` and `move_from`
//! remove; FLUSHDB/FLUSHALL clear; SWAPDB swaps. Overwrites keep the id.
//!
//! So the index never misses a live entry. It may keep the id of one that is
//! gone without an event (7.0's cluster slot deletion): harmless, deleting
//! it finds nothing, and the next `INVALIDATE ALL` drops it.

use redis_module::Context;

use crate::idset::IdSet;
use crate::keys::{self, Kind};
use crate::shared::Shared;
use crate::store;

static INDEX: Shared<Vec<[IdSet; 3]>> = Shared::new(Vec::new());

fn with_set<R>(db: i32, kind: Kind, f: impl FnOnce(&mut IdSet) -> R) -> Option<R> {
    let db = usize::try_from(db).ok()?;
    INDEX
        .with(|index| {
            if index.len() <= db {
                index.resize_with(db + 1, Default::default);
            }
            index.get_mut(db)?.get_mut(kind.index()).map(f)
        })
        .flatten()
}

/// Keyspace event hook. Runs for every key event in the server: events
/// that change no membership return first.
pub fn on_keyspace_event(ctx: &Context, event: &str, key: &[u8]) {
    let add = match event {
        "new" | "loaded" | "rename_to" | "move_to" | "copy_to" | "restore" => true,
        "del" | "expired" | "evicted" | "rename_from" | "move_from" => false,
        _ => return,
    };
    let Some((kind, id)) = keys::kind_and_id(key) else {
        return;
    };
    let db = store::selected_db(ctx);
    with_set(db, kind, |set| if add { set.insert(id) } else { set.remove(id) });
}

/// Adds the entry named `key` (a write the events above do not announce as
/// a new key, or a key found when the module loads).
pub fn add(db: i32, key: &[u8]) {
    if let Some((kind, id)) = keys::kind_and_id(key) {
        with_set(db, kind, |set| set.insert(id));
    }
}

/// Takes every id of `kind` out of the index (an `INVALIDATE ALL` now owns
/// them); the index goes on with the entries written from now on.
pub fn take(db: i32, kind: Kind) -> IdSet {
    with_set(db, kind, std::mem::take).unwrap_or_default()
}

/// Gives back ids taken by [`take`] that were not dealt with.
pub fn put_back(db: i32, kind: Kind, ids: IdSet) {
    with_set(db, kind, |set| set.absorb(ids));
}

/// FLUSHDB (`dbnum` >= 0) or FLUSHALL (-1).
pub fn on_flush(dbnum: i32) {
    INDEX.with(|index| match usize::try_from(dbnum) {
        Ok(db) => {
            if let Some(sets) = index.get_mut(db) {
                *sets = Default::default();
            }
        }
        Err(_) => index.clear(),
    });
}

pub fn on_swapdb(first: i32, second: i32) {
    let (Ok(a), Ok(b)) = (usize::try_from(first), usize::try_from(second)) else {
        return;
    };
    INDEX.with(|index| {
        if index.len() <= a.max(b) {
            index.resize_with(a.max(b) + 1, Default::default);
        }
        index.swap(a, b);
    });
}

/// Ids held for `kind` in `db`.
pub fn len(db: i32, kind: Kind) -> usize {
    with_set(db, kind, |set| set.len()).unwrap_or(0)
}

/// Heap bytes of the whole index, about.
pub fn heap_bytes() -> usize {
    INDEX
        .with(|index| index.iter().flatten().map(IdSet::heap_bytes).sum())
        .unwrap_or(0)
}
