// One operation = AuthorizePayment (manual capture) then CapturePayment of the whole amount,
// as bench/payments/__main__.py measures it against the real payments service and against the
// floor (bench/payments/floor.py). Each VU is its own tenant (TENANTS / TOKENS, same order).
//   k6 run -e TARGET=127.0.0.1:50052 -e PROTOSET=commerce.binpb -e TENANTS=a,b -e TOKENS=x,y \
//     -e VUS=16 -e SECONDS=5 -e SUMMARY=out.json pay.js
import grpc from 'k6/net/grpc';
import { done, failed, options as shape, requestId, summary, windowEnd } from '../common/k6common.js';

const STEPS = ['authorize', 'capture'];
export const options = shape(STEPS);

const client = new grpc.Client();
client.loadProtoset(__ENV.PROTOSET);
const SERVICE = 'commerce.payments.v1.PaymentsService';
const TENANTS = __ENV.TENANTS.split(',');
const TOKENS = __ENV.TOKENS.split(',');

export function setup() {
  return { deadline: windowEnd() };
}

function call(method, request, step, token) {
  const reply = client.invoke(`${SERVICE}/${method}`, request, {
    metadata: { authorization: `Bearer ${token}` },
    tags: { step },
    timeout: '10s',
  });
  if (reply.status !== grpc.StatusOK) {
    failed(step, `status ${reply.status} ${JSON.stringify(reply.error)}`);
    return null;
  }
  return reply.message;
}

export default function (data) {
  if (__ITER === 0) {
    client.connect(__ENV.TARGET, { plaintext: true });
  }
  const i = (__VU - 1) % TENANTS.length;
  const parent = `tenants/${TENANTS[i]}`;
  const startedMs = Date.now();
  const authorized = call('AuthorizePayment', {
    parent,
    order: `${parent}/orders/o-${requestId().slice(0, 8)}`,
    amount: { currencyCode: 'USD', amountMinor: '1999' },
    paymentMethod: { token: 'pm_sandbox_ok', type: 'PAYMENT_METHOD_TYPE_CARD' },
    captureMethod: 'CAPTURE_METHOD_MANUAL',
    requestId: requestId(),
  }, 'authorize', TOKENS[i]);
  if (authorized === null) return;
  const captured = call('CapturePayment',
    { name: authorized.payment.name, requestId: requestId() }, 'capture', TOKENS[i]);
  if (captured === null) return;
  if (captured.payment.state !== 'PAYMENT_STATE_CAPTURED') {
    failed('capture', `state ${captured.payment.state}`);
    return;
  }
  done(data.deadline, startedMs);
}

export function handleSummary(data) {
  return summary(data, STEPS);
}
