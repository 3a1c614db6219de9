use clap::Parser;
use gateway_service::{Config, SERVICE, build};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = sales_platform::telemetry::init(SERVICE, &config.telemetry)?;
    build(config).await?.run_until_signal().await;
    Ok(())
}
