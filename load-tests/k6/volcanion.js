// k6 load scenarios for Volcanion Tracking, read from ../scenarios.json (the same file
// load-tests/scenario.sh runs with wrk and vegeta, so the two cannot drift apart).
//
//   k6 run -e SCENARIO=single -e BASE_URL=http://127.0.0.1:8080 -e KEY=vt_... load-tests/k6/volcanion.js
//
// SCENARIO: single | batch | dashboard | soak | open_loop (open_loop also needs MAX_RATE,
// the closed-loop maximum in requests/s, e.g. from the `single` scenario's result).
// Thresholds come from the scenario and fail the run (k6 exits non-zero) when missed.
import http from 'k6/http';
import { check } from 'k6';

const spec = JSON.parse(open('../scenarios.json'));
const name = __ENV.SCENARIO || 'single';
const scenario = spec.scenarios[name];
if (!scenario) {
  throw new Error(`unknown SCENARIO '${name}': one of ${Object.keys(spec.scenarios).join(', ')}`);
}
const base = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const key = __ENV.KEY;
if (!key) {
  throw new Error('KEY (an API key with the ingest and read scopes) is required');
}

function eventJson(i) {
  return JSON.stringify(spec.event).replaceAll('{i}', String(i));
}

function body(request) {
  if (!request.events) return null;
  if (request.path.endsWith('/batch')) {
    const events = [];
    for (let i = 1; i <= request.events; i++) events.push(eventJson(i));
    return `{"events":[${events.join(',')}]}`;
  }
  return eventJson(123);
}

// The mix as a weighted list, expanded once: each iteration takes the next entry.
const mix = [];
for (const entry of scenario.mix) {
  for (let n = 0; n < entry.weight; n++) mix.push(entry.request);
}
const bodies = Object.fromEntries(Object.entries(spec.requests).map(([id, r]) => [id, body(r)]));

function executors() {
  if (scenario.closed) {
    return {
      [name]: {
        executor: 'constant-vus',
        vus: scenario.closed.connections,
        duration: scenario.closed.duration,
      },
    };
  }
  const arrival = (rate, startTime) => ({
    executor: 'constant-arrival-rate',
    rate: Math.max(1, Math.round(rate)),
    timeUnit: '1s',
    duration: scenario.open.duration,
    preAllocatedVUs: 256,
    maxVUs: 2048,
    startTime,
  });
  if (scenario.fractions_of_max) {
    const max = Number(__ENV.MAX_RATE);
    if (!max) throw new Error('open_loop needs MAX_RATE (closed-loop requests/s)');
    const seconds = parseInt(scenario.open.duration, 10);
    return Object.fromEntries(
      scenario.fractions_of_max.map((fraction, index) => [
        `at_${Math.round(fraction * 100)}pct`,
        arrival(max * fraction, `${index * (seconds + 5)}s`),
      ]),
    );
  }
  return { [name]: arrival(scenario.open.rate_per_second, '0s') };
}

function thresholds() {
  const t = scenario.thresholds;
  const out = { http_req_failed: [`rate<=${t.max_failed_ratio}`] };
  if (t.p99_ms) out.http_req_duration = [`p(99)<${t.p99_ms}`];
  if (t.p99_ms_at_half) out['http_req_duration{scenario:at_50pct}'] = [`p(99)<${t.p99_ms_at_half}`];
  return out;
}

export const options = {
  scenarios: executors(),
  thresholds: thresholds(),
  discardResponseBodies: true,
};

let iteration = 0;

export default function () {
  const id = mix[iteration++ % mix.length];
  const request = spec.requests[id];
  const to = new Date(Math.ceil(Date.now() / 3600e3) * 3600e3);
  const from = new Date(to.getTime() - 24 * 3600e3);
  const path = request.path.replace('{from}', from.toISOString()).replace('{to}', to.toISOString());
  const params = {
    headers: { 'Content-Type': 'application/json', 'X-API-Key': key },
    tags: { request: id },
    responseCallback: http.expectedStatuses(request.expect),
  };
  const response = http.request(request.method, `${base}${path}`, bodies[id], params);
  check(response, { [`${id} answered ${request.expect}`]: (r) => r.status === request.expect });
}
