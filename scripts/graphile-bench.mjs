// graphile-worker, measured as crates/prefiq-worker/benches/jobs.rs measures prefiq's
// runner, as the baseline of scripts/jobs-bench.sh. One JSON object per measurement on
// stdout, progress on stderr; exits non-zero when a measurement failed.
//
//   GRAPHILE_DIR=<dir with node_modules/graphile-worker> \
//   GRAPHILE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/<an empty database> \
//   node scripts/graphile-bench.mjs
//
// On GRAPHILE_DATABASE_URL (a throw-away database: the script makes and drops it):
// - throughput: JOBS_BENCH_JOBS no-op jobs (default 100,000) added with `addJobs` in
//   batches of 1,000 (the enqueue rate), then one worker (`run`, concurrency
//   JOBS_BENCH_CONCURRENCY, default 10) with the batching options of graphile-worker's own
//   perf test (perfTest/graphile.config.js: localQueue 500 with a 10 ms refetch delay,
//   completeJobBatchDelay 0, failJobBatchDelay 0, a pool of concurrency + 1) runs them
//   until the queue is empty: jobs/s run to completion. A job that failed fails it.
// - latency: with that worker running, one `addJob` per tick at JOBS_BENCH_RATE jobs/s
//   (default 1,000) for JOBS_BENCH_LATENCY_SECS s (default 5), each carrying its enqueue
//   time; the task records start − enqueue: p50, p99 and max in ms. (graphile's `addJob`
//   commits one at a time here, so past its enqueue rate the backlog is part of the wait.)
// - latency_serial: JOBS_BENCH_SERIAL jobs (default 1,000) one at a time, as the perf
//   test's latencyTest.js: add one, wait until it started, repeat.
import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";

const dir = process.env.GRAPHILE_DIR;
const dbUrl = process.env.GRAPHILE_DATABASE_URL;
if (!dir || !dbUrl) {
  console.error("set GRAPHILE_DIR and GRAPHILE_DATABASE_URL");
  process.exit(2);
}
const require = createRequire(join(dir, "package.json"));
const { run, runMigrations, makeWorkerUtils, Logger } = require("graphile-worker");
const { version } = require("graphile-worker/package.json");
const pg = require("pg");

const int = (name, fallback) => {
  const v = Number.parseInt(process.env[name] ?? "", 10);
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const N = int("JOBS_BENCH_JOBS", 100_000);
const CONCURRENCY = int("JOBS_BENCH_CONCURRENCY", 10);
const RATE = int("JOBS_BENCH_RATE", 1_000);
const LATENCY_SECS = int("JOBS_BENCH_LATENCY_SECS", 5);
const TIMEOUT_MS = int("JOBS_BENCH_TIMEOUT_S", 600) * 1000;
const round = (x) => Math.round(x * 100) / 100;
const log = (...args) => console.error("[graphile]", ...args);
// Warnings and errors on stderr; stdout carries only the results.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") log(level, message);
});

/** The perf test's batching options, over a pool of concurrency + 1 connections. */
function preset(events) {
  return {
    worker: {
      connectionString: dbUrl,
      logger,
      concurrentJobs: CONCURRENCY,
      maxPoolSize: CONCURRENCY + 1,
      localQueue: { size: 500, refetchDelay: { durationMs: 10 } },
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
      events,
    },
  };
}

async function queueState(pool) {
  const { rows } = await pool.query(
    "select count(*)::int as jobs, count(*) filter (where last_error is not null)::int as failed, count(*) filter (where locked_at is not null)::int as locked from graphile_worker._private_jobs",
  );
  return rows[0];
}

/** Waits until `check()` holds or the deadline passes; whether it held. */
async function until(check, deadline, everyMs = 1) {
  while (!(await check())) {
    if (performance.now() > deadline) return false;
    await sleep(everyMs);
  }
  return true;
}

function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  const at = Math.min(sorted.length, Math.max(1, Math.ceil(sorted.length * q))) - 1;
  return round(sorted[at]);
}

async function throughput(pool) {
  const utils = await makeWorkerUtils({ connectionString: dbUrl, logger });
  log(`adding ${N} jobs with addJobs in batches of 1,000`);
  let t0 = performance.now();
  try {
    for (let i = 0; i < N; i += 1000) {
      const specs = [];
      for (let j = i; j < Math.min(N, i + 1000); j++) {
        specs.push({ identifier: "noop", payload: { i: j } });
      }
      await utils.addJobs(specs);
    }
  } finally {
    await utils.release();
  }
  const enqueueS = (performance.now() - t0) / 1000;
  const before = await queueState(pool);

  log("running them");
  let ran = 0;
  let errors = 0;
  const events = new EventEmitter();
  events.on("job:error", () => errors++);
  const deadline = performance.now() + TIMEOUT_MS;
  t0 = performance.now();
  const runner = await run({
    noHandleSignals: true,
    preset: preset(events),
    taskList: {
      noop: async () => {
        ran++;
      },
    },
  });
  const startupS = (performance.now() - t0) / 1000;
  const allRan = await until(() => ran >= N, deadline);
  const ranS = (performance.now() - t0) / 1000;
  let state;
  const empty = await until(
    async () => {
      state = await queueState(pool);
      return state.jobs === 0;
    },
    deadline,
    20,
  );
  const runS = (performance.now() - t0) / 1000;
  await runner.stop();
  await runner.promise.catch(() => {});
  const ok = allRan && empty && ran === N && errors === 0 && before.jobs === N;
  return {
    measurement: "throughput",
    backend: "postgres",
    ok,
    jobs: N,
    concurrency: CONCURRENCY,
    enqueue_s: round(enqueueS),
    enqueue_jobs_per_s: round(N / enqueueS),
    startup_s: round(startupS),
    handlers_done_s: round(ranS),
    run_s: round(runS),
    jobs_per_s: round(N / runS),
    handler_runs: ran,
    job_errors: errors,
    left_in_queue: state,
  };
}

async function latency(pool) {
  const waits = [];
  let warm = 0;
  let errors = 0;
  const events = new EventEmitter();
  events.on("job:error", () => errors++);
  const runner = await run({
    noHandleSignals: true,
    preset: preset(events),
    taskList: {
      latency: async (payload) => {
        if (typeof payload.t === "number") waits.push(performance.now() - payload.t);
        else warm++;
      },
    },
  });
  const utils = await makeWorkerUtils({ connectionString: dbUrl, logger });
  const deadline = performance.now() + TIMEOUT_MS;
  try {
    // Warm up.
    await utils.addJobs(Array.from({ length: 100 }, (_, i) => ({ identifier: "latency", payload: { warm: i } })));
    await until(() => warm >= 100, deadline);
    await sleep(500);

    const total = RATE * LATENCY_SECS;
    log(`${total} single-job enqueues at ${RATE} jobs/s`);
    const period = 1000 / RATE;
    const pending = [];
    let enqueueErrors = 0;
    let firstError = null;
    const t0 = performance.now();
    for (let i = 0; i < total; i++) {
      const due = t0 + i * period;
      const ahead = due - performance.now();
      if (ahead >= 1) await sleep(Math.floor(ahead));
      else if (i % 64 === 0) await new Promise((r) => setImmediate(r));
      pending.push(
        utils.addJob("latency", { i, t: performance.now() }).catch((e) => {
          enqueueErrors++;
          firstError ??= String(e);
        }),
      );
    }
    const offeredS = (performance.now() - t0) / 1000;
    await Promise.all(pending);
    const enqueuedS = (performance.now() - t0) / 1000;
    const expected = total - enqueueErrors;
    const allRan = await until(() => waits.length >= expected, deadline);
    let state;
    await until(
      async () => {
        state = await queueState(pool);
        return state.jobs === 0;
      },
      deadline,
      20,
    );
    const sorted = [...waits].sort((a, b) => a - b);
    return {
      measurement: "latency",
      backend: "postgres",
      ok: allRan && enqueueErrors === 0 && errors === 0 && waits.length === expected && state.jobs === 0,
      offered_jobs_per_s: RATE,
      achieved_enqueue_jobs_per_s: round(total / offeredS),
      enqueues_done_s: round(enqueuedS),
      enqueue_errors: enqueueErrors,
      first_error: firstError,
      ran: waits.length,
      p50_ms: percentile(sorted, 0.5),
      p90_ms: percentile(sorted, 0.9),
      p99_ms: percentile(sorted, 0.99),
      max_ms: percentile(sorted, 1),
      mean_ms: sorted.length ? round(sorted.reduce((a, b) => a + b, 0) / sorted.length) : null,
      concurrency: CONCURRENCY,
      job_errors: errors,
      left_in_queue: state,
    };
  } finally {
    await utils.release();
    await runner.stop();
    await runner.promise.catch(() => {});
  }
}

/** One job at a time, as the perf test's latencyTest.js: add one, wait until it started. */
async function latency_serial(pool) {
  const SAMPLES = int("JOBS_BENCH_SERIAL", 1_000);
  const waits = [];
  let warm = 0;
  let errors = 0;
  let wake = () => {};
  const events = new EventEmitter();
  events.on("job:error", () => errors++);
  const runner = await run({
    noHandleSignals: true,
    preset: preset(events),
    taskList: {
      latency: async (payload) => {
        if (typeof payload.t === "number") waits.push(performance.now() - payload.t);
        else warm++;
        wake();
      },
    },
  });
  const utils = await makeWorkerUtils({ connectionString: dbUrl, logger });
  const deadline = performance.now() + TIMEOUT_MS;
  try {
    await utils.addJobs(Array.from({ length: 100 }, (_, i) => ({ identifier: "latency", payload: { warm: i } })));
    await until(() => warm >= 100, deadline);
    await sleep(500);
    log(`${SAMPLES} jobs one at a time`);
    const enqueueMs = [];
    let error = null;
    for (let i = 0; i < SAMPLES; i++) {
      const started = new Promise((resolve) => {
        wake = resolve;
      });
      const t = performance.now();
      await utils.addJob("latency", { i, t });
      enqueueMs.push(performance.now() - t);
      const timedOut = await Promise.race([started.then(() => false), sleep(Math.max(0, deadline - performance.now())).then(() => true)]);
      if (timedOut) {
        error = "timed out";
        break;
      }
    }
    let state;
    await until(
      async () => {
        state = await queueState(pool);
        return state.jobs === 0;
      },
      deadline,
      20,
    );
    const sorted = [...waits].sort((a, b) => a - b);
    enqueueMs.sort((a, b) => a - b);
    return {
      measurement: "latency_serial",
      backend: "postgres",
      ok: error === null && errors === 0 && waits.length === SAMPLES && state.jobs === 0,
      error,
      enqueue_p50_ms: percentile(enqueueMs, 0.5),
      ran: waits.length,
      p50_ms: percentile(sorted, 0.5),
      p90_ms: percentile(sorted, 0.9),
      p99_ms: percentile(sorted, 0.99),
      max_ms: percentile(sorted, 1),
      mean_ms: sorted.length ? round(sorted.reduce((a, b) => a + b, 0) / sorted.length) : null,
      concurrency: CONCURRENCY,
      job_errors: errors,
      left_in_queue: state,
    };
  } finally {
    await utils.release();
    await runner.stop();
    await runner.promise.catch(() => {});
  }
}

async function main() {
  let ok = true;
  const pool = new pg.Pool({ connectionString: dbUrl, max: 2 });
  try {
    await runMigrations({ connectionString: dbUrl, logger });
    for (const measure of [throughput, latency, latency_serial]) {
      let result;
      try {
        result = await measure(pool);
      } catch (e) {
        result = { measurement: measure.name, backend: "postgres", ok: false, error: String(e?.stack ?? e) };
      }
      ok &&= result.ok;
      console.log(JSON.stringify({ bench: "graphile-worker", version, ...result }));
    }
  } finally {
    await pool.end();
  }
  if (!ok) {
    console.error("graphile bench: a measurement failed (see \"ok\": false above)");
  }
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
