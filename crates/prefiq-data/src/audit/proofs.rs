//! Reading the log back as evidence: leaves, inclusion and consistency proofs,
//! verification from the first record or a signed snapshot, and the archive export.

use super::*;

impl AuditLog {
    /// The leaf hashes of `tenant`'s first `size` records: from the checkpoints that cover
    /// them, and the records themselves past the last one.
    async fn leaves(
        &self,
        database: &Database,
        tenant: &str,
        size: u64,
    ) -> Result<Vec<Hash>, AuditError> {
        if size > MAX_PROOF_SIZE {
            return Err(AuditError::Invalid(format!(
                "proofs are served for logs of at most {MAX_PROOF_SIZE} records"
            )));
        }
        let mut leaves = Vec::with_capacity(size as usize);
        for c in self.checkpoints(database, tenant, size).await? {
            if c.size as usize == leaves.len() + c.leaves.len() / 32 {
                leaves.extend(hashes(&c.leaves));
            }
        }
        while (leaves.len() as u64) < size {
            let from = leaves.len() as u64 + 1;
            let records = self.records(database, tenant, from, size).await?;
            if records.is_empty() {
                break;
            }
            for (seq, entry) in records {
                if seq != leaves.len() as u64 + 1 {
                    return Err(AuditError::Invalid(format!(
                        "record {} of `{tenant}` is missing",
                        leaves.len() + 1
                    )));
                }
                leaves.push(merkle::leaf_hash(entry.as_bytes()));
            }
        }
        if (leaves.len() as u64) < size {
            return Err(AuditError::Invalid(format!(
                "the log of `{tenant}` has {} records, fewer than {size}",
                leaves.len()
            )));
        }
        Ok(leaves)
    }

    /// Record `seq` of `tenant` and its inclusion proof in the tree of `size` records.
    pub async fn inclusion_proof(
        &self,
        tenant: &str,
        seq: u64,
        size: u64,
    ) -> Result<(String, Vec<Hash>), AuditError> {
        if seq == 0 || seq > size {
            return Err(AuditError::Invalid("seq must be between 1 and size".into()));
        }
        let handle = self.settled(tenant).await?;
        let database = handle.get()?;
        let leaves = self.leaves(database, tenant, size).await?;
        let entry = self
            .records(database, tenant, seq, seq)
            .await?
            .into_iter()
            .next()
            .map(|(_, e)| e)
            .ok_or_else(|| AuditError::Invalid(format!("record {seq} does not exist")))?;
        let proof = merkle::inclusion_proof(&leaves, (seq - 1) as usize)
            .ok_or_else(|| AuditError::Invalid("seq is out of range".into()))?;
        Ok((entry, proof))
    }

    /// The consistency proof of `tenant`'s tree of `from` records with that of `to`.
    pub async fn consistency_proof(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<Hash>, AuditError> {
        if from == 0 || from > to {
            return Err(AuditError::Invalid("from must be between 1 and to".into()));
        }
        let handle = self.settled(tenant).await?;
        let leaves = self.leaves(handle.get()?, tenant, to).await?;
        merkle::consistency_proof(&leaves, from as usize)
            .ok_or_else(|| AuditError::Invalid("from is out of range".into()))
    }

    /// Recomputes `tenant`'s tree from storage and checks it against every stored signed
    /// checkpoint and every one in `external` (texts kept outside the server). Unless
    /// `full`, it starts from the last snapshot a verification left; a successful one
    /// leaves a new snapshot at the last checkpoint it checked.
    pub async fn verify(
        &self,
        tenant: &str,
        external: &[String],
        full: bool,
    ) -> Result<VerifyReport, AuditError> {
        let handle = self.settled(tenant).await?;
        let database = handle.get()?;
        let origin = self.origin(tenant);
        let bad = |what: String, error| AuditError::Checkpoint {
            tenant: tenant.to_owned(),
            what,
            error,
        };
        let mut trusted = Vec::new();
        for c in self.checkpoints(database, tenant, i64::MAX as u64).await? {
            let checkpoint = self
                .verify_note(&c.note, &origin)
                .map_err(|e| bad(format!("the stored checkpoint of size {}", c.size), e))?;
            if checkpoint.size != c.size {
                return Err(bad(
                    format!("the stored checkpoint of size {}", c.size),
                    prefiq_audit::CheckpointError::Malformed("stored under another size"),
                ));
            }
            trusted.push(TrustedCheckpoint {
                checkpoint,
                leaves: hashes(&c.leaves),
            });
        }
        for (i, text) in external.iter().enumerate() {
            let checkpoint = self
                .verify_note(text, &origin)
                .map_err(|e| bad(format!("the given checkpoint {}", i + 1), e))?;
            trusted.push(TrustedCheckpoint {
                checkpoint,
                leaves: Vec::new(),
            });
        }
        let start = if full {
            Frontier::new()
        } else {
            self.snapshot(database, tenant, &origin).await?
        };
        let from = start.size();
        let log_error = |error| AuditError::Log {
            tenant: tenant.to_owned(),
            error,
        };
        let mut walk = Walk::new(tenant, start, trusted).map_err(log_error)?;
        // Reading and hashing overlap: the next chunk is read (on SQLite by the
        // connection's own thread) while a blocking thread hashes the one before.
        type Hashed = (Walk, Result<(), LogError>);
        let mut hashing: Option<tokio::task::JoinHandle<Hashed>> = None;
        let mut next = from + 1;
        loop {
            let records = self.raw_records(database, tenant, next, u64::MAX).await?;
            if let Some(task) = hashing.take() {
                let (returned, result) = task
                    .await
                    .map_err(|e| AuditError::Invalid(format!("the verifier failed: {e}")))?;
                result.map_err(log_error)?;
                walk = returned;
            }
            let Some((last, _)) = records.last() else {
                break;
            };
            next = last + 1;
            let mut moved = walk;
            hashing = Some(tokio::task::spawn_blocking(move || {
                let result = records
                    .iter()
                    .try_for_each(|(seq, entry)| moved.push(*seq, entry));
                (moved, result)
            }));
            // The walk comes back with the task; until then a placeholder stands in.
            walk = Walk::new(tenant, Frontier::new(), Vec::new()).map_err(log_error)?;
        }
        let verified = walk.finish().map_err(log_error)?;
        if verified.covered > from {
            let snapshot = Checkpoint {
                origin: origin.clone(),
                size: verified.covered_frontier.size(),
                root: verified.covered_frontier.root(),
                time_ms: now_ms(),
            };
            let note = checkpoint::sign(&snapshot, &self.key);
            let peaks = peaks_bytes(&verified.covered_frontier);
            let sql = "INSERT INTO prefiq_audit_snapshots (tenant_id, size, note, peaks) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, size) DO NOTHING";
            let sql = Sql::new(
                sql,
                vec![
                    tenant.into(),
                    (snapshot.size as i64).into(),
                    note.as_str().into(),
                    peaks.as_slice().into(),
                ],
            );
            writing!(database, tenant, |conn| {
                conn.execute(&sql).await?;
            });
        }
        Ok(VerifyReport {
            tenant: tenant.to_owned(),
            size: verified.size,
            walked: verified.size - from,
            checkpoints: verified.checkpoints,
            covered: verified.covered,
        })
    }

    /// Checks a signed note with the current key, then with each retired one: a
    /// checkpoint signed before a key rotation still verifies. The error is the current
    /// key's.
    fn verify_note(
        &self,
        text: &str,
        origin: &str,
    ) -> Result<prefiq_audit::checkpoint::Checkpoint, prefiq_audit::CheckpointError> {
        match checkpoint::verify(text, origin, &self.key.verifying_key()) {
            Ok(checkpoint) => Ok(checkpoint),
            Err(error) => self
                .retired
                .iter()
                .find_map(|key| checkpoint::verify(text, origin, key).ok())
                .ok_or(error),
        }
    }

    /// The frontier of the latest snapshot whose signature and root check out.
    async fn snapshot(
        &self,
        database: &Database,
        tenant: &str,
        origin: &str,
    ) -> Result<Frontier, AuditError> {
        let sql = "SELECT note, peaks FROM prefiq_audit_snapshots WHERE tenant_id = $1 ORDER BY size DESC LIMIT 1";
        let rows = reading!(database, tenant, |conn| conn
            .fetch(
                &Sql::new(sql, vec![tenant.into()]),
                &[SqlType::Text, SqlType::Bytes]
            )
            .await?);
        let row = rows.into_iter().next().map(|row| {
            let mut cells = row.into_iter();
            (
                cells.next().and_then(Cell::into_text).unwrap_or_default(),
                cells.next().and_then(Cell::into_bytes).unwrap_or_default(),
            )
        });
        let Some((note, peaks)) = row else {
            return Ok(Frontier::new());
        };
        let snapshot = self
            .verify_note(&note, origin)
            .map_err(|error| AuditError::Checkpoint {
                tenant: tenant.to_owned(),
                what: "the verification snapshot".into(),
                error,
            })?;
        match Frontier::from_parts(snapshot.size, hashes(&peaks)) {
            Some(frontier) if frontier.root() == snapshot.root => Ok(frontier),
            _ => Err(AuditError::Checkpoint {
                tenant: tenant.to_owned(),
                what: "the verification snapshot".into(),
                error: prefiq_audit::CheckpointError::Malformed(
                    "its frontier does not give its root",
                ),
            }),
        }
    }

    /// Writes `tenant`'s log up to its latest checkpoint as an archive section (see
    /// [`prefiq_audit::archive`]); the records written.
    pub async fn export(
        &self,
        tenant: &str,
        out: &mut (impl std::io::Write + Send),
    ) -> Result<u64, AuditError> {
        let handle = self.settled(tenant).await?;
        let database = handle.get()?;
        let Some(last) = self.checkpoints_tail(database, tenant).await? else {
            return Ok(0);
        };
        let io = |e: std::io::Error| AuditError::Invalid(format!("cannot write the archive: {e}"));
        writeln!(
            out,
            "{} {} {}",
            prefiq_audit::archive::MAGIC,
            self.origin(tenant),
            last.size
        )
        .map_err(io)?;
        let mut next = 1;
        while next <= last.size {
            let records = self.records(database, tenant, next, last.size).await?;
            let Some((seq, _)) = records.last() else {
                break;
            };
            next = seq + 1;
            for (_, entry) in &records {
                writeln!(out, "{entry}").map_err(io)?;
            }
        }
        write!(out, "{}", last.note).map_err(io)?;
        writeln!(out).map_err(io)?;
        Ok(last.size)
    }
}
