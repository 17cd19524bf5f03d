//! `gateway [--config FILE]` serves; `gateway migrate [--config FILE]` only runs the migrations.

use anyhow::Context;
use gateway::{config, startup::Application, store::Store, telemetry};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    gateway::memory::tune();
    let open_files = gateway::open_files::raise();
    tokio::runtime::Runtime::new()?.block_on(run(open_files))
}

async fn run(open_files: Option<gateway::open_files::OpenFiles>) -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut migrate_only = false;
    let mut file: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "migrate" => migrate_only = true,
            "--config" => file = Some(args.next().context("--config needs a file")?.into()),
            "-h" | "--help" => {
                println!(
                    "usage: gateway [migrate] [--config FILE]\nSettings: see README.md (CHAT__SECTION__KEY variables)."
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let settings = config::load(file.as_deref(), std::env::vars())?;
    telemetry::init(&settings.log);
    gateway::open_files::report(open_files, settings.limits.max_connections);
    if migrate_only {
        let store = Store::connect(settings.database.url.expose(), 1).await?;
        store.migrate().await?;
        tracing::info!("migrations applied");
        return Ok(());
    }
    Application::build(settings)
        .await?
        .run_until_stopped(true)
        .await?;
    Ok(())
}
