use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, PermissionsExt};

use super::*;

fn block(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn cfg(dir: &Path, max_blocks: u64) -> CacheConfig {
    CacheConfig::new(dir, max_blocks * BLOCK_SIZE)
}

#[test]
fn stores_and_serves_blocks_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = ContentKey::new("AY6c+BsE0jjaXx9tmVGJM1D2VcEO", 2_500_000);
    let b0 = block(1, BLOCK_SIZE as usize);
    let b2 = block(2, 2_500_000 - 2 * BLOCK_SIZE as usize);
    {
        let cache = BlockCache::open(&cfg(dir.path(), 10)).unwrap();
        assert!(cache.get(&key, 0).is_none());
        assert!(cache.put(&key, 0, &b0));
        assert!(cache.put(&key, 2, &b2));
        assert!(cache.contains(&key, 2) && !cache.contains(&key, 1));
        assert_eq!(cache.get(&key, 0).unwrap(), b0);
        let s = cache.stats();
        assert_eq!((s.blocks, s.bytes), (2, (b0.len() + b2.len()) as u64));
    }
    let cache = BlockCache::open(&cfg(dir.path(), 10)).unwrap();
    assert_eq!(cache.stats().blocks, 2);
    assert_eq!(cache.get(&key, 2).unwrap(), b2);
    assert_eq!(cache.get(&key, 0).unwrap(), b0);
    assert!(cache.get(&key, 1).is_none());
}

#[test]
fn a_smaller_size_limit_trims_the_cache_when_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<ContentKey> = (0..4u64)
        .map(|i| ContentKey::new(&format!("asset-{i}"), BLOCK_SIZE))
        .collect();
    {
        let cache = BlockCache::open(&cfg(dir.path(), 10)).unwrap();
        for (i, key) in keys.iter().enumerate() {
            assert!(cache.put(key, 0, &block(i as u8, BLOCK_SIZE as usize)));
        }
    }
    let cache = BlockCache::open(&cfg(dir.path(), 2)).unwrap();
    let s = cache.stats();
    assert_eq!((s.blocks, s.bytes), (2, 2 * BLOCK_SIZE));
    let kept: Vec<usize> = (0..keys.len())
        .filter(|&i| {
            cache
                .get(&keys[i], 0)
                .inspect(|b| assert_eq!(*b, block(i as u8, BLOCK_SIZE as usize)))
                .is_some()
        })
        .collect();
    // The most recently stored stay.
    assert_eq!(kept, [2, 3]);
}

#[test]
fn content_keys_separate_versions() {
    assert_ne!(ContentKey::new("abc", 10), ContentKey::new("abc", 11));
    assert_ne!(ContentKey::new("abc", 10), ContentKey::new("abd", 10));
    assert_eq!(ContentKey::new("abc", 10), ContentKey::new("abc", 10));
    assert_eq!(ContentKey::new("abc", 10).as_str().len(), 32);
}

#[test]
fn corrupt_block_is_dropped_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BlockCache::open(&cfg(dir.path(), 10)).unwrap();
    let key = ContentKey::new("k", 3 * BLOCK_SIZE);
    let b1 = block(7, BLOCK_SIZE as usize);
    assert!(cache.put(&key, 1, &b1));
    cache.drop_memory_tier();
    // Flip one byte of block 1 on disk.
    let f = OpenOptions::new()
        .write(true)
        .open(cache.block_file(&key))
        .unwrap();
    f.write_all_at(&[b1[1000] ^ 0x40], BLOCK_SIZE + 1000)
        .unwrap();
    assert!(cache.get(&key, 1).is_none());
    let s = cache.stats();
    assert_eq!((s.corrupt, s.blocks, s.bytes), (1, 0, 0));
    // Stored again (as after a refetch), it is served.
    assert!(cache.put(&key, 1, &b1));
    cache.drop_memory_tier();
    assert_eq!(cache.get(&key, 1).unwrap(), b1);
}

#[test]
fn missing_block_file_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BlockCache::open(&cfg(dir.path(), 10)).unwrap();
    let key = ContentKey::new("gone", 100);
    assert!(cache.put(&key, 0, &block(1, 100)));
    cache.drop_memory_tier();
    std::fs::remove_file(cache.block_file(&key)).unwrap();
    assert!(cache.get(&key, 0).is_none());
    assert_eq!(cache.stats().blocks, 0);
}

#[test]
fn evicts_least_recently_used_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BlockCache::open(&cfg(dir.path(), 3)).unwrap();
    let keys: Vec<ContentKey> = (0..5)
        .map(|i| ContentKey::new(&format!("k{i}"), 1))
        .collect();
    let data = block(3, BLOCK_SIZE as usize);
    for k in &keys[..3] {
        assert!(cache.put(k, 0, &data));
    }
    cache.drop_memory_tier();
    // Use k0 so k1 becomes the oldest.
    assert!(cache.get(&keys[0], 0).is_some());
    assert!(cache.put(&keys[3], 0, &data));
    assert!(cache.contains(&keys[0], 0));
    assert!(!cache.contains(&keys[1], 0));
    assert!(
        !cache.block_file(&keys[1]).exists(),
        "file of an evicted content is removed"
    );
    assert!(cache.put(&keys[4], 0, &data));
    assert!(!cache.contains(&keys[2], 0));
    let s = cache.stats();
    assert_eq!((s.blocks, s.evictions), (3, 2));
    assert!(s.bytes <= cache.max_bytes());
}

#[test]
fn eviction_never_touches_pinned_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BlockCache::open(&cfg(dir.path(), 2)).unwrap();
    let a = ContentKey::new("a", 1);
    let b = ContentKey::new("b", 1);
    let c = ContentKey::new("c", 1);
    let data = block(9, BLOCK_SIZE as usize);
    assert!(cache.put(&a, 0, &data));
    assert!(cache.put(&b, 0, &data));
    let pin_a = cache.pin(&a, 0);
    // a is the oldest but pinned: b goes instead.
    assert!(cache.put(&c, 0, &data));
    assert!(cache.contains(&a, 0) && !cache.contains(&b, 0) && cache.contains(&c, 0));
    let pin_c = cache.pin(&c, 0);
    // Everything pinned: the insert is refused rather than breaking the bound.
    assert!(!cache.put(&b, 0, &data));
    assert!(cache.contains(&a, 0) && cache.contains(&c, 0));
    assert!(cache.stats().bytes <= cache.max_bytes());
    drop(pin_a);
    drop(pin_c);
    assert!(cache.put(&b, 0, &data));
    assert!(!cache.contains(&a, 0));
}

#[test]
fn eviction_within_one_file_punches_a_hole() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BlockCache::open(&cfg(dir.path(), 2)).unwrap();
    let k = ContentKey::new("video", 10 * BLOCK_SIZE);
    for idx in 0..4 {
        assert!(cache.put(&k, idx, &block(idx as u8, BLOCK_SIZE as usize)));
    }
    cache.drop_memory_tier();
    assert!(!cache.contains(&k, 0) && !cache.contains(&k, 1));
    assert_eq!(cache.get(&k, 3).unwrap(), block(3, BLOCK_SIZE as usize));
    assert_eq!(cache.get(&k, 2).unwrap(), block(2, BLOCK_SIZE as usize));
    // The evicted blocks' disk space is given back (this cache was fresh: the probe at open
    // must not have failed for want of a block directory).
    if cache.can_punch {
        use std::os::unix::fs::MetadataExt;
        let on_disk = std::fs::metadata(cache.files.path(k.as_str()))
            .unwrap()
            .blocks()
            * 512;
        assert!(
            on_disk <= 2 * BLOCK_SIZE + 65_536,
            "{on_disk} bytes still on disk"
        );
    }
}

#[test]
fn a_fresh_cache_on_a_filesystem_that_punches_holes_uses_them() {
    let dir = tempfile::tempdir().unwrap();
    let probe = std::fs::File::create(dir.path().join("probe")).unwrap();
    probe.write_all_at(&[1u8; 8192], 0).unwrap();
    let punched = store::punch_hole(&probe, 0, 4096).is_ok();
    let cache = BlockCache::open(&cfg(&dir.path().join("cache"), 2)).unwrap();
    assert_eq!(cache.can_punch, punched);
}

#[test]
fn second_process_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let _first = BlockCache::open(&cfg(dir.path(), 2)).unwrap();
    match BlockCache::open(&cfg(dir.path(), 2)) {
        Err(e @ CacheError::Locked { .. }) => {
            let CacheError::Locked { dir: d, holder } = &e else {
                unreachable!()
            };
            assert_eq!(d, dir.path());
            let pid = format!("(pid {}", std::process::id());
            assert!(holder.is_some() && e.to_string().contains(&pid), "{e}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a second open of a locked cache succeeded"),
    }
}

#[test]
fn damaged_index_is_rebuilt_empty() {
    let dir = tempfile::tempdir().unwrap();
    let k = ContentKey::new("x", 1);
    {
        let cache = BlockCache::open(&cfg(dir.path(), 2)).unwrap();
        assert!(cache.put(&k, 0, &block(1, 1000)));
    }
    std::fs::write(
        dir.path().join("index.sqlite"),
        b"this is not a database at all",
    )
    .unwrap();
    let _ = std::fs::remove_file(dir.path().join("index.sqlite-wal"));
    let _ = std::fs::remove_file(dir.path().join("index.sqlite-shm"));
    let cache = BlockCache::open(&cfg(dir.path(), 2)).unwrap();
    assert_eq!(cache.stats().blocks, 0);
    assert!(cache.get(&k, 0).is_none());
    assert!(
        !cache.block_file(&k).exists(),
        "unreferenced block files are cleared"
    );
    assert!(cache.put(&k, 0, &block(1, 1000)));
}

#[test]
fn a_cache_of_an_older_format_is_dropped_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let k = ContentKey::new("old", 1);
    {
        let cache = BlockCache::open(&cfg(dir.path(), 2)).unwrap();
        assert!(cache.put(&k, 0, &block(3, 1000)));
        cache.flush();
    }
    // Format 2 summed blocks in four lanes: its sums mean nothing to this version.
    let conn = rusqlite::Connection::open(dir.path().join("index.sqlite")).unwrap();
    conn.pragma_update(None, "user_version", 2).unwrap();
    drop(conn);
    let cache = BlockCache::open(&cfg(dir.path(), 2)).unwrap();
    assert_eq!(cache.stats().blocks, 0);
    assert!(cache.get(&k, 0).is_none());
    assert!(
        !cache.block_file(&k).exists(),
        "its block files are removed"
    );
    assert!(cache.put(&k, 0, &block(3, 1000)));
    cache.drop_memory_tier();
    assert_eq!(cache.get(&k, 0).as_deref(), Some(&block(3, 1000)[..]));
}

#[test]
fn a_block_sum_is_its_crc32c() {
    // Pinned: a change of sum is a change of cache format (`index.rs`).
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = BlockCache::open(&cfg(dir.path(), 2)).unwrap();
        let k = ContentKey::new("sum", 1);
        assert!(cache.put(&k, 0, &block(7, 4096)));
        cache.flush();
    }
    let sum: u32 = rusqlite::Connection::open(dir.path().join("index.sqlite"))
        .unwrap()
        .query_row("SELECT sum FROM blocks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sum, crc32c::crc32c(&block(7, 4096)));
}

#[test]
fn files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let cache = BlockCache::open(&cfg(&root, 2)).unwrap();
    let k = ContentKey::new("p", 1);
    assert!(cache.put(&k, 0, &block(1, 10)));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("index.sqlite")), 0o600);
    assert_eq!(mode(&cache.block_file(&k)), 0o600);
    assert_eq!(mode(cache.block_file(&k).parent().unwrap()), 0o700);
}

#[test]
fn oversized_or_empty_blocks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BlockCache::open(&CacheConfig::new(dir.path(), 1000)).unwrap();
    let k = ContentKey::new("big", 1);
    assert!(!cache.put(&k, 0, &block(1, 1001)));
    assert!(!cache.put(&k, 0, &[]));
    assert!(cache.put(&k, 0, &block(1, 1000)));
}

#[test]
fn a_prefix_grows_and_never_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BlockCache::open(&cfg(dir.path(), 4)).unwrap();
    let k = ContentKey::new("photo", 3 * BLOCK_SIZE);
    let full = block(5, BLOCK_SIZE as usize);
    assert!(cache.put(&k, 0, &full[..131_072]));
    assert_eq!(cache.cached_len(&k, 0), Some(131_072));
    assert_eq!(cache.get(&k, 0).unwrap(), full[..131_072]);
    assert!(cache.put(&k, 0, &full));
    assert!(
        cache.put(&k, 0, &full[..65_536]),
        "a shorter prefix is already there"
    );
    cache.drop_memory_tier();
    assert_eq!(cache.get(&k, 0).unwrap(), full);
    assert_eq!(cache.stats().bytes, BLOCK_SIZE);
}

#[test]
fn a_fully_cached_verified_content_opens_as_its_block_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(BlockCache::open(&cfg(dir.path(), 4)).unwrap());
    let size = 2 * BLOCK_SIZE + 1234;
    let key = ContentKey::new("whole", size);
    let blocks = [
        block(1, BLOCK_SIZE as usize),
        block(2, BLOCK_SIZE as usize),
        block(3, 1234),
    ];
    assert!(cache.put(&key, 0, &blocks[0]) && cache.put(&key, 2, &blocks[2]));
    assert!(!cache.is_complete(&key, size));
    assert!(!cache.verify_complete(&key, size));
    assert!(cache.open_complete(&key, size).is_none());
    assert!(cache.put(&key, 1, &blocks[1]));
    assert!(cache.is_complete(&key, size));
    assert!(
        cache.open_complete(&key, size).is_none(),
        "not verified yet"
    );
    assert!(cache.verify_complete(&key, size));
    let complete = cache.open_complete(&key, size).expect("complete");
    let mut all = vec![0u8; size as usize];
    complete.file().read_exact_at(&mut all, 0).unwrap();
    assert_eq!(all, blocks.concat());

    // While it is open its blocks are never evicted, however much else comes in.
    let other = ContentKey::new("other", 10 * BLOCK_SIZE);
    for i in 0..6 {
        cache.put(&other, i, &block(9, BLOCK_SIZE as usize));
    }
    assert!(cache.is_complete(&key, size));
    drop(complete);
    // Unpinned, it can go; then it is no longer a complete file.
    for i in 6..10 {
        cache.put(&other, i, &block(9, BLOCK_SIZE as usize));
    }
    assert!(!cache.is_complete(&key, size));
    assert!(!cache.is_verified_complete(&key));
    assert!(cache.open_complete(&key, size).is_none());
}

#[test]
fn a_damaged_block_keeps_a_content_from_being_complete() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(BlockCache::open(&cfg(dir.path(), 4)).unwrap());
    let size = BLOCK_SIZE + 10;
    let key = ContentKey::new("damaged", size);
    assert!(cache.put(&key, 0, &block(1, BLOCK_SIZE as usize)));
    assert!(cache.put(&key, 1, &block(2, 10)));
    let f = OpenOptions::new()
        .write(true)
        .open(cache.block_file(&key))
        .unwrap();
    f.write_all_at(&[0xEE], 77).unwrap();
    assert!(!cache.verify_complete(&key, size));
    assert!(
        !cache.is_complete(&key, size),
        "the damaged block is dropped"
    );
    assert!(cache.open_complete(&key, size).is_none());
}

#[test]
fn a_complete_file_written_since_its_verification_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(BlockCache::open(&cfg(dir.path(), 4)).unwrap());
    let size = BLOCK_SIZE + 10;
    let key = ContentKey::new("tampered", size);
    assert!(cache.put(&key, 0, &block(1, BLOCK_SIZE as usize)));
    assert!(cache.put(&key, 1, &block(2, 10)));
    assert!(cache.verify_complete(&key, size));
    assert!(cache.open_complete(&key, size).is_some());
    std::thread::sleep(std::time::Duration::from_millis(20));
    let f = OpenOptions::new()
        .write(true)
        .open(cache.block_file(&key))
        .unwrap();
    f.write_all_at(&[0xEE], 77).unwrap();
    assert!(
        cache.open_complete(&key, size).is_none(),
        "changed since verified"
    );
    assert!(
        !cache.verify_complete(&key, size),
        "and the damage is found"
    );
    assert!(cache.get(&key, 0).is_none());
}

#[test]
fn a_stale_finding_of_damage_never_drops_the_fresh_copy() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BlockCache::open(&cfg(dir.path(), 10)).unwrap();
    let key = ContentKey::new("k", 2 * BLOCK_SIZE);
    let b0 = block(3, BLOCK_SIZE as usize);
    assert!(cache.put(&key, 0, &b0));
    let id = (key.clone(), 0);
    // Two readers read the same damaged copy; the first drops it and a fresh copy (same
    // length, same checksum) is stored before the second one reports what it saw.
    let damaged = lock(&cache.table).get(&id).unwrap();
    cache.drop_block(&id, damaged);
    assert!(!cache.contains(&key, 0));
    assert!(cache.put(&key, 0, &b0));
    cache.drop_block(&id, damaged);
    assert!(cache.contains(&key, 0), "the fresh copy stays");
    cache.drop_memory_tier();
    assert_eq!(cache.get(&key, 0).unwrap(), b0);
    assert_eq!(cache.stats().corrupt, 0);
}

#[test]
fn a_released_block_leaves_memory_but_not_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BlockCache::open(&cfg(dir.path(), 4)).unwrap();
    let k = ContentKey::new("seq", 1);
    let data = block(9, BLOCK_SIZE as usize);
    assert!(cache.put(&k, 0, &data));
    assert!(cache.is_hot(&k, 0));
    cache.release_hot(&k, 0);
    assert!(!cache.is_hot(&k, 0));
    assert!(cache.contains(&k, 0));
    assert_eq!(
        cache.get(&k, 0).as_deref(),
        Some(&data[..]),
        "read back from disk"
    );
    assert!(cache.is_hot(&k, 0));
}

#[test]
fn only_blocks_this_process_wrote_with_no_other_writer_since_skip_the_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let size = 2 * BLOCK_SIZE;
    let key = ContentKey::new("vouched", size);
    let damage = |cache: &BlockCache| {
        let f = OpenOptions::new()
            .write(true)
            .open(cache.block_file(&key))
            .unwrap();
        f.write_all_at(&[0xEE], 77).unwrap();
    };
    {
        // Another writer between two stores of this process: block 0 is read back and the
        // damage found, though this process wrote it.
        let cache = Arc::new(BlockCache::open(&cfg(dir.path(), 4)).unwrap());
        assert!(cache.put(&key, 0, &block(1, BLOCK_SIZE as usize)));
        damage(&cache);
        assert!(cache.put(&key, 1, &block(2, BLOCK_SIZE as usize)));
        assert!(!cache.verify_complete(&key, size));
        assert!(!cache.contains(&key, 0) && cache.contains(&key, 1));
        // Stored again with nobody else writing: complete, and sound.
        assert!(cache.put(&key, 0, &block(1, BLOCK_SIZE as usize)));
        assert!(cache.verify_complete(&key, size));
        let complete = cache.open_complete(&key, size).unwrap();
        let mut head = vec![0u8; 100];
        complete.file().read_exact_at(&mut head, 0).unwrap();
        assert_eq!(head, block(1, 100));
    }
    // Damaged while no process held the cache: a later process wrote none of it and reads
    // every block back.
    let cache = Arc::new(BlockCache::open(&cfg(dir.path(), 4)).unwrap());
    damage(&cache);
    assert!(!cache.verify_complete(&key, size));
    assert!(!cache.contains(&key, 0));
}

/// Evictions (which forget complete contents while holding the block table) racing with
/// verifications of complete contents: the two once took their locks in opposite orders and
/// deadlocked a mount's every thread.
#[test]
fn evictions_and_verifications_running_together_never_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    // Room for four small contents: nearly every store evicts one.
    let cache = Arc::new(BlockCache::open(&CacheConfig::new(dir.path(), 4 * 4096)).unwrap());
    const ROUNDS: u64 = 4000;
    let key = |i: u64| ContentKey::new(&format!("content-{i}"), 4096);
    let (done, finished) = std::sync::mpsc::channel();
    let mut workers = Vec::new();
    for worker in 0..2u64 {
        let (cache, done) = (cache.clone(), done.clone());
        workers.push(std::thread::spawn(move || {
            for i in 0..ROUNDS {
                let n = i * 2 + worker;
                cache.put(&key(n), 0, &block(n as u8, 4096));
                // The contents just stored by either worker, one of them maybe evicted meanwhile.
                for back in 0..3 {
                    cache.verify_complete(&key(n.saturating_sub(back)), 4096);
                }
            }
            done.send(()).unwrap();
        }));
    }
    for _ in 0..workers.len() {
        finished
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("the cache deadlocked");
    }
    for w in workers {
        w.join().unwrap();
    }
    assert!(cache.stats().bytes <= 4 * 4096);
}

/// Bytes written for a block but not indexed yet (the idle writer's first step) survive
/// evictions meanwhile: their content is pinned until the index step.
#[test]
fn a_block_written_but_not_yet_indexed_survives_evictions() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(BlockCache::open(&cfg(dir.path(), 2)).unwrap());
    let a = ContentKey::new("a", 2 * BLOCK_SIZE);
    let b = ContentKey::new("b", 4 * BLOCK_SIZE);
    assert!(cache.put(&a, 0, &block(1, BLOCK_SIZE as usize)));
    let pin = cache.pin_content(&a);
    let second = block(2, BLOCK_SIZE as usize);
    let write = cache.write_fetched(&a, 1, &second);
    // Others come in: without the pin, `a`'s only indexed block would be evicted and its
    // block file, holding the bytes just written, removed.
    for i in 0..4 {
        cache.put(&b, i, &block(3, BLOCK_SIZE as usize));
    }
    let sum = crc32c::crc32c(&second);
    assert!(cache.index_fetched(&a, 1, Bytes::from(second.clone()), sum, write));
    drop(pin);
    cache.drop_memory_tier();
    assert_eq!(cache.get(&a, 1).as_deref(), Some(&second[..]));
}

#[test]
fn files_no_indexed_block_is_in_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let key = ContentKey::new("kept", BLOCK_SIZE);
    let data = block(3, BLOCK_SIZE as usize);
    let stray = {
        let cache = BlockCache::open(&cfg(dir.path(), 10)).unwrap();
        assert!(cache.put(&key, 0, &data));
        // Bytes written under a key the index never got (a crash before its commit, a store
        // refused while another block of the file was in flight).
        let stray = cache.files.path("00ffstray");
        std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
        std::fs::write(&stray, [1u8; 5000]).unwrap();
        stray
    };
    let cache = BlockCache::open(&cfg(dir.path(), 10)).unwrap();
    assert!(!stray.exists(), "an unindexed block file stayed");
    assert_eq!(cache.get(&key, 0).unwrap(), data);
}
