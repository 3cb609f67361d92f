//! Reading a topic's branch head from the DHT and choosing the one to
//! follow: the newest correctly signed head, never older than one this
//! machine saw before (the rollback guard lives in [`Home`]).

use tracker_free::{Dht, HeadChoice, SignedHead};

use super::report::{FetchEvent, FetchReport};
use crate::topic::head_address::HeadAddress;
use crate::topic::home::Home;

/// Resolves `address`; refused heads are reported as events. `Ok(None)`:
/// no head at all, neither on the DHT nor seen before.
///
/// # Errors
///
/// The seen-heads record cannot be read or written.
pub async fn resolve_head(
    dht: &Dht,
    home: &Home,
    address: &HeadAddress,
    report: &dyn FetchReport,
) -> anyhow::Result<Option<SignedHead>> {
    let seen = home.seen_head(&address.topic, &address.branch)?;
    let mut lookup = dht.resolve_head(&address.topic, &address.branch).await;
    let choice = lookup.choose(seen.as_ref());
    for refusal in &lookup.refused {
        report.event(FetchEvent::HeadRefused {
            url: address.url(),
            reason: refusal.to_string(),
        });
    }
    Ok(match choice {
        HeadChoice::New(head) => {
            home.record_head(&head)?;
            Some(*head)
        }
        HeadChoice::Unchanged => seen,
        HeadChoice::NotFound => {
            if seen.is_some() {
                report.event(FetchEvent::HeadUnreachable {
                    url: address.url(),
                    queried: lookup.queried as usize,
                    responded: lookup.responded as usize,
                });
            }
            seen
        }
    })
}
