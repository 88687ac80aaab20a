//! `prefiq worker`, `prefiq jobs …` and `prefiq events tail`: run jobs in a process of
//! their own, inspect and steer the queue, and follow events as they are written.

use std::fmt::Write as _;
use std::time::Duration;

use clap::Subcommand;
use prefiq::{App, BootMode};
use prefiq_data::entity::repo::Repository;
use prefiq_data::jobs::{JobRow, STATES};
use prefiq_worker::{Databases, Event, Jobs};

use crate::{Cli, CliError, boot, logging, print_out, shutdown_signal, to_json};

/// `prefiq jobs ...`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only jobs in this state: scheduled, queued, running, succeeded, dead or cancelled.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one job, with its input and last error.
    Show {
        /// The job's id.
        id: i64,
        /// The tenant whose database holds it (database tenancy).
        #[arg(long, default_value = "")]
        tenant: String,
    },
    /// Run a dead, cancelled or scheduled job now.
    Retry {
        /// The job's id.
        id: i64,
        /// The tenant whose database holds it (database tenancy).
        #[arg(long, default_value = "")]
        tenant: String,
    },
    /// Cancel a job that has not finished.
    Cancel {
        /// The job's id.
        id: i64,
        /// The tenant whose database holds it (database tenancy).
        #[arg(long, default_value = "")]
        tenant: String,
    },
}

/// `prefiq events ...`.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print events as they are written (one JSON line each) until interrupted.
    Tail {
        /// Only events of these entities (comma-separated).
        #[arg(long, value_delimiter = ',')]
        entities: Vec<String>,
        /// Start this many events back instead of at the newest.
        #[arg(long, default_value_t = 0)]
        back: i64,
    },
}

/// `prefiq schedules ...`.
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// List the schedules modules declare, with their last and next runs.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `prefiq schedules list`.
pub async fn schedules(
    command: &SchedulesCommand,
    app: App,
    cli: &Cli,
    logs: &logging::LogControl,
) -> Result<(), CliError> {
    let SchedulesCommand::List { json } = command;
    let booted = boot(app, cli, BootMode::Command, false, vec![], logs, true).await?;
    let resolver = booted.resolver("prefiq schedules");
    let scheduler = prefiq_worker::schedule::Scheduler::new(
        resolver.get::<Repository>()?.main_database(),
        resolver.get::<prefiq_worker::Schedules>()?.0.clone(),
    );
    let states = scheduler.states().await;
    booted.shutdown().await?;
    let states = states.map_err(|e| CliError::Message(e.to_string()))?;
    let now = prefiq_data::jobs::now_ms();
    let time = |ms: Option<i64>| {
        ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .map_or_else(|| "-".to_owned(), |t| t.to_string())
    };
    let rows: Vec<serde_json::Value> = states
        .iter()
        .map(|(compiled, last)| {
            let s = &compiled.schedule;
            serde_json::json!({
                "name": s.key(),
                "cron": s.cron,
                "timezone": compiled.zone_name(),
                "kind": s.kind,
                "queue": s.queue,
                "catch_up": s.catch_up,
                "last_due": last.map(|l| time(Some(l))),
                "next_due": time(compiled.next_after(last.unwrap_or(now).max(now))),
            })
        })
        .collect();
    if *json {
        print_out(&to_json(&rows)?);
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32} {:<16} {:<18} {:<24} {:<6} next due",
        "schedule", "cron", "time zone", "kind", "catch"
    );
    for row in &rows {
        let text = |k: &str| row[k].as_str().unwrap_or("-").to_owned();
        let _ = writeln!(
            out,
            "{:<32} {:<16} {:<18} {:<24} {:<6} {}",
            text("name"),
            text("cron"),
            text("timezone"),
            text("kind"),
            text("catch_up"),
            text("next_due")
        );
    }
    if rows.is_empty() {
        let _ = writeln!(out, "(no module declares a schedule)");
    }
    print_out(&out);
    Ok(())
}

/// `prefiq worker`: runs jobs (of `queues`, or of every configured queue) until SIGTERM or
/// SIGINT, then drains.
pub async fn worker(
    app: App,
    cli: &Cli,
    queues: Vec<String>,
    logs: &logging::LogControl,
) -> Result<(), CliError> {
    let mut flags = vec![("jobs.run_in_command".to_owned(), serde_json::json!(true))];
    if !queues.is_empty() {
        flags.push(("jobs.run_queues".to_owned(), serde_json::json!(queues)));
    }
    let mut booted = boot(app, cli, BootMode::Command, false, flags, logs, false).await?;
    booted.ready().await?;
    shutdown_signal().await;
    booted.shutdown().await?;
    Ok(())
}

/// Runs `prefiq jobs ...`.
pub async fn jobs(
    command: &JobsCommand,
    app: App,
    cli: &Cli,
    logs: &logging::LogControl,
) -> Result<(), CliError> {
    if let JobsCommand::List {
        state: Some(state), ..
    } = command
        && !STATES.contains(&state.as_str())
    {
        return Err(CliError::Message(format!(
            "unknown job state `{state}`: use one of {}",
            STATES.join(", ")
        )));
    }
    let booted = boot(app, cli, BootMode::Command, false, vec![], logs, true).await?;
    let queue = booted.resolver("prefiq jobs").get::<Jobs>()?;
    let result = run_jobs(command, &queue).await;
    booted.shutdown().await?;
    print_out(&result?);
    Ok(())
}

async fn run_jobs(command: &JobsCommand, jobs: &Jobs) -> Result<String, CliError> {
    let failed = |e: prefiq_data::DataError| CliError::Message(e.to_string());
    let missing = |id: i64| {
        CliError::Message(format!(
            "no job {id} (is it in a tenant's database? pass --tenant)"
        ))
    };
    Ok(match command {
        JobsCommand::List {
            queue,
            state,
            limit,
            json,
        } => {
            let rows = jobs
                .list(queue.as_deref(), state.as_deref(), (*limit).clamp(1, 1_000))
                .await
                .map_err(failed)?;
            if *json {
                to_json(&rows.iter().map(|(_, r)| r).collect::<Vec<_>>())?
            } else {
                render(&rows)
            }
        }
        JobsCommand::Show { id, tenant } => {
            let row = jobs
                .get(tenant, *id)
                .await
                .map_err(failed)?
                .ok_or_else(|| missing(*id))?;
            to_json(&row)?
        }
        JobsCommand::Retry { id, tenant } => {
            if !jobs.retry(tenant, *id).await.map_err(failed)? {
                return Err(CliError::Message(format!(
                    "job {id} is not dead, cancelled or scheduled (or does not exist)"
                )));
            }
            format!("job {id} queued to run now\n")
        }
        JobsCommand::Cancel { id, tenant } => {
            if !jobs.cancel(tenant, *id).await.map_err(failed)? {
                return Err(CliError::Message(format!(
                    "job {id} has finished already (or does not exist)"
                )));
            }
            format!("job {id} cancelled\n")
        }
    })
}

fn render(rows: &[(String, JobRow)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<10} {:<10} {:<24} {:<16} {:>8}  last error",
        "id", "state", "queue", "kind", "tenant", "attempts"
    );
    for (_, row) in rows {
        let _ = writeln!(
            out,
            "{:<8} {:<10} {:<10} {:<24} {:<16} {:>4}/{:<3}  {}",
            row.id,
            row.state,
            row.queue,
            row.kind,
            row.tenant,
            row.attempts,
            row.max_attempts,
            row.last_error.as_deref().unwrap_or("")
        );
    }
    out
}

/// Runs `prefiq events tail`: follows the outbox of every database.
pub async fn events(
    command: &EventsCommand,
    app: App,
    cli: &Cli,
    logs: &logging::LogControl,
) -> Result<(), CliError> {
    let EventsCommand::Tail { entities, back } = command;
    let booted = boot(app, cli, BootMode::Command, false, vec![], logs, true).await?;
    let repository = booted.resolver("prefiq events").get::<Repository>()?;
    let databases = Databases::of(&repository);
    databases.open_existing().await;
    let result = tokio::select! {
        result = follow(&databases, entities, *back) => result,
        () = shutdown_signal() => Ok(()),
    };
    booted.shutdown().await?;
    result
}

async fn follow(databases: &Databases, entities: &[String], back: i64) -> Result<(), CliError> {
    let failed = |e: prefiq_data::DataError| CliError::Message(e.to_string());
    let mut cursors = std::collections::HashMap::new();
    loop {
        for (label, handle) in databases.all().await {
            let database = handle.get().map_err(failed)?;
            let mut reader = database.reader().await.map_err(failed)?;
            let cursor = match cursors.get(&label) {
                Some(seq) => *seq,
                None => {
                    let last = prefiq_data::outbox::last_seq(&mut reader.conn())
                        .await
                        .map_err(failed)?;
                    (last - back.max(0)).max(0)
                }
            };
            let rows = prefiq_data::outbox::after(&mut reader.conn(), cursor, 1_000)
                .await
                .map_err(failed)?;
            let mut out = String::new();
            let mut last = cursor;
            for row in rows {
                last = row.seq;
                if entities.is_empty() || entities.contains(&row.entity) {
                    let event = Event::from_row(row);
                    let _ = writeln!(out, "{}", serde_json::to_string(&event).unwrap_or_default());
                }
            }
            cursors.insert(label, last);
            print_out(&out);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
