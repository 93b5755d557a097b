//! Password hashing (argon2id) on a small pool of threads of its own.
//!
//! A hash costs tens of milliseconds of CPU by design. Run on a worker, it
//! would stall every other connection of that core for that long, so workers
//! hand each hash or check to this pool and await the answer. The pool's
//! threads run under SCHED_IDLE (nice 10 where that is refused): a worker that
//! wakes up takes the core from a hashing thread at once, so a stream of
//! logins slows the logins, not the other requests. Measured with
//! perf/run-api.sh: at nice 10, /health's p99 beside a login stream was 9×
//! its p99 alone; under SCHED_IDLE, 1.5–2.8×. Hashing still gets every cycle
//! the workers leave (about 40 logins/s per hashing thread here). The queue in front of the pool is bounded:
//! when it is full a login gets 503 at once instead of queueing without limit.
//!
//! Parameters are argon2's defaults (argon2id, 19 MiB, 2 passes, 1 lane:
//! OWASP's recommended minimum), recorded in each PHC string, so stored
//! hashes keep verifying if the defaults ever change. The threads start with
//! the first hash, so a node that never sees a login never runs them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use tokio::sync::oneshot;

use crate::http::error::AppError;

/// Jobs waiting per hashing thread before new ones are refused.
const QUEUE_PER_THREAD: usize = 32;
/// The nice value of the hashing threads if SCHED_IDLE is refused (0 is
/// normal, 19 the lowest priority).
const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

static POOL: OnceLock<SyncSender<Job>> = OnceLock::new();
/// The pool's size, set at start-up; the threads start with the first hash.
static THREADS: AtomicUsize = AtomicUsize::new(1);

/// A hash made earlier with the same parameters, verified when the e-mail is
/// unknown so a failed login takes as long whether or not the account exists.
static DECOY: OnceLock<String> = OnceLock::new();

/// Sets the pool's size. The threads start when the first password is hashed
/// or checked, so a node that never sees a login never runs them (nor pays
/// their memory).
pub fn configure(threads: usize) {
    THREADS.store(threads.max(1), Ordering::Relaxed);
}

/// Starts the pool's threads; later calls do nothing.
fn start(threads: usize) {
    POOL.get_or_init(|| {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(threads * QUEUE_PER_THREAD);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new().name(format!("swiftlet-hash-{i}")).spawn(move || {
                lower_priority();
                loop {
                    // The lock is held only while taking a job, never while running one.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // every sender is gone
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password-hashing thread");
            }
        }
        tx
    });
}

fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads the `sched_param` we pass by reference,
    // which lives for the whole call, and pid 0 means the calling thread only.
    // Exercised by every test that registers or logs in a user.
    let idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if idle == 0 {
        return;
    }
    // SAFETY: gettid and setpriority take plain integers and only affect the
    // calling thread; no memory is shared with the kernel.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, NICE) };
    if result != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower the hashing threads' priority");
    }
}

/// Runs `f` on the pool and waits for its result without blocking the worker.
async fn run<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R, AppError> {
    if POOL.get().is_none() {
        start(THREADS.load(Ordering::Relaxed));
    }
    let pool = POOL.get().ok_or(AppError::Internal)?;
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    match pool.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => return Err(AppError::HashingBusy),
        Err(TrySendError::Disconnected(_)) => return Err(AppError::Internal),
    }
    rx.await.map_err(|_| AppError::Internal)
}

/// The PHC string (`$argon2id$v=19$m=...`) of `password` with a fresh salt.
pub async fn hash(password: String) -> Result<String, AppError> {
    run(move || hash_now(&password)).await?
}

fn hash_now(password: &str) -> Result<String, AppError> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| {
        tracing::error!(error = %e, "password hashing failed");
        AppError::Internal
    })
}

/// Whether `password` matches `phc`; `None` for `phc` checks against a decoy so
/// that an unknown account costs the same time as a wrong password.
pub async fn verify(password: String, phc: Option<String>) -> Result<bool, AppError> {
    run(move || {
        // Against the decoy the check runs in full and then counts for
        // nothing, even for someone whose password happens to be "decoy".
        let is_decoy = phc.is_none();
        let phc = phc.unwrap_or_else(|| DECOY.get_or_init(|| hash_now("decoy").unwrap_or_default()).clone());
        let matches = match PasswordHash::new(&phc) {
            Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
            Err(e) => {
                tracing::error!(error = %e, "a stored password hash does not parse");
                false
            }
        };
        matches && !is_decoy
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let phc = hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify("correct horse".into(), Some(phc.clone())).await.unwrap());
        assert!(!verify("wrong horse".into(), Some(phc)).await.unwrap());
        // Unknown account: the decoy is checked and never matches, even its own password.
        assert!(!verify("decoy".into(), None).await.unwrap());
        assert!(!verify("anything".into(), Some("not a phc string".into())).await.unwrap());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn salts_differ() {
        let a = hash("same".into()).await.unwrap();
        let b = hash("same".into()).await.unwrap();
        assert_ne!(a, b);
    }
}
