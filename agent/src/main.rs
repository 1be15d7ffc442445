//! `dmpd-agent`: the DMPD monitor agent.
//!
//! ```text
//! dmpd-agent run --config node.toml        run the agent (EAL args come from the config)
//! dmpd-agent status --config node.toml     ask a running agent (or --socket PATH)
//! dmpd-agent check-config node.toml        validate a configuration file
//! dmpd-agent record --socket A.sock --out run.jsonl --interval-ms 500
//!                                          record agents' ports and balancer
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use agent::config::AgentConfig;
use agent::ctl::{self, Request};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "dmpd-agent", version, about = "DMPD monitor agent over DPDK")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the agent.
    Run {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Show a running agent's cluster table, ports, pipes and balancer.
    Status {
        /// The agent's configuration (to find its control socket).
        #[arg(short, long, conflicts_with = "socket")]
        config: Option<PathBuf>,
        /// The agent's control socket.
        #[arg(short, long)]
        socket: Option<PathBuf>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Refresh every N milliseconds until interrupted (a live view).
        #[arg(long)]
        watch: Option<u64>,
    },
    /// Turn the balancer on or off in a running agent.
    Balancing {
        #[arg(short, long)]
        socket: PathBuf,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Validate a configuration file and print it with defaults applied.
    CheckConfig { config: PathBuf },
    /// Record running agents (ports, balancer) and dmpd-stream reports to a
    /// JSON-lines file, one sample every --interval-ms, for dmpd-plot.
    Record {
        /// An agent's control socket (repeatable).
        #[arg(short, long)]
        socket: Vec<PathBuf>,
        /// A dmpd-stream --report file to sample too (repeatable).
        #[arg(long)]
        stream_report: Vec<PathBuf>,
        /// Sampling interval.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
        /// Stop after this many seconds (default: at SIGINT/SIGTERM).
        #[arg(long)]
        duration_s: Option<f64>,
        /// The recording (created or truncated).
        #[arg(short, long)]
        out: PathBuf,
        /// A free-form label stored in the recording's first line.
        #[arg(long, default_value = "")]
        label: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run { config } => run(config),
        Cmd::CheckConfig { config } => match AgentConfig::from_file(&config) {
            Ok(c) => {
                println!("{c:#?}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Status {
            config,
            socket,
            json,
            watch,
        } => {
            let path = match (config, socket) {
                (_, Some(s)) => s,
                (Some(c), None) => match AgentConfig::from_file(&c) {
                    Ok(c) => c.control_socket,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                },
                (None, None) => {
                    eprintln!("error: give --config or --socket");
                    return ExitCode::from(2);
                }
            };
            loop {
                match ctl::request(&path, &Request::Status) {
                    Ok(r) if r.ok => {
                        let st = r.status.unwrap_or_default();
                        if watch.is_some() {
                            print!("\x1b[2J\x1b[H");
                        }
                        if json {
                            println!("{}", serde_json::to_string_pretty(&st).unwrap());
                        } else {
                            print!("{}", agent::render::status_table(&st));
                        }
                    }
                    Ok(r) => {
                        eprintln!("error: {}", r.error.unwrap_or_default());
                        return ExitCode::from(1);
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(1);
                    }
                }
                match watch {
                    Some(ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
                    None => return ExitCode::SUCCESS,
                }
            }
        }
        Cmd::Record {
            socket,
            stream_report,
            interval_ms,
            duration_s,
            out,
            label,
        } => {
            let duration = match duration_s.map(std::time::Duration::try_from_secs_f64) {
                Some(Err(e)) => {
                    eprintln!("error: --duration-s: {e}");
                    return ExitCode::from(2);
                }
                Some(Ok(d)) => Some(d),
                None => None,
            };
            agent::runner::install_quit_handler();
            let opts = agent::record::RecordOptions {
                sockets: socket,
                stream_reports: stream_report,
                interval: std::time::Duration::from_millis(interval_ms),
                duration,
                out,
                label,
            };
            match agent::record::record(&opts, &agent::runner::QUIT) {
                Ok(n) => {
                    tracing::info!(samples = n, out = %opts.out.display(), "recording done");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Cmd::Balancing { socket, state } => {
            match ctl::request(&socket, &Request::Balancing { on: state == "on" }) {
                Ok(r) if r.ok => ExitCode::SUCCESS,
                Ok(r) => {
                    eprintln!("error: {}", r.error.unwrap_or_default());
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn run(config: PathBuf) -> ExitCode {
    agent::runner::run_agent(&config, None)
}
