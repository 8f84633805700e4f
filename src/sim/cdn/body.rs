//! Response bodies generated on the fly: chunks of file bytes made as the connection takes
//! them (nothing held per byte), paced to the bandwidth limit, counted in the statistics, and
//! cut short on purpose when a body fault is armed.

use std::io;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use tokio::time::Instant;

use crate::sim::SharedState;
use crate::sim::content::FileBytes;

/// Bytes generated per chunk without a bandwidth limit: big enough for loopback speed, small
/// enough to keep each poll of the body short.
const CHUNK: usize = 256 * 1024;
/// Smallest chunk under a bandwidth limit.
const MIN_PACED_CHUNK: u64 = 1024;
/// Chunks per second under a bandwidth limit, so the rate is smooth at any setting.
const PACED_CHUNKS_PER_SEC: u64 = 16;

/// How a body misbehaves on purpose (a CDN fault). Each sends the first half of the body first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFault {
    /// Then abort the connection.
    Reset,
    /// Then end the body, short of its `Content-Length`.
    Truncate,
    /// Then send nothing for this long, then abort the connection.
    Stall(Duration),
}

/// What to send: `len` bytes of `bytes` from `start`.
pub(crate) struct BodyPlan {
    pub bytes: FileBytes,
    pub start: u64,
    pub len: u64,
    pub fault: Option<BodyFault>,
    /// Bytes per second for this response; `None` or 0 = unlimited.
    pub bandwidth: Option<u64>,
}

/// A token bucket holding one chunk: chunk k may leave once the bytes before it fit the rate.
struct Pacer {
    rate: u64,
    started: Instant,
    sent: u64,
}

impl Pacer {
    async fn admit(&mut self, n: u64) {
        let due = self.started + Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
        tokio::time::sleep_until(due).await;
        self.sent += n;
    }
}

struct Sender {
    bytes: FileBytes,
    pos: u64,
    /// Where sending stops: the end of the range, or the cut of a fault.
    stop: u64,
    fault: Option<BodyFault>,
    pacer: Option<Pacer>,
    chunk: u64,
    state: SharedState,
    finished: bool,
}

impl Sender {
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        if self.finished {
            return None;
        }
        if self.pos >= self.stop {
            self.finished = true;
            if self.fault.is_some() {
                // Pause once so the connection flushes what was sent: an error or an early end
                // while bytes are still buffered would discard them, and the fault would turn
                // into "no answer at all".
                tokio::task::yield_now().await;
            }
            return match self.fault {
                None | Some(BodyFault::Truncate) => None,
                Some(BodyFault::Reset) => Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "cdn-reset fault: connection aborted mid-body",
                ))),
                Some(BodyFault::Stall(hold)) => {
                    tokio::time::sleep(hold).await;
                    Some(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "cdn-stall fault: gave up after stalling",
                    )))
                }
            };
        }
        let n = self.chunk.min(self.stop - self.pos);
        if let Some(pacer) = &mut self.pacer {
            pacer.admit(n).await;
        }
        let mut buf = vec![0u8; n as usize];
        self.bytes.fill(self.pos, &mut buf);
        self.pos += n;
        self.state.stats.add_cdn_bytes(n);
        Some(Ok(Bytes::from(buf)))
    }
}

/// The streaming body for `plan`.
pub(crate) fn stream(plan: BodyPlan, state: SharedState) -> Body {
    let end = plan.start + plan.len;
    let stop = match plan.fault {
        Some(_) => plan.start + plan.len / 2,
        None => end,
    };
    let rate = plan.bandwidth.filter(|&r| r > 0);
    let chunk = match rate {
        Some(r) => (r / PACED_CHUNKS_PER_SEC).clamp(MIN_PACED_CHUNK, CHUNK as u64),
        None => CHUNK as u64,
    };
    let sender = Sender {
        bytes: plan.bytes,
        pos: plan.start,
        stop,
        fault: plan.fault,
        pacer: rate.map(|rate| Pacer {
            rate,
            started: Instant::now(),
            sent: 0,
        }),
        chunk,
        state,
        finished: false,
    };
    let chunks = futures_util::stream::unfold(sender, |mut s| async move {
        let item = s.next().await?;
        Some((item, s))
    });
    Body::from_stream(chunks)
}
