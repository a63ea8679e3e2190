//! Splitting work into requests that respect AWS limits. Pure, so the limits are tested
//! exactly, without relying on an emulator that does not enforce them.

use crate::limits::{
    DYNAMODB_BATCH_WRITE_MAX_ITEMS, KINESIS_PUT_RECORDS_MAX_BYTES, KINESIS_PUT_RECORDS_MAX_ENTRIES,
};
use std::collections::HashMap;
use std::hash::Hash;

/// Groups entries (each with its size in bytes: data plus partition key) into PutRecords
/// requests of at most 500 entries and 5 MiB, preserving order. Entries larger than a
/// whole request must be rejected before this (see `KINESIS_RECORD_MAX_BYTES`).
pub fn put_records_batches<T>(entries: Vec<(T, usize)>) -> Vec<Vec<T>> {
    let mut batches = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0usize;
    for (entry, size) in entries {
        if !current.is_empty()
            && (current.len() == KINESIS_PUT_RECORDS_MAX_ENTRIES
                || bytes + size > KINESIS_PUT_RECORDS_MAX_BYTES)
        {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(entry);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// One write after de-duplication, with the positions of every input that produced it (so a
/// failed write can be charged to all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deduped<T> {
    pub item: T,
    pub origins: Vec<usize>,
}

/// Collapses items with the same key (the last one wins: in stream order it is the newest)
/// and chunks the result for BatchWriteItem: at most 25 per request, no key twice in a
/// request — DynamoDB rejects a whole request that names one key twice.
pub fn batch_write_chunks<T, K: Eq + Hash>(
    items: Vec<T>,
    key: impl Fn(&T) -> K,
) -> Vec<Vec<Deduped<T>>> {
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut unique: Vec<Deduped<T>> = Vec::new();
    for (position, item) in items.into_iter().enumerate() {
        let k = key(&item);
        match index.get(&k) {
            Some(&at) => {
                unique[at].item = item;
                unique[at].origins.push(position);
            }
            None => {
                index.insert(k, unique.len());
                unique.push(Deduped {
                    item,
                    origins: vec![position],
                });
            }
        }
    }
    let mut chunks = Vec::new();
    let mut iter = unique.into_iter().peekable();
    while iter.peek().is_some() {
        chunks.push(iter.by_ref().take(DYNAMODB_BATCH_WRITE_MAX_ITEMS).collect());
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn put_records_respects_entry_and_byte_limits() {
        let batches = put_records_batches((0..1201).map(|i| (i, 100)).collect());
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![500, 500, 201]
        );
        assert_eq!(batches.concat(), (0..1201).collect::<Vec<_>>());

        let mib = 1024 * 1024;
        let batches = put_records_batches((0..11).map(|i| (i, mib - 10)).collect());
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![5, 5, 1]
        );
        for b in &batches {
            assert!(b.len() * (mib - 10) <= KINESIS_PUT_RECORDS_MAX_BYTES);
        }
        assert!(put_records_batches::<u8>(vec![]).is_empty());
    }

    #[test]
    fn batch_write_dedups_keys_and_caps_requests_at_25() {
        // 60 items over 40 distinct keys: keys 0..20 appear twice.
        let items: Vec<(u32, &str)> = (0..40)
            .map(|k| (k, "old"))
            .chain((0..20).map(|k| (k, "new")))
            .collect();
        let chunks = batch_write_chunks(items, |(k, _)| *k);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![25, 15]
        );
        let mut seen = HashSet::new();
        for chunk in &chunks {
            assert!(chunk.len() <= DYNAMODB_BATCH_WRITE_MAX_ITEMS);
            for d in chunk {
                assert!(seen.insert(d.item.0), "key {} written twice", d.item.0);
            }
        }
        assert_eq!(seen.len(), 40);
        let k3 = chunks.concat().into_iter().find(|d| d.item.0 == 3).unwrap();
        assert_eq!(k3.item.1, "new", "the later item wins");
        assert_eq!(k3.origins, vec![3, 43]);
    }
}
