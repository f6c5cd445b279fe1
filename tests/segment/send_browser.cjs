// analytics.js (@segment/analytics-next), unchanged, in a page in headless Chromium
// (driven by playwright-core): it loads its settings from the service (cdnURL), then
// sends page, identify and track to it. Prints the events analytics.js built, as JSON.
// The page and the library's files come from the local npm install: nothing from a CDN.
//
// usage: SEGMENT_SDKS=DIR CHROMIUM=/usr/bin/chromium node send_browser.cjs SERVICE WRITE_KEY
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { createRequire } = require('node:module')

const sdks = createRequire(path.join(process.env.SEGMENT_SDKS, 'package.json'))
const { chromium } = sdks('playwright-core')
const [service, writeKey] = process.argv.slice(2)
const bundles = path.join(path.dirname(sdks.resolve('@segment/analytics-next/package.json')), 'dist', 'umd')
const pageHtml = `<!doctype html><html><head><title>Volcanion shop</title>
<script src="/analytics-next/index.js"></script></head><body>shop</body></html>`

// The shop's own site, on loopback like the service (Chromium keeps pages of other
// address spaces from calling loopback, which is not what is tested here): its page,
// and analytics.js with its chunks from node_modules.
function serveShop() {
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, 'http://shop')
    const file = path.join(bundles, path.basename(url.pathname))
    if (url.pathname === '/index.html') {
      response.writeHead(200, { 'content-type': 'text/html' }).end(pageHtml)
    } else if (url.pathname.startsWith('/analytics-next/') && fs.existsSync(file)) {
      response.writeHead(200, { 'content-type': 'application/javascript' }).end(fs.readFileSync(file))
    } else {
      response.writeHead(404).end('not here')
    }
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  })
  const shop = await serveShop()
  const pageOrigin = `http://127.0.0.1:${shop.address().port}`
  const requests = []
  try {
    const page = await browser.newPage()
    page.on('request', (request) => requests.push(`${request.method()} ${request.url()}`))
    page.on('requestfailed', (request) => requests.push(`failed: ${request.url()}: ${request.failure().errorText}`))
    page.on('console', (message) => requests.push(`console: ${message.text()}`))
    await page.goto(`${pageOrigin}/index.html?utm_source=newsletter&utm_campaign=launch`)
    const sent = await page.evaluate(
      async ({ service, writeKey }) => {
        const [analytics] = await window.AnalyticsNext.AnalyticsBrowser.load({ writeKey, cdnURL: service })
        const page = await analytics.page('Docs', 'Install', { section: 'sdk' })
        const identify = await analytics.identify('web-user-1', { plan: 'pro', email: 'web@example.com' })
        const track = await analytics.track('Signed Up', { method: 'email', trial: true })
        return [page, identify, track].map((ctx) => {
          const failed = ctx.failedDelivery()
          if (failed) throw new Error(`${ctx.event.type} not delivered: ${failed.reason}`)
          return JSON.parse(JSON.stringify(ctx.event))
        })
      },
      { service, writeKey },
    )
    console.error(`browser requests:\n${requests.join('\n')}`)
    console.log(JSON.stringify(sent))
  } catch (error) {
    console.error(`browser requests:\n${requests.join('\n')}`)
    throw error
  } finally {
    await browser.close()
    shop.close()
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
