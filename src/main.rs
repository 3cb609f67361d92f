//! The `xus` binary: parse, run, map errors to an exit code.

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use xus::cli::{Cli, Command, DhtCommand, MasterAction, TopicCommand, WriterCommand};
use xus::commands::{
    dht, docs, failure, fetch, follow, gc, master, publish, push, seed, status, topic, torrent,
    verify, webseed, writer,
};
use xus::swarm::fetch::{FetchRequest, History};
use xus::swarm::output::Output;
use xus::topic::home::Home;
use xus::torrent::import::RefOptions;

/// Exit statuses by error kind: see [`failure::ErrorKind`] (usage errors
/// exit 2 from clap, the same status as other bad input).
fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if json {
                eprintln!("{}", failure::to_json(&err));
            } else {
                eprintln!("xus: error: {err:#}");
            }
            ExitCode::from(failure::classify(&err).exit_status())
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,librqbit=warn",
        2 => "debug,librqbit=info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("XUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout();
    let json = cli.json;
    match cli.command {
        Command::Torrent(args) => torrent::run(
            &torrent::TorrentOptions {
                repo: args.repo,
                rev: args.rev,
                output: args.output,
                webseeds: args.webseeds,
                from: args.from,
                json,
            },
            &mut stdout,
        ),
        Command::Seed(args) => runtime()?.block_on(seed::run(
            seed::SeedOptions {
                repo: args.repo,
                revs: args.revs,
                all_branches: args.all_branches,
                listen: args.net.listen,
                rates: args.net.rates(),
                lsd: !args.net.no_lsd,
                peers: args.net.peers,
                cache_bytes: args.cache_mb.saturating_mul(1024 * 1024),
                dht: (!args.no_dht).then(|| args.dht.options()),
                rescan: Duration::from_secs(args.rescan.max(1)),
                republish: Duration::from_secs(args.republish.max(1)),
                home: Home::locate()?,
                webseed_listen: args.webseed_listen,
                webseed_url: args.webseed_url,
                metrics_listen: args.metrics_listen,
            },
            &mut Output::new(&mut stdout, json),
        )),
        Command::Fetch(args) => {
            let options = fetch::FetchOptions {
                source: args.source,
                request: FetchRequest {
                    repo: args.repo,
                    bare: args.bare,
                    refs: RefOptions {
                        branch: args.branch,
                        force: args.force,
                        checkout: args.checkout,
                        tracking: None,
                    },
                    peers: args.net.peers.clone(),
                    webseeds: args.webseeds,
                    metadata_timeout: Duration::from_secs(args.metadata_timeout),
                    stall_timeout: Duration::from_secs(args.stall_timeout),
                    require_parents: false,
                    use_updates: !args.no_updates,
                    history: History::from_depth(args.depth),
                    base: None,
                    deepen: false,
                    timed_from: None,
                    repair: false,
                },
                listen: args.net.listen,
                rates: args.net.rates(),
                lsd: !args.net.no_lsd,
                dht: args.dht.options(),
                no_dht: args.no_dht,
                home: Home::locate()?,
                seed_for: args.seed_for.map(Duration::from_secs),
            };
            // With --seed-for, a signal ends the seeding cleanly (fetch's
            // own handler); before that, it interrupts.
            if options.seed_for.is_some() {
                runtime()?.block_on(fetch::run(options, &mut Output::new(&mut stdout, json)))
            } else {
                runtime()?.block_on(interruptible(fetch::run(
                    options,
                    &mut Output::new(&mut stdout, json),
                )))
            }
        }
        Command::Topic(TopicCommand::New { name }) => {
            topic::new(&Home::locate()?, &name, &mut stdout)
        }
        Command::Topic(TopicCommand::List) => topic::list(&Home::locate()?, json, &mut stdout),
        Command::Publish(args) => runtime()?.block_on(interruptible(publish::run(
            publish::PublishOptions {
                repo: args.repo,
                rev: args.rev,
                topic: args.topic,
                branch: args.branch,
                port: args.port,
                dht: args.dht.options(),
                home: Home::locate()?,
            },
            &mut Output::new(&mut stdout, json),
        ))),
        Command::Gc(args) => gc::run(&args.repo, &mut stdout),
        Command::Completions(args) => {
            docs::completions(Cli::command(), "xus", args.shell, &mut stdout)
        }
        Command::Man(args) => match args.out {
            Some(dir) => docs::man_pages(Cli::command(), &dir, &mut stdout),
            None => docs::man_page(Cli::command(), &mut stdout),
        },
        Command::Status(args) => runtime()?.block_on(interruptible(status::run(
            status::StatusOptions {
                repo: args.repo,
                offline: args.offline,
                dht: args.dht.options(),
                home: Home::locate()?,
            },
            json,
            &mut stdout,
        ))),
        Command::Verify(args) => runtime()?.block_on(interruptible(verify::run(
            verify::VerifyOptions {
                rev: args.rev,
                repair: args.repair,
                source: args.source,
                request: FetchRequest {
                    repo: args.repo,
                    bare: false,
                    refs: RefOptions::default(),
                    peers: args.net.peers.clone(),
                    webseeds: args.webseeds,
                    metadata_timeout: Duration::from_secs(args.metadata_timeout),
                    stall_timeout: Duration::from_secs(args.stall_timeout),
                    require_parents: false,
                    use_updates: false,
                    history: History::Tip,
                    base: None,
                    deepen: false,
                    timed_from: None,
                    repair: true,
                },
                listen: args.net.listen,
                rates: args.net.rates(),
                lsd: !args.net.no_lsd,
                dht: args.dht.options(),
                no_dht: args.no_dht,
                home: Home::locate()?,
            },
            &mut Output::new(&mut stdout, json),
        ))),
        Command::Follow(args) => runtime()?.block_on(follow::run(
            follow::FollowOptions {
                head: args.head,
                branch: args.branch,
                interval: Duration::from_secs(args.interval.max(1)),
                request: FetchRequest {
                    repo: args.repo,
                    bare: args.bare,
                    refs: RefOptions::default(),
                    peers: args.net.peers.clone(),
                    webseeds: Vec::new(),
                    metadata_timeout: Duration::from_secs(60),
                    stall_timeout: Duration::from_secs(args.stall_timeout),
                    require_parents: false,
                    use_updates: !args.no_updates,
                    history: History::Tip,
                    base: None,
                    deepen: false,
                    timed_from: None,
                    repair: false,
                },
                listen: args.net.listen,
                rates: args.net.rates(),
                lsd: !args.net.no_lsd,
                dht: args.dht.options(),
                home: Home::locate()?,
            },
            &mut Output::new(&mut stdout, json),
        )),
        Command::Dht(DhtCommand::Serve(args)) => runtime()?.block_on(dht::serve(
            dht::ServeOptions {
                nodes: args.nodes,
                bind: args.bind,
                port: args.port,
                bootstrap: args.bootstrap,
            },
            &mut stdout,
        )),
        Command::Webseed(args) => runtime()?.block_on(webseed::run(
            webseed::WebseedOptions {
                repo: args.repo,
                revs: args.revs,
                all_branches: args.all_branches,
                listen: args.listen,
                public_url: args.public_url,
                cache_bytes: args.cache_mb.saturating_mul(1024 * 1024),
            },
            &mut stdout,
        )),
        Command::Writer(WriterCommand::New { key }) => {
            let path = key.map_or_else(|| Home::locate().map(|h| h.writer_key_path()), Ok)?;
            writer::new(&path, &mut stdout)
        }
        Command::Writer(WriterCommand::Show { key }) => {
            let path = key.map_or_else(|| Home::locate().map(|h| h.writer_key_path()), Ok)?;
            writer::show(&path, &mut stdout)
        }
        Command::Push(args) => runtime()?.block_on(interruptible(push::run(
            push::PushOptions {
                repo: args.repo,
                rev: args.rev,
                topic: args.topic,
                branch: args.branch,
                master: args.master,
                key: args.key,
                listen: args.listen,
                timeout: Duration::from_secs(args.timeout.max(1)),
                home: Home::locate()?,
            },
            json,
            &mut stdout,
        ))),
        Command::Master(args) => match (args.action, args.config) {
            (Some(MasterAction::Status { config }), _) => {
                runtime()?.block_on(master::status(&config, json, &mut stdout))
            }
            (None, Some(config)) => {
                runtime()?.block_on(master::run(&config, args.init, &mut stdout))
            }
            (None, None) => anyhow::bail!("xus master needs --config FILE"),
        },
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs `work` until it ends or Ctrl-C / SIGTERM arrives; then it is
/// dropped (what it wrote is safe to leave, as after a kill: temporary
/// packs and quarantines are swept by the next run) and the command fails
/// as interrupted.
async fn interruptible<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let stop = xus::commands::shutdown_signal();
    tokio::select! {
        result = work => result,
        () = stop => Err(failure::failure(
            failure::ErrorKind::Interrupted,
            "interrupted (Ctrl-C or SIGTERM) before it finished; running it again resumes",
        )),
    }
}
