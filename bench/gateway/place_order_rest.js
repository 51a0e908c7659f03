// PlaceOrder through the REST facade (grpc-gateway), as services/demo.py does it: per
// iteration a checkout is created and quoted (timed as their own steps), then placed with an
// Idempotency-Key, its etag, quote id and the sandbox payment method.
//   GATEWAY=127.0.0.1:8080 TENANT=bench TOKEN=... VUS=16 SECONDS=10 SUMMARY=rest.json \
//     k6 run bench/gateway/place_order_rest.js
import http from 'k6/http';
import { draft, fail, options as shape, record, summary, TENANT, TOKEN, uuid4, windowEnd } from './common.js';

export const options = shape('http_req_duration');

const BASE = `http://${__ENV.GATEWAY}/v1`;

function headers(key) {
  const h = { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' };
  if (key) {
    h['Idempotency-Key'] = uuid4();
  }
  return { headers: h };
}

function call(method, path, body, step) {
  const params = headers(method !== 'GET');
  params.tags = { step };
  const reply = http.request(method, `${BASE}/${path}`, body === null ? null : JSON.stringify(body), params);
  if (reply.status !== 200) {
    fail(step, `HTTP ${reply.status} ${String(reply.body).slice(0, 300)}`);
    return null;
  }
  return reply.json();
}

// Once per run: route the tenant's payments to the PSP sandbox (an admin's setup).
export function setup() {
  const name = `tenants/${TENANT}/routingConfig`;
  const current = call('GET', name, null, 'setup');
  if (current === null) {
    throw new Error('GetRoutingConfig failed');
  }
  const body = { name, defaultPsps: ['sandbox'], etag: current.routingConfig.etag || '' };
  if (call('PATCH', `${name}?updateMask=default_psps`, body, 'setup') === null) {
    throw new Error('UpdateRoutingConfig failed');
  }
  return { deadline: windowEnd() };
}

export default function (data) {
  const created = call('POST', `tenants/${TENANT}/checkouts`, draft(), 'create');
  if (created === null) return;
  const name = created.checkout.name;
  const quoted = call('POST', `${name}:quote`, { etag: created.checkout.etag }, 'quote');
  if (quoted === null) return;
  const startedMs = Date.now();
  const placed = call('POST', `${name}:placeOrder`, {
    etag: quoted.checkout.etag,
    quoteId: quoted.checkout.quote.quoteId,
    paymentMethodToken: 'pm_sandbox_ok',
  }, 'place');
  if (placed === null) return;
  record(placed.order, data.deadline, startedMs);
}

export function handleSummary(data) {
  return summary(data, 'rest');
}
