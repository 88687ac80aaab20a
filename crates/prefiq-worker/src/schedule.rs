//! Schedules: cron expressions in a time zone that enqueue a job at each due time.
//!
//! Every process that runs jobs ticks every second. A tick reads, per schedule, the last
//! due time it enqueued (`prefiq_job_schedules`), enqueues the runs due since then as
//! jobs whose `run_at` is their due time and whose unique key is the schedule's name in a
//! one-second window of that due time, and moves the schedule's row forward — in one
//! transaction. Two replicas that tick at once compute the same due times, so the same
//! keys, and the unique index keeps one job per run: each due run is enqueued once.
//!
//! Runs missed while nothing was running follow the schedule's catch-up policy: `one`
//! (the latest missed run), `all` (each, at most [`MAX_CATCH_UP`]) or `none` (only runs
//! due within the last minute). A schedule seen for the first time starts from now.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use prefiq_data::jobs::{self, NewJob};
use prefiq_data::{DataError, DatabaseHandle};

use crate::databases::Databases;
use crate::schedule_sources::ScheduleSource;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most missed runs one schedule enqueues at once under `all`.
pub const MAX_CATCH_UP: usize = 1_000;

/// Under `none`, a run due at most this long ago still counts as on time.
const ON_TIME_MS: i64 = 60_000;

/// How a schedule treats runs missed during downtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Run the latest missed run once.
    One,
    /// Run every missed run.
    All,
    /// Skip missed runs.
    None,
}

/// A schedule a module declares (a contribution).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The module.
    pub module: String,
    /// Its name within the module.
    pub name: String,
    /// A cron expression: five fields as in crontab (minute hour day-of-month month
    /// day-of-week, Sunday 0 or 7), or six or seven with seconds first and years last (then
    /// days of the week are numbered from 1 for Sunday, or named).
    pub cron: String,
    /// The IANA time zone its times are in; `None` is `app.timezone`.
    pub timezone: Option<String>,
    /// The job kind each run enqueues.
    pub kind: String,
    /// The job's input.
    pub payload: Value,
    /// The job's queue.
    pub queue: String,
    /// What happens to runs missed during downtime.
    pub catch_up: CatchUp,
    /// How long one run may take; `None` is the jobs' default (a minute).
    pub timeout_ms: Option<i64>,
}

impl Schedule {
    /// `module::name`.
    pub fn key(&self) -> String {
        format!("{}::{}", self.module, self.name)
    }
}

/// A schedule checked and ready to tick.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The schedule.
    pub schedule: Schedule,
    cron: jiff_cron::Schedule,
    zone: TimeZone,
}

/// Checks a schedule: its cron expression and its time zone (`default_zone` when it names
/// none). The error names the schedule and what is wrong.
pub fn compile(schedule: &Schedule, default_zone: &str) -> Result<Compiled, String> {
    let key = schedule.key();
    let fields = schedule.cron.split_whitespace().count();
    let expression = match fields {
        5 => {
            let mut parts: Vec<String> = schedule
                .cron
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            parts[4] = unix_weekdays(&parts[4]);
            format!("0 {}", parts.join(" "))
        }
        6 | 7 => schedule.cron.trim().to_owned(),
        _ => {
            return Err(format!(
                "schedule {key}: `{}` has {fields} fields; a cron expression has 5 (minute hour day month weekday), or 6 or 7 with seconds first",
                schedule.cron
            ));
        }
    };
    let cron = jiff_cron::Schedule::from_str(&expression).map_err(|e| {
        format!(
            "schedule {key}: `{}` is not a cron expression: {e}",
            schedule.cron
        )
    })?;
    let zone_name = schedule.timezone.as_deref().unwrap_or(default_zone);
    let zone = TimeZone::get(zone_name)
        .map_err(|e| format!("schedule {key}: unknown time zone `{zone_name}`: {e}"))?;
    if schedule.kind.is_empty() || schedule.queue.is_empty() {
        return Err(format!("schedule {key}: it needs a job kind and a queue"));
    }
    Ok(Compiled {
        schedule: schedule.clone(),
        cron,
        zone,
    })
}

/// A five-field expression's day-of-week field with Unix numbers (0 or 7 Sunday, 1
/// Monday, …) written as names, because the parser numbers days from 1 for Sunday (as
/// Quartz does): `1-5` must stay Monday to Friday.
fn unix_weekdays(field: &str) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let name = |token: &str| match token.parse::<usize>() {
        Ok(n) if n <= 7 => DAYS[n % 7].to_owned(),
        _ => token.to_owned(),
    };
    field
        .split(',')
        .map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            let range = match range.split_once('-') {
                Some((from, to)) => format!("{}-{}", name(from), name(to)),
                None => name(range),
            };
            match step {
                Some(step) => format!("{range}/{step}"),
                None => range,
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Compiled {
    /// The due times in `(after_ms, until_ms]`, oldest first, at most [`MAX_CATCH_UP`]
    /// (the newest of them when there are more).
    pub fn due_between(&self, after_ms: i64, until_ms: i64) -> Vec<i64> {
        let Ok(after) = jiff::Timestamp::from_millisecond(after_ms) else {
            return Vec::new();
        };
        let mut due: std::collections::VecDeque<i64> = std::collections::VecDeque::new();
        for time in self.cron.after(after.to_zoned(self.zone.clone())) {
            let ms = time.timestamp().as_millisecond();
            if ms > until_ms {
                break;
            }
            if due.len() == MAX_CATCH_UP {
                due.pop_front();
            }
            due.push_back(ms);
        }
        due.into()
    }

    /// The next due time after `after_ms`.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let after = jiff::Timestamp::from_millisecond(after_ms).ok()?;
        self.cron
            .after(after.to_zoned(self.zone.clone()))
            .next()
            .map(|t| t.timestamp().as_millisecond())
    }

    /// The time zone's name.
    pub fn zone_name(&self) -> String {
        self.zone.iana_name().unwrap_or("UTC").to_owned()
    }

    /// The due times to enqueue when the last enqueued was `last_ms` and it is `now_ms`,
    /// after the catch-up policy.
    pub fn runs_due(&self, last_ms: i64, now_ms: i64) -> Vec<i64> {
        let due = self.due_between(last_ms, now_ms);
        match self.schedule.catch_up {
            CatchUp::All => due,
            CatchUp::One => due.last().copied().into_iter().collect(),
            CatchUp::None => due
                .into_iter()
                .filter(|d| now_ms - d <= ON_TIME_MS)
                .collect(),
        }
    }

    /// The job of the run due at `due_ms` (of no tenant: set one for a tenant's).
    pub fn job(&self, due_ms: i64) -> NewJob {
        let mut job = NewJob::new(&self.schedule.kind, "", self.schedule.payload.clone());
        job.queue = self.schedule.queue.clone();
        job.run_at_ms = Some(due_ms);
        if let Some(timeout_ms) = self.schedule.timeout_ms {
            job.timeout_ms = timeout_ms;
        }
        job.unique = Some((format!("schedule:{}", self.schedule.key()), 1_000));
        job
    }
}

/// Every declared schedule, compiled (bound as a service).
#[derive(Debug, Clone, Default)]
pub struct Schedules(pub Vec<Compiled>);

impl Schedules {
    /// Compiles `declared` with `default_zone`; the error names the schedule.
    pub fn compile(declared: &[Arc<Schedule>], default_zone: &str) -> Result<Schedules, String> {
        let mut compiled: Vec<Compiled> = Vec::with_capacity(declared.len());
        for schedule in declared {
            if compiled.iter().any(|c| c.schedule.key() == schedule.key()) {
                return Err(format!("two schedules are named {}", schedule.key()));
            }
            compiled.push(compile(schedule, default_zone)?);
        }
        Ok(Schedules(compiled))
    }
}

/// The schedules of an installation, ticking against the main database.
pub struct Scheduler {
    main: Arc<DatabaseHandle>,
    schedules: Vec<Compiled>,
    /// Tenants' schedules, and the databases their runs go to.
    sources: Option<(Databases, Arc<dyn ScheduleSource>)>,
}

impl Scheduler {
    /// A scheduler of `schedules` over the main database.
    pub fn new(main: Arc<DatabaseHandle>, schedules: Vec<Compiled>) -> Scheduler {
        Scheduler {
            main,
            schedules,
            sources: None,
        }
    }

    /// The same scheduler also ticking the schedules `source` gives, whose runs go to
    /// their tenants' databases among `databases`.
    pub fn with_source(mut self, databases: Databases, source: Arc<dyn ScheduleSource>) -> Self {
        self.sources = Some((databases, source));
        self
    }

    /// One tick at `now_ms`: enqueues every run due since the last. Returns how many
    /// runs were enqueued (by this process or, for the same keys, by another).
    pub async fn tick(&self, now_ms: i64) -> Result<usize, DataError> {
        let database = self.main.get()?;
        let mut enqueued = 0;
        for compiled in &self.schedules {
            let key = compiled.schedule.key();
            let mut tx = database.begin().await?;
            let mut conn = tx.conn();
            let Some(last) = jobs::last_due(&mut conn, &key).await? else {
                jobs::advance_schedule(&mut conn, &key, now_ms).await?;
                tx.commit().await?;
                continue;
            };
            let due = compiled.due_between(last, now_ms);
            let Some(newest) = due.last().copied() else {
                continue;
            };
            let runs: Vec<NewJob> = compiled
                .runs_due(last, now_ms)
                .into_iter()
                .map(|d| compiled.job(d))
                .collect();
            enqueued += runs.len();
            jobs::enqueue(&mut conn, &runs).await?;
            jobs::advance_schedule(&mut conn, &key, newest).await?;
            tx.commit().await?;
        }
        if let Some((databases, source)) = &self.sources {
            match source.schedules().await {
                Ok(schedules) => {
                    enqueued +=
                        crate::schedule_sources::tick(databases, &schedules, now_ms).await?;
                }
                Err(e) => {
                    tracing::warn!(target: "prefiq::schedules", error = %e, "tenants' schedules could not be read; they tick again when they can")
                }
            }
        }
        Ok(enqueued)
    }

    /// The schedules, with the last due time each enqueued.
    pub async fn states(&self) -> Result<Vec<(Compiled, Option<i64>)>, DataError> {
        let database = self.main.get()?;
        let mut reader = database.reader().await?;
        let mut out = Vec::with_capacity(self.schedules.len());
        for compiled in &self.schedules {
            let last = jobs::last_due(&mut reader.conn(), &compiled.schedule.key()).await?;
            out.push((compiled.clone(), last));
        }
        Ok(out)
    }

    /// Ticks every second until `stop` says so; `enqueued` is told when runs were added.
    pub async fn run(
        self,
        enqueued: Arc<tokio::sync::Notify>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        if self.schedules.is_empty() && self.sources.is_none() {
            return;
        }
        loop {
            if *stop.borrow() {
                return;
            }
            match self.tick(jobs::now_ms()).await {
                Ok(0) => {}
                Ok(_) => enqueued.notify_one(),
                Err(e) => {
                    tracing::warn!(target: "prefiq::schedules", error = %e, "the schedules could not tick");
                }
            }
            // Tick just after each second begins, where cron times fall.
            let into_second = u64::try_from(jobs::now_ms().rem_euclid(1_000)).unwrap_or(0);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(1_005 - into_second.min(1_000))) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn schedule(cron: &str, zone: Option<&str>, catch_up: CatchUp) -> Schedule {
        Schedule {
            module: "m".into(),
            name: "s".into(),
            cron: cron.into(),
            timezone: zone.map(str::to_owned),
            kind: "k".into(),
            payload: Value::Null,
            queue: "default".into(),
            catch_up,
            timeout_ms: None,
        }
    }

    fn ms(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn cron_times_are_in_the_schedule_zone_across_daylight_saving() {
        // 02:30 every day in Berlin. On 2026-03-29 the clocks jump from 02:00 to 03:00, so
        // 02:30 does not exist: the run falls just after the gap (03:30 CEST), not lost.
        let c = compile(
            &schedule("30 2 * * *", Some("Europe/Berlin"), CatchUp::All),
            "UTC",
        )
        .unwrap();
        let due = c.due_between(ms("2026-03-27T00:00:00Z"), ms("2026-03-31T00:00:00Z"));
        let shown: Vec<String> = due
            .iter()
            .map(|d| jiff::Timestamp::from_millisecond(*d).unwrap().to_string())
            .collect();
        assert_eq!(
            shown,
            [
                "2026-03-27T01:30:00Z",
                "2026-03-28T01:30:00Z",
                "2026-03-29T01:30:00Z",
                "2026-03-30T00:30:00Z"
            ]
        );
        // The default zone applies when the schedule names none.
        let utc = compile(&schedule("0 9 * * 1-5", None, CatchUp::All), "UTC").unwrap();
        assert_eq!(
            utc.next_after(ms("2026-12-05T10:00:00Z")),
            Some(ms("2026-12-07T09:00:00Z"))
        );
    }

    #[test]
    fn unix_weekday_numbers_mean_what_they_mean_in_crontab() {
        let check = |field: &str, expected: &str| assert_eq!(unix_weekdays(field), expected);
        check("*", "*");
        check("1-5", "Mon-Fri");
        check("0,6", "Sun,Sat");
        check("7", "Sun");
        check("1-5/2", "Mon-Fri/2");
        check("*/2", "*/2");
        check("Mon-Fri", "Mon-Fri");
        // Sunday 09:00 is not a weekday run; Saturday 2026-12-05 → Monday 2026-12-07.
        let weekdays = compile(&schedule("0 9 * * 1-5", None, CatchUp::All), "UTC").unwrap();
        assert_eq!(
            weekdays.next_after(ms("2026-12-05T10:00:00Z")),
            Some(ms("2026-12-07T09:00:00Z"))
        );
        let sundays = compile(&schedule("0 9 * * 0", None, CatchUp::All), "UTC").unwrap();
        assert_eq!(
            sundays.next_after(ms("2026-12-05T10:00:00Z")),
            Some(ms("2026-12-06T09:00:00Z"))
        );
    }

    #[test]
    fn missed_runs_follow_the_catch_up_policy() {
        let now = ms("2026-12-07T10:00:30Z");
        let last = ms("2026-12-07T09:56:00Z");
        let check = |policy: CatchUp, expected: &[&str]| {
            let c = compile(&schedule("* * * * *", None, policy), "UTC").unwrap();
            let expected: Vec<i64> = expected.iter().map(|t| ms(t)).collect();
            assert_eq!(c.runs_due(last, now), expected, "{policy:?}");
        };
        check(
            CatchUp::All,
            &[
                "2026-12-07T09:57:00Z",
                "2026-12-07T09:58:00Z",
                "2026-12-07T09:59:00Z",
                "2026-12-07T10:00:00Z",
            ],
        );
        check(CatchUp::One, &["2026-12-07T10:00:00Z"]);
        check(CatchUp::None, &["2026-12-07T10:00:00Z"]);
        // Six runs were missed by 10:02:30; only the one due 30 s ago is on time.
        let c = compile(&schedule("* * * * *", None, CatchUp::None), "UTC").unwrap();
        assert_eq!(
            c.runs_due(last, ms("2026-12-07T10:02:30Z")),
            vec![ms("2026-12-07T10:02:00Z")]
        );
    }

    #[test]
    fn bad_schedules_are_named() {
        let check = |cron: &str, zone: Option<&str>, part: &str| {
            let error = compile(&schedule(cron, zone, CatchUp::One), "UTC").unwrap_err();
            assert!(
                error.contains("schedule m::s") && error.contains(part),
                "{error}"
            );
        };
        check("* * *", None, "has 3 fields");
        check("61 * * * *", None, "is not a cron expression");
        check(
            "* * * * *",
            Some("Mars/Olympus"),
            "unknown time zone `Mars/Olympus`",
        );
    }
}
