// Shared by the k6 scripts of bench/payments and bench/checkout (and echo.js): one load
// shape (constant VUs for SECONDS), one way to count operations inside the window, one
// summary file for bench/common/run.py to read.
import { randomBytes } from 'k6/crypto';
import { Counter, Trend } from 'k6/metrics';

const SECONDS = Number(__ENV.SECONDS || '5');
export const VUS = Number(__ENV.VUS || '1');

// Operations completed OK inside the measured window (the first SECONDS after setup), so
// iterations finishing during k6's graceful stop do not inflate the rate.
export const ops = new Counter('ops');
export const opErrors = new Counter('op_errors');
// One operation's wall time (several RPCs: authorize + capture), k6-side.
export const opTime = new Trend('op_ms', true);

// Steps named here get their grpc_req_duration percentiles reported (a threshold on a
// tagged sub-metric makes k6 keep it).
export function options(steps) {
  const thresholds = {};
  for (const step of steps) {
    thresholds[`grpc_req_duration{step:${step}}`] = ['max>=0'];
  }
  return {
    scenarios: {
      load: {
        executor: 'constant-vus',
        vus: VUS,
        duration: `${SECONDS}s`,
        gracefulStop: '15s',
      },
    },
    thresholds,
    summaryTrendStats: ['avg', 'med', 'p(50)', 'p(99)', 'max', 'count'],
    setupTimeout: '120s',
  };
}

export function windowEnd() {
  return Date.now() + SECONDS * 1000;
}

// A random UUIDv4 with a letter opening every group but the version group: no 13+ digit run
// can form, so the card-data guard never refuses a request id by chance.
export function requestId() {
  const b = new Uint8Array(randomBytes(16));
  b[0] = 0xa0 | (b[0] & 0x0f);
  b[4] = 0xa0 | (b[4] & 0x0f);
  b[6] = 0x40 | (b[6] & 0x0f);
  b[8] = 0xa0 | (b[8] & 0x0f);
  b[10] = 0xa0 | (b[10] & 0x0f);
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function done(deadline, startedMs) {
  opTime.add(Date.now() - startedMs);
  if (Date.now() <= deadline) {
    ops.add(1);
  }
}

export function failed(step, detail) {
  opErrors.add(1, { step });
  console.error(`${step}: ${String(detail).slice(0, 400)}`);
}

export function summary(data, steps) {
  const m = data.metrics;
  const values = (name) => (m[name] ? m[name].values : {});
  const out = {
    vus: VUS,
    seconds: SECONDS,
    ops: values('ops').count || 0,
    op_errors: values('op_errors').count || 0,
    op_ms: values('op_ms'),
    iterations: values('iterations').count || 0,
    pool_dry: values('pool_dry').count || 0,
    steps: {},
  };
  for (const step of steps) {
    out.steps[step] = values(`grpc_req_duration{step:${step}}`);
  }
  return { [__ENV.SUMMARY]: JSON.stringify(out, null, 2) + '\n' };
}
