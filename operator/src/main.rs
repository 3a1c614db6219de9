//! `sales-operator run | crdgen | render -f FILE | restore-job | simulate`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "sales-operator",
    about = "Reconciles SalesSystem resources into the whole running sales system",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller (leader-elected) until SIGTERM.
    Run(Box<sales_operator::controller::RunArgs>),
    /// Print the SalesSystem CustomResourceDefinition as YAML.
    Crdgen {
        /// Print the field reference (Markdown) instead.
        #[arg(long)]
        reference: bool,
    },
    /// Print every object the operator would create for a SalesSystem, as YAML.
    Render {
        /// A YAML file holding a SalesSystem. It is admitted as the API server would
        /// (schema, CEL rules, unknown fields): what `kubectl apply` refuses, render
        /// refuses, with the same messages, and exits non-zero.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// The SalesSystem this one updates: its transition rules are checked too.
        #[arg(long)]
        old: Option<PathBuf>,
    },
    /// Print a Job that restores a backup of one service's managed database
    /// (docs/operator/backups.md).
    RestoreJob {
        /// A YAML file holding the SalesSystem (as applied).
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// The service whose database to restore: product, order, customer, payment,
        /// inventory, shipping or notification.
        #[arg(long)]
        service: String,
        /// The dump's name (`20250131T030000Z.dump`), `latest`, or `list` (the Job
        /// only lists the dumps in its log).
        #[arg(long, default_value = "latest")]
        dump: sales_operator::children::backups::restore::Dump,
    },
    /// Replay a load profile through the autoscaling decision and print every change
    /// (`cargo xtask autoscaling-chart` draws the run as a PNG).
    Simulate {
        /// `builtin`, or a YAML load profile (see `operator/src/autoscaling/builtin-profile.yaml`).
        #[arg(long, default_value = "builtin")]
        profile: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crdgen { reference: true } => {
            print!("{}", sales_operator::reference::markdown());
            Ok(())
        }
        Command::Crdgen { reference: false } => sales_operator::crd::crd_yaml()
            .map(|yaml| print!("{yaml}"))
            .map_err(anyhow::Error::from),
        Command::Render { file, old } => render(&file, old.as_deref()),
        Command::RestoreJob {
            file,
            service,
            dump,
        } => std::fs::read_to_string(&file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))
            .and_then(|yaml| sales_operator::render::parse(&yaml))
            .and_then(|system| {
                sales_operator::children::backups::restore::render(&system, &service, &dump)
            })
            .map(|yaml| print!("{yaml}")),
        Command::Run(args) => sales_operator::controller::main(*args),
        Command::Simulate { profile } => simulate(&profile),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sales-operator: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `render -f FILE [--old FILE]`: refused (non-zero, the API server's message on
/// stderr) where `kubectl apply` would be.
fn render(file: &std::path::Path, old: Option<&std::path::Path>) -> anyhow::Result<()> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
    };
    let yaml = read(file)?;
    let system = match old {
        None => sales_operator::render::parse(&yaml)?,
        Some(old) => sales_operator::render::parse_update(&yaml, &read(old)?)?,
    };
    print!("{}", sales_operator::render::render(&system)?);
    Ok(())
}

fn simulate(profile: &str) -> anyhow::Result<()> {
    use sales_operator::autoscaling::simulate;
    let simulation = simulate::run(&simulate::load_profile(profile)?)?;
    print!("{}", simulate::summary(&simulation));
    Ok(())
}
