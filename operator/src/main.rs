//! `sales-operator run | crdgen | render -f FILE`.

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
        /// A YAML file holding a SalesSystem.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
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
        Command::Render { file } => std::fs::read_to_string(&file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))
            .and_then(|yaml| sales_operator::render::parse(&yaml))
            .and_then(|system| sales_operator::render::render(&system))
            .map(|yaml| print!("{yaml}")),
        Command::Run(args) => sales_operator::controller::main(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sales-operator: {err:#}");
            ExitCode::FAILURE
        }
    }
}
