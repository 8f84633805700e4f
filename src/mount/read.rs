//! Read planning: how much to fetch ahead of each read of an open file.
//!
//! Each open handle has a [`ReadPlanner`]. The first read, and any read that jumps away from
//! where the handle was reading, fetches a small window ([`PrefetchConfig::initial_window`],
//! 256 KiB) from the read's offset: a thumbnailer peeking at the head of many files costs one
//! small request per file. The head is twice the kernel's first readahead because the kernel,
//! seeing a 128 KiB read at the start of a file (a stdio or Python buffer), asks at once for
//! the next 128 KiB too, without the application having read a byte of it: that request must
//! not pass for a sequential reader, or every peek would download the whole photo. Only a read
//! beyond the head shows a sequential reader; the window then jumps to
//! [`PrefetchConfig::sequential_window`] (4 MiB: the rest of a typical photo in one request,
//! so a whole-file reader still needs only two round trips per photo; four times that when
//! the head itself had to wait for the network, i.e. the file is cold and a ramp from 4 MiB
//! would cost a round trip more), then doubles every
//! time half of what was fetched ahead has been consumed (up to
//! [`PrefetchConfig::max_window`]), so `cp` of a video streams with requests in flight well
//! ahead of the reader. A reader that had to wait for the network (reported with
//! [`ReadPlanner::note_wait`]) is starved: the window then grows fourfold and is topped up as
//! soon as less than a whole window is in flight, so read-ahead catches up with the link's
//! latency within a few requests (as mountpoint-s3 scales up on starvation). At full size
//! the window is kept full, topped up by [`PrefetchConfig::top_up`] at a time (topping up
//! only at half a window let the reader catch up with the front while the next batch crossed
//! the link's latency), and read-ahead never reaches more than [`PrefetchConfig::max_window`]
//! beyond the read: blocks fetched ahead wait in the cache's memory tier (64 MiB), and a
//! block evicted from there before its reader came had to be read back from disk and
//! verified again. The full window is 48 MiB: on unlimited loopback with 20 ms of latency a
//! 32 MiB window left the reader catching up with its transfers (cold read 0.58x → 0.65x of
//! a plain download in interleaved runs), and with a CDN at 40 MB/s per connection it is 12
//! transfers in parallel instead of 8 (6.9x → 9.5x). Since fetched blocks enter the tier at
//! delivery and leave it as the reader passes them, one stream's window fits with room to
//! spare; two cold streams at full speed at once overflow it, and their nearest blocks are
//! then read back from the page cache and verified.
//!
//! A first read of [`PrefetchConfig::bulk_read`] (768 KiB) or more has no head to peek at: the
//! application asked for that much in one call (`dd bs=1M`, a copier or player with large
//! buffers; the kernel's first readahead of a page-cached file is at most twice the read, so
//! a 256 KiB read becomes 512 KiB at most), so read-ahead starts with it. The threshold is
//! below 1 MiB because a 1 MiB buffer that is not page-aligned (most heap buffers) reaches a
//! file opened with direct I/O as 1 MiB minus up to a page, then the rest (the kernel's
//! 256-page limit per request): at 1 MiB such a reader missed the bulk start and waited a
//! round trip more (~30 ms of a ~0.5 s cold read in a trace). Read-ahead starts at
//! [`PrefetchConfig::bulk_window`], the full 48 MiB: starting at 4 MiB cost a cold stream two
//! more 20 ms round trips (4 → 16 → 48 MiB) with the reader waiting at each (~150 ms before
//! the stream flowed, in a trace of the benchmark's 376 MiB read). Starting at 16 MiB still
//! left the reader waiting at 16 MiB for the rest of the window, asked for only at its second
//! read (~80 ms to the first 16 MiB in a trace); the full window at once took 4% off the
//! median cold read (10 interleaved pairs, 8 faster). The price: a jump with a large read
//! also asks for 48 MiB ahead.
//!
//! Read-ahead ends on a block boundary when it reaches past one (a window ending inside a
//! block would cost a whole extra request for a few bytes); a head-only window ends on a
//! 64 KiB boundary instead, and the block cache keeps that prefix of the block.
//!
//! "Sequential" tolerates the kernel's own reordering: with asynchronous reads, readahead
//! requests of 128 KiB arrive slightly out of order, so a read up to
//! [`PrefetchConfig::backward_tolerance`] behind or [`PrefetchConfig::forward_tolerance`]
//! beyond the expected offset keeps the window.

use crate::cache::BLOCK_SIZE;

/// Alignment of the end of a head-only fetch.
const HEAD_ALIGN: u64 = 64 << 10;

/// Tuning of read-ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefetchConfig {
    /// Bytes fetched from the offset of a first or random read.
    pub initial_window: u64,
    /// A first or random read at least this large starts read-ahead at once (the sequential
    /// window beyond it): only an application asking for this much in one call (the
    /// kernel's first request for a 256 KiB read of a page-cached file is 512 KiB at most)
    /// makes it, and it reads on. Below 1 MiB: an unaligned 1 MiB buffer reads a direct-I/O
    /// file in pieces of 1 MiB minus up to a page.
    pub bulk_read: u64,
    /// Read-ahead started by such a bulk first read.
    pub bulk_window: u64,
    /// Window of a handle once it reads on sequentially (then doubling).
    pub sequential_window: u64,
    /// Largest window of a sequential reader. Read-ahead lands in the cache's memory tier
    /// before it is read: the window must fit there with room to spare, or blocks are evicted
    /// before their reader comes and are read back from disk (and re-verified).
    pub max_window: u64,
    /// Once the window is full size, how much reading ahead is topped up at a time (about one
    /// transfer).
    pub top_up: u64,
    /// How far behind the expected offset a read may land and still count as sequential.
    pub backward_tolerance: u64,
    /// How far beyond the expected offset a read may land and still count as sequential.
    pub forward_tolerance: u64,
}

impl Default for PrefetchConfig {
    fn default() -> Self {
        PrefetchConfig {
            initial_window: 256 << 10,
            bulk_read: 768 << 10,
            bulk_window: 48 << 20,
            sequential_window: 4 << 20,
            max_window: 48 << 20,
            top_up: 4 << 20,
            backward_tolerance: 1 << 20,
            forward_tolerance: 16 << 20,
        }
    }
}

/// What one read needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPlan {
    /// First byte to return.
    pub offset: u64,
    /// Exact number of bytes to return: the requested size, clamped at the end of the file.
    pub len: u64,
    /// Fetch ahead up to this offset (at least `offset + len`, at most the file size).
    pub fetch_to: u64,
    /// Read-ahead before this offset was already requested through this handle: the source
    /// need not look at it again (keeps a read O(new blocks), not O(window)).
    pub prefetch_from: u64,
}

impl ReadPlan {
    /// A plan for exactly `[offset, offset + len)`, without read-ahead.
    pub fn exact(offset: u64, len: u64) -> Self {
        ReadPlan {
            offset,
            len,
            fetch_to: offset + len,
            prefetch_from: offset,
        }
    }
}

/// Read-ahead state of one open handle.
#[derive(Debug, Clone)]
pub struct ReadPlanner {
    cfg: PrefetchConfig,
    file_size: u64,
    started: bool,
    /// End of the furthest read so far.
    next: u64,
    window: u64,
    /// Read-ahead is planned up to here.
    ahead_to: u64,
    /// Largest `fetch_to` handed out since the last reset.
    requested_to: u64,
    /// A read waited for the network since the window last grew.
    starved: bool,
}

impl ReadPlanner {
    /// A planner for a file of `file_size` bytes.
    pub fn new(cfg: PrefetchConfig, file_size: u64) -> Self {
        ReadPlanner {
            cfg,
            file_size,
            started: false,
            next: 0,
            window: cfg.initial_window,
            ahead_to: 0,
            requested_to: 0,
            starved: false,
        }
    }

    /// A read of this handle had to wait for the network: the next growth of a sequential
    /// window is larger and comes sooner (see the module docs).
    pub fn note_wait(&mut self) {
        self.starved = true;
    }

    /// The current window (for tests and metrics).
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Plan a read of `size` bytes at `offset`.
    pub fn plan(&mut self, offset: u64, size: u32) -> ReadPlan {
        let end = offset.saturating_add(size as u64).min(self.file_size);
        let len = end.saturating_sub(offset);
        if len == 0 {
            return ReadPlan::exact(offset.min(self.file_size), 0);
        }
        let sequential = self.started
            && offset.saturating_add(self.cfg.backward_tolerance) >= self.next
            && offset <= self.next.max(self.ahead_to) + self.cfg.forward_tolerance;
        if !sequential {
            self.starved = false;
            self.window = self.cfg.initial_window;
            self.ahead_to = end.max(offset.saturating_add(self.window));
            if len >= self.cfg.bulk_read {
                // A bulk reader: no head to peek at, read-ahead from the first request (one
                // round trip less before the stream flows).
                self.window = self.cfg.bulk_window.min(self.cfg.max_window);
                self.ahead_to = end.saturating_add(self.window);
            }
            self.next = end;
            self.requested_to = offset;
        } else {
            // Still on the head: reads inside it (the kernel's speculative readahead among
            // them) fetch nothing more; one beyond it starts the sequential window.
            let on_head = self.window < self.cfg.sequential_window;
            // A starved reader keeps a whole window in flight and grows it fourfold; a fed
            // one tops up at half a window and doubles.
            let (lead, factor) = if self.starved {
                (self.window, 4)
            } else {
                (self.window / 2, 2)
            };
            let at_cap = !on_head && self.window >= self.cfg.max_window;
            let grow = if on_head {
                end > self.ahead_to
            } else {
                end.saturating_add(lead) > self.ahead_to
            };
            if at_cap {
                // Full size: keep the whole window in flight, topped up as soon as a
                // transfer's worth has been read (fewer, larger requests would leave the
                // reader waiting for a batch; more would cost a request per block).
                let full = end.saturating_add(self.window);
                if full >= self.ahead_to.saturating_add(self.cfg.top_up) {
                    self.ahead_to = full;
                }
                self.starved = false;
            } else if grow {
                self.window = if on_head {
                    // Leaving the head: a reader that had to wait for it (a cold file) starts
                    // four times larger, so the ramp to full size costs one round trip less.
                    let start = self.cfg.sequential_window;
                    if self.starved { start * factor } else { start }
                } else {
                    self.window * factor
                }
                .max(self.cfg.sequential_window)
                .min(self.cfg.max_window);
                self.ahead_to = self.ahead_to.max(end).saturating_add(self.window);
                self.starved = false;
            }
            self.next = self.next.max(end);
        }
        // Never more than the largest window ahead of the read, growth included: that much
        // read-ahead must fit in the cache's memory tier until it is read.
        self.ahead_to = self
            .ahead_to
            .min(end.saturating_add(self.cfg.max_window))
            .min(self.file_size);
        self.started = true;
        // Stop read-ahead at a block boundary when it reaches past one; otherwise (a head-only
        // window) on a 64 KiB boundary.
        let fetch_to = if self.ahead_to >= self.file_size {
            self.file_size
        } else if self.ahead_to / BLOCK_SIZE * BLOCK_SIZE >= end {
            self.ahead_to / BLOCK_SIZE * BLOCK_SIZE
        } else {
            self.ahead_to
                .next_multiple_of(HEAD_ALIGN)
                .min(self.file_size)
                .max(end)
        };
        let prefetch_from = self.requested_to.max(offset);
        self.requested_to = self.requested_to.max(fetch_to);
        ReadPlan {
            offset,
            len,
            fetch_to,
            prefetch_from,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1024;
    const M: u64 = 1024 * 1024;

    #[test]
    fn first_read_fetches_a_small_head_and_clamps_at_eof() {
        let mut p = ReadPlanner::new(PrefetchConfig::default(), 10 * M);
        assert_eq!(
            p.plan(0, 64 * K as u32),
            ReadPlan {
                offset: 0,
                len: 64 * K,
                fetch_to: 256 * K,
                prefetch_from: 0,
            }
        );
        let mut small = ReadPlanner::new(PrefetchConfig::default(), 100 * K);
        assert_eq!(
            small.plan(90 * K, 128 * K as u32),
            ReadPlan {
                offset: 90 * K,
                len: 10 * K,
                fetch_to: 100 * K,
                prefetch_from: 90 * K,
            }
        );
        assert_eq!(small.plan(100 * K, 4096).len, 0);
        assert_eq!(small.plan(500 * K, 4096).len, 0);
        assert_eq!(small.plan(u64::MAX - 10, u32::MAX).len, 0);
        // A random read near the end of a block: a head-sized window, 64 KiB aligned.
        let mut p = ReadPlanner::new(PrefetchConfig::default(), 10 * M);
        let plan = p.plan(M + 1000, 4096);
        assert_eq!(plan.fetch_to, M + 320 * K);
        // A window reaching past a block boundary stops on it.
        let mut p = ReadPlanner::new(PrefetchConfig::default(), 10 * M);
        assert_eq!(p.plan(M - 64 * K, 4096).fetch_to, M);
    }

    #[test]
    fn sequential_reader_jumps_then_doubles_window_up_to_the_cap() {
        let cfg = PrefetchConfig {
            max_window: 32 * M,
            ..PrefetchConfig::default()
        };
        let size = 1000 * M;
        let mut p = ReadPlanner::new(cfg, size);
        let mut windows = vec![];
        let mut last_fetch_to = 0;
        let mut requests_before_4m = 0;
        let mut off = 0;
        while off < 200 * M {
            let plan = p.plan(off, 128 * K as u32);
            assert_eq!(plan.len, 128 * K);
            assert!(plan.fetch_to >= off + plan.len);
            assert!(
                plan.fetch_to >= last_fetch_to,
                "read-ahead never moves back"
            );
            // Never more than 1.5 windows ahead of the reader.
            assert!(plan.fetch_to - (off + plan.len) <= cfg.max_window * 3 / 2 + M);
            if plan.fetch_to > last_fetch_to && off < 4 * M {
                requests_before_4m += 1;
            }
            assert!(plan.prefetch_from <= plan.fetch_to);
            assert!(
                plan.prefetch_from >= last_fetch_to.min(plan.offset),
                "nothing re-checked"
            );
            last_fetch_to = plan.fetch_to;
            if windows.last() != Some(&p.window()) {
                windows.push(p.window());
            }
            off += 128 * K;
        }
        assert_eq!(windows, vec![256 * K, 4 * M, 8 * M, 16 * M, 32 * M]);
        // A whole 4 MB photo: the head, then the rest in one window.
        assert_eq!(
            requests_before_4m, 3,
            "head, rest of the photo, read-ahead beyond"
        );
        assert!(last_fetch_to >= off + 3 * M);
    }

    #[test]
    fn random_jump_resets_the_window_and_reordered_readahead_does_not() {
        let mut p = ReadPlanner::new(PrefetchConfig::default(), 1000 * M);
        for i in 0..40 {
            p.plan(i * 128 * K, 128 * K as u32);
        }
        let grown = p.window();
        assert!(grown > M);
        // Kernel readahead arriving a little out of order keeps the window.
        p.plan(40 * 128 * K + 256 * K, 128 * K as u32);
        p.plan(40 * 128 * K, 128 * K as u32);
        assert!(p.window() >= grown);
        // A seek far away starts over with a head window at the new place.
        let plan = p.plan(700 * M, 4096);
        assert_eq!(p.window(), 256 * K);
        assert_eq!(plan.fetch_to, 700 * M + 256 * K);
        // So does a jump backwards.
        let plan = p.plan(M, 4096);
        assert_eq!(plan.fetch_to, M + 256 * K);
    }

    #[test]
    fn the_kernels_speculative_readahead_does_not_make_a_sequential_reader() {
        // A 128 KiB read at the start, then the kernel's own readahead of the next 128 KiB:
        // both inside the head, one request in all.
        let mut p = ReadPlanner::new(PrefetchConfig::default(), 10 * M);
        let first = p.plan(0, 128 * K as u32);
        assert_eq!(first.fetch_to, 256 * K);
        let second = p.plan(128 * K, 128 * K as u32);
        assert_eq!(second.fetch_to, 256 * K, "nothing more to fetch");
        assert_eq!(p.window(), 256 * K);
        // The application reading on past the head is a sequential reader.
        let third = p.plan(256 * K, 128 * K as u32);
        assert_eq!(p.window(), 4 * M);
        assert_eq!(third.fetch_to, 4 * M);
    }

    #[test]
    fn a_full_window_stays_full_and_never_reaches_past_its_size() {
        let cfg = PrefetchConfig::default();
        let mut p = ReadPlanner::new(cfg, 10_000 * M);
        let mut requests = 0;
        let mut last_fetch_to = 0;
        let mut off = 0;
        while off < 1000 * M {
            let plan = p.plan(off, M as u32);
            if off % (7 * M) == 0 {
                p.note_wait();
            }
            let ahead = plan.fetch_to - (off + plan.len);
            assert!(ahead <= cfg.max_window, "{ahead} ahead at {off}");
            if p.window() == cfg.max_window && off > 200 * M {
                // Full size: never less than a window minus one top-up ahead.
                assert!(ahead + cfg.top_up + M >= cfg.max_window, "{ahead} at {off}");
            }
            if plan.fetch_to > last_fetch_to {
                requests += 1;
                last_fetch_to = plan.fetch_to;
            }
            off += M;
        }
        // Topped up a transfer's worth at a time, not per read.
        assert!(requests <= 1000 * M / cfg.top_up + 10, "{requests} top-ups");
    }

    #[test]
    fn a_reader_leaving_a_head_it_waited_for_starts_four_times_larger() {
        let leave_head = |waited: bool| {
            let mut p = ReadPlanner::new(PrefetchConfig::default(), 1000 * M);
            p.plan(0, 128 * K as u32);
            if waited {
                p.note_wait();
            }
            let plan = p.plan(256 * K, 128 * K as u32);
            (p.window(), plan.fetch_to)
        };
        assert_eq!(leave_head(false), (4 * M, 4 * M));
        assert_eq!(leave_head(true), (16 * M, 16 * M));
    }

    #[test]
    fn a_bulk_first_read_starts_read_ahead_at_once() {
        let mut p = ReadPlanner::new(PrefetchConfig::default(), 100 * M);
        let plan = p.plan(5 * M, 4 * M as u32);
        assert_eq!((plan.len, plan.fetch_to), (4 * M, 57 * M));
        assert_eq!(p.window(), 48 * M);
        let next = p.plan(9 * M, M as u32);
        assert!(next.fetch_to >= 57 * M && next.prefetch_from >= 57 * M);
        // A 1 MiB buffer that is not page-aligned: the first request is a page short.
        let mut p = ReadPlanner::new(PrefetchConfig::default(), 100 * M);
        let plan = p.plan(0, (M - 16) as u32);
        assert_eq!(plan.fetch_to, 48 * M);
        // The kernel's first readahead for a 256 KiB read of a page-cached file (512 KiB) is
        // a head read: the read itself, no more.
        let mut p = ReadPlanner::new(PrefetchConfig::default(), 100 * M);
        let plan = p.plan(5 * M, 512 * K as u32);
        assert_eq!(plan.fetch_to, 5 * M + 512 * K);
        // A bulk read near the end stops at the end.
        let mut p = ReadPlanner::new(PrefetchConfig::default(), 100 * M);
        assert_eq!(p.plan(98 * M, M as u32).fetch_to, 100 * M);
    }

    #[test]
    fn a_starved_reader_grows_its_window_faster() {
        let fed = |starve: bool| {
            let mut p = ReadPlanner::new(PrefetchConfig::default(), 1000 * M);
            let mut off = 0;
            while p.window() < PrefetchConfig::default().max_window && off < 500 * M {
                p.plan(off, 128 * K as u32);
                if starve {
                    p.note_wait();
                }
                off += 128 * K;
            }
            off
        };
        let starved = fed(true);
        let normal = fed(false);
        assert!(
            starved < normal / 2,
            "starved reaches the cap at {starved}, fed at {normal}"
        );
    }
}
