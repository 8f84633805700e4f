//! Reusable buffers for whole blocks.
//!
//! A cold sequential read moves every block through a fresh 1 MiB buffer (filled from the
//! network, shared with readers and the memory tier, dropped when the tier evicts it). Fresh
//! memory from the allocator costs a page fault and a page clear per 4 KiB the first time it
//! is written: measured at a tenth of the daemon's CPU on a cold read, as much as the copy
//! itself. Buffers of whole blocks are therefore given back to a small free list when their
//! last reader drops them, and the next block is assembled in one of those.
//!
//! Only whole-block buffers are pooled: a short block (a file's head for a thumbnailer, a
//! file's last block) gets a buffer of its own size, so the memory tier's byte budget stays
//! the memory it really holds.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::BLOCK_SIZE;

/// Free buffers kept for reuse (each `BLOCK_SIZE` bytes): about what one sequential reader
/// has in flight (read-ahead of up to 48 MiB), so a stream after the first one takes almost
/// no page fault. The price: up to this many MiB stay allocated once a stream has ended.
const MAX_FREE: usize = 48;

/// The free list shared by the buffers it handed out.
#[derive(Default)]
pub(crate) struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// An empty buffer with room for `len` bytes: a reused one for a whole block.
    pub fn take(self: &Arc<Self>, len: usize) -> BlockBuf {
        let pooled = len == BLOCK_SIZE as usize;
        let vec = if pooled {
            self.free
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()
                .unwrap_or_else(|| fresh_block(len))
        } else {
            Vec::with_capacity(len)
        };
        BlockBuf {
            vec,
            pool: pooled.then(|| self.clone()),
        }
    }

    /// Buffers waiting for reuse (tests).
    #[cfg(test)]
    pub fn free_count(&self) -> usize {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn give_back(&self, mut vec: Vec<u8>) {
        if vec.capacity() != BLOCK_SIZE as usize {
            return;
        }
        vec.clear();
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < MAX_FREE {
            free.push(vec);
        }
    }
}

/// A new whole-block buffer with its pages already in memory. Filling fresh memory took a page
/// fault per 4 KiB (a cold stream needs a hundred fresh buffers or so before they come back:
/// the read-ahead and the stores queued behind it); one `MADV_POPULATE_WRITE` call maps them
/// all at once. Measured on a 376 MiB cold read: page faults 38-58k -> 3-4k, the daemon's CPU
/// time 9% lower. Older kernels (before 5.14) refuse the advice; the faults then happen as
/// before.
fn fresh_block(len: usize) -> Vec<u8> {
    let vec = Vec::with_capacity(len);
    let start = vec.as_ptr() as usize;
    let first_page = start.div_ceil(PAGE) * PAGE;
    let end_page = (start + len) / PAGE * PAGE;
    if end_page > first_page {
        // SAFETY: the range lies inside the allocation just made, which nothing else uses; the
        // advice maps pages and changes no byte.
        unsafe {
            libc::madvise(
                first_page as *mut libc::c_void,
                end_page - first_page,
                libc::MADV_POPULATE_WRITE,
            );
        }
    }
    vec
}

/// The smallest page size of Linux (on larger pages the unaligned advice is refused: harmless).
const PAGE: usize = 4096;

/// A buffer being filled with a block's bytes; [`BlockBuf::freeze`] shares it as [`Bytes`],
/// and it goes back to its pool when the last clone is dropped.
pub struct BlockBuf {
    vec: Vec<u8>,
    pool: Option<Arc<BufferPool>>,
}

impl BlockBuf {
    /// Bytes in the buffer.
    pub fn len(&self) -> usize {
        self.vec.len()
    }

    /// Whether the buffer holds no byte.
    pub fn is_empty(&self) -> bool {
        self.vec.is_empty()
    }

    /// Append `data`.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.vec.extend_from_slice(data);
    }

    /// The buffer as a `Vec` to read into (its length is what has been filled).
    pub(crate) fn vec_mut(&mut self) -> &mut Vec<u8> {
        &mut self.vec
    }

    /// Share the bytes (no copy).
    pub fn freeze(mut self) -> Bytes {
        if self.pool.is_none() {
            return Bytes::from(std::mem::take(&mut self.vec));
        }
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for BlockBuf {
    fn as_ref(&self) -> &[u8] {
        &self.vec
    }
}

impl Drop for BlockBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.vec));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_block_buffers_come_back_when_the_last_clone_goes() {
        let pool = Arc::new(BufferPool::default());
        let mut buf = pool.take(BLOCK_SIZE as usize);
        buf.extend_from_slice(&[7u8; 100]);
        let bytes = buf.freeze();
        let part = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.free_count(), 0, "a slice still uses it");
        assert_eq!(&part[..], &[7u8; 10]);
        drop(part);
        assert_eq!(pool.free_count(), 1);
        // Reused, and handed out empty.
        let again = pool.take(BLOCK_SIZE as usize);
        assert!(again.is_empty());
        assert_eq!(pool.free_count(), 0);
    }

    #[test]
    fn short_buffers_are_not_pooled_and_the_free_list_is_bounded() {
        let pool = Arc::new(BufferPool::default());
        let mut head = pool.take(4096);
        head.extend_from_slice(&[1u8; 4096]);
        drop(head.freeze());
        assert_eq!(pool.free_count(), 0);
        let many: Vec<BlockBuf> = (0..MAX_FREE + 5)
            .map(|_| pool.take(BLOCK_SIZE as usize))
            .collect();
        drop(many);
        assert_eq!(pool.free_count(), MAX_FREE);
    }
}
