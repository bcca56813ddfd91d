//! `wormbox clock show|accept-forward`: the system and compliance clocks.
//!
//! Invariant: only `accept-forward` reads a code, and it always needs one.

use clap::Subcommand;
use serde_json::json;
use wormbox_proto::v1;

use crate::commands::Context;

#[derive(Debug, Subcommand)]
pub(crate) enum ClockCommand {
    /// Show the system and compliance clocks, and how a gap between them closes.
    Show,
    /// Accept a forward jump of the system clock at once, instead of letting the
    /// compliance clock catch up at its rate (admin, --mfa from your own device).
    AcceptForward,
}

pub(crate) async fn run(cx: &Context, command: ClockCommand) -> anyhow::Result<()> {
    let mut admin = cx.clients.admin();
    match command {
        ClockCommand::Show => {
            let reply = admin.get_clock(v1::GetClockRequest {}).await?.into_inner();
            let system = wormbox_model::Timestamp(reply.system_unix_micros);
            let compliance = wormbox_model::Timestamp(reply.compliance_unix_micros);
            let caught_up = (reply.caught_up_unix_micros != 0)
                .then(|| wormbox_model::Timestamp(reply.caught_up_unix_micros).to_rfc3339());
            let value = json!({
                "system": system.to_rfc3339(),
                "compliance": compliance.to_rfc3339(),
                "held_back_seconds": reply.held_back_seconds,
                "catch_up_seconds_per_year": reply.catch_up_seconds_per_year,
                "caught_up_at": caught_up,
            });
            let mut text = format!("system      {system}\ncompliance  {compliance}");
            if reply.held_back_seconds > 0 {
                let by = caught_up.map_or_else(|| "never on its own".to_owned(), |t| format!("caught up by {t}"));
                text.push_str(&format!(
                    "\nthe compliance clock is {} s behind; it catches up at {} days per year ({by}); \
                             `wormbox clock accept-forward` accepts the whole jump at once",
                    reply.held_back_seconds,
                    reply.catch_up_seconds_per_year / 86_400
                ));
            }
            cx.print(value, text);
        }
        ClockCommand::AcceptForward => {
            let request = v1::AcceptClockForwardRequest { mfa: cx.mfa.code()? };
            let reply = admin.accept_clock_forward(request).await?.into_inner();
            let compliance = wormbox_model::Timestamp(reply.compliance_unix_micros);
            let value = json!({"compliance": compliance.to_rfc3339(), "ledger_sequence": reply.ledger_sequence});
            cx.print(value, format!("compliance clock now {compliance}"));
        }
    }
    Ok(())
}
