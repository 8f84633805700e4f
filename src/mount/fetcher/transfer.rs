//! The transfers of [`BlockFetcher`]: one task per run of blocks, streamed by Range requests
//! and handed block by block to the readers waiting for them, then to the cache.

use super::*;

impl BlockFetcher {
    /// Register and spawn the transfer of `run`; returns the flight of each of its blocks.
    pub(super) fn start_transfer(
        self: &Arc<Self>,
        flights: &mut HashMap<(ContentKey, u64), Flight>,
        file: &Arc<RemoteFile>,
        run: &Run,
    ) -> Vec<Flight> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut senders = Vec::new();
        let mut out = Vec::new();
        for b in run.first..=run.last {
            let (tx, rx) = oneshot::channel::<BlockResult>();
            let result = async move {
                rx.await.unwrap_or_else(|_| {
                    Err(Arc::new(ReadError::Internal(
                        "transfer task vanished".into(),
                    )))
                })
            }
            .boxed()
            .shared();
            let flight = Flight { id, result };
            flights.insert((file.content.clone(), b), flight.clone());
            senders.push(Some(tx));
            out.push(flight);
        }
        self.transfers.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        let file = file.clone();
        let (first, prefix, end) = (run.first, run.prefix.clone(), run.end);
        tracing::trace!(
            id,
            first,
            end,
            prefix = run.prefix.len(),
            last = run.last,
            needed = run.needed,
            "transfer starts"
        );
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut delivery = Delivery {
                fetcher: this.clone(),
                file: file.clone(),
                id,
                first,
                senders,
            };
            let result = this
                .transfer(&file, first, prefix, end, &mut delivery)
                .await;
            let took = started.elapsed();
            this.transfer_us
                .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
            tracing::trace!(
                id,
                first,
                end,
                us = took.as_micros() as u64,
                "transfer ended"
            );
            if let Err(e) = result {
                this.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, first, "fetching blocks failed");
                delivery.fail(Arc::new(e));
            }
        });
        out
    }

    /// One transfer: the bytes of blocks `first..` after `prefix` (already known bytes of
    /// block `first`) up to byte `end`, by Range requests until they arrive whole, the attempts
    /// run out or the time does. Each block is handed to `delivery` as soon as it is complete;
    /// a retry resumes after the last byte received.
    async fn transfer(
        &self,
        file: &RemoteFile,
        first: u64,
        prefix: Bytes,
        end: u64,
        delivery: &mut Delivery,
    ) -> Result<(), ReadError> {
        let deadline = Instant::now() + self.cfg.total_timeout;
        let timeout = || ReadError::Timeout(self.cfg.total_timeout);
        let _permit = tokio::time::timeout_at(deadline, self.permits.acquire())
            .await
            .map_err(|_| timeout())?
            .map_err(|_| ReadError::Internal("transfer limiter closed".into()))?;
        let end = end.min(file.size);
        // Length of block `idx` within this transfer (0 past its end).
        let block_len = |idx: u64| {
            ((idx + 1) * BLOCK_SIZE)
                .min(file.size)
                .min(end)
                .saturating_sub(idx * BLOCK_SIZE) as usize
        };
        // The block being assembled and its index; `pos` is the next byte wanted. Each block
        // gets a buffer of exactly its length: a block split off a larger, growing buffer
        // would keep that whole buffer alive in the memory tier (about twice the bytes held).
        let mut block = self.cache.buffer(block_len(first).max(prefix.len()));
        block.extend_from_slice(&prefix);
        // The block's checksum, computed piece by piece as it is assembled (see
        // `BlockCache::index_fetched`).
        let mut sum = crc32c::crc32c(&prefix);
        let mut idx = first;
        let mut pos = first * BLOCK_SIZE + prefix.len() as u64;
        let mut refresh = false;
        let mut attempt = 0u32;
        while pos < end {
            attempt += 1;
            let mut got = 0u64;
            let request = async {
                let url = file.urls.url(refresh).await?;
                self.requests.fetch_add(1, Ordering::Relaxed);
                let mut sink = |mut chunk: Bytes| {
                    got += chunk.len() as u64;
                    // Counted before any reader sees them: whoever got bytes sees them counted.
                    self.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    while !chunk.is_empty() {
                        // The block ends at its length, or at `end` for the run's last one.
                        let room = block_len(idx).saturating_sub(block.len());
                        let take = room.min(chunk.len());
                        let piece = chunk.split_to(take);
                        block.extend_from_slice(&piece);
                        sum = crc32c::crc32c_append(sum, &piece);
                        if take == room {
                            let next = self.cache.buffer(block_len(idx + 1));
                            let full = std::mem::replace(&mut block, next).freeze();
                            delivery.deliver(idx, full, std::mem::take(&mut sum));
                            idx += 1;
                        }
                    }
                };
                fetch::fetch_range_stream(
                    &self.http,
                    &self.cfg.fetch,
                    &url,
                    pos,
                    end - pos,
                    file.size,
                    &file.uti,
                    &mut sink,
                )
                .await
            };
            let outcome = tokio::time::timeout_at(deadline, request).await;
            pos += got;
            let err = match outcome {
                Err(_) => return Err(timeout()),
                Ok(Ok(())) if pos >= end => return Ok(()),
                Ok(Ok(())) => FetchError::Truncated {
                    got,
                    expected: end - (pos - got),
                },
                Ok(Err(e)) => e,
            };
            if got > 0 {
                // Progress: a broken connection is not a spent attempt.
                attempt = attempt.saturating_sub(1);
            }
            if attempt >= self.cfg.fetch.max_attempts {
                return Err(err.into());
            }
            if err.needs_new_url() || matches!(err, FetchError::SessionExpired { .. }) {
                refresh = true;
                tracing::debug!(error = %err, "download URL refused; asking for a fresh one");
            } else if err.is_transient() {
                let retry_after = match &err {
                    FetchError::Status { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let pause = self
                    .cfg
                    .fetch
                    .backoff
                    .delay(attempt.saturating_sub(1), retry_after);
                tracing::debug!(error = %err, ?pause, "transient CDN failure; retrying");
                if Instant::now() + pause >= deadline {
                    return Err(timeout());
                }
                tokio::time::sleep(pause).await;
            } else {
                return Err(err.into());
            }
        }
        Ok(())
    }
}

/// Hands the blocks of one transfer to their waiting readers as they complete, then to the
/// cache; the flight of a block stays registered until the block is in the cache, so nobody
/// starts a second transfer of it meanwhile.
struct Delivery {
    fetcher: Arc<BlockFetcher>,
    file: Arc<RemoteFile>,
    id: u64,
    first: u64,
    senders: Vec<Option<oneshot::Sender<BlockResult>>>,
}

impl Delivery {
    fn deliver(&mut self, idx: u64, data: Bytes, sum: u32) {
        let Some(tx) = self
            .senders
            .get_mut((idx - self.first) as usize)
            .and_then(Option::take)
        else {
            return;
        };
        // Into the memory tier before any reader has it, so that a reader passing the block
        // releases it for good (see `BlockCache::hold_hot`).
        self.fetcher
            .cache
            .hold_hot(&self.file.content, idx, data.clone());
        let _ = tx.send(Ok(data.clone()));
        let fetcher = self.fetcher.clone();
        let file = self.file.clone();
        let id = self.id;
        // Into the cache off the async workers, in two steps: the bytes on the idle-priority
        // writer, which takes no lock a reader takes (preempted while holding one, it stalled
        // every reader of a busy machine for seconds), then the index at normal priority. The
        // content is held from eviction in between, so that nothing frees the bytes written.
        let pin = self.fetcher.cache.pin_content(&file.content);
        self.fetcher.writer.run(Box::new(move || {
            let write = fetcher.cache.write_fetched(&file.content, idx, &data);
            let writer = fetcher.clone();
            writer.writer.at_normal_priority(Box::new(move || {
                fetcher
                    .cache
                    .index_fetched(&file.content, idx, data, sum, write);
                drop(pin);
                fetcher.unregister(&file.content, idx, id);
                // The file's last missing block: make it a complete file.
                if fetcher.cache.is_complete(&file.content, file.size) {
                    fetcher.verify_later(file.content.clone(), file.size);
                }
            }));
        }));
    }

    /// The transfer failed: every block not delivered gets the error, after its flight is
    /// unregistered (a reader retrying must start a new transfer, not find this one).
    fn fail(&mut self, error: Arc<ReadError>) {
        for (i, tx) in self.senders.iter_mut().enumerate() {
            if let Some(tx) = tx.take() {
                self.fetcher
                    .unregister(&self.file.content, self.first + i as u64, self.id);
                let _ = tx.send(Err(error.clone()));
            }
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        // A transfer ended without delivering some blocks (it stopped at `end` inside the
        // run's reach, or vanished): their readers plan again.
        self.fail(Arc::new(ReadError::Internal(
            "transfer ended without the block".into(),
        )));
    }
}

impl BlockFetcher {
    /// Forget the flight of block `idx` if it still belongs to transfer `id`.
    pub(super) fn unregister(&self, key: &ContentKey, idx: u64, id: u64) {
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        let k = (key.clone(), idx);
        if flights.get(&k).is_some_and(|f| f.id == id) {
            flights.remove(&k);
        }
    }
}
