// The ceiling: one bare echo call per iteration (bench/echo.py in its own process), 200 bytes
// each way, at the same VUs and for the same time as the measured path.
import grpc from 'k6/net/grpc';
import encoding from 'k6/encoding';
import { done, failed, options as shape, summary, windowEnd } from './k6common.js';

export const options = shape(['echo']);

const client = new grpc.Client();
client.load(['.'], 'echo.proto');
const PAYLOAD = encoding.b64encode('x'.repeat(200));

export function setup() {
  return { deadline: windowEnd() };
}

export default function (data) {
  if (__ITER === 0) {
    client.connect(__ENV.TARGET, { plaintext: true });
  }
  const startedMs = Date.now();
  const reply = client.invoke('bench.Echo/Echo', { data: PAYLOAD }, { tags: { step: 'echo' } });
  if (reply.status !== grpc.StatusOK) {
    failed('echo', JSON.stringify(reply.error));
    return;
  }
  done(data.deadline, startedMs);
}

export function handleSummary(data) {
  return summary(data, ['echo']);
}
