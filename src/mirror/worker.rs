//! The workers: each takes a job (one file of the plan with its URL), fetches it into place
//! with `fetch::download` (resume, validation, temp file + fsync + rename), signs in again
//! when the CDN says the session expired, writes the metadata asked for, and reports the
//! outcome. Jobs complete in any order.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::catalog::{DownloadUpdate, StoredAsset, VersionKey};
use crate::fetch::{self, Download, FetchError};
use crate::model::{Library, VersionKind};

use super::disk::{self, Doomed};
use super::engine::RunContext;
use super::queue::{TransferHandle, TransferState};
use super::urls::JobUrls;
use super::{MetadataOptions, MirrorError};

/// CDN refusals of the session in one file's transfer before it is given up.
const MAX_REAUTHS_PER_FILE: u32 = 3;

/// What to fetch for one file of the plan, and where.
#[derive(Debug, Clone)]
pub struct FileSpec {
    pub version: VersionKey,
    pub asset: Arc<StoredAsset>,
    pub library: Library,
    /// The catalog version whose bytes the file holds.
    pub kind: VersionKind,
    pub size: u64,
    pub file_type: String,
    pub checksum: String,
    pub mtime_ms: i64,
    /// Destination, relative to the root.
    pub rel_path: String,
    /// Where the file belongs: `rel_path`, or the planned path a download parked beside
    /// another version's file moves to at the end (what a failure is reported under).
    pub planned: String,
    /// An older copy of this version is at `rel_path` and may be replaced.
    pub replace: bool,
    /// The file at `planned` (another size than iCloud's) may be this version's own copy,
    /// rewritten by `--set-exif-datetime`, whose record was lost (a run killed between writing
    /// and recording it, or a folder taken over with a new data folder). The download goes to
    /// `rel_path` beside it and takes its place only if it comes out byte for byte the same;
    /// otherwise the file is in the way (see [`place_over_own_copy`]).
    pub own_copy_at_planned: bool,
}

/// One file to fetch: its spec, the right to transfer it, and a URL once it has one.
#[derive(Debug)]
pub struct Job {
    /// The right to transfer this version (single flight).
    pub handle: TransferHandle,
    pub spec: Arc<FileSpec>,
    /// A fresh download URL, when the job has one already.
    pub url: Option<String>,
}

impl std::ops::Deref for Job {
    type Target = FileSpec;
    fn deref(&self) -> &FileSpec {
        &self.spec
    }
}

/// The modification time for epoch milliseconds (dates before 1970 included).
fn mtime_from_ms(ms: i64) -> std::time::SystemTime {
    let magnitude = std::time::Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        std::time::UNIX_EPOCH + magnitude
    } else {
        std::time::UNIX_EPOCH - magnitude
    }
}

/// Run jobs from `rx` until it closes or the run stops.
pub(super) async fn work(ctx: Arc<RunContext>, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let job = {
            let mut rx = rx.lock().await;
            tokio::select! {
                job = rx.recv() => job,
                _ = ctx.stop.cancelled() => None,
            }
        };
        let Some(job) = job else { return };
        tokio::select! {
            _ = ctx.gate.background_turn() => {}
            _ = ctx.stop.cancelled() => return,
        }
        if ctx.stop.is_cancelled() {
            return;
        }
        let committing = AtomicBool::new(false);
        let transfer = run_job(&ctx, job, &committing);
        tokio::pin!(transfer);
        tokio::select! {
            _ = &mut transfer => {}
            _ = ctx.abort.cancelled() => {
                // Dropping a transfer still receiving bytes leaves its temp file: the next
                // run resumes it. One moving its file into place finishes and is recorded.
                if committing.load(Ordering::SeqCst) {
                    transfer.await;
                }
                return;
            }
        }
    }
}

async fn run_job(ctx: &RunContext, job: Job, committing: &AtomicBool) {
    job.handle.running();
    ctx.transfer_starting();
    let dest = ctx.root.join(&job.rel_path);
    // Checked before each file: `create_dir_all` would make the root again in its old place.
    if let Err(e) = ctx.root_identity.check(&ctx.root) {
        ctx.fatal(e);
        return;
    }
    if let Some(parent) = dest.parent()
        && let Err(e) = tokio::fs::create_dir_all(parent).await
    {
        local_error(ctx, job, "creating the folder", parent.to_path_buf(), e).await;
        return;
    }
    if !job.replace && tokio::fs::symlink_metadata(&dest).await.is_ok() {
        let error = FetchError::DestinationTaken { path: dest }.to_string();
        ctx.fail(job, error, false);
        return;
    }
    let urls = JobUrls {
        ctx,
        job: &job,
        first: Mutex::new(job.url.clone()),
    };
    let spec = Download {
        dest: &dest,
        size: job.size,
        uti: &job.file_type,
        checksum: &job.checksum,
        mtime: Some(mtime_from_ms(job.mtime_ms)),
        // Checked above, but a file can appear during the transfer: the rename checks again.
        replace: job.replace,
        committing: Some(committing),
    };
    let session = ctx.api.session();
    let mut reauths = 0;
    let outcome = loop {
        let seen = session.generation();
        match fetch::download(session.http(), &ctx.fetch, &spec, &urls).await {
            Ok(outcome) => break outcome,
            Err(e) if is_session_expired(&e) && reauths < MAX_REAUTHS_PER_FILE => {
                reauths += 1;
                if let Err(auth) = ctx.api.reauthenticate(seen).await {
                    ctx.fatal(MirrorError::Auth(auth));
                    return;
                }
            }
            Err(FetchError::Io { op, path, source }) => {
                local_error(ctx, job, op, path, source).await;
                return;
            }
            Err(e) => {
                // A file in the way stays in the way: trying again at the end of the run
                // would only fail again (and the user's file must stay as it is).
                let retryable = !matches!(
                    e,
                    FetchError::NoUrl(_) | FetchError::DestinationTaken { .. }
                );
                ctx.fail(job, e.to_string(), retryable);
                return;
            }
        }
    };
    ctx.api.session_works();
    let on_disk = after_download(ctx, &job, &dest, outcome.sha256).await;
    ctx.counters
        .bytes
        .fetch_add(outcome.bytes_fetched, std::sync::atomic::Ordering::Relaxed);
    if job.own_copy_at_planned {
        place_over_own_copy(ctx, job, &dest, on_disk).await;
        return;
    }
    ctx.done(job, on_disk);
}

/// A download made beside the file at its planned path ([`FileSpec::own_copy_at_planned`]):
/// when that file holds the very bytes just written, it was this version's own copy: it stays
/// and is recorded at last, and the download goes. Otherwise the download goes too, and the
/// file, someone else's, is reported in the way, as before the download.
async fn place_over_own_copy(ctx: &RunContext, mut job: Job, parked: &Path, mut on_disk: OnDisk) {
    let planned = ctx.root.join(&job.planned);
    let parked = parked.to_path_buf();
    let placed = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
        let same = std::fs::symlink_metadata(&planned).is_ok_and(|m| m.is_file())
            && super::disk::hash_file(&planned)
                .is_ok_and(|(size, sha)| size == on_disk.size && sha == on_disk.sha256);
        // The download's sidecar goes where none is (one there may hold the user's values:
        // kept, and the next run merges the photo's values into it, the sidecar not being
        // recorded as up to date below).
        let parked_sidecar = crate::metadata::sidecar_path(&parked);
        let planned_sidecar = crate::metadata::sidecar_path(&planned);
        if same && parked_sidecar.exists() && !planned_sidecar.exists() {
            std::fs::rename(&parked_sidecar, &planned_sidecar)?;
        }
        let _ = std::fs::remove_file(&parked_sidecar);
        std::fs::remove_file(&parked)?;
        Ok(same)
    })
    .await;
    match placed.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
        Ok(true) => {
            tracing::info!(path = %job.planned, "the file at the planned path was this photo's own copy: recorded");
            let mut spec = (*job.spec).clone();
            spec.rel_path = spec.planned.clone();
            job.spec = Arc::new(spec);
            on_disk.sidecar_of = None;
            ctx.done(job, on_disk);
        }
        Ok(false) => {
            let error = super::decide::stranger_in_the_way(&job.planned);
            ctx.fail(job, error, false);
        }
        Err(e) => {
            let error = format!("placing {}: {e}", job.planned);
            ctx.fail(job, error, false);
        }
    }
}

/// A local I/O error of `job`: it fails the files that need the same place, or stops the
/// run when it dooms every file (a full disk, a download folder that cannot be written).
async fn local_error(
    ctx: &RunContext,
    job: Job,
    op: &'static str,
    path: PathBuf,
    source: std::io::Error,
) {
    let (root, identity, at) = (ctx.root.clone(), ctx.root_identity, path.clone());
    let judged =
        tokio::task::spawn_blocking(move || disk::judge((&root, identity), op, &at, source))
            .await
            .unwrap_or_else(|e| Doomed::File(format!("{op} {}: {e}", path.display())));
    match judged {
        // Not retried in this run: what is in the way stays there until someone clears it.
        Doomed::File(error) => ctx.fail(job, error, false),
        Doomed::Run(e) => ctx.fatal(e),
    }
}

/// A downloaded file as it is on disk after the metadata was written.
#[derive(Debug, Clone, Copy)]
pub(super) struct OnDisk {
    pub size: u64,
    pub sha256: [u8; 32],
    /// The digest of the downloaded bytes when the file was rewritten since.
    pub source_sha256: Option<[u8; 32]>,
    /// Its XMP sidecar is up to date with the asset of this content hash.
    pub sidecar_of: Option<i64>,
}

fn is_session_expired(e: &FetchError) -> bool {
    match e {
        FetchError::SessionExpired { .. } => true,
        FetchError::GaveUp { last, .. } => is_session_expired(last),
        _ => false,
    }
}

/// Write the metadata asked for; returns the file as it now is.
async fn after_download(ctx: &RunContext, job: &Job, dest: &Path, sha256: [u8; 32]) -> OnDisk {
    let downloaded = OnDisk {
        size: job.size,
        sha256,
        source_sha256: None,
        sidecar_of: None,
    };
    let options = ctx.metadata;
    if !options.set_exif_datetime && !options.xmp_sidecar {
        return downloaded;
    }
    let asset = job.asset.clone();
    let path: PathBuf = dest.to_path_buf();
    let result = tokio::task::spawn_blocking(move || write_metadata(options, &path, &asset)).await;
    match result {
        Ok(Written {
            file,
            sidecar_of,
            warnings,
        }) => {
            for w in warnings {
                tracing::warn!(path = %dest.display(), "{w}");
                ctx.counters.warn();
            }
            match file {
                Some((size, rewritten)) => OnDisk {
                    size,
                    sha256: rewritten,
                    source_sha256: Some(sha256),
                    sidecar_of,
                },
                None => OnDisk {
                    sidecar_of,
                    ..downloaded
                },
            }
        }
        Err(e) => {
            tracing::warn!(path = %dest.display(), error = %e, "metadata task failed");
            ctx.counters.warn();
            downloaded
        }
    }
}

struct Written {
    /// New size and digest when the file itself was rewritten.
    file: Option<(u64, [u8; 32])>,
    /// The sidecar is up to date with the asset of this content hash.
    sidecar_of: Option<i64>,
    warnings: Vec<String>,
}

fn write_metadata(options: MetadataOptions, path: &Path, asset: &StoredAsset) -> Written {
    let mut out = Written {
        file: None,
        sidecar_of: None,
        warnings: Vec::new(),
    };
    if options.set_exif_datetime {
        match crate::metadata::set_exif_datetime(path, &asset.asset) {
            Ok(crate::metadata::ExifOutcome::Written { sha256 }) => match std::fs::metadata(path) {
                Ok(m) => out.file = Some((m.len(), sha256)),
                Err(e) => out
                    .warnings
                    .push(format!("cannot stat after writing EXIF: {e}")),
            },
            Ok(_) => {}
            Err(e) => out.warnings.push(format!(
                "EXIF date not written (the file is kept as downloaded): {e}"
            )),
        }
    }
    if options.xmp_sidecar {
        match write_sidecar(path, asset) {
            Ok((of, _)) => out.sidecar_of = Some(of),
            Err(w) => out.warnings.push(w),
        }
    }
    out
}

/// Write or merge the XMP sidecar of the file at `path`: the content hash of the asset it is
/// now up to date with and whether the file was written, or the warning to show.
pub(super) fn write_sidecar(path: &Path, asset: &StoredAsset) -> Result<(i64, bool), String> {
    use crate::metadata::SidecarOutcome;
    let written = match crate::metadata::write_xmp_sidecar(path, &asset.asset) {
        Ok(w) => {
            if let SidecarOutcome::LeftAlone { reason } = w.outcome {
                return Err(format!("XMP sidecar left as it was: {reason}"));
            }
            if !w.kept_theirs.is_empty() {
                // Another tool wrote these (or rewrote our block, which makes it theirs):
                // its values win, so a change in iCloud does not reach them.
                tracing::info!(
                    path = %crate::metadata::sidecar_path(path).display(),
                    properties = %w.kept_theirs.join(", "),
                    "XMP sidecar: values written by another program are kept, not iCloud's"
                );
            }
            w.outcome != SidecarOutcome::Unchanged
        }
        Err(e) => return Err(format!("XMP sidecar not written: {e}")),
    };
    // The sidecar carries its photo's mtime, as in the mount, so `rsync -a` of one onto the
    // other finds nothing to update.
    let sidecar = crate::metadata::sidecar_path(path);
    let photo_mtime = std::fs::metadata(path).and_then(|m| m.modified());
    let aligned = photo_mtime.and_then(|t| {
        std::fs::File::options()
            .write(true)
            .open(&sidecar)?
            .set_modified(t)
    });
    if let Err(e) = aligned {
        tracing::debug!(path = %sidecar.display(), error = %e, "cannot set the sidecar's mtime");
    }
    let of = crate::catalog::Catalog::asset_content_hash(&asset.asset);
    Ok((of, written))
}

/// Build the update that records a finished file.
pub(super) fn downloaded_update(spec: &FileSpec, file: OnDisk) -> DownloadUpdate {
    DownloadUpdate::Downloaded {
        version: spec.version,
        rel_path: spec.rel_path.clone(),
        size: file.size,
        sha256: file.sha256,
        source_sha256: file.source_sha256,
    }
}

/// The state a finished transfer ends in.
pub(super) fn done_state(spec: &FileSpec) -> TransferState {
    TransferState::Done {
        rel_path: spec.rel_path.clone(),
    }
}
