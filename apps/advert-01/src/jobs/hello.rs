//! `hello-world` on `test/hello.world`: composes a greeting in one step,
//! sleeps durably for a second, stamps the time in another step, and
//! returns the greeting.

use chrono::{SecondsFormat, Utc};
use ingot::{Ctx, Error, Function};
use serde::{Deserialize, Serialize};

use super::client::HelloWorld;

/// The function's id (the engine knows it as `advert-01-hello-world`).
pub const ID: &str = "hello-world";

/// What a run returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeting {
    /// `Hello, <name>!`
    pub message: String,
    /// When the greeting was stamped (RFC 3339).
    pub greeted_at: String,
}

/// The function.
pub fn function() -> Function {
    Function::new(ID).name("Hello world").trigger_event::<HelloWorld>().retries(2).handler(hello).into()
}

async fn hello(ctx: Ctx<HelloWorld>) -> Result<Greeting, Error> {
    let name = ctx.event.data.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| "world".to_string());
    let message: String = ctx.step.run("compose-greeting", || async { Ok(format!("Hello, {}!", name.trim())) }).await?;
    ctx.step.sleep("pause", "1s").await?;
    let greeted_at: String = ctx.step.run("stamp", || async { Ok(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)) }).await?;
    tracing::info!(%message, "greeted");
    Ok(Greeting { message, greeted_at })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingot::testing::TestRun;

    /// The SDK's test helper runs the function with no engine: the sleep
    /// ends at once and every step body runs.
    #[tokio::test]
    async fn greets_by_name_or_the_world() {
        let run = TestRun::new(&function(), HelloWorld { name: Some(" Ada ".into()) }).run().await;
        assert_eq!(run.output.unwrap()["message"], "Hello, Ada!");
        assert_eq!(run.steps_run, ["compose-greeting", "stamp"]);
        let run = TestRun::new(&function(), HelloWorld { name: None }).mock_step("stamp", "2026-01-01T00:00:00.000Z").run().await;
        let out = run.output.unwrap();
        assert_eq!((out["message"].as_str(), out["greeted_at"].as_str()), (Some("Hello, world!"), Some("2026-01-01T00:00:00.000Z")));
        assert_eq!(run.steps_run, ["compose-greeting"]);
    }
}
