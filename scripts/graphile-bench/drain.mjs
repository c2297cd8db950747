// graphile-worker side of scripts/bench-queue.sh: drains the seeded `push` jobs into the fake
// insurer the way `au-relay worker` pushes (POST with the document as body,
// `Content-Type: application/fhir+xml`, `Idempotency-Key: <uuid>`; 2xx or 409 = delivered).
// The document is read from the job's payload `{"id": "<uuid>", "xml": "<Bundle …>"}`.
//
//   node drain.mjs migrate     # installs graphile-worker's schema, then exits
//   node drain.mjs             # runs the worker until SIGTERM/SIGINT (graceful shutdown)
//
// Environment: DATABASE_URL, INSURER_URL (the push endpoint), CONCURRENCY (default 64),
// POOL_SIZE (default CONCURRENCY + 2, graphile-worker's recommendation), LOCAL_QUEUE (default 500,
// as in graphile-worker's performance page), COMPLETE_BATCH_DELAY (ms, default 0: batched
// completion on), FAIL_BATCH_DELAY (ms, default 0).
import http from "node:http";
import { Logger, run, runMigrations } from "graphile-worker";

const env = (name, fallback) => process.env[name] ?? fallback;
const connectionString = env("DATABASE_URL");
const concurrency = Number(env("CONCURRENCY", 64));
const insurer = new URL(env("INSURER_URL", "http://127.0.0.1:18090/eau"));

// graphile-worker logs every completed job at info level: only warnings and errors go out.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`graphile-worker ${level}: ${message}`);
});

if (process.argv[2] === "migrate") {
  await runMigrations({ connectionString, logger });
  process.exit(0);
}

// Keep-alive connections, one per push in flight (as au-relay's client keeps them).
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
let pushed = 0;
let failed = 0;

function push(id, xml) {
  const body = Buffer.from(xml, "utf8");
  return new Promise((resolve, reject) => {
    const req = http.request(
      insurer,
      {
        method: "POST",
        agent,
        headers: {
          "Content-Type": "application/fhir+xml",
          "Content-Length": body.length,
          "Idempotency-Key": id,
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => {
          const s = res.statusCode;
          if ((s >= 200 && s < 300) || s === 409) resolve();
          else reject(new Error(`insurer answered ${s}`));
        });
        res.on("error", reject);
      },
    );
    // au-relay's default push timeout (AU_RELAY_PUSH_TIMEOUT_SECS=30).
    req.setTimeout(30_000, () => req.destroy(new Error("push timed out")));
    req.on("error", reject);
    req.end(body);
  });
}

const runner = await run({
  // Stopped by the benchmark with SIGTERM (handled below, so the counts are printed at the end).
  noHandleSignals: true,
  preset: {
    worker: {
      connectionString,
      concurrentJobs: concurrency,
      maxPoolSize: Number(env("POOL_SIZE", concurrency + 2)),
      localQueue: { size: Number(env("LOCAL_QUEUE", 500)) },
      completeJobBatchDelay: Number(env("COMPLETE_BATCH_DELAY", 0)),
      failJobBatchDelay: Number(env("FAIL_BATCH_DELAY", 0)),
      logger,
    },
  },
  taskList: {
    push: async (payload) => {
      try {
        await push(payload.id, payload.xml);
        pushed += 1;
      } catch (e) {
        failed += 1;
        throw e;
      }
    },
  },
});
for (const signal of ["SIGTERM", "SIGINT"]) process.once(signal, () => runner.stop());
await runner.promise;
console.log(`graphile-worker: ${pushed} pushes delivered, ${failed} failed attempts`);
