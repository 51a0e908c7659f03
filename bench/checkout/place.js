// One operation = PlaceOrder of a checkout created and quoted before the window (the pool
// file POOL, prepared by bench/checkout/__main__.py): the whole saga — authorize, capture,
// confirm — answered before the call returns. Entry j of the pool belongs to tenant
// j % VUS, so VU v places entries v-1, v-1+VUS, ... of its own tenant (TENANTS / TOKENS).
import grpc from 'k6/net/grpc';
import { SharedArray } from 'k6/data';
import { Counter } from 'k6/metrics';
import { sleep } from 'k6';
import { done, failed, options as shape, requestId, summary, VUS, windowEnd } from '../common/k6common.js';

const STEPS = ['place'];
export const options = shape(STEPS);

const client = new grpc.Client();
client.loadProtoset(__ENV.PROTOSET);
const pool = new SharedArray('pool', () => JSON.parse(open(__ENV.POOL)));
const TOKENS = __ENV.TOKENS.split(',');
const dry = new Counter('pool_dry');

export function setup() {
  return { deadline: windowEnd() };
}

export default function (data) {
  if (__ITER === 0) {
    client.connect(__ENV.TARGET, { plaintext: true });
  }
  const index = (__VU - 1) + __ITER * VUS;
  if (index >= pool.length) {
    if (Date.now() <= data.deadline) {
      dry.add(1);
      sleep((data.deadline - Date.now()) / 1000 + 0.01);
    }
    return;
  }
  const item = pool[index];
  const startedMs = Date.now();
  const reply = client.invoke('commerce.checkout.v1.CheckoutService/PlaceOrder', {
    name: item.name,
    requestId: requestId(),
    etag: item.etag,
    quoteId: item.quoteId,
    paymentMethodToken: 'pm_sandbox_ok',
  }, {
    metadata: { authorization: `Bearer ${TOKENS[item.tenant]}` },
    tags: { step: 'place' },
    timeout: '10s',
  });
  if (reply.status !== grpc.StatusOK) {
    failed('place', `status ${reply.status} ${JSON.stringify(reply.error)}`);
    return;
  }
  if (reply.message.order.state !== 'ORDER_STATE_CONFIRMED') {
    failed('place', `order ${reply.message.order.state}`);
    return;
  }
  done(data.deadline, startedMs);
}

export function handleSummary(data) {
  return summary(data, STEPS);
}
