// Shared by place_order_rest.js and place_order_grpc.js: the same load shape, the same cart,
// the same metrics and the same summary file for both transports (bench/gateway/__main__.py
// runs one after the other and compares them).
import { randomBytes } from 'k6/crypto';
import { Counter } from 'k6/metrics';

export const TENANT = __ENV.TENANT;
export const TOKEN = __ENV.TOKEN;
const SECONDS = Number(__ENV.SECONDS || '10');

// Successful PlaceOrder calls answered inside the measured window (the first `SECONDS` after
// setup), so iterations finishing during k6's graceful stop do not inflate the rate.
export const placed = new Counter('orders_placed');
export const confirmed = new Counter('orders_confirmed');
export const failed = new Counter('step_errors');

// `duration_metric` is http_req_duration or grpc_req_duration: a threshold on each step's
// sub-metric makes k6 report its percentiles (the durations are k6's own, per request).
export function options(durationMetric) {
  const thresholds = {};
  for (const step of ['create', 'quote', 'place']) {
    thresholds[`${durationMetric}{step:${step}}`] = ['max>=0'];
  }
  return {
    scenarios: {
      checkouts: {
        executor: 'constant-vus',
        vus: Number(__ENV.VUS || '1'),
        duration: `${SECONDS}s`,
        gracefulStop: '15s',
      },
    },
    thresholds,
    summaryTrendStats: ['avg', 'med', 'p(50)', 'p(99)', 'max', 'count'],
    setupTimeout: '60s',
    noConnectionReuse: false,
    discardResponseBodies: false,
  };
}

export function uuid4() {
  const b = new Uint8Array(randomBytes(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// The cart of services/demo.py, one per iteration (a fresh customer id per VU).
export function draft() {
  return {
    currencyCode: 'EUR',
    customer: { customerId: `c-bench-${__VU}`, email: 'ada@example.com', displayName: 'Ada' },
    shippingAddress: {
      regionCode: 'DE',
      locality: 'Berlin',
      postalCode: '10115',
      addressLines: ['Invalidenstrasse 117'],
      recipient: 'Ada Lovelace',
    },
    lines: [
      { sku: 'AE-CARDS-500', quantity: 3, description: 'Punch cards',
        unitPrice: { currencyCode: 'EUR', amountMinor: '1999' } },
      { sku: 'BOOK-NOTES', quantity: 1, description: 'Notes (hardcover)',
        unitPrice: { currencyCode: 'EUR', amountMinor: '2500' } },
    ],
  };
}

export function windowEnd() {
  return Date.now() + SECONDS * 1000;
}

// PlaceOrders slower than this are logged with their saga steps (their timestamps say where
// the time went); bench/gateway/__main__.py counts and shows them.
const SLOW_MS = Number(__ENV.SLOW_MS || '1000');
export const slow = new Counter('slow_places');

// One PlaceOrder answered: counted when inside the window, confirmed orders beside.
export function record(order, deadline, startedMs) {
  const elapsed = Date.now() - startedMs;
  if (elapsed > SLOW_MS) {
    slow.add(1);
    const steps = (order.sagaSteps || []).map((s) => JSON.stringify(s)).join(' ');
    console.warn(`slow place ${elapsed} ms: ${order.name} ${order.state} created ${order.createTime} `
      + `confirmed ${order.confirmTime} steps ${steps}`.slice(0, 1500));
  }
  if (Date.now() > deadline) {
    return;
  }
  placed.add(1);
  if (order && order.state === 'ORDER_STATE_CONFIRMED') {
    confirmed.add(1);
  }
}

export function fail(step, detail) {
  failed.add(1, { step });
  console.error(`${step}: ${detail}`); // rare; bench/gateway/__main__.py shows them
}

export function summary(data, transport) {
  const m = data.metrics;
  const metric = transport === 'grpc' ? 'grpc_req_duration' : 'http_req_duration';
  const step = (s) => (m[`${metric}{step:${s}}`] || { values: {} }).values;
  const count = (name) => (m[name] ? m[name].values.count : 0);
  const out = {
    transport,
    vus: Number(__ENV.VUS || '1'),
    seconds: SECONDS,
    orders_placed: count('orders_placed'),
    orders_confirmed: count('orders_confirmed'),
    step_errors: count('step_errors'),
    slow_places: count('slow_places'),
    iterations: count('iterations'),
    create: step('create'),
    quote: step('quote'),
    place: step('place'),
  };
  return { [__ENV.SUMMARY]: JSON.stringify(out, null, 2) + '\n' };
}
