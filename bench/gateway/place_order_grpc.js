// PlaceOrder over gRPC straight to the checkout service: the same iteration as
// place_order_rest.js (create, quote, place; same cart, same sandbox payment method), with
// the contracts loaded from a descriptor set (`buf build proto -o commerce.binpb`).
//   k6 run -e CHECKOUT=127.0.0.1:50053 -e PAYMENTS=127.0.0.1:50052 -e PROTOSET=commerce.binpb \
//     -e TENANT=bench -e TOKEN=... -e VUS=16 -e SECONDS=10 -e SUMMARY=grpc.json \
//     bench/gateway/place_order_grpc.js
import grpc from 'k6/net/grpc';
import { draft, fail, options as shape, record, summary, TENANT, TOKEN, uuid4, windowEnd } from './common.js';

export const options = shape('grpc_req_duration');

const client = new grpc.Client();
client.loadProtoset(__ENV.PROTOSET);

const CHECKOUT = 'commerce.checkout.v1.CheckoutService';
const PAYMENTS = 'commerce.payments.v1.PaymentsService';

function call(method, request, step) {
  const reply = client.invoke(method, request, {
    metadata: { authorization: `Bearer ${TOKEN}` },
    tags: { step },
    // The gateway gives every REST call this deadline (COMMERCE_GATEWAY_TIMEOUT's default);
    // k6's own default is 60 s. Same deadline on both sides.
    timeout: __ENV.DEADLINE || '10s',
  });
  if (reply.status !== grpc.StatusOK) {
    fail(step, `${method}: status ${reply.status} ${JSON.stringify(reply.error).slice(0, 300)}`);
    return null;
  }
  return reply.message;
}

// Once per run: route the tenant's payments to the PSP sandbox, over gRPC to payments.
export function setup() {
  client.connect(__ENV.PAYMENTS, { plaintext: true });
  const name = `tenants/${TENANT}/routingConfig`;
  const current = call(`${PAYMENTS}/GetRoutingConfig`, { name }, 'setup');
  if (current === null) {
    throw new Error('GetRoutingConfig failed');
  }
  const updated = call(`${PAYMENTS}/UpdateRoutingConfig`, {
    routingConfig: { name, defaultPsps: ['sandbox'], etag: current.routingConfig.etag || '' },
    updateMask: 'defaultPsps', // FieldMask's JSON form: lowerCamelCase paths
    requestId: uuid4(),
  }, 'setup');
  client.close();
  if (updated === null) {
    throw new Error('UpdateRoutingConfig failed');
  }
  return { deadline: windowEnd() };
}

export default function (data) {
  if (__ITER === 0) {
    client.connect(__ENV.CHECKOUT, { plaintext: true });
  }
  const created = call(`${CHECKOUT}/CreateCheckout`,
    { parent: `tenants/${TENANT}`, checkout: draft(), requestId: uuid4() }, 'create');
  if (created === null) return;
  const name = created.checkout.name;
  const quoted = call(`${CHECKOUT}/QuoteCheckout`,
    { name, etag: created.checkout.etag, requestId: uuid4() }, 'quote');
  if (quoted === null) return;
  const startedMs = Date.now();
  const placed = call(`${CHECKOUT}/PlaceOrder`, {
    name,
    requestId: uuid4(),
    etag: quoted.checkout.etag,
    quoteId: quoted.checkout.quote.quoteId,
    paymentMethodToken: 'pm_sandbox_ok',
  }, 'place');
  if (placed === null) return;
  record(placed.order, data.deadline, startedMs);
}

export function handleSummary(data) {
  return summary(data, 'grpc');
}
