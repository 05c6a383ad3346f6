//! Taking, checking and restoring one backup, as streams: `pg_dump`'s output is
//! sealed (`seal`) and written to the storage as it comes, hashed on the way;
//! a restore fetches the sealed object, checks its SHA-256 and every chunk's
//! seal before anything is touched, then feeds the opened dump through
//! `pg_restore` into `psql`, which replaces the tenant's data and checks the
//! manifest's row counts in one transaction: it is all the backup or nothing
//! changed. No plaintext dump is written to disk; nothing here holds a whole
//! dump in memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::copy::{restore_list, shorten, CopyError, Copier};
use super::database::{ident, literal, ConnParams};
use super::seal::{BackupKey, Opener, SealError, Sealer};
use super::storage::{BackupStorage, StorageError};
use crate::domain::{Isolation, TenantId};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the backup is refused: {0}; nothing was changed")]
    Seal(#[from] SealError),
    #[error(
        "the backup is refused: its SHA-256 is {found}, the manifest says {expected} \
         (the stored file was altered or damaged); nothing was changed"
    )]
    Checksum { expected: String, found: String },
    #[error(transparent)]
    Program(#[from] CopyError),
    #[error("backup work folder: {0}")]
    Io(#[from] std::io::Error),
}

/// What a backup wrote.
#[derive(Debug, Clone)]
pub struct Taken {
    pub dump_bytes: u64,
    pub stored_bytes: u64,
    pub sha256: String,
}

/// Where the data of a backup sits in its dump, and where it goes.
#[derive(Debug, Clone)]
pub struct Placement {
    pub isolation: Isolation,
    /// The tenant whose schema the dump holds (schema mode).
    pub dumped_tenant: TenantId,
    /// The tenant restored into.
    pub tenant: TenantId,
}

impl Placement {
    fn schema(isolation: Isolation, tenant: TenantId) -> String {
        match isolation {
            Isolation::Schema => tenant.schema_name(),
            Isolation::Database => "public".to_owned(),
        }
    }
    fn source_schema(&self) -> String {
        Self::schema(self.isolation, self.dumped_tenant)
    }
    fn target_schema(&self) -> String {
        Self::schema(self.isolation, self.tenant)
    }
}

/// Bytes read from a program's output at a time.
const PIECE: usize = 256 * 1024;

#[derive(Clone)]
pub struct Backups {
    key: BackupKey,
    storage: BackupStorage,
    copier: Copier,
    psql: String,
    work_dir: PathBuf,
}

/// A piece of a stream, or why it ended.
pub type Piece = Result<Bytes, BackupError>;

impl Backups {
    pub fn new(
        key: BackupKey,
        storage: BackupStorage,
        copier: Copier,
        psql: &str,
        work_dir: PathBuf,
    ) -> Self {
        Self {
            key,
            storage,
            copier,
            psql: psql.to_owned(),
            work_dir,
        }
    }

    pub fn key_id(&self) -> String {
        self.key.id()
    }

    pub fn storage(&self) -> &BackupStorage {
        &self.storage
    }

    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    fn spawn(&self, mut cmd: Command, program: &str) -> Result<Child, CopyError> {
        cmd.spawn().map_err(|e| CopyError::Spawn {
            program: program.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The dump of the tenant's data at `conn` (in `snapshot`, when given: the
    /// one its manifest's row counts were read in), sealed into object `key`.
    pub async fn take(
        &self,
        conn: &ConnParams,
        isolation: Isolation,
        tenant: TenantId,
        snapshot: Option<&str>,
        key: &str,
    ) -> Result<Taken, BackupError> {
        let program = self.copier.pg_dump().to_owned();
        let mut cmd = self
            .copier
            .command_as(&program, conn, "fresco-platform-backup");
        cmd.args(["--format=custom", "--no-owner", "--no-privileges"])
            .arg(format!("--lock-wait-timeout={}", self.copier.lock_timeout()));
        if let Some(s) = snapshot {
            cmd.arg(format!("--snapshot={s}"));
        }
        match isolation {
            Isolation::Schema => cmd.arg(format!("--schema={}", tenant.schema_name())),
            Isolation::Database => cmd.arg("--exclude-schema=pgbouncer"),
        };
        let mut child = self.spawn(cmd, &program)?;
        let stderr = drain(child.stderr.take());
        let mut out = child.stdout.take().expect("stdout piped");
        let mut writer = self.storage.writer(key).await?;
        let written = async {
            let mut sealer = Sealer::new(&self.key);
            let mut hash = Sha256::new();
            let (mut dump_bytes, mut stored_bytes) = (0u64, 0u64);
            let mut buf = vec![0u8; PIECE];
            loop {
                let n = out.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                dump_bytes += n as u64;
                let sealed = sealer.push(&buf[..n]);
                hash.update(&sealed);
                stored_bytes += sealed.len() as u64;
                writer.write(&sealed).await?;
            }
            let status = child.wait().await?;
            if !status.success() {
                return Err(BackupError::Program(CopyError::Failed {
                    program: program.clone(),
                    status: status.to_string(),
                    output: stderr.await.unwrap_or_default(),
                }));
            }
            let last = sealer.finish();
            hash.update(&last);
            stored_bytes += last.len() as u64;
            writer.write(&last).await?;
            Ok::<_, BackupError>(Taken {
                dump_bytes,
                stored_bytes,
                sha256: hex::encode(hash.finalize()),
            })
        }
        .await;
        match written {
            Ok(taken) => {
                writer.finish().await?;
                Ok(taken)
            }
            Err(e) => {
                writer.abort().await;
                let _ = child.kill().await;
                Err(e)
            }
        }
    }

    /// Reads object `key` whole, checking its SHA-256 against `sha256` and the
    /// seal of every chunk; with `keep`, the sealed bytes are written there
    /// (for the restore that follows). Returns the dump's size.
    pub async fn check(
        &self,
        key: &str,
        sha256: &str,
        keep: Option<&Path>,
    ) -> Result<u64, BackupError> {
        let mut pieces = self.storage.read(key).await?;
        let mut file = match keep {
            Some(path) => Some(private_file(path).await?),
            None => None,
        };
        let mut hash = Sha256::new();
        let mut opener = Opener::new(&self.key);
        let mut plain = 0u64;
        // The seal is checked as pieces come, but a file whose checksum is wrong
        // is named as that, whatever the seal says of it.
        let mut seal_error = None;
        while let Some(piece) = pieces.next().await {
            let piece = piece?;
            hash.update(&piece);
            if seal_error.is_none() {
                match opener.push(&piece) {
                    Ok(p) => plain += p.len() as u64,
                    Err(e) => seal_error = Some(e),
                }
            }
            if let Some(f) = file.as_mut() {
                f.write_all(&piece).await?;
            }
        }
        let found = hex::encode(hash.finalize());
        if found != sha256 {
            return Err(BackupError::Checksum {
                expected: sha256.to_owned(),
                found,
            });
        }
        if let Some(e) = seal_error {
            return Err(e.into());
        }
        plain += opener.finish()?.len() as u64;
        if let Some(mut f) = file {
            f.flush().await?;
            f.sync_all().await?;
        }
        Ok(plain)
    }

    /// The opened (decrypted) dump of a sealed stream, piece by piece; a piece
    /// that fails its seal ends the stream with the error.
    pub fn open(&self, sealed: BoxStream<'static, Piece>) -> BoxStream<'static, Piece> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(4);
        let key = self.key.clone();
        tokio::spawn(async move {
            let mut opener = Opener::new(&key);
            let mut sealed = sealed;
            while let Some(piece) = sealed.next().await {
                let out = piece.and_then(|p| opener.push(&p).map_err(BackupError::from));
                let failed = out.is_err();
                let send = match out {
                    Ok(p) if p.is_empty() => continue,
                    other => other.map(Bytes::from),
                };
                if tx.send(send).await.is_err() || failed {
                    return;
                }
            }
            let last = opener.finish().map(Bytes::from).map_err(BackupError::from);
            let _ = tx.send(last).await;
        });
        tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
    }

    /// The sealed bytes of a local file (a fetched backup), as a stream.
    pub fn file_stream(path: &Path) -> BoxStream<'static, Piece> {
        let path = path.to_owned();
        futures::stream::once(async move { tokio::fs::File::open(path).await })
            .map(|f| match f {
                Ok(f) => tokio_util::io::ReaderStream::with_capacity(f, PIECE)
                    .map(|p| p.map_err(BackupError::from))
                    .boxed(),
                Err(e) => futures::stream::once(async move { Err(BackupError::from(e)) }).boxed(),
            })
            .flatten()
            .boxed()
    }

    /// The sealed object `key` from the storage, as a stream.
    pub async fn object_stream(&self, key: &str) -> Result<BoxStream<'static, Piece>, BackupError> {
        Ok(self
            .storage
            .read(key)
            .await?
            .map(|p| p.map_err(BackupError::from))
            .boxed())
    }

    /// The dump as plain SQL (`pg_restore -f -`), for an owner's export.
    pub fn sql(&self, plain: BoxStream<'static, Piece>) -> Result<BoxStream<'static, Piece>, BackupError> {
        let program = self.copier.pg_restore().to_owned();
        let mut cmd = Command::new(&program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(["--no-owner", "--no-privileges", "--file=-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = self.spawn(cmd, &program)?;
        let feeding = feed(child.stdin.take(), plain);
        let stderr = drain(child.stderr.take());
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(4);
        tokio::spawn(async move {
            let mut out = tokio_util::io::ReaderStream::with_capacity(stdout, PIECE);
            while let Some(piece) = out.next().await {
                if tx.send(piece.map_err(BackupError::from)).await.is_err() {
                    return;
                }
            }
            let fed = feeding.await.unwrap_or(Ok(()));
            let status = child.wait().await;
            let failed = match (fed, status) {
                (Err(e), _) => Some(e),
                (Ok(()), Ok(s)) if s.success() => None,
                (Ok(()), s) => Some(BackupError::Program(CopyError::Failed {
                    program,
                    status: s.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                    output: stderr.await.unwrap_or_default(),
                })),
            };
            if let Some(e) = failed {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }

    /// Replaces the tenant's data at `conn` with the dump in the sealed local
    /// file `sealed`, in one transaction that also checks every table's row
    /// count against `counts`: afterwards the data is the backup's, or it is
    /// as it was.
    pub async fn replace(
        &self,
        conn: &ConnParams,
        at: &Placement,
        sealed: &Path,
        counts: &BTreeMap<String, i64>,
    ) -> Result<(), BackupError> {
        let restore = self.copier.pg_restore().to_owned();
        // The archive's table of contents, less the entry of the schema that
        // holds the data (the prelude makes it afresh).
        let mut cmd = self.copier.command_as(&restore, conn, "fresco-platform-restore");
        cmd.arg("--list").stdin(Stdio::piped());
        let mut lister = self.spawn(cmd, &restore)?;
        let fed = feed(lister.stdin.take(), self.open(Self::file_stream(sealed)));
        let stderr = drain(lister.stderr.take());
        let mut listing = String::new();
        lister
            .stdout
            .take()
            .expect("stdout piped")
            .read_to_string(&mut listing)
            .await?;
        let status = lister.wait().await?;
        // pg_restore stops reading once it has the table of contents.
        fed.await.ok().transpose().or_else(|e| match e {
            BackupError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(None),
            e => Err(e),
        })?;
        if !status.success() {
            return Err(CopyError::Failed {
                program: restore,
                status: status.to_string(),
                output: stderr.await.unwrap_or_default(),
            }
            .into());
        }
        let list_file = self
            .work_dir
            .join(format!("fresco-restore-{}.list", at.tenant.simple()));
        tokio::fs::write(&list_file, restore_list(&listing, &at.source_schema())).await?;
        let result = self.pipe_into_psql(conn, at, sealed, &list_file, counts).await;
        let _ = tokio::fs::remove_file(&list_file).await;
        result
    }

    async fn pipe_into_psql(
        &self,
        conn: &ConnParams,
        at: &Placement,
        sealed: &Path,
        list_file: &Path,
        counts: &BTreeMap<String, i64>,
    ) -> Result<(), BackupError> {
        let restore = self.copier.pg_restore().to_owned();
        let mut cmd = self.copier.command_as(&self.psql, conn, "fresco-platform-restore");
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        let mut psql = self.spawn(cmd, &self.psql)?;
        let psql_err = drain(psql.stderr.take());
        let mut psql_in = psql.stdin.take().expect("stdin piped");

        let mut cmd = Command::new(&restore);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(["--no-owner", "--no-privileges", "--file=-"])
            .arg(format!("--use-list={}", list_file.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut pg_restore = self.spawn(cmd, &restore)?;
        let fed = feed(pg_restore.stdin.take(), self.open(Self::file_stream(sealed)));
        let restore_err = drain(pg_restore.stderr.take());
        let script = pg_restore.stdout.take().expect("stdout piped");

        let piped = async {
            psql_in.write_all(prelude(at, self.copier.lock_timeout()).as_bytes()).await?;
            let rename = (at.source_schema() != at.target_schema())
                .then(|| (at.source_schema(), at.target_schema()));
            copy_script(script, &mut psql_in, rename).await?;
            Ok::<_, std::io::Error>(())
        }
        .await;
        let fed = fed.await.unwrap_or(Ok(()));
        let restore_status = pg_restore.wait().await?;
        let mut restored = piped.is_ok() && fed.is_ok() && restore_status.success();
        if restored {
            // Only a whole script is committed; anything short of it ends
            // without COMMIT and Postgres rolls it back (psql still exits 0
            // then: a tail that did not go through is a failure here).
            let tail = format!("{}\nCOMMIT;\n", row_check(at, counts));
            restored = psql_in.write_all(tail.as_bytes()).await.is_ok()
                && psql_in.flush().await.is_ok();
        }
        drop(psql_in);
        let psql_status = psql.wait().await?;
        if !restore_status.success() {
            return Err(CopyError::Failed {
                program: restore,
                status: restore_status.to_string(),
                output: restore_err.await.unwrap_or_default(),
            }
            .into());
        }
        fed?;
        if !psql_status.success() || !restored {
            return Err(CopyError::Failed {
                program: self.psql.clone(),
                status: psql_status.to_string(),
                output: psql_err.await.unwrap_or_default(),
            }
            .into());
        }
        Ok(())
    }
}

/// The start of the restore's transaction, as the platform's role: the schema
/// holding the data dropped and made again for the tenant's role (database
/// mode: every schema the role owns), then the role takes over.
fn prelude(at: &Placement, lock_timeout: &str) -> String {
    let r = ident(&at.tenant.role_name());
    let s = ident(&at.target_schema());
    let mut sql = format!(
        "\\set ON_ERROR_STOP on\nBEGIN;\nSET LOCAL lock_timeout = {};\n",
        literal(lock_timeout)
    );
    if at.isolation == Isolation::Database {
        sql.push_str(&format!(
            "DO $fp$ DECLARE s text; BEGIN
               FOR s IN SELECT nspname FROM pg_namespace
                         WHERE nspowner = {role}::regrole AND nspname <> 'public' LOOP
                 EXECUTE format('DROP SCHEMA %I CASCADE', s);
               END LOOP;
             END $fp$;\n",
            role = literal(&at.tenant.role_name()),
        ));
    }
    sql.push_str(&format!(
        "DROP SCHEMA IF EXISTS {s} CASCADE;\nCREATE SCHEMA {s} AUTHORIZATION {r};\nSET ROLE {r};\n"
    ));
    sql
}

/// A DO block, last in the transaction, that fails it unless every table of the
/// tenant's data has the manifest's row count (and no table is missing or new).
fn row_check(at: &Placement, counts: &BTreeMap<String, i64>) -> String {
    let mut tag = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut tag);
    let tag = format!("$fp_{}$", hex::encode(tag));
    let expected = serde_json::to_string(counts).unwrap_or_else(|_| "{}".into());
    let schema_mode = at.isolation == Isolation::Schema;
    format!(
        "RESET ROLE;
DO {tag} DECLARE expected jsonb := {expected}::jsonb; found jsonb := '{{}}'; t record; n bigint;
BEGIN
  FOR t IN SELECT ns.nspname, c.relname FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p')
              AND CASE WHEN {schema_mode} THEN ns.nspname = {schema}
                       ELSE ns.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbouncer')
                            AND ns.nspname NOT LIKE 'pg\\_%' END LOOP
    EXECUTE format('SELECT count(*) FROM %I.%I', t.nspname, t.relname) INTO n;
    found := found || jsonb_build_object(
      CASE WHEN {schema_mode} OR t.nspname = 'public' THEN t.relname::text
           ELSE t.nspname || '.' || t.relname END, n);
  END LOOP;
  IF found <> expected THEN
    RAISE EXCEPTION 'the restored data does not match the backup''s manifest (row counts: expected %, found %)', expected, found;
  END IF;
END {tag};",
        expected = literal(&expected),
        schema = literal(&at.target_schema()),
    )
}

/// Copies pg_restore's script into psql. With `rename`, the schema name is
/// rewritten outside COPY data (a copy into another tenant in schema mode; both
/// names are `tenant_` + 32 hex digits, so nothing else can match or shift).
async fn copy_script<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    script: R,
    to: &mut W,
    rename: Option<(String, String)>,
) -> std::io::Result<()> {
    let Some((from, into)) = rename else {
        let mut script = script;
        tokio::io::copy(&mut script, to).await?;
        return Ok(());
    };
    let mut lines = BufReader::with_capacity(PIECE, script);
    let mut line = Vec::new();
    let mut in_data = false;
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        if in_data {
            in_data = line != b"\\.\n";
            to.write_all(&line).await?;
            continue;
        }
        let text = String::from_utf8_lossy(&line).replace(&from, &into);
        in_data = text.starts_with("COPY ") && text.trim_end().ends_with("FROM stdin;");
        to.write_all(text.as_bytes()).await?;
    }
}

/// Writes a stream into a child's stdin, then closes it.
fn feed(
    stdin: Option<tokio::process::ChildStdin>,
    mut pieces: BoxStream<'static, Piece>,
) -> JoinHandle<Result<(), BackupError>> {
    tokio::spawn(async move {
        let mut stdin = stdin.expect("stdin piped");
        while let Some(piece) = pieces.next().await {
            stdin.write_all(&piece?).await?;
        }
        stdin.shutdown().await?;
        Ok(())
    })
}

/// A child's error output, kept short.
fn drain(stderr: Option<tokio::process::ChildStderr>) -> JoinHandle<String> {
    tokio::spawn(async move {
        let mut buf = Vec::new();
        if let Some(mut e) = stderr {
            let _ = (&mut e).take(64 * 1024).read_to_end(&mut buf).await;
            let _ = tokio::io::copy(&mut e, &mut tokio::io::sink()).await;
        }
        shorten(&buf)
    })
}

/// A file only the platform's user can read.
async fn private_file(path: &Path) -> std::io::Result<tokio::fs::File> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(0o600);
    options.open(path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_renamed_script_changes_the_schema_outside_copy_data_only() {
        let from = format!("tenant_{}", "a".repeat(32));
        let into = format!("tenant_{}", "b".repeat(32));
        let script = format!(
            "CREATE TABLE {from}.\"Interview\" (id integer);\n\
             COPY {from}.\"Interview\" (id, note) FROM stdin;\n\
             1\tmentions {from} in its data\n\
             \\.\n\
             SELECT pg_catalog.setval('{from}.seq', 1, true);\n"
        );
        let mut out = Vec::new();
        copy_script(script.as_bytes(), &mut out, Some((from.clone(), into.clone())))
            .await
            .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(&format!("CREATE TABLE {into}.\"Interview\"")), "{out}");
        assert!(out.contains(&format!("COPY {into}.\"Interview\"")), "{out}");
        assert!(out.contains(&format!("1\tmentions {from} in its data")), "{out}");
        assert!(out.contains(&format!("setval('{into}.seq'")), "{out}");
    }

    #[test]
    fn the_row_check_quotes_what_tenants_name() {
        let at = Placement {
            isolation: Isolation::Database,
            dumped_tenant: TenantId(uuid::Uuid::nil()),
            tenant: TenantId(uuid::Uuid::nil()),
        };
        let counts = BTreeMap::from([("a'b$$c".to_owned(), 3)]);
        let sql = row_check(&at, &counts);
        assert!(sql.contains(r#"'{"a''b$$c":3}'::jsonb"#), "{sql}");
        assert!(!sql.contains("$$ DECLARE"), "{sql}");
    }
}
