//! One whole file from the CDN into place, resumably and atomically.
//!
//! Invariants (they are what "never lose or corrupt a photo" means here):
//! - nothing is ever written at the destination path except by an atomic rename of a complete,
//!   size-checked, fsynced temp file;
//! - a temp file only ever holds a prefix of the right content: its name carries the version's
//!   checksum and size, and a resume is only accepted with a matching `Content-Range`;
//! - an interrupted transfer (error, cancel, `kill -9`) leaves at most that temp file, which the
//!   next attempt resumes;
//! - the rename replaces nothing unless the caller said the destination holds an older copy
//!   to replace: a file that appeared there while the bytes came in is someone else's.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, RANGE};
use sha2::{Digest, Sha256};

use super::{
    FetchConfig, FetchError, UrlProvider, check_content_range, reject_error_document, sniff,
    status_error,
};

/// What to download and where.
#[derive(Debug, Clone)]
pub struct Download<'a> {
    /// Final path of the file.
    pub dest: &'a Path,
    /// Exact size the catalog knows.
    pub size: u64,
    /// UTI of the version (`public.jpeg`, ...), for the magic-byte check.
    pub uti: &'a str,
    /// The version's `fileChecksum`: names the temp file so parts of different content never mix.
    pub checksum: &'a str,
    /// Modification time to give the file (the asset's date).
    pub mtime: Option<SystemTime>,
    /// Whatever is at `dest` may be replaced (an older copy of this very file). Otherwise a
    /// file that appears there during the transfer (the user's) is never overwritten: the
    /// download fails with [`FetchError::DestinationTaken`] and keeps its complete temp file.
    pub replace: bool,
    /// Set when the bytes are all in and the file is being moved into place: from then on
    /// the caller must let the call finish (dropping it could leave the file in place with
    /// nobody told), which takes only local disk time.
    pub committing: Option<&'a AtomicBool>,
}

/// A completed download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadOutcome {
    /// SHA-256 of the file as written.
    pub sha256: [u8; 32],
    /// Bytes transferred over the network by this call.
    pub bytes_fetched: u64,
    /// Offset a resume started from (0 = fresh).
    pub resumed_from: u64,
}

/// The temp file beside `dest` for a version. Hidden, and unique per (name, content).
pub fn temp_path(dest: &Path, checksum: &str, size: u64, suffix: &str) -> PathBuf {
    let mut h = Sha256::new();
    h.update(checksum.as_bytes());
    h.update(size.to_be_bytes());
    let tag = hex::encode(&h.finalize()[..4]);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Keep the temp name within NAME_MAX: the destination name may already be 255 bytes.
    let mut stem = name;
    let budget = 255usize.saturating_sub(1 + 1 + tag.len() + suffix.len());
    if stem.len() > budget {
        let mut cut = budget;
        while cut > 0 && !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        stem.truncate(cut);
    }
    dest.with_file_name(format!(".{stem}.{tag}{suffix}"))
}

/// Download `job` using URLs from `urls`, retrying transient failures and refreshing expired
/// URLs, up to `cfg.max_attempts` attempts.
pub async fn download(
    http: &reqwest::Client,
    cfg: &FetchConfig,
    job: &Download<'_>,
    urls: &dyn UrlProvider,
) -> Result<DownloadOutcome, FetchError> {
    let temp = temp_path(job.dest, job.checksum, job.size, &cfg.temp_suffix);
    let mut refresh = false;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = match urls.url(refresh).await {
            Ok(url) => attempt_once(http, cfg, job, &temp, &url).await,
            Err(e) => Err(e),
        };
        refresh = false;
        let err = match result {
            Ok(outcome) => return Ok(outcome),
            Err(e) => e,
        };
        if err.is_local_io() || !(err.is_transient() || err.needs_new_url()) {
            return Err(err);
        }
        if attempt >= cfg.max_attempts {
            return Err(FetchError::GaveUp {
                attempts: attempt,
                last: Box::new(err),
            });
        }
        tracing::debug!(dest = %job.dest.display(), attempt, error = %err, "download attempt failed; retrying");
        if err.needs_new_url() {
            refresh = true;
        } else {
            let retry_after = match &err {
                FetchError::Status { retry_after, .. } => *retry_after,
                _ => None,
            };
            tokio::time::sleep(cfg.backoff.delay(attempt - 1, retry_after)).await;
        }
    }
}

/// Length of a usable partial file, hashing its content into `hasher`. A part that is too long
/// or does not start like the expected type is removed.
fn prepare_part(temp: &Path, size: u64, uti: &str, hasher: &mut Sha256) -> Result<u64, FetchError> {
    let mut file = match std::fs::File::open(temp) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(FetchError::io("open", temp, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| FetchError::io("stat", temp, e))?
        .len();
    let mut head = vec![0u8; sniff::HEAD_LEN.min(len as usize)];
    file.read_exact(&mut head)
        .map_err(|e| FetchError::io("read", temp, e))?;
    if len > size || (len > 0 && sniff::check(&head, uti).is_err()) {
        drop(file);
        remove(temp)?;
        return Ok(0);
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| FetchError::io("seek", temp, e))?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| FetchError::io("read", temp, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(len)
}

fn remove(path: &Path) -> Result<(), FetchError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FetchError::io("remove", path, e)),
    }
}

/// Parse `bytes START-END/TOTAL`.
async fn attempt_once(
    http: &reqwest::Client,
    cfg: &FetchConfig,
    job: &Download<'_>,
    temp: &Path,
    url: &str,
) -> Result<DownloadOutcome, FetchError> {
    let (mut offset, mut hasher) = {
        let temp = temp.to_path_buf();
        let (size, uti) = (job.size, job.uti.to_string());
        tokio::task::spawn_blocking(move || {
            let mut h = Sha256::new();
            prepare_part(&temp, size, &uti, &mut h).map(|len| (len, h))
        })
        .await
        .map_err(|e| FetchError::Network(format!("hashing task failed: {e}")))??
    };
    let resumed_from = offset;
    if offset == job.size && job.size > 0 {
        // A complete part left by an interrupted run: finish it without the network.
        return finalize(job, temp, hasher, 0, resumed_from).await;
    }

    let mut req = http.get(url);
    if offset > 0 {
        req = req.header(RANGE, format!("bytes={offset}-"));
    }
    let resp = req.send().await.map_err(FetchError::from_reqwest)?;
    let status = resp.status();
    match status {
        StatusCode::PARTIAL_CONTENT => {
            if let Err(e) = check_content_range(resp.headers(), offset, job.size, job.size) {
                if matches!(e, FetchError::BadContentRange { .. }) {
                    // Whatever the server meant, our part cannot be trusted any more.
                    remove(temp)?;
                }
                return Err(e);
            }
        }
        StatusCode::OK => {
            if offset > 0 {
                // The server ignored Range: start over from byte 0.
                hasher = Sha256::new();
                offset = 0;
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            remove(temp)?;
            return Err(FetchError::Status {
                status: 416,
                retry_after: None,
            });
        }
        _ => return Err(status_error(status, resp.headers())),
    }
    reject_error_document(resp.headers())?;
    let announced = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = resp.bytes_stream();
    if let Some(len) = announced
        && offset + len != job.size
    {
        // An error page has its own length: say what it is rather than "wrong size".
        if let Ok(Some(Ok(head))) = tokio::time::timeout(cfg.stall_timeout, stream.next()).await
            && let Err(what) = sniff::check(&head[..head.len().min(sniff::HEAD_LEN)], job.uti)
        {
            return Err(FetchError::NotMedia { what });
        }
        return Err(FetchError::SizeMismatch {
            announced: offset + len,
            expected: job.size,
        });
    }

    let mut file = open_part(temp, offset).await?;
    let mut written = offset;
    let mut fetched = 0u64;
    // Bytes held back until the head of a fresh body has been judged.
    let mut pending_head: Vec<u8> = Vec::new();
    loop {
        let next = match tokio::time::timeout(cfg.stall_timeout, stream.next()).await {
            Ok(next) => next,
            Err(_) => {
                flush_part(&mut file, temp).await?;
                return Err(FetchError::Stalled(cfg.stall_timeout));
            }
        };
        let chunk = match next {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                flush_part(&mut file, temp).await?;
                return Err(FetchError::from_reqwest(e));
            }
        };
        fetched += chunk.len() as u64;
        if written + pending_head.len() as u64 + chunk.len() as u64 > job.size {
            drop(file);
            remove(temp)?;
            return Err(FetchError::SizeMismatch {
                announced: written + pending_head.len() as u64 + chunk.len() as u64,
                expected: job.size,
            });
        }
        let data: std::borrow::Cow<'_, [u8]> = if written == 0 {
            pending_head.extend_from_slice(&chunk);
            if (pending_head.len() as u64) < (sniff::HEAD_LEN as u64).min(job.size) {
                continue;
            }
            if let Err(what) = sniff::check(&pending_head, job.uti) {
                drop(file);
                remove(temp)?;
                return Err(FetchError::NotMedia { what });
            }
            std::borrow::Cow::Owned(std::mem::take(&mut pending_head))
        } else {
            std::borrow::Cow::Borrowed(&chunk[..])
        };
        hasher.update(&data);
        write_all(&mut file, &data, temp).await?;
        written += data.len() as u64;
    }
    if !pending_head.is_empty() {
        if let Err(what) = sniff::check(&pending_head, job.uti) {
            drop(file);
            remove(temp)?;
            return Err(FetchError::NotMedia { what });
        }
        hasher.update(&pending_head);
        write_all(&mut file, &pending_head, temp).await?;
        written += pending_head.len() as u64;
    }
    flush_part(&mut file, temp).await?;
    drop(file);
    if written != job.size {
        // Keep the part: the next attempt resumes from here.
        return Err(FetchError::Truncated {
            got: written,
            expected: job.size,
        });
    }
    finalize(job, temp, hasher, fetched, resumed_from).await
}

async fn open_part(temp: &Path, offset: u64) -> Result<tokio::fs::File, FetchError> {
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create(true);
    if offset == 0 {
        opts.truncate(true);
    }
    let mut file = opts
        .open(temp)
        .await
        .map_err(|e| FetchError::io("create", temp, e))?;
    if offset > 0 {
        use tokio::io::AsyncSeekExt;
        file.set_len(offset)
            .await
            .map_err(|e| FetchError::io("truncate", temp, e))?;
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| FetchError::io("seek", temp, e))?;
    }
    Ok(file)
}

async fn write_all(file: &mut tokio::fs::File, data: &[u8], temp: &Path) -> Result<(), FetchError> {
    use tokio::io::AsyncWriteExt;
    file.write_all(data)
        .await
        .map_err(|e| FetchError::io("write", temp, e))
}

async fn flush_part(file: &mut tokio::fs::File, temp: &Path) -> Result<(), FetchError> {
    use tokio::io::AsyncWriteExt;
    file.flush()
        .await
        .map_err(|e| FetchError::io("write", temp, e))
}

/// fsync the complete part, give it its mtime, rename it into place, fsync the directory.
/// When something took the destination meanwhile (and `job.replace` is not set), the part is
/// kept: complete, it finishes the file without the network once the way is clear.
async fn finalize(
    job: &Download<'_>,
    temp: &Path,
    hasher: Sha256,
    fetched: u64,
    resumed_from: u64,
) -> Result<DownloadOutcome, FetchError> {
    if let Some(flag) = job.committing {
        flag.store(true, Ordering::SeqCst);
    }
    let temp = temp.to_path_buf();
    let dest = job.dest.to_path_buf();
    let (mtime, replace) = (job.mtime, job.replace);
    tokio::task::spawn_blocking(move || -> Result<(), FetchError> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&temp)
            .map_err(|e| FetchError::io("open", &temp, e))?;
        if let Some(mtime) = mtime {
            file.set_modified(mtime)
                .map_err(|e| FetchError::io("set mtime of", &temp, e))?;
        }
        file.sync_all()
            .map_err(|e| FetchError::io("fsync", &temp, e))?;
        drop(file);
        // Whether the path is free was checked before the transfer, which can take minutes:
        // only the rename itself can check it without a race.
        let placed = if replace {
            std::fs::rename(&temp, &dest)
        } else {
            crate::rename::rename_noreplace(&temp, &dest)
        };
        match placed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(FetchError::DestinationTaken { path: dest });
            }
            Err(e) => return Err(FetchError::io("rename into place", &dest, e)),
        }
        if let Some(dir) = dest.parent() {
            // Make the rename itself durable.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| FetchError::Network(format!("finalize task failed: {e}")))??;
    let sha256 = hasher.finalize().into();
    Ok(DownloadOutcome {
        sha256,
        bytes_fetched: fetched,
        resumed_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_hidden_unique_and_bounded() {
        let dest = Path::new("/x/2020/01/02/IMG_0001.JPG");
        let a = temp_path(dest, "AAA", 10, ".part");
        let b = temp_path(dest, "BBB", 10, ".part");
        assert_ne!(a, b);
        assert_eq!(a.parent(), dest.parent());
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".IMG_0001.JPG.") && name.ends_with(".part"));
        let long = format!("/x/{}.JPG", "é".repeat(120));
        let t = temp_path(Path::new(&long), "C", 1, ".icloudpd-rs.part");
        assert!(t.file_name().unwrap().len() <= 255);
    }
}
