//! `microframework`: generate production microservices and check the tools they need.

/// Prints a line to stdout, like `println!`, but a closed pipe (`microframework ... | head`) ends
/// the process quietly with 0, as SIGPIPE would, instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("error: cannot write to stdout: {e}");
            std::process::exit(1);
        }
    }};
}

mod add;
mod doctor;
mod generate;
mod new;
mod update;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "microframework", version, about = "Generate and check production microservices in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a complete service: code, tests, configuration, Docker, Kubernetes, Helm, docs.
    New(new::NewArgs),
    /// List what can be generated.
    List {
        /// `types` or `features`.
        what: ListWhat,
    },
    /// Add a feature to a service, as `new --with-FEATURE=PROVIDER` would have (your edits are kept or left alone).
    Add(add::AddArgs),
    /// Generate code in a service: a CRUD resource or a handler, registered through src/generated/.
    Generate(generate::GenerateArgs),
    /// Re-render a service's generated files (src/generated/) for this version; your files stay as they are.
    Update(update::UpdateArgs),
    /// Check the toolchain and, inside a service, that its database is reachable.
    Doctor(doctor::DoctorArgs),
    /// Print shell completions, e.g. `microframework completions bash > /etc/bash_completion.d/microframework`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ListWhat {
    /// Service types for `--type`.
    Types,
    /// Integrations for `--with-*`.
    Features,
}

/// An error with the exit code to use: 2 for bad input, 1 for failures.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self { code: 2, message: message.into() }
    }

    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self { code: 1, message: message.into() }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::New(args) => new::run(args),
        Command::List { what } => {
            list(what);
            Ok(())
        }
        Command::Add(args) => add::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Update(args) => update::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "microframework", &mut script);
            // A closed pipe (`| head`) is not an error worth a backtrace.
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(Failure::failed(format!("cannot write: {e}")))
                }
                _ => Ok(()),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn list(what: ListWhat) {
    match what {
        ListWhat::Types => {
            for t in microframework_gen::ServiceType::ALL {
                let status = if t.is_available() { "" } else { "  (not available yet)" };
                out!("{:<10} {}{status}", t.as_str(), t.description());
            }
        }
        ListWhat::Features => {
            for f in microframework_gen::FEATURE_LAYERS {
                out!("{:<10} {}", f.name, f.description);
                for p in f.providers {
                    out!("  {:<10} {}", p.name, p.description);
                }
            }
            out!(
                "\nUse them with `microframework new --with-FEATURE=PROVIDER` or `microframework add FEATURE --provider PROVIDER`."
            );
        }
    }
}
