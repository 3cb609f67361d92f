//! Serving what a fetch brought, from the fetcher's own session: a reader
//! that stays a while (`xus fetch --seed-for`, `xus follow`) takes load off
//! the master and the first seeds.

use crate::git::blobs::{BlobSource, DEFAULT_CACHE_BYTES};
use crate::swarm::Swarm;
use crate::swarm::fetch::{FetchRequest, Fetched};
use crate::swarm::seeder::Seeder;
use crate::torrent::update::UpdateStore;

/// Serves `fetched` (its commit torrent, and the update torrents it came
/// through) on `swarm`, starting `seeder` with the first call: the
/// repository may not exist before the first fetch.
///
/// # Errors
///
/// The repository cannot be opened, or a torrent cannot be served.
pub async fn seed_fetched<'a>(
    swarm: &'a Swarm,
    seeder: &mut Option<Seeder<'a>>,
    request: &FetchRequest,
    fetched: &Fetched,
) -> anyhow::Result<()> {
    let seeder = match seeder {
        Some(seeder) => seeder,
        None => {
            let git_dir = request.repo.clone();
            let (git_dir, source) = tokio::task::spawn_blocking(move || {
                let repo = git2::Repository::open(&git_dir)?;
                let git_dir = repo.path().to_owned();
                let source = BlobSource::open(&git_dir, DEFAULT_CACHE_BYTES)?;
                anyhow::Ok((git_dir, source))
            })
            .await??;
            seeder.insert(
                Seeder::new(swarm.engine(), source, git_dir)?
                    .unadvertised()
                    .announcing(swarm.dht().cloned()),
            )
        }
    };
    let mut sink = std::io::sink();
    let mut quiet = crate::swarm::output::Output::text(&mut sink);
    seeder.add(fetched.commit, &mut quiet).await?;
    for link in &fetched.updates {
        let store = UpdateStore::of(seeder.git_dir());
        let (from, to) = (link.from, link.to);
        if let Some(stored) = tokio::task::spawn_blocking(move || store.load(from, to)).await? {
            seeder.add_update(stored, &mut quiet).await?;
        }
    }
    Ok(())
}
