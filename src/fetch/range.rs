//! A byte range of a version, for the mount's block cache: a Range GET whose answer is checked
//! against the catalog before a byte is trusted.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::RANGE;

use super::{
    FetchConfig, FetchError, check_content_range, reject_error_document, sniff, status_error,
};

/// Fetch bytes `[offset, offset + len)` of a file of `total` bytes (clamped at the end).
/// The answer must be a 206 with exactly that `Content-Range` (or a 200 of the whole file
/// when the range starts at 0), its head must look like `uti` when it starts at 0, and its
/// length must be exact. One attempt: the caller decides about retries and URL refreshes.
pub async fn fetch_range(
    http: &reqwest::Client,
    cfg: &FetchConfig,
    url: &str,
    offset: u64,
    len: u64,
    total: u64,
    uti: &str,
) -> Result<Bytes, FetchError> {
    let want = if offset >= total || len == 0 {
        0
    } else {
        (offset + len).min(total) - offset
    };
    let mut out = BytesMut::with_capacity(want as usize);
    fetch_range_stream(
        http,
        cfg,
        url,
        offset,
        len,
        total,
        uti,
        &mut |chunk: Bytes| out.extend_from_slice(&chunk),
    )
    .await?;
    Ok(out.freeze())
}

/// [`fetch_range`], handing the body to `sink` piece by piece as it arrives (in order, each
/// piece checked like the whole: status, `Content-Range`, type; the head of the file is held
/// back until it is sniffed). On an error `sink` has received a correct prefix of the range,
/// possibly empty: the caller may resume after it.
#[allow(clippy::too_many_arguments)]
pub async fn fetch_range_stream(
    http: &reqwest::Client,
    cfg: &FetchConfig,
    url: &str,
    offset: u64,
    len: u64,
    total: u64,
    uti: &str,
    sink: &mut (dyn FnMut(Bytes) + Send),
) -> Result<(), FetchError> {
    if offset >= total || len == 0 {
        return Ok(());
    }
    let end = (offset + len).min(total) - 1;
    let want = end - offset + 1;
    let resp = http
        .get(url)
        .header(RANGE, format!("bytes={offset}-{end}"))
        .send()
        .await
        .map_err(FetchError::from_reqwest)?;
    let status = resp.status();
    let mut skip = 0u64;
    match status {
        StatusCode::PARTIAL_CONTENT => check_content_range(resp.headers(), offset, end + 1, total)?,
        // A server that ignores Range sends everything: skip to our offset.
        StatusCode::OK => skip = offset,
        _ => return Err(status_error(status, resp.headers())),
    }
    reject_error_document(resp.headers())?;
    // The head of the file is held until it can be sniffed.
    let head_len = if offset == 0 {
        (sniff::HEAD_LEN as u64).min(want) as usize
    } else {
        0
    };
    let mut head = BytesMut::with_capacity(head_len);
    let mut sniffed = head_len == 0;
    let mut got = 0u64;
    let mut stream = resp.bytes_stream();
    while got < want {
        let next = tokio::time::timeout(cfg.stall_timeout, stream.next())
            .await
            .map_err(|_| FetchError::Stalled(cfg.stall_timeout))?;
        let mut chunk = match next {
            None => break,
            Some(chunk) => chunk.map_err(FetchError::from_reqwest)?,
        };
        if skip > 0 {
            let n = skip.min(chunk.len() as u64) as usize;
            let _ = chunk.split_to(n);
            skip -= n as u64;
        }
        let room = (want - got) as usize;
        chunk.truncate(room);
        got += chunk.len() as u64;
        if !sniffed {
            let take = (head_len - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk.split_to(take));
            if head.len() < head_len {
                continue;
            }
            if let Err(what) = sniff::check(&head, uti) {
                return Err(FetchError::NotMedia { what });
            }
            sniffed = true;
            sink(head.split().freeze());
        }
        if !chunk.is_empty() {
            sink(chunk);
        }
    }
    if got < want {
        return Err(FetchError::Truncated {
            got: got - head.len() as u64,
            expected: want,
        });
    }
    Ok(())
}
