//! `gateway [--config FILE]` serves; `gateway migrate [--config FILE]` only runs the migrations.

use anyhow::Context;
use gateway::{config, startup::Application, store::Store, telemetry};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    gateway::memory::tune();
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
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
