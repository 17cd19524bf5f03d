//! `loadgen`: a load generator for chat-gateway that can find its limits.
//!
//! ```text
//! loadgen connect --url http://127.0.0.1:8080 --secret S --conns 10000 --gateway-pid PID
//! loadgen fanout  --url http://127.0.0.1:8080 --secret S --rooms 1 --room-size 500 --gateway-pid PID
//! ```
//!
//! The parent creates fresh public rooms over REST, then starts `--procs`
//! worker processes (each holds its share of the connections on one thread;
//! a process can hold ~19,000 sockets) and drives them through the phases:
//! connect (connection rate), settle (gateway memory per idle connection
//! from /proc), send for `--duration` seconds (deliveries per second,
//! latency percentiles from the send timestamp in each message, loss and
//! duplicates by `seq`, gateway CPU per delivery from /proc), close. See
//! loadtest/README.md for every option.

mod args;
mod conn;
mod driver;
mod gateway_metrics;
mod histogram;
mod inflating;
mod net;
mod proc_stats;
mod setup;
mod token;
mod worker;

use args::Args;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((scenario, rest)) = argv.split_first() else {
        eprintln!("usage: loadgen connect|fanout [--option value]...   (see loadtest/README.md)");
        std::process::exit(2)
    };
    let args = Args::parse(rest).unwrap_or_else(|e| {
        eprintln!("loadgen: {e}");
        std::process::exit(2)
    });
    let options = driver::Options::from_args(scenario, &args);
    args.reject_unknown();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    if let Some(index) = options.worker {
        let share = options.share(index);
        local.block_on(&runtime, worker::run(share));
    } else {
        let code = local.block_on(&runtime, driver::drive(options, args.to_vec()));
        std::process::exit(code);
    }
}
