// @segment/analytics-node, unchanged but for its host: sends every call type, one per
// request (maxEventsInBatch 1) and in batches, then prints the events the library built,
// as JSON, for the test to find in the events API.
//
// usage: SEGMENT_SDKS=DIR node send_node.cjs HOST WRITE_KEY
const path = require('node:path')
const { createRequire } = require('node:module')

const sdks = createRequire(path.join(process.env.SEGMENT_SDKS, 'package.json'))
const { Analytics } = sdks('@segment/analytics-node')
const [host, writeKey] = process.argv.slice(2)

const sent = []
const errors = []

function send(analytics, call, params) {
  return new Promise((resolve) => {
    analytics[call](params, (error, ctx) => {
      if (error) errors.push(`${call}: ${error.reason || error}`)
      else sent.push(ctx.event)
      resolve()
    })
  })
}

function calls(analytics, tag) {
  const userId = `node-user-${tag}`
  const anonymousId = `node-anon-${tag}`
  const context = { ip: '192.0.2.20', userAgent: 'node-test', campaign: { name: 'launch' } }
  return [
    send(analytics, 'page', { anonymousId, category: 'Docs', name: 'Install', properties: { path: '/docs/install' }, context }),
    send(analytics, 'screen', { anonymousId, name: 'Home', properties: { tab: 'feed' } }),
    send(analytics, 'identify', { userId, anonymousId, traits: { plan: 'pro', email: `${tag}@example.com` } }),
    send(analytics, 'track', { userId, event: 'Order Completed', properties: { total: 30.5, items: [{ sku: 'a', qty: 2 }] }, context }),
    send(analytics, 'group', { userId, groupId: `node-group-${tag}`, traits: { name: 'Acme', employees: 12 } }),
    send(analytics, 'alias', { previousId: anonymousId, userId }),
  ]
}

async function main() {
  const single = new Analytics({ writeKey, host, maxEventsInBatch: 1, flushInterval: 50 })
  single.on('error', (error) => errors.push(`single: ${error.code}: ${error.reason}`))
  await Promise.all(calls(single, 'single'))
  await single.closeAndFlush()

  const batched = new Analytics({ writeKey, host, maxEventsInBatch: 20, flushInterval: 300 })
  batched.on('error', (error) => errors.push(`batched: ${error.code}: ${error.reason}`))
  const pending = calls(batched, 'batched')
  // The test's proxy loses the answer to the first batch holding this event: the library
  // retries that batch (X-Retry-Count: 1), and the service must store it once.
  pending.push(send(batched, 'track', { anonymousId: 'node-anon-batched', event: 'Retried Batch', properties: { attempt: 'first' } }))
  await Promise.all(pending)
  await batched.closeAndFlush()

  if (errors.length > 0) {
    console.error(`the library reported errors: ${errors.join('; ')}`)
    process.exit(1)
  }
  console.log(JSON.stringify(sent))
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
