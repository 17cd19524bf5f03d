//! `gateway [--config FILE]` serves; `gateway migrate` only runs the
//! migrations; `gateway token --sub ID` prints a token (see `cli.rs`).

use gateway::cli::{self, Command};
use gateway::{config, startup::Application, store::Store, telemetry};

fn main() -> anyhow::Result<()> {
    gateway::memory::tune();
    let open_files = gateway::open_files::raise();
    tokio::runtime::Runtime::new()?.block_on(run(open_files))
}

async fn run(open_files: Option<gateway::open_files::OpenFiles>) -> anyhow::Result<()> {
    let (command, file) = cli::parse(std::env::args().skip(1))?;
    if command == Command::Help {
        println!("{}", cli::USAGE);
        return Ok(());
    }
    let settings = config::load(file.as_deref(), std::env::vars())?;
    if let Command::Token(request) = &command {
        println!("{}", cli::mint(request, &settings.auth)?);
        return Ok(());
    }
    telemetry::init(&settings.log);
    gateway::open_files::report(open_files, settings.limits.max_connections);
    if command == Command::Migrate {
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
