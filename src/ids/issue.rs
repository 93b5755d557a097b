//! Handing out IDs on a worker: the worker's own [`IdGenerator`], made for the
//! node id currently held, stepped over the real clock.
//!
//! Both `/api/ids` and the product API's inserts (users and articles get
//! their primary keys here) come through an [`Issuer`], one per worker. The
//! generator is borrowed only between awaits; when a tick's sequence is used
//! up the caller sleeps to the next tick (a timer, so the worker serves
//! others meanwhile).
//!
//! The listener opens before the node id is leased (a start does not wait on
//! Redis): for [`START_WAIT`] after its worker started, a request that needs
//! an ID waits for the lease and the horizon (polling every [`START_POLL`])
//! instead of being refused; after that, their absence is a 503 at once.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::{horizon, lease, unix_ms_now, IdGenerator, IdScheme, Step};
use crate::http::error::AppError;

const NO_NODE: AppError =
    AppError::IdsUnavailable { problem: "this node has no node id (set --node-id, or REDIS_URL to lease one)" };
const PAST_HORIZON: AppError = AppError::IdsUnavailable {
    problem:
        "this node has not recorded how far it may make IDs (PostgreSQL away, or the clock behind IDs already made)",
};

/// How long after a worker starts a request waits for the node id and the
/// horizon rather than being refused.
pub const START_WAIT: Duration = Duration::from_secs(2);
/// How often such a request looks again.
pub const START_POLL: Duration = Duration::from_millis(5);

/// One worker's IDs: its core number in the machine field, and its
/// generator for the node id it last issued under.
pub struct Issuer {
    scheme: IdScheme,
    core: usize,
    generator: RefCell<Option<IdGenerator>>,
    started: Instant,
}

impl Issuer {
    pub fn new(scheme: IdScheme, core: usize) -> Issuer {
        Issuer { scheme, core, generator: RefCell::new(None), started: Instant::now() }
    }

    /// Whether the worker is young enough that missing IDs are worth waiting for.
    fn starting(&self) -> bool {
        self.started.elapsed() < START_WAIT
    }

    /// Makes `n` new IDs and hands each to `take`, in increasing order. A
    /// callback rather than a `Vec`, so a single ID costs no allocation.
    pub async fn issue(&self, n: usize, take: impl FnMut(u64)) -> Result<(), AppError> {
        issue(self, n, take).await
    }

    /// One new ID as PostgreSQL's bigint: the primary key of a row about to be
    /// inserted. Every layout leaves the top bit 0, so it always fits.
    pub async fn one(&self) -> Result<i64, AppError> {
        let mut made = None;
        self.issue(1, |id| made = Some(id)).await?;
        made.and_then(|id| i64::try_from(id).ok()).ok_or(AppError::Internal)
    }
}

async fn issue(issuer: &Issuer, n: usize, mut take: impl FnMut(u64)) -> Result<(), AppError> {
    let mut made = 0;
    while made < n {
        let wait = {
            let node = match lease::current() {
                Some(node) => node,
                None if issuer.starting() => {
                    tokio::time::sleep(START_POLL).await;
                    continue;
                }
                None => return Err(NO_NODE),
            };
            let mut slot = issuer.generator.borrow_mut();
            if slot.as_ref().is_none_or(|g| g.node() != node) {
                // First use, or the lease moved this node to another id.
                let machine = issuer.scheme.machine(node, issuer.core).map_err(|_| NO_NODE)?;
                *slot = Some(IdGenerator::new(issuer.scheme, machine));
            }
            let generator = slot.as_mut().ok_or(NO_NODE)?;
            loop {
                let now = unix_ms_now();
                if !horizon::allows(node, now) {
                    if issuer.starting() {
                        break Some(START_POLL);
                    }
                    return Err(PAST_HORIZON);
                }
                match generator.next_at(now) {
                    Step::Id(id) => {
                        take(id);
                        made += 1;
                        if made == n {
                            break None;
                        }
                    }
                    Step::Wait(d) => break Some(d),
                    Step::ClockBackwards => {
                        tracing::warn!("the clock went backwards past the bound; refusing to make IDs");
                        return Err(AppError::IdsUnavailable {
                            problem: "the clock went backwards; try again shortly",
                        });
                    }
                    Step::OutOfRange => {
                        tracing::error!("the clock is outside the ID layout's range (check --id-epoch)");
                        return Err(AppError::IdsUnavailable { problem: "the clock is outside the ID range" });
                    }
                }
            }
        };
        if let Some(d) = wait {
            tokio::time::sleep(d).await;
        }
    }
    Ok(())
}
